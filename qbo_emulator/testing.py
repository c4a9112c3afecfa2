"""Start an emulator in a subprocess for tests and benchmarks, and point the real client libraries at it."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_SECONDS = 20.0
START_ATTEMPTS = 3
REDIRECT_URI = "http://127.0.0.1/callback"


@dataclass(frozen=True)
class EmulatorHandle:
    base_url: str
    process: subprocess.Popen
    db_path: str | None

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid_configuration"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v3"

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(
            method, f"{self.base_url}/_emulator/{path.lstrip('/')}", timeout=30, **kwargs
        )
        response.raise_for_status()
        return response

    def companies(self) -> list[dict]:
        return self.admin("GET", "companies").json()

    def configure(self, **settings) -> dict:
        return self.admin("PUT", "config", json=settings).json()

    def auth_client(self, company: dict, client_secret: str | None = None):
        """An intuit-oauth client of ``company``'s app, configured from the emulator's discovery document."""
        # Imported lazily: the emulator itself does not need the client libraries.
        from intuitlib.client import AuthClient

        secret = client_secret or company["client_secret"]
        return AuthClient(company["client_id"], secret, REDIRECT_URI, self.discovery_url)

    def connect(self, auth_client, realm_id: str, minorversion: int = 75, use_decimal: bool = True):
        """A python-quickbooks client on ``auth_client``; it refreshes first when it has no access token."""
        from quickbooks import QuickBooks

        # requests-oauthlib refuses plain http unless told otherwise; the emulator listens on loopback only.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
        client = QuickBooks(
            auth_client=auth_client,
            refresh_token=auth_client.refresh_token,
            company_id=realm_id,
            minorversion=minorversion,
            use_decimal=use_decimal,
        )
        client.api_url_v3 = client.sandbox_api_url_v3 = self.api_url
        return client

    def quickbooks(self, company: dict | None = None, **options):
        """A python-quickbooks client for ``company`` (default: the first), authorized by intuit-oauth."""
        company = company or self.companies()[0]
        auth_client = self.auth_client(company)
        auth_client.refresh_token = company["refresh_token"]
        return self.connect(auth_client, company["realm_id"], **options)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(base_url: str, process: subprocess.Popen | None = None) -> bool:
    """Wait for the emulator at ``base_url`` to answer; False if ``process`` exits first (port taken)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            if httpx.get(f"{base_url}/_emulator/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"the QBO emulator did not answer at {base_url} within {STARTUP_TIMEOUT_SECONDS} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def emulator_command(port: int, db_path: str | Path | None, config: dict) -> list[str]:
    """The command line of an emulator on the loopback `port` (state in `db_path`, else in memory)."""
    command = [sys.executable, "-m", "qbo_emulator", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--config", json.dumps(config)]
    return command if db_path is None else [*command, "--db", str(db_path)]


@contextmanager
def running_emulator(db_path: str | None = None, **config) -> Iterator[EmulatorHandle]:
    """Runs ``python -m qbo_emulator`` on a free loopback port until the block ends.

    ``config`` takes the keys of ``PUT /_emulator/config``. A port taken between probing and binding (tests
    run in parallel) makes the process exit at once, and the start is retried on another port.
    """
    with tempfile.TemporaryFile() as stderr:
        for _ in range(START_ATTEMPTS):
            port = free_port()
            process = subprocess.Popen(
                emulator_command(port, db_path, config),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            base_url = f"http://127.0.0.1:{port}"
            try:
                ready = wait_until_answering(base_url, process)
            except BaseException:
                _stop(process)
                raise
            if ready:
                break
        else:
            stderr.seek(0)
            raise RuntimeError(f"the QBO emulator did not start: {stderr.read().decode(errors='replace')}")
        try:
            yield EmulatorHandle(base_url, process, None if db_path is None else str(db_path))
        finally:
            _stop(process)
