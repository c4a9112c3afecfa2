"""The distribution registers with Airflow as providers do (entry point `apache_airflow_provider`): its two
connection types, their hooks and the fields of their forms, as the providers manager and the UI's API see
them, and no connection type of another provider is taken."""

from __future__ import annotations

import json
import os
from importlib.resources import files

import jsonschema
import pytest

from qbo_emulator.testing import free_port
from taxdome_qbo import deployment as deploy
from taxdome_qbo.hooks.quickbooks import RATE_EXTRAS, QuickBooksHook
from taxdome_qbo.hooks.warehouse import WarehouseHook
from taxdome_qbo.provider_info import get_provider_info

OURS = {QuickBooksHook.conn_type: QuickBooksHook, WarehouseHook.conn_type: WarehouseHook}
QUICKBOOKS_FIELDS = {"environment", "realm_id", "refresh_token", "redirect_uri", "token_encryption_key"}
SECRET_FIELDS = {"refresh_token", "token_encryption_key"}


def airflow_schema(name: str) -> dict:
    return json.loads(files("airflow").joinpath(name).read_text())


def test_the_provider_info_is_what_airflow_validates():
    info = get_provider_info()

    jsonschema.validate(info, airflow_schema("provider_info.schema.json"))
    # The declarative form fields (`conn-fields`, `ui-field-behaviour`) as provider.yaml declares them.
    connection_types = airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], connection_types)
    declared = {entry["connection-type"]: entry["hook-class-name"] for entry in info["connection-types"]}
    assert declared == {kind: f"{hook.__module__}.{hook.__qualname__}" for kind, hook in OURS.items()}
    assert all(
        entry["hook-name"] == OURS[entry["connection-type"]].hook_name for entry in info["connection-types"]
    )


@pytest.fixture(scope="module")
def providers():
    """What the api-server's connection forms are built from."""
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_the_task_runtime_finds_our_hooks_and_leaves_postgres_to_its_provider():
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    runtime = ProvidersManagerTaskRuntime()

    assert runtime.providers["taxdome-qbo"].version == "0.1.0"
    for conn_type, hook in OURS.items():
        info = runtime.hooks[conn_type]
        assert info.package_name == "taxdome-qbo"
        assert info.hook_class_name == f"{hook.__module__}.{hook.__qualname__}"
        assert info.connection_type == hook.conn_type, "the hook declares the type it is registered as"
        assert info.connection_id_attribute_name == hook.conn_name_attr
    assert runtime.hooks[QuickBooksHook.conn_type].connection_testable
    assert runtime.hooks["postgres"].package_name == "apache-airflow-providers-postgres"


def test_the_quickbooks_form_has_its_own_fields_with_help(providers):
    widgets = {
        key.removeprefix("extra__quickbooks__"): widget
        for key, widget in providers.connection_form_widgets.items()
        if key.startswith("extra__quickbooks__")
    }

    assert set(widgets) == QUICKBOOKS_FIELDS | set(RATE_EXTRAS), "the extras the hook reads"
    for name, widget in widgets.items():
        assert widget.package_name == "taxdome-qbo"
        assert widget.field["schema"]["title"] and widget.field["description"], name
        assert widget.is_sensitive == (name in SECRET_FIELDS), name
    behaviour = providers.field_behaviours[QuickBooksHook.conn_type]
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client secret"}
    assert set(behaviour["hidden_fields"]) == {"host", "port", "schema"}


def test_the_warehouse_form_names_the_database_and_the_schema(providers):
    (search_path,) = [
        widget
        for key, widget in providers.connection_form_widgets.items()
        if key.startswith(f"extra__{WarehouseHook.conn_type}__")
    ]

    assert search_path.field_name == "search_path" and "schema" in search_path.field["description"]
    behaviour = providers.field_behaviours[WarehouseHook.conn_type]
    assert behaviour["relabeling"] == {"schema": "Database"}
    assert behaviour["hidden_fields"] == []


@pytest.mark.deployment
def test_the_ui_connection_form_of_a_running_api_server_offers_our_types(tmp_path):
    """The api-server, started as `make up` starts it (no PYTHONPATH, from the Airflow home), answers the UI's
    connection form metadata with our types, their labels and their fields."""
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    environment |= deploy.SHARED_SETTINGS | deploy.project_settings(home) | deploy.api_settings(port)
    deployment = deploy.Deployment(home, environment)
    try:
        deployment.run("db", "migrate")
        deployment.start(deploy.Component.airflow("api-server", "api-server"))
        api = deploy.AirflowApi(f"http://127.0.0.1:{port}", deploy.ADMIN_USER, "")
        deploy.wait_for(api.answering, "the api-server", 180, deployment)
        api.credentials["password"] = deploy.admin_password(home)
        api.log_in()
        meta = api.client.get("/ui/connections/hook_meta").raise_for_status().json()
    finally:
        deployment.stop()

    by_type = {entry["connection_type"]: entry for entry in meta}
    quickbooks = by_type[QuickBooksHook.conn_type]
    assert quickbooks["hook_name"] == QuickBooksHook.hook_name
    assert quickbooks["standard_fields"]["login"]["title"] == "Client ID"
    assert quickbooks["standard_fields"]["host"]["hidden"]
    assert set(quickbooks["extra_fields"]) == QUICKBOOKS_FIELDS | set(RATE_EXTRAS)
    assert quickbooks["extra_fields"]["environment"]["description"].startswith("sandbox or production")
    warehouse = by_type[WarehouseHook.conn_type]
    assert warehouse["standard_fields"]["url_schema"]["title"] == "Database"
    assert set(warehouse["extra_fields"]) == {"search_path"}
    assert by_type["postgres"]["hook_class_name"].startswith("airflow.providers.postgres.")
