"""A dashboard action applies what the operator confirmed: a stage changed in between is a conflict.

The confirmation carries the stage version the dry run read; the apply sends it as If-Match, for every
stage verb (as `scale` always did). Against the real reference plane, through the dashboard's routes.
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.slow  # a real server, end to end

CSRF = "the-csrf-token"
HEADERS = {"Authorization": "Bearer the-access-token", "X-CSRF-Token": CSRF}


@pytest.fixture
def dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, RunningServer]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from pipelinectl.cli.options import GlobalOptions
    from pipelinectl.ui.app import Settings, create_app
    from pipelinectl.ui.planes import Planes

    srv = start_server(tmp_path / "plane", env={"PIPELINECTL_DEMO_RATE": "0"})
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("UI_TEST_TOKEN", srv.tokens["operator"])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"current-context": "x", "contexts": {
        "x": {"url": srv.url, "pipeline": "orders", "token-env": "UI_TEST_TOKEN"}}}))
    config.chmod(0o600)
    settings = Settings(token="the-access-token", csrf=CSRF, port=8799, allow_writes=True)
    app = create_app(Planes(["x"], GlobalOptions(config=str(config))), settings)
    try:
        with TestClient(app, base_url="http://127.0.0.1:8799", follow_redirects=False) as client:
            yield client, srv
    finally:
        srv.stop()


def stage(srv: RunningServer, name: str) -> dict:
    return httpx.get(f"{srv.url}/v1/pipelines/orders/stages/{name}", headers=srv.headers("viewer")).json()


def confirmation(client, form: dict[str, str]) -> dict[str, str]:
    """The hidden fields of the page's confirm form: what the apply step sends back."""
    page = client.post("/act/plan", data={"c": "x", "p": "orders", **form}, headers=HEADERS)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert fields.get("action") == form["action"], page.text
    return {k: html.unescape(v) for k, v in fields.items()}


def outcome(client, fields: dict[str, str]) -> tuple[bool, str]:
    page = client.post("/act/apply", data=fields, headers=HEADERS)
    assert page.status_code == 200, page.text
    refused = re.search(r'class="outcome refused"[^>]*data-code="([A-Z_]+)".*?<span class="message">(.*?)</span>',
                        page.text, re.S)
    return (False, f"{refused.group(1)}: {html.unescape(refused.group(2))}") if refused else (True, "")


@pytest.mark.parametrize("form", [
    {"action": "disable", "stage": "charge", "reason": "vendor outage"},
    {"action": "limit", "stage": "charge", "rate": "20/s"},
    {"action": "pause", "stage": "charge"},
], ids=lambda f: f["action"])
def test_a_stage_changed_after_the_confirmation_is_left_as_it_is(dashboard, form) -> None:
    client, srv = dashboard
    fields = confirmation(client, form)
    assert fields["version"] == str(stage(srv, "charge")["version"])
    meanwhile = httpx.post(f"{srv.url}/v1/pipelines/orders/stages/charge/scale", json={"parallelism": 3},
                           headers=srv.headers("operator"))
    assert meanwhile.status_code == 200, meanwhile.text
    seen = stage(srv, "charge")
    applied, message = outcome(client, fields)
    assert not applied and message.startswith("ABORTED:") and "changed since you read it" in message, message
    after = stage(srv, "charge")
    assert after["version"] == seen["version"] and after["state"] == "running" and after["rate_limit"] is None


def test_an_unchanged_stage_takes_the_confirmed_action(dashboard) -> None:
    client, srv = dashboard
    applied, message = outcome(client, confirmation(client, {"action": "disable", "stage": "charge",
                                                             "reason": "vendor outage"}))
    assert applied, message
    assert stage(srv, "charge")["state"] == "disabled"
