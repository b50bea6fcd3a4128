"""Fixtures of the dashboard's browser tests: a real demo plane, `pipelinectl ui` processes, a real Chromium.

`plane` is the reference server running the demo pipeline (live input, 4 items/s)
with auth on (viewer, operator and admin tokens), its DLQ seeded before start
with 1,000 items of stage `validate` and one item whose message, payload and
headers carry script-injection payloads (stage `ship`). `cli` is an isolated
home whose contexts `admin` (current), `operator` and `viewer` use those tokens.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.reliability.plane import PIPELINE, api, seed, use_context
from tests.support.cli import CliEnv
from tests.support.server import RunningServer, start_server
from tests.ui.support import CHROMIUM, UiProcess, launch_browser

SEEDED = 1000
XSS_MESSAGE = '<script>window.__xss = 1</script>"><img src=x onerror="window.__xss = 2">'
XSS_PAYLOAD = {"note": "<img src=x onerror=window.__xss=3>", "html": "</pre><script>window.__xss = 4</script>",
               "attr": "\" autofocus onfocus=\"window.__xss = 5"}
XSS_HEADERS = {"X-Evil": "<svg/onload=window.__xss=6>", "<b>bold</b>": "'><iframe src=javascript:alert(7)>"}


@dataclass
class Plane:
    server: RunningServer
    cli: CliEnv
    seeded_until: str  # RFC 3339: the seeded items were last seen before it, live items after
    xss_id: str

    def stage(self, name: str) -> dict:
        with api(self.server, "viewer") as client:
            return client.get(f"/v1/pipelines/{PIPELINE}/stages/{name}").json()

    def stages(self) -> list[dict]:
        with api(self.server, "viewer") as client:
            return client.get(f"/v1/pipelines/{PIPELINE}").json()["stages"]

    def resume(self, name: str) -> None:
        with api(self.server, "admin") as client:
            client.post(f"/v1/pipelines/{PIPELINE}/stages/{name}/resume", json={})


def _seed_xss(db: Path) -> None:
    """One dead letter full of markup, last seen a few minutes ahead: it stays the newest while the demo adds more."""
    conn = sqlite3.connect(db)
    try:
        t = time.time() + 600
        conn.execute(
            'INSERT INTO dlq(pipeline, stage, key, "offset", payload, error_kind, message, attempts, '
            "first_seen, last_seen, headers, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (PIPELINE, "ship", "xss-1", None, json.dumps(XSS_PAYLOAD), "persistent", XSS_MESSAGE, 1, t, t,
             json.dumps(XSS_HEADERS), json.dumps({"origin": "<i>seed</i>"})))
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root = tmp_path_factory.mktemp("ui-plane")
    db = root / "state.db"
    seed(db, SEEDED, stage="validate")
    seeded_until = datetime.fromtimestamp(int(time.time()) + 1, UTC)
    time.sleep(max(0.0, seeded_until.timestamp() - time.time()) + 0.1)
    _seed_xss(db)
    server = start_server(root / "server", env={"PIPELINECTL_DEMO_RATE": "4"}, db=db)
    try:
        cli = CliEnv(root / "cli")
        for role in ("viewer", "operator", "admin"):
            use_context(cli, role, server.url, server.tokens[role], current=role == "admin")
        with api(server, "viewer") as client:
            items = client.get(f"/v1/pipelines/{PIPELINE}/dlq", params={"stage": "ship", "page_size": 50}).json()
        xss_id = next(i["id"] for i in items["items"] if i["key"] == "xss-1")
        yield Plane(server, cli, seeded_until.strftime("%Y-%m-%dT%H:%M:%SZ"), xss_id)
    finally:
        server.stop()


def _ui(plane: Plane, *args: str, global_args: tuple[str, ...] = ()) -> Iterator[UiProcess]:
    process = UiProcess(plane.cli, *args, global_args=global_args).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def ui_ro(plane: Plane) -> Iterator[UiProcess]:
    """The dashboard as started plainly: current context (admin), read-only."""
    yield from _ui(plane)


@pytest.fixture(scope="module")
def ui_rw(plane: Plane) -> Iterator[UiProcess]:
    """Writes on, through the admin context."""
    yield from _ui(plane, "--allow-writes", global_args=("--context", "admin"))


@pytest.fixture(scope="module")
def ui_prod(plane: Plane) -> Iterator[UiProcess]:
    """Writes on, through 'prod': the admin token on a protected context."""
    use_context(plane.cli, "prod", plane.server.url, plane.server.tokens["admin"], extra={"protected": True},
                current=False)
    yield from _ui(plane, "--allow-writes", global_args=("--context", "prod"))


@pytest.fixture(scope="module")
def ui_viewer(plane: Plane) -> Iterator[UiProcess]:
    """Writes on in the dashboard, but the context's token has the viewer role."""
    yield from _ui(plane, "--allow-writes", global_args=("--context", "viewer"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian package chromium; ./run test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
