"""The knobs of issue #14 in the dashboard: rate limit, disable/enable, saga cancel/advance, the audit view.

A real headless Chromium drives `pipelinectl ui` against the real demo plane (conftest.py), and each
outcome is checked on the plane itself (its API, `pipelinectl status -o json`, `pipelinectl audit`),
not only in the page. Two dashboards act with two different tokens (admin and operator), so the
audit view's actor is shown to be the token's name, not a constant.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.reliability.plane import PIPELINE
from tests.ui.conftest import Plane, _ui
from tests.ui.support import UiProcess, shoot
from tests.ui.test_dashboard import _open, api_client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui_operator(plane: Plane) -> Iterator[UiProcess]:
    """Writes on, through the operator context (the operator token, named `operator`)."""
    yield from _ui(plane, "--allow-writes", global_args=("--context", "operator"))


def _status_stage(plane: Plane, name: str) -> dict:
    status = plane.cli.run("status", "-o", "json")
    assert status.rc == 0, status
    doc = status.json()
    return next(s for s in (doc["items"][0] if "items" in doc else doc)["stages"] if s["name"] == name)


def _confirm(page) -> None:
    page.locator("#action .confirm").wait_for()
    page.click("#action .confirm-yes")


def _audit(plane: Plane, **params: str) -> list[dict]:
    with api_client(plane, "viewer") as client:
        return client.get("/v1/audit", params={"page_size": 1000, **params}).json()["items"]


def test_a_rate_limit_set_shown_cleared_and_a_zero_rate_refused(page, ui_rw: UiProcess, plane: Plane) -> None:
    _open(page, ui_rw, "/pipeline", c="admin", p=PIPELINE)
    row = page.locator('.control-table tr[data-stage="charge"]')
    cell = page.locator('.metrics [data-stage="charge"][data-metric="rate_limit"]')
    assert cell.inner_text() == "-" and plane.stage("charge")["rate_limit"] is None
    try:
        row.locator('form.limit input[name="rate"]').fill("20/s")
        row.locator('button[data-action="limit"]').click()
        confirm = page.locator("#action .confirm")
        confirm.wait_for()
        assert confirm.locator(".question").inner_text() == \
            "limit stage 'charge' to 20/s (burst 20) of pipeline 'orders' on context 'admin'?"
        assert "rate limit 20/s, burst 20 (was none)" in confirm.locator(".answer").inner_text()
        assert plane.stage("charge")["rate_limit"] is None  # asking changed nothing
        shoot(page, "limit-confirm")
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert page.locator("#action .outcome .message").inner_text() == \
            "stage orders/charge: rate limit 20/s, burst 20 (was none)"
        page.locator('.metrics [data-stage="charge"][data-metric="rate_limit"]:text-is("20/s")').wait_for(timeout=5000)
        assert _status_stage(plane, "charge")["rate_limit"] == {"kind": "RateLimit", "rate": "20/s", "per_second": 20.0, "burst": 20}
        shoot(page, "limited")

        # 0/s: refused in one line with the rate parser's words, and nothing changed
        version = plane.stage("charge")["version"]
        row.locator('form.limit input[name="rate"]').fill("0/s")
        row.locator('button[data-action="limit"]').click()
        refused = page.locator("#action .outcome.refused")
        refused.wait_for()
        assert refused.locator(".message").inner_text() == ("--rate must be more than zero, got '0/s' (to remove a "
                                                            "stage's rate limit: pipelinectl limit STAGE --clear)")
        assert refused.get_attribute("data-code") == "INVALID_ARGUMENT"
        shoot(page, "limit-refused")
        after = plane.stage("charge")
        assert after["version"] == version and after["rate_limit"]["rate"] == "20/s"
        assert _status_stage(plane, "charge")["rate_limit"]["rate"] == "20/s"

        row.locator('button[data-action="limit-clear"]').click()
        confirm.wait_for()
        assert confirm.locator(".question").inner_text() == \
            "clear the rate limit of stage 'charge' of pipeline 'orders' on context 'admin'?"
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert page.locator("#action .outcome .message").inner_text() == \
            "stage orders/charge: no rate limit (was 20/s, burst 20)"
        page.locator('.metrics [data-stage="charge"][data-metric="rate_limit"]:text-is("-")').wait_for(timeout=5000)
        assert _status_stage(plane, "charge")["rate_limit"] is None
    finally:
        if plane.stage("charge")["rate_limit"] is not None:
            with api_client(plane, "admin") as client:
                client.post(f"/v1/pipelines/{PIPELINE}/stages/charge/limit", json={"clear": True})
    limits = [e for e in _audit(plane, target="charge", verb="limit")]
    assert [(e["actor"], e["arguments"].get("rate"), bool(e["arguments"].get("clear"))) for e in limits[-2:]] == \
        [("admin", "20/s", False), ("admin", None, True)]  # the refused 0/s left no entry
    local = [a for a in plane.cli.audit_lines() if a["verb"] == "limit"]
    assert local[-1]["context"] == "admin" and local[-1]["target"] == "orders/charge"
    assert page.js_errors == []


def test_disable_with_a_reason_bypasses_items_then_enable(page, ui_operator: UiProcess, plane: Plane) -> None:
    _open(page, ui_operator, "/pipeline", c="operator", p=PIPELINE)
    row = page.locator('.control-table tr[data-stage="notify"]')
    before = plane.stage("notify")
    try:
        row.locator('button[data-action="disable"]').click()  # no reason: the browser asks for one
        assert page.locator("#action .confirm").count() == 0
        row.locator('form.disable input[name="reason"]').fill("mail relay down, INC-77")
        row.locator('button[data-action="disable"]').click()
        confirm = page.locator("#action .confirm")
        confirm.wait_for()
        assert confirm.locator(".question").inner_text() == \
            "disable stage 'notify' of pipeline 'orders' on context 'operator'?"
        assert "disabled (mail relay down, INC-77) (was running)" in confirm.locator(".answer").inner_text()
        assert plane.stage("notify")["state"] == before["state"]
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert page.locator("#action .outcome .message").inner_text() == \
            "stage orders/notify: disabled (mail relay down, INC-77) (was running)"
        assert "replay --skipped notify" in page.locator("#action .outcome").inner_text()
        page.locator('g.node[data-stage="notify"][data-state="disabled"]').wait_for(timeout=5000)
        assert page.locator('.metrics [data-stage="notify"][data-metric="disabled_reason"]').inner_text() == \
            "mail relay down, INC-77"
        assert _status_stage(plane, "notify")["state"] == "disabled"

        # items flow past it, counted (the demo feeds 4 items/s), and the page shows the count
        deadline = time.monotonic() + 30
        while plane.stage("notify")["bypassed"] < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        bypassed = plane.stage("notify")["bypassed"]
        assert bypassed >= 3, bypassed
        page.locator('.metrics [data-stage="notify"][data-metric="bypassed"]').wait_for(timeout=5000)
        shoot(page, "disabled")

        row.locator('button[data-action="enable"]').click()
        confirm.wait_for()
        assert confirm.locator(".question").inner_text() == \
            "enable stage 'notify' of pipeline 'orders' on context 'operator'?"
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert page.locator("#action .outcome .message").inner_text().startswith("stage orders/notify: running (was")
        assert "went past 'notify' unprocessed" in page.locator("#action .outcome").inner_text()
        page.locator('g.node[data-stage="notify"][data-state="running"], '
                     'g.node[data-stage="notify"][data-state="failing"]').first.wait_for(timeout=5000)
        assert plane.stage("notify")["state"] == "running"
    finally:
        if plane.stage("notify")["state"] == "disabled":
            with api_client(plane, "admin") as client:
                client.post(f"/v1/pipelines/{PIPELINE}/stages/notify/enable", json={})
    assert page.js_errors == []


def test_the_audit_view_lists_the_changes_newest_first_with_their_actors(page, ui_rw: UiProcess,
                                                                         plane: Plane) -> None:
    """After the two tests above (the same module's plane): limit x2 by admin, disable/enable by operator."""
    if not _audit(plane, target="notify", verb="disable") or not _audit(plane, target="charge", verb="limit"):
        pytest.skip("needs the limit and disable tests of this module to have run first")
    _open(page, ui_rw, "/pipeline", c="admin", p=PIPELINE)
    page.click('nav.tabs a:text-is("Audit trail")')
    page.wait_for_url("**/audit?**")
    page.fill('input[name="target"]', "notify")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**target=notify**")
    rows = page.locator("table.audit tbody tr")
    shown = rows.evaluate_all("rows => rows.map(r => [r.dataset.verb, r.dataset.actor])")
    assert shown[:2] == [["enable", "operator"], ["disable", "operator"]], shown  # newest first
    assert rows.nth(1).locator(".reason").inner_text() == "mail relay down, INC-77"
    expected = list(reversed(_audit(plane, target="notify", pipeline=PIPELINE)))
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.id)") == [e["id"] for e in expected][:50]
    shoot(page, "audit")

    page.fill('input[name="target"]', "charge")
    page.fill('input[name="verb"]', "limit")
    page.fill('input[name="actor"]', "admin")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**verb=limit**")
    limits = page.locator("table.audit tbody tr")
    assert limits.evaluate_all("rows => rows.map(r => r.dataset.actor)")[:2] == ["admin", "admin"]
    assert '"clear": true' in limits.nth(0).inner_text() and '"rate": "20/s"' in limits.nth(1).inner_text()
    page.fill('input[name="actor"]', "operator")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**actor=operator**")
    assert page.locator("table.audit").count() == 0 and "No audit entries" in page.locator("main").inner_text()
    assert page.js_errors == []


