"""What a QBO answer means for the sync: TaxDome's sync-issue categories, how each answer is handled, and
the message finance reads when QBO refuses an object.

Pure: no I/O. The loader classifies every answer (HTTP status and body) with this module.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from taxdome_qbo.core.kinds import CATEGORIES as CATEGORIES  # the command line offers them from here
from taxdome_qbo.core.kinds import KINDS

# TaxDome groups sync issues by these categories (R19); each TaxDome object kind and loader kind has one.
CATEGORY_BY_KIND = {name: kind.category for name, kind in KINDS.items()}

STALE_OBJECT = "5010"
OBJECT_NOT_FOUND = "610"
THROTTLE_CODE = "3001"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_THROTTLE_TEXT = re.compile(r"ThrottleExceeded|statusCode=429|Too Many Requests", re.IGNORECASE)
# 100-499 are authentication/authorization faults; 6190 is a company whose subscription ended. Neither is
# about one object: retrying another object cannot help, a person must act.
_AUTHORIZATION_CODES = range(100, 500)
_COMPANY_UNUSABLE = frozenset({"6190"})


def category_of(kind: str) -> str:
    return CATEGORY_BY_KIND[kind]


class Answer(enum.Enum):
    """What to do with one answer."""

    OK = "ok"
    THROTTLED = "throttled"  # wait (Retry-After, else 60 s) and send the same request again
    TRANSIENT = "transient"  # back off with jitter and send the same request again
    UNAUTHORIZED = "unauthorized"  # refresh the access token once, then send again
    STALE = "stale"  # 5010: re-read, re-apply, send once more
    NOT_FOUND = "not_found"  # 610
    DATA_FAULT = "data_fault"  # this object is refused; the run goes on
    COMPANY_FAULT = "company_fault"  # authorization or company state: the run stops and a person acts


@dataclass(frozen=True)
class Fault:
    code: str
    message: str
    detail: str

    def describe(self) -> str:
        return f"QBO fault {self.code} {self.message}: {self.detail}".rstrip(": ")


def first_fault(body: dict | None) -> Fault | None:
    """The first error of a `Fault` envelope (QBO's casing, or the lower-case one of its 401s)."""
    if not isinstance(body, dict):
        return None
    envelope = body.get("Fault") or body.get("fault")
    if not isinstance(envelope, dict):
        return None
    errors = envelope.get("Error") or envelope.get("error") or [{}]
    error = errors[0] if isinstance(errors, list) and errors else {}
    return Fault(
        code=str(error.get("code") or ""),
        message=str(error.get("Message") or error.get("message") or ""),
        detail=str(error.get("Detail") or error.get("detail") or ""),
    )


def classify_fault(fault: Fault) -> Answer:
    if fault.code == STALE_OBJECT:
        return Answer.STALE
    if fault.code == OBJECT_NOT_FOUND:
        return Answer.NOT_FOUND
    if fault.code == THROTTLE_CODE:
        return Answer.THROTTLED
    if fault.code in _COMPANY_UNUSABLE or (fault.code.isdigit() and int(fault.code) in _AUTHORIZATION_CODES):
        return Answer.COMPANY_FAULT
    return Answer.DATA_FAULT


def mentions_throttling(text: str) -> bool:
    """QBO's throttling page or message (its 429s are not always JSON)."""
    return bool(_THROTTLE_TEXT.search(text or ""))


def classify(status: int, body: dict | None, text: str) -> Answer:
    """An HTTP answer: its status, its JSON body (None when not JSON) and its text."""
    if status == 401:
        return Answer.UNAUTHORIZED
    if status == 429 or (body is None and mentions_throttling(text)):
        return Answer.THROTTLED
    if status in TRANSIENT_STATUSES:
        return Answer.TRANSIENT
    if status == 403:
        return Answer.COMPANY_FAULT
    fault = first_fault(body)
    if fault is not None:
        return classify_fault(fault)
    if status == 200 and body is not None:
        return Answer.OK
    # Another status without a QBO fault (a proxy's page, a truncated body): nothing says the request ran.
    return Answer.TRANSIENT


def finance_message(kind: str, action: str, fault: Fault) -> str:
    """What finance reads when QBO refuses a write: what happened and what to do, then QBO's own words."""
    what = {
        "6240": "the name is already used by another QuickBooks customer, vendor or employee: rename the "
        "account in TaxDome or match it by hand to the existing customer",
        "6140": "QuickBooks already has a document with this number: renumber it in TaxDome or remove the "
        "duplicate in QuickBooks",
        "6070": "a line's amount is not its quantity times its rate",
        OBJECT_NOT_FOUND: "something it refers to was deleted or made inactive in QuickBooks: restore it "
        "or change the firm settings",
        "2500": "it refers to a QuickBooks record that does not exist: check the accounts and items in the "
        "firm settings",
        "2020": "QuickBooks says a required field is missing",
        "6000": "QuickBooks refused it under one of its business rules",
        "6540": "it was deposited in QuickBooks and can no longer change: undo the deposit first",
        "6210": "its date is in a closed accounting period in QuickBooks: reopen the period or change the "
        "closing date",
        "6080": "it has no name",
        "2210": "its e-mail address is not valid",
    }.get(fault.code, "QuickBooks refused it")
    return f"could not {action} the {kind.replace('_', ' ')} in QuickBooks: {what} ({fault.describe()})"
