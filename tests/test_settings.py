"""Firm settings: params win over the Variable, which wins over the defaults; bad values are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from taxdome_qbo.core.settings import SETTING_NAMES, FirmSettings, SettingsError, resolve_settings


def test_defaults_follow_the_spec():
    settings = resolve_settings(None, None)
    assert settings == FirmSettings()
    assert (settings.account_scope, settings.deposit_to_account, settings.fee_expense_account) == (
        "with_activity",
        "Undeposited Funds",
        "Commissions & fees",
    )
    assert settings.effective_fee_paid_from_account == "Undeposited Funds"
    assert settings.sync_start_date is None and settings.sync_payments is True


def test_params_win_over_the_variable_which_wins_over_defaults():
    variable = {
        "account_scope": "all",
        "sync_start_date": "2026-01-01",
        "deposit_to_account": "Stripe Clearing",
    }
    params = {
        "account_scope": "with_activity",
        "sync_start_date": None,
        "export_dir": "/ignored",
        "tax_item": "",
    }
    settings = resolve_settings(variable, params)
    assert settings.account_scope == "with_activity"  # param
    assert settings.sync_start_date == dt.date(2026, 1, 1)  # Variable: the param is not set
    assert settings.effective_fee_paid_from_account == "Stripe Clearing"
    assert settings.tax_item == "Sales Tax"  # an empty param is "not set"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"account_scope": "some"}, "account_scope must be one of with_activity, all"),
        ({"sync_start_date": "01/01/2026"}, "sync_start_date must be a date written YYYY-MM-DD"),
        ({"sync_payments": "perhaps"}, "sync_payments must be true or false"),
        ({"home_currency": "dollars"}, "home_currency must be a three-letter code"),
        ({"deposit_to_account": "   "}, "deposit_to_account must be a non-empty QuickBooks name"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(params, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings(None, params)


def test_unknown_variable_keys_are_refused():
    with pytest.raises(SettingsError, match="unknown keys: sync_date"):
        resolve_settings({"sync_date": "2026-01-01"}, None)


def test_settings_round_trip_through_json():
    settings = resolve_settings({"sync_start_date": "2026-01-01", "automated_sales_tax": "true"}, None)
    assert resolve_settings(settings.as_json(), None) == settings
    assert set(settings.as_json()) == set(SETTING_NAMES)
