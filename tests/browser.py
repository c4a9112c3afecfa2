"""The real-browser harness: a started api-server with Airflow's SimpleAuthManager and two users, and
Debian's headless Chromium driven by Playwright, logging in through Airflow's own login page.

The browser is the system's `/usr/bin/chromium`: tests never download one (`playwright install`). Playwright
starts it without Chromium's sandbox (its default), which a root user could not have.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from playwright.sync_api import Browser, Frame, Locator, Page, expect, sync_playwright

from qbo_emulator.testing import free_port
from taxdome_qbo import deployment as deploy

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The SimpleAuthManager's roles: `op` may edit DAGs (and connections, variables, pools), `viewer` only reads.
USERS = {"editor": "op", "viewer": "viewer"}
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
# The React UI's first load fetches a few MB of scripts and renders them on 2 shared cores: waits (page
# actions and `expect`) allow it 30 s rather than Playwright's 5 s for `expect`.
PAGE_TIMEOUT_MS = 30_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)
LOGIN_PATH = "/auth/login"
# `make screenshots` sets it to docs/screenshots: the view's browser tests then write the README's pictures.
DOCS_SCREENSHOTS = "TAXDOME_QBO_DOCS_SCREENSHOTS"


@dataclass(frozen=True)
class AirflowUi:
    """A running api-server as the browser reaches it, and the passwords it generated for `USERS`."""

    base_url: str
    passwords: dict[str, str]


@contextmanager
def running_api_server(home: Path, settings: Mapping[str, str] | None = None) -> Iterator[AirflowUi]:
    """An api-server on a free loopback port, over a freshly migrated Airflow home in `home`, with the
    project's DAGs serialized (so the Dags list shows them without a dag-processor) and `USERS` able to log
    in. Started as `make up` starts it: the `airflow` CLI of this virtualenv, no inherited Airflow settings;
    `settings` adds environment variables (a warehouse connection, the `taxdome_qbo_settings` Variable)."""
    port = free_port()
    passwords_file = home / PASSWORDS_FILE
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    environment |= deploy.SHARED_SETTINGS | deploy.project_settings(home) | deploy.api_settings(port)
    environment |= {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, role in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
    }
    environment |= settings or {}
    deployment = deploy.Deployment(home, environment)
    try:
        deployment.run("db", "migrate")
        # The api-server starts while the DAGs are serialized: each takes ~10 s of imports.
        deployment.start(deploy.Component.airflow("api-server", "api-server"))
        deployment.run("dags", "reserialize")
        api = deploy.AirflowApi(f"http://127.0.0.1:{port}", "", "")
        deploy.wait_for(api.answering, "the api-server", deploy.STARTUP_TIMEOUT_SECONDS, deployment)
        yield AirflowUi(api.base_url, json.loads(passwords_file.read_text()))
    finally:
        deployment.stop()


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_login_page(browser: Browser, ui: AirflowUi) -> Page:
    """A fresh browser context (no cookies) on the UI's home: Airflow sends it to its login page."""
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(ui.base_url + "/")
    page.wait_for_url(re.compile(re.escape(LOGIN_PATH)))
    return page


def submit_login(page: Page, username: str, password: str) -> None:
    """Fill Airflow's login form and submit it, as a person does."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def logged_in_page(browser: Browser, ui: AirflowUi, user: str) -> Page:
    """A page logged in as `user` through the login page, waiting on the UI's home page."""
    page = open_login_page(browser, ui)
    submit_login(page, user, ui.passwords[user])
    page.wait_for_url(lambda url: LOGIN_PATH not in url)
    expect(navigation(page)).to_be_visible()
    return page


def navigation(page: Page) -> Locator:
    """The UI's navigation bar (Home, Dags, Assets, Browse, Admin, ...: a sidebar, not a <nav> landmark)."""
    return page.get_by_test_id("nav-sidebar")


def open_nav_entry(page: Page, label: str, *menus: str) -> Page | Frame:
    """Click `label` in the UI's navigation, opening first the `menus` it sits under (a button of the bar,
    then any sub-menus), and return what shows it: the page, or for an external view (routed to
    `/plugin/<url_route>`) the frame the UI embeds it in.

    Where Airflow 3.3 puts an external view with `destination: "nav"`: under Browse, Admin, Docs or User by
    its `category`; else directly in the bar when it says `nav_top_level: True` or is the only such view,
    and in the bar's "Plugins" menu otherwise (in a sub-menu named after its category, if it has one)."""
    bar = navigation(page)
    for depth, menu in enumerate(menus):
        (page.get_by_role("menuitem", name=menu) if depth else bar.get_by_label(menu, exact=True)).click()
    entry = page.get_by_role("menuitem", name=label) if menus else bar.get_by_label(label, exact=True)
    entry.click()
    if not urlparse(page.url).path.startswith("/plugin/"):
        return page
    embedded = page.locator("iframe").first
    embedded.wait_for()
    frame = embedded.element_handle().content_frame()
    frame.wait_for_load_state()
    return frame


def wait_until_settled(view: Frame) -> None:
    """Wait until the Airflow UI is done with a page just opened in an external view's frame. The UI copies
    the frame's address into its own route and, where its router decodes the path differently (a run id's
    `%3A` and `%2B`), loads the frame once more at the decoded address: a page read before that second load
    may vanish under the reader ("execution context was destroyed")."""
    view.wait_for_url(lambda url: unquote(urlsplit(url).path) == urlsplit(url).path)


def artifacts_folder(node_id: str) -> Path:
    """The folder of a test's screenshots: tests/artifacts/<test module>/<test name>."""
    module, _, name = node_id.partition("::")
    return ARTIFACTS / Path(module).stem / re.sub(r"[^\w.-]+", "_", name)


def screenshot(page: Page, name: str, *, docs_name: str | None = None) -> Path:
    """A full-page PNG `<name>.png` in the running test's artifacts folder. A page the README shows
    (`docs_name`) is also written as `<docs_name>.png` to the folder `DOCS_SCREENSHOTS` names, when set."""
    running = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]  # "tests/x.py::test_y (call)"
    path = screenshot_at(page, artifacts_folder(running) / f"{name}.png")
    if docs_name and (docs := os.environ.get(DOCS_SCREENSHOTS)):
        Path(docs).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(docs) / f"{docs_name}.png")
    return path


def screenshot_at(page: Page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def open_pages(browser: Browser) -> list[Page]:
    return [page for context in browser.contexts for page in context.pages]


def table_cells(scope: Page | Frame, selector: str) -> list[list[str]]:
    """The text of each data cell of the table `selector`, row by row (rows of headers only left out)."""
    return scope.locator(selector).first.evaluate(
        """table => [...table.rows]
            .filter(row => row.querySelector("td"))
            .map(row => [...row.cells].map(cell => cell.innerText.trim()))"""
    )
