"""Times as QBO writes them: in the company's time zone (Pacific standard time, like QBO sample companies)."""

import re
from datetime import date, datetime, time, timedelta, timezone

COMPANY_TIMEZONE = timezone(timedelta(hours=-8))
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def now() -> datetime:
    return datetime.now(COMPANY_TIMEZONE)


def today() -> str:
    return now().date().isoformat()


def metadata_timestamp() -> str:
    return now().isoformat(timespec="seconds")


def envelope_time() -> str:
    return now().isoformat(timespec="milliseconds")


def parse_moment(text: str) -> datetime:
    """A date or date-time as an aware datetime; naive values are company-local, as at QBO."""
    if _DATE_ONLY.match(text):
        return datetime.combine(date.fromisoformat(text), time(), COMPANY_TIMEZONE)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=COMPANY_TIMEZONE)
