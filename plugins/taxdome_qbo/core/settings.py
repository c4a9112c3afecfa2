"""The firm settings (docs/configuration.md#firm-settings), and how they are resolved: DAG params win over
the Airflow Variable `taxdome_qbo_settings`, which wins over the defaults. The same Variable holds who hears
about what (`AlertSettings`, docs/configuration.md#alerts), which no DAG param overrides.

A param left empty (None) means "not set here", so a run only overrides what it names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

SETTINGS_VARIABLE = "taxdome_qbo_settings"


class SettingsError(ValueError):
    """A firm setting has a value the sync cannot use."""


@dataclass(frozen=True)
class FirmSettings:
    """How the firm wants TaxDome synced to QuickBooks (names are QBO names: accounts, items, types)."""

    account_scope: Literal["with_activity", "all"] = "with_activity"
    sync_start_date: dt.date | None = None
    integration_date: dt.date | None = None
    service_income_account: str = "Services"
    default_sales_item: str = "Services"
    tax_item: str = "Sales Tax"
    deposit_to_account: str = "Undeposited Funds"
    fee_expense_account: str = "Commissions & fees"
    fee_paid_from_account: str | None = None  # None: the deposit-to account
    customer_type: str = "Individual"
    sync_payments: bool = True
    automated_sales_tax: bool = False
    home_currency: str = "USD"

    @property
    def effective_fee_paid_from_account(self) -> str:
        return self.fee_paid_from_account or self.deposit_to_account

    def as_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items()}


SETTING_NAMES = tuple(f.name for f in fields(FirmSettings))
_DATES = {"sync_start_date", "integration_date"}
_BOOLEANS = {"sync_payments", "automated_sales_tax"}
_SCOPES = ("with_activity", "all")


def _coerce_boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    folded = str(value).strip().lower()
    if folded in ("true", "yes", "1"):
        return True
    if folded in ("false", "no", "0"):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _coerce(name: str, value: Any) -> Any:
    if name in _DATES:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError as exc:
            raise SettingsError(f"{name} must be a date written YYYY-MM-DD, not {value!r}") from exc
    if name in _BOOLEANS:
        return _coerce_boolean(name, value)
    if name == "account_scope" and value not in _SCOPES:
        raise SettingsError(f"account_scope must be one of {', '.join(_SCOPES)}, not {value!r}")
    if name == "home_currency":
        value = str(value).strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise SettingsError(f"home_currency must be a three-letter code, not {value!r}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{name} must be a non-empty QuickBooks name, not {value!r}")
    return value.strip()


def resolve_settings(variable: dict[str, Any] | None, params: dict[str, Any] | None) -> FirmSettings:
    """Defaults, overridden by the Variable's keys, overridden by params that are set (not None)."""
    unknown = sorted(set(variable or {}) - set(SETTING_NAMES) - set(ALERT_SETTING_NAMES))
    if unknown:
        raise SettingsError(f"the {SETTINGS_VARIABLE} Variable has unknown keys: {', '.join(unknown)}")
    chosen: dict[str, Any] = {}
    for source in (variable or {}, params or {}):
        chosen.update({k: v for k, v in source.items() if k in SETTING_NAMES and v is not None and v != ""})
    return FirmSettings(**{name: _coerce(name, value) for name, value in chosen.items()})


@dataclass(frozen=True)
class AlertSettings:
    """Who is told what; each alert also needs its channel's connection (docs/configuration.md#alerts)."""

    data_team_emails: tuple[str, ...] = ()  # failed tasks and overdue syncs, by e-mail
    finance_emails: tuple[str, ...] = ()  # each reconciliation's verdict
    finance_on_clean: bool = False  # also tell finance when a reconciliation is clean


ALERT_SETTING_NAMES = tuple(f.name for f in fields(AlertSettings))


def _addresses(name: str, value: Any) -> tuple[str, ...]:
    listed = value.split(",") if isinstance(value, str) else value
    if not isinstance(listed, list | tuple) or not all(isinstance(a, str) for a in listed):
        raise SettingsError(f"{name} must be a list of e-mail addresses, not {value!r}")
    addresses = tuple(a.strip() for a in listed if a.strip())
    malformed = [a for a in addresses if a.count("@") != 1 or any(c.isspace() or c in "<>,;" for c in a)]
    if malformed:
        raise SettingsError(f"{name} has what is not an e-mail address: {', '.join(malformed)}")
    return addresses


def resolve_alert_settings(variable: dict[str, Any] | None) -> AlertSettings:
    """The alert keys of the Variable over the defaults."""
    chosen = {k: v for k, v in (variable or {}).items() if k in ALERT_SETTING_NAMES and v is not None}
    return AlertSettings(
        **{
            name: _coerce_boolean(name, value) if name == "finance_on_clean" else _addresses(name, value)
            for name, value in chosen.items()
        }
    )
