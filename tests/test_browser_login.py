"""Airflow's own UI in headless Chromium, on a started api-server: logging in through its login page as
the editor and the viewer, a wrong password, the Dags list with the project's DAGs, and the navigation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import (
    LOGIN_PATH,
    logged_in_page,
    open_login_page,
    open_nav_entry,
    screenshot,
    submit_login,
)
from playwright.sync_api import expect

from taxdome_qbo.deployment import PROJECT_DAGS

pytestmark = pytest.mark.deployment

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE) and len(content) > 1000, path


def test_the_editor_logs_in_through_the_login_page_and_sees_the_project_dags(airflow_ui, chromium):
    login = screenshot(open_login_page(chromium, airflow_ui), "1-login")

    page = logged_in_page(chromium, airflow_ui, "editor")
    home = screenshot(page, "2-home")
    dags = open_nav_entry(page, "Dags")

    assert any(cookie["name"] == "_token" for cookie in page.context.cookies())  # the UI's session
    assert dags is page and page.url == f"{airflow_ui.base_url}/dags"
    for dag_id in PROJECT_DAGS:
        expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    for shot in (login, home, screenshot(page, "3-dags")):
        assert_png(shot)


def test_the_viewer_logs_in_and_opens_an_admin_page_through_the_navigation(airflow_ui, chromium):
    page = logged_in_page(chromium, airflow_ui, "viewer")
    plugins = open_nav_entry(page, "Plugins", "Admin")

    assert plugins is page and page.url == f"{airflow_ui.base_url}/plugins"
    expect(page.get_by_role("cell", name="taxdome_qbo", exact=True)).to_be_visible()
    assert_png(screenshot(page, "plugins"))


def test_a_wrong_password_stays_on_the_login_page_with_its_error(airflow_ui, chromium):
    page = open_login_page(chromium, airflow_ui)
    submit_login(page, "editor", airflow_ui.passwords["editor"] + "-wrong")

    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(LOGIN_PATH)))
    assert not any(cookie["name"] == "_token" for cookie in page.context.cookies())
    assert_png(screenshot(page, "refused"))
