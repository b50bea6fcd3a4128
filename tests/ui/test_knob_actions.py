"""The dashboard's knob and saga actions refuse bad input in one line, before anything reaches the plane.

The context points at a loopback socket that only listens: any request the dashboard sent would
arrive there, so "nothing was sent" is checked, not assumed. The browser tests (test_knobs.py)
prove the same actions against the real reference plane.
"""

from __future__ import annotations

import html
import re
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

CSRF = "the-csrf-token"
HEADERS = {"Authorization": "Bearer the-access-token", "X-CSRF-Token": CSRF}


class Tripwire:
    """A listening socket no one should connect to."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def touched(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True


@pytest.fixture
def wired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, Tripwire]]:
    with warnings.catch_warnings():  # starlette would rather have httpx2; httpx is what this project uses
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from pipelinectl import plugins
    from pipelinectl.cli.options import GlobalOptions
    from pipelinectl.ui.app import Settings, create_app
    from pipelinectl.ui.planes import Planes

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the plugin index, read afresh: nats installed
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV, raising=False)
    plugins.clear_cache()
    wire = Tripwire()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"current-context": "x", "contexts": {
        "x": {"url": wire.url, "pipeline": "orders"},
        "n": {"driver": "nats", "url": "nats://127.0.0.1:1", "pipeline": "ORDERS"}}}))
    config.chmod(0o600)
    settings = Settings(token="the-access-token", csrf=CSRF, port=8799, allow_writes=True)
    app = create_app(Planes(["x", "n"], GlobalOptions(config=str(config))), settings)
    with TestClient(app, base_url="http://127.0.0.1:8799", follow_redirects=False) as client:
        yield client, wire
    wire.sock.close()
    plugins.clear_cache()


def _refused(client, step: str, form: dict[str, str]) -> tuple[str, str]:
    answer = client.post(f"/act/{step}", data={"c": "x", "p": "orders", **form}, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    found = re.search(r'class="outcome refused"[^>]*data-code="([A-Z_]+)".*?<span class="message">(.*?)</span>',
                      answer.text, re.S)
    assert found, answer.text
    return html.unescape(found.group(2)), found.group(1)


BAD_STAGE_INPUT = [
    ({"action": "limit", "stage": "charge", "rate": "0/s"}, "--rate must be more than zero, got '0/s'"),
    ({"action": "limit", "stage": "charge", "rate": "-5/s"}, "--rate must be more than zero"),
    ({"action": "limit", "stage": "charge", "rate": "fast"}, "--rate must be a count per second, minute or hour"),
    ({"action": "limit", "stage": "charge", "rate": "20/fortnight"}, "--rate must be a count per second"),
    ({"action": "limit", "stage": "charge", "rate": ""}, "limit needs --rate R"),
    ({"action": "limit", "stage": "charge", "rate": "20/s", "burst": "lots"}, "burst must be a whole number"),
    ({"action": "limit", "stage": "charge", "rate": "20/s", "burst": "0"}, "--burst must be a whole number from 1"),
    ({"action": "disable", "stage": "charge"}, "disable needs --reason TEXT"),
    ({"action": "disable", "stage": "charge", "reason": "   "}, "disable needs --reason TEXT"),
    ({"action": "disable", "stage": "charge", "reason": "x" * 2001}, "--reason is longer than 2000 characters"),
]

BAD_SAGA_INPUT = [
    ({"action": "saga-cancel", "id": "saga-1"}, "saga cancel needs --reason"),
    ({"action": "saga-advance", "id": "saga-1", "reason": "done by hand"}, "saga advance needs --step NAME"),
    ({"action": "saga-advance", "id": "saga-1", "step": "charge"}, "saga advance needs --reason"),
    ({"action": "saga-advance", "id": "saga-1", "step": "charge", "reason": "by hand", "result": "{payment: 1"},
     "invalid --result: not JSON"),
    ({"action": "saga-advance", "id": "saga-1", "step": "charge", "reason": "by hand", "result": "'single'"},
     "invalid --result: not JSON"),
]


@pytest.mark.parametrize("step", ["plan", "apply"])
@pytest.mark.parametrize(("form", "message"), BAD_STAGE_INPUT + BAD_SAGA_INPUT,
                         ids=[f"{f['action']}:{sorted(f.items())[-1][1][:20]}" for f, _ in BAD_STAGE_INPUT + BAD_SAGA_INPUT])
def test_bad_input_is_refused_in_one_line_and_nothing_is_sent(wired, step, form, message) -> None:
    client, wire = wired
    shown, code = _refused(client, step, form)
    assert message in shown and "\n" not in shown, shown
    assert code == "INVALID_ARGUMENT"
    assert "Traceback" not in shown
    assert not wire.touched(), "the dashboard reached the plane with input it should have refused"


def test_an_unknown_action_is_refused_naming_the_new_ones(wired) -> None:
    client, wire = wired
    shown, _ = _refused(client, "plan", {"action": "throttle", "stage": "charge"})
    assert "unknown action 'throttle'" in shown
    assert "limit, disable, enable" in shown and "saga-cancel, saga-advance" in shown
    assert not wire.touched()


def test_a_driver_without_an_audit_trail_says_so_in_place(wired) -> None:
    """NATS keeps no trail: its one-line unsupported message, in the page, with no network call needed."""
    client, _ = wired
    page = client.get("/audit?c=n", headers=HEADERS)
    assert page.status_code == 200
    found = re.search(r'<p class="problem unsupported" data-code="UNIMPLEMENTED">(.*?)</p>', page.text)
    assert found and html.unescape(found.group(1)).startswith("'audit' is not supported by the nats driver"), page.text
    assert "Traceback" not in page.text and 'class="audit"' not in page.text


def test_the_audit_views_page_number_and_filters_are_read_safely(wired) -> None:
    client, _ = wired
    page = client.get("/audit?c=n&page=-3&actor=<b>ops</b>&verb=limit", headers=HEADERS)
    assert page.status_code == 200
    assert 'value="&lt;b&gt;ops&lt;/b&gt;"' in page.text and 'value="limit"' in page.text  # text, never markup
    assert client.get("/audit?c=nope", headers=HEADERS).status_code == 404
