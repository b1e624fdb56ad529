"""Harness of the plugin's browser tests: a real service (`python -m service up`: SQLite, the embedded broker,
dryrun) in a subprocess, and headless Chromium (Debian's, driven by Playwright) showing the plugin's
index.html inside host.html, a stand-in for the editor (see there)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, Page, Playwright, Route, sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Every run saves the panel's screenshots; into the committed docs/screenshots only when asked
# (PLUGIN_SCREENSHOTS=docs/screenshots), so that a test run leaves the checkout as it was.
SCREENSHOTS = (
    REPO / os.environ["PLUGIN_SCREENSHOTS"]
    if os.environ.get("PLUGIN_SCREENSHOTS")
    else (Path(tempfile.gettempdir()) / "gigaoffice-plugin-screenshots")
)
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Slow enough to see `queued` and `processing` on the panel, and to cancel in between.
DRYRUN_LATENCY_MS = 700
WORKER_CONCURRENCY = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    url: str
    key: str
    env: dict[str, str]

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def requests_received(self) -> int:
        """Requests this key has submitted today, as the service counts them (GET /api/v1/usage)."""
        usage = httpx.get(f"{self.url}/api/v1/usage", headers=self.headers(), timeout=10).json()
        return int(usage["day"]["requests"]["total"])

    def submit(self, query: str = "Какой товар продавался лучше всего?") -> str:
        """A request of its own, to keep the worker busy."""
        body = {
            "kind": "spreadsheet",
            "query_text": query,
            "input_range": "A1:B2",
            "input_data": [["a", "b"], [1, 2]],
        }
        response = httpx.post(f"{self.url}/api/v1/requests", json=body, headers=self.headers(), timeout=10)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


def start_service(
    tmp: Path, concurrency: int = WORKER_CONCURRENCY, **extra: str
) -> tuple[subprocess.Popen[bytes], dict[str, str], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'plugin.sqlite'}",
        "KAFKA_BOOTSTRAP_SERVERS": "",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LLM_BACKEND": "dryrun",
        "LLM_FALLBACK_BACKEND": "",
        "DRYRUN_LATENCY_MS": str(DRYRUN_LATENCY_MS),
        "DRYRUN_FAILURE_RATE": "0",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    log = open(tmp / "service.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "up", "--concurrency", str(concurrency)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited: {(tmp / 'service.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health/ready", timeout=2).status_code == 200:
                return process, env, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"service not ready: {(tmp / 'service.log').read_text()[-3000:]}")


def create_key(env: dict[str, str], name: str, *options: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "service", "keys", "create", "--name", name, *options],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    match = re.search(r"^(gok_\S+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Package scope: Playwright's sync API runs an event loop of its own while it is open, and the rest
# of the suite's async tests (on the session loop) cannot run beside it; nor should the service
# outlive these tests.
@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("plugin-service")
    process, env, url = start_service(tmp)
    try:
        yield Service(url, create_key(env, "plugin-tests"), env)
    finally:
        stop(process)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


class Editor:
    """The host page with the plugin in it, and what the tests do through it."""

    def __init__(self, page: Page, service: Service) -> None:
        self.page = page
        self.service = service

    @property
    def panel(self) -> Frame:
        found = [f for f in self.page.frames if f.url.endswith("/plugin/index.html")]
        assert found, [f.url for f in self.page.frames]
        return found[0]

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def fill_sheet(self, top_left: str, rows: list[list[Any]]) -> None:
        self.js("([ref, rows]) => Sheet.fill(ref, rows)", [top_left, rows])

    def select(self, ref: str) -> None:
        self.js("ref => Sheet.select(ref)", ref)

    def cells(self, ref: str) -> list[list[str]]:
        rows: list[list[str]] = self.js("ref => Sheet.rows(ref)", ref)
        return rows

    def status(self) -> str:
        return str(self.panel.get_attribute("#status", "data-state"))

    def wait_status(self, state: str, timeout_ms: int = 30_000) -> None:
        self.panel.wait_for_selector(f'#status[data-state="{state}"]', timeout=timeout_ms)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"plugin-{name}.png"))


def open_editor(
    browser: Browser, service: Service, *, url: str | None = None, key: str | None = None, lang: str = "en-US"
) -> tuple[BrowserContext, Editor]:
    context = browser.new_context(viewport={"width": 1180, "height": 740})
    settings = {"serviceUrl": url or service.url, "apiKey": key if key is not None else service.key}
    # What the user saved in the plugin's settings on an earlier day (its frame's local storage).
    context.add_init_script(
        "if (location.pathname.startsWith('/plugin/')) "
        f"localStorage.setItem('gigaoffice.settings', JSON.stringify({_json(settings)}));"
    )
    page = context.new_page()
    page.route("**/test-host/host.html*", lambda route: _file(route, HERE / "host.html", "text/html"))
    # The editor's SDK, which the plugin loads from ../v1/plugins.js when installed in an editor.
    page.route("**/v1/plugins.js", lambda route: _file(route, HERE / "fake_plugins.js", "text/javascript"))
    page.goto(f"{service.url}/test-host/host.html?lang={lang}")
    editor = Editor(page, service)
    page.wait_for_function(
        "() => { const f = document.getElementById('plugin'); const d = f.contentDocument; "
        "return d && d.body && d.body.dataset.ready === 'true'; }",
        timeout=30_000,
    )
    return context, editor


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _file(route: Route, path: Path, content_type: str) -> None:
    route.fulfill(status=200, body=path.read_bytes(), headers={"Content-Type": content_type})


SALES = [
    ["Товар", "Янв", "Фев"],
    ["Товар A", 100, 120],
    ["Товар B", 80, None],
    ["Товар C", 95, 97],
]