def test_the_audit_view_pages_like_the_dlq_browser(page, ui_rw: UiProcess, plane: Plane) -> None:
    with api_client(plane, "operator") as client:
        for _ in range(35):  # 70 entries for `ingest`: two pages of 50
            for verb in ("pause", "resume"):
                assert client.post(f"/v1/pipelines/{PIPELINE}/stages/ingest/{verb}", json={}).status_code == 200
    expected = [e["id"] for e in reversed(_audit(plane, target="ingest"))]
    assert len(expected) >= 70
    _open(page, ui_rw, "/audit", c="admin", target="ingest")
    first = page.locator("table.audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert first == expected[:50]
    assert page.locator("table.audit tbody tr").first.get_attribute("data-verb") == "resume"  # the newest
    page.click('.pager a[rel="next"]')
    assert page.locator("table.audit").get_attribute("data-page") == "1"
    second = page.locator("table.audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert second == expected[50:100]
    page.click('.pager a[rel="prev"]')
    assert page.locator("table.audit tbody tr").first.get_attribute("data-id") == expected[0]


def test_saga_cancel_and_advance_from_the_page(page, ui_rw: UiProcess, plane: Plane) -> None:
    stuck: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with api_client(plane, "viewer") as client:
            stuck = [s["id"] for s in client.get(f"/v1/pipelines/{PIPELINE}/sagas",
                                                 params={"status": "stuck", "page_size": 200}).json()["items"]]
        if len(stuck) >= 2:
            break
        time.sleep(0.5)
    assert len(stuck) >= 2, "the demo made fewer than two stuck sagas in 60 s"
    to_advance, to_cancel = stuck[0], stuck[1]

    def saga(sid: str) -> dict:
        with api_client(plane, "viewer") as client:
            return client.get(f"/v1/pipelines/{PIPELINE}/sagas/{sid}").json()

    # advance: bad JSON is refused before anything is sent; then the saga goes on past the step
    _open(page, ui_rw, "/saga", c="admin", p=PIPELINE, id=to_advance)
    step = saga(to_advance)["current_step"]
    form = page.locator("form.saga-advance")
    assert form.locator('input[name="step"]').input_value() == step
    form.locator('input[name="result"]').fill("{charge_id: manual")
    form.locator('input[name="reason"]').fill("charged by phone, INC-9")
    form.locator('button[data-action="saga-advance"]').click()
    refused = page.locator("#action .outcome.refused")
    refused.wait_for()
    assert refused.locator(".message").inner_text().startswith("invalid --result: not JSON")
    assert saga(to_advance)["status"] == "stuck"
    form.locator('input[name="result"]').fill('{"charge_id": "manual-9"}')
    form.locator('button[data-action="saga-advance"]').click()
    confirm = page.locator("#action .confirm")
    confirm.wait_for()
    assert confirm.locator(".question").inner_text().startswith(f"Advance saga '{to_advance}'")
    assert f"recording step '{step}' as done by hand" in confirm.locator(".question").inner_text()
    assert "result: {\"charge_id\": \"manual-9\"}" in confirm.locator(".ids").inner_text()
    shoot(page, "saga-advance-confirm")
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert page.locator("#action .outcome .message").inner_text().startswith(f"saga {to_advance}: ")
    after = saga(to_advance)
    assert step in after["completed_steps"] and after["current_step"] != step
    entry = _audit(plane, target=to_advance, verb="saga advance")[-1]
    assert entry["actor"] == "admin" and entry["reason"] == "charged by phone, INC-9"
    assert entry["arguments"]["result"] == {"charge_id": "manual-9"}

    # cancel: a reason, the confirmation, compensations run
    _open(page, ui_rw, "/saga", c="admin", p=PIPELINE, id=to_cancel)
    cancel = page.locator("form.saga-cancel")
    cancel.locator('input[name="reason"]').fill("customer withdrew the order")
    cancel.locator('button[data-action="saga-cancel"]').click()
    confirm.wait_for()
    assert confirm.locator(".question").inner_text().startswith(f"Cancel saga '{to_cancel}' (order, stuck")
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert "(was stuck; context 'admin')" in page.locator("#action .outcome .message").inner_text()
    deadline = time.monotonic() + 30
    while saga(to_cancel)["status"] not in ("cancelled",) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert saga(to_cancel)["status"] == "cancelled"
    assert _audit(plane, target=to_cancel, verb="saga cancel")[-1]["actor"] == "admin"
    assert [a["verb"] for a in plane.cli.audit_lines()][-1] == "saga cancel"
    assert page.js_errors == []
