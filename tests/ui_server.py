"""The real api-server application (Airflow's app factory with the plugins folder loaded) for the view's
tests, with SimpleAuthManager's users: `olga` (op) may edit the DAGs, `victor` (viewer) may only read, and
`nadia` (viewer) is logged in but refused the taxdome DAGs (as a deployment's auth manager may refuse a
user the DAGs of other teams).
tests/conftest.py loads it as a plugin (`pytest_plugins`)."""

from __future__ import annotations

import json

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from fastapi.testclient import TestClient

from taxdome_qbo.ui import web

PASSWORDS = {"olga": "op-secret", "victor": "viewer-secret", "nadia": "outsider-secret"}
OUTSIDER = "nadia"


class TeamAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that the outsider may read no taxdome DAG."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if (
            user.get_name() == OUTSIDER
            and details is not None
            and (details.id or "").startswith("taxdome_qbo")
        ):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )


@pytest.fixture(scope="module")
def api_server(airflow_db, tmp_path_factory):
    """Airflow's api-server application, in process, with SimpleAuthManager's users and the outsider."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    settings = {
        "AIRFLOW__CORE__AUTH_MANAGER": f"{__name__}.{TeamAuthManager.__name__}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "olga:op,victor:viewer,nadia:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-" + "s" * 64,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        # Each test points `warehouse_default` at a warehouse of its own: the view must look it up every time.
        patch.setattr(web.warehouse_engines, "recheck_seconds", 0.0)
        from airflow.api_fastapi.app import create_app, purge_cached_app

        purge_cached_app()
        with TestClient(create_app(), follow_redirects=False) as client:
            yield client
        purge_cached_app()


def token_of(client: TestClient, user: str) -> str:
    """A token the way the UI's login form gets one: SimpleAuthManager's token endpoint."""
    answer = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert answer.status_code == 201, answer.text
    return answer.json()["access_token"]


def bearer(client: TestClient, user: str) -> dict:
    return {"Authorization": f"Bearer {token_of(client, user)}"}
