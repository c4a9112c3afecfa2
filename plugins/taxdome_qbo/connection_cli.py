"""`python -m taxdome_qbo connect | disconnect | reconnect`: the firm owner links the sync to a QuickBooks company.

Exit codes: 0 done, 2 refused or bad usage (nothing changed), 1 failed.
"""

# Printing is this module's interface to the operator, as in cli.py.

from __future__ import annotations

import argparse
import sys

from airflow.sdk.exceptions import AirflowNotFoundException

from taxdome_qbo.hooks.quickbooks import QuickBooksHook
from taxdome_qbo.services import company_lease, qbo_connection
from taxdome_qbo.services.qbo_client import QboTokenRefreshError
from taxdome_qbo.services.qbo_connection import (
    SWITCH_CONFIRMATION,
    ConnectionFailed,
    ConnectionRefused,
)
from taxdome_qbo.services.qbo_tokens import QboDisconnectedError

OK, FAILED, REFUSED = 0, 1, 2


def add_commands(commands: argparse._SubParsersAction) -> None:
    connect = commands.add_parser(
        "connect", help="authorize access to a QuickBooks company and make it the one the sync writes to"
    )
    connect.add_argument(
        "--realm",
        help="the company expected (its realm id); an emulator also picks it on the authorization page",
    )
    _add_redirect_url_option(connect)
    connect.set_defaults(handler=_guarded(connect_command))

    disconnect = commands.add_parser(
        "disconnect", help="stop all syncing: revoke the current company's token at Intuit"
    )
    disconnect.set_defaults(handler=_guarded(disconnect_command))

    reconnect = commands.add_parser(
        "reconnect", help="authorize the company again (the sync resumes) or move the sync to another company"
    )
    reconnect.add_argument("--realm", required=True, help="the company to connect (its realm id)")
    reconnect.add_argument(
        "--confirm",
        metavar=SWITCH_CONFIRMATION,
        help=f"type {SWITCH_CONFIRMATION} to move the sync to a company other than the current one",
    )
    _add_redirect_url_option(reconnect)
    reconnect.set_defaults(handler=_guarded(reconnect_command))


def _add_redirect_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redirect-url",
        help="the address Intuit redirected the browser to after approval (asked for when not given)",
    )


def _guarded(command):
    """`command` with its expected failures as a message on stderr and an exit code instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (ConnectionRefused, company_lease.CompanyBusy) as refusal:
            print(f"refused: {refusal}", file=sys.stderr)
            return REFUSED
        except AirflowNotFoundException:
            print("failed: there is no quickbooks_default connection", file=sys.stderr)
            return FAILED
        except (ConnectionFailed, QboTokenRefreshError, ValueError) as error:
            print(f"failed: {error}", file=sys.stderr)
            return FAILED

    return run


def _lease(hook: QuickBooksHook, realm_id: str, command: str):
    """The company's lease for a command that changes its connection: refused (CompanyBusy, naming the
    writer) while a sync or retry writes to it beyond a short wait."""
    return company_lease.company_lease(
        hook.warehouse_engine,
        realm_id,
        f"`python -m taxdome_qbo {command}`",
        wait_seconds=company_lease.COMMAND_WAIT_SECONDS,
    )


def connect_command(args: argparse.Namespace) -> int:
    return _authorize(args, switch_confirmed=False)


def reconnect_command(args: argparse.Namespace) -> int:
    return _authorize(args, switch_confirmed=args.confirm == SWITCH_CONFIRMATION)


def _authorize(args: argparse.Namespace, *, switch_confirmed: bool) -> int:
    """The authorization flow shared by connect and reconnect; refusals happen before anything is stored."""
    hook = QuickBooksHook()
    app = hook.get_app()
    current_realm = hook.current_realm_id()
    if args.realm and current_realm and args.realm != current_realm and not switch_confirmed:
        # Refused before the owner approves anything at Intuit.
        raise ConnectionRefused(qbo_connection.switch_warning(current_realm, args.realm))
    if args.redirect_url:
        # The URL answers an authorization URL printed by an earlier run, whose state token this run never
        # knew, so it cannot be checked; the code in it is still bound to this app and its redirect URI and
        # works once only.
        redirect_url, expected_state = args.redirect_url, None
    else:
        request = qbo_connection.authorization_request(app, realm_hint=args.realm)
        print("Open this address, sign in as an admin of the QuickBooks company and approve access:")
        print(request.url)
        try:
            redirect_url = input("Then paste the address your browser was redirected to: ")
        except (EOFError, KeyboardInterrupt):
            raise ConnectionRefused(
                "no redirect address was given: nothing changed (pass it with --redirect-url)"
            ) from None
        expected_state = request.state
    grant = qbo_connection.parse_redirect_url(redirect_url)
    qbo_connection.check_grant(
        grant,
        expected_state=expected_state,
        expected_realm=args.realm,
        current_realm=current_realm,
        switch_confirmed=switch_confirmed,
    )
    # Taken before the one-time code is spent, so a busy company refuses with nothing changed.
    with _lease(hook, grant.realm_id, "connect"):
        company_name = qbo_connection.complete_connection(
            app, hook.warehouse_engine, hook.token_cipher, grant
        )
    print(f"connected to QuickBooks company '{company_name}' (realm {grant.realm_id})")
    if current_realm and current_realm != grant.realm_id:
        print(
            f"the sync now writes to company {grant.realm_id}; company {current_realm} keeps its sync state"
        )
    return OK


def disconnect_command(args: argparse.Namespace) -> int:
    hook = QuickBooksHook()
    realm_id = hook.current_realm_id()
    if realm_id is None:
        print("no QuickBooks company is connected: nothing to disconnect")
        return OK
    credentials = hook.get_credentials()
    try:
        with _lease(hook, realm_id, "disconnect"):
            disconnection = qbo_connection.disconnect(
                hook.get_app(),
                hook.warehouse_engine,
                hook.token_cipher,
                realm_id,
                seed_refresh_token=credentials.initial_refresh_token,
            )
    except QboDisconnectedError:
        print(f"QuickBooks company {realm_id} was never connected: nothing to disconnect")
        return OK
    resume = f"the sync stops until `python -m taxdome_qbo reconnect --realm {realm_id}`"
    if disconnection.revocation_problem is None:
        print(f"disconnected QuickBooks company {realm_id} and revoked its token at Intuit: {resume}")
        return OK
    print(f"disconnected QuickBooks company {realm_id}: {resume}")
    print(
        f"warning: the company's token may still be valid at Intuit ({disconnection.revocation_problem}); "
        "run disconnect again later, or disconnect the app inside QuickBooks",
        file=sys.stderr,
    )
    return OK
