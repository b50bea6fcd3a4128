"""`pipelinectl ui` in a real headless Chromium against the real demo plane (see conftest.py).

Each test drives the page as an operator would and checks the outcome on the
plane itself (its API, or `pipelinectl status`), not only in the page.
Screenshots of every page go to test-artifacts/ui/ (or $PIPELINECTL_TEST_ARTIFACTS/ui).
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.reliability.plane import PIPELINE
from tests.ui.conftest import SEEDED, XSS_HEADERS, XSS_MESSAGE, XSS_PAYLOAD, Plane
from tests.ui.support import UiProcess, shoot

pytestmark = pytest.mark.slow

PIPELINE_PAGE = {"c": "admin", "p": PIPELINE}


def _open(page, ui: UiProcess, path: str = "/", **params: str) -> None:
    """Enter with the printed URL (the token becomes a cookie), then go to the page."""
    page.goto(ui.url)
    assert page.url == ui.base + "/", page.url  # the token left the address bar
    if path != "/" or params:
        page.goto(ui.page_url(path, **params))


def _health(stage: dict) -> str:
    return "failing" if stage["state"] == "running" and stage["error_rate"] >= 0.05 else stage["state"]


def test_overview_shows_the_context_and_its_pipeline(page, ui_ro: UiProcess, plane: Plane) -> None:
    _open(page, ui_ro)
    card = page.locator('.card[data-context="admin"]')
    card.locator("[data-ready]").wait_for(state="attached")
    assert card.locator("h2").inner_text() == "admin"
    assert card.locator(".driver").inner_text() == "http"
    assert card.locator(".url").inner_text() == plane.server.url
    chips = card.locator('.pipe[data-pipeline="orders"] .chip')
    assert chips.evaluate_all("els => els.map(e => e.dataset.stage)") == [s["name"] for s in plane.stages()]
    shoot(page, "overview")
    assert page.js_errors == []


def test_graph_shows_every_stage_with_its_state(page, ui_ro: UiProcess, plane: Plane) -> None:
    _open(page, ui_ro, "/pipeline", **PIPELINE_PAGE)
    stages = plane.stages()
    nodes = page.locator("figure.graph g.node[data-stage]")
    assert nodes.evaluate_all("els => els.map(e => e.dataset.stage)") == [s["name"] for s in stages]
    for s in stages:
        shown = page.locator(f'g.node[data-stage="{s["name"]}"]').get_attribute("data-state")
        assert shown in ("running", "failing") and s["state"] == "running", (s["name"], shown)
    # one edge into each stage, labelled with its queue depth/capacity
    labels = page.locator("figure.graph g.edge text").all_text_contents()
    assert len(labels) == len(stages)
    assert all(re.fullmatch(r"\d+/\d+", label) for label in labels), labels
    assert [int(label.split("/")[1]) for label in labels] == [s["queue_capacity"] for s in stages]

    with api_client(plane, "admin") as client:  # paused and draining stand out within a live update
        assert client.post(f"/v1/pipelines/{PIPELINE}/stages/notify/pause", json={}).status_code == 200
        assert client.post(f"/v1/pipelines/{PIPELINE}/stages/ship/drain", json={}).status_code == 200
    try:
        page.locator('g.node[data-stage="notify"][data-state="paused"]').wait_for(timeout=5000)
        page.locator('g.node[data-stage="ship"][data-state="draining"], '
                     'g.node[data-stage="ship"][data-state="paused"]').first.wait_for(timeout=5000)
        assert page.locator('.metrics [data-stage="notify"][data-metric="state"]').inner_text() == "paused"
        shoot(page, "pipeline")
        page.emulate_media(color_scheme="dark")
        shoot(page, "pipeline-dark")
        page.set_viewport_size({"width": 800, "height": 900})  # a narrow laptop window
        assert page.evaluate("document.documentElement.scrollWidth") <= 800
        shoot(page, "pipeline-narrow")
    finally:
        plane.resume("notify")
        plane.resume("ship")
    assert page.js_errors == []


def test_a_metric_changes_in_the_page_within_3s_without_reload(page, ui_ro: UiProcess) -> None:
    _open(page, ui_ro, "/pipeline", **PIPELINE_PAGE)
    cell = '.metrics [data-stage="ingest"][data-metric="processed"]'
    before = page.locator(cell).inner_text()
    page.evaluate("window.__same_document = true")
    started = time.monotonic()
    while page.locator(cell).inner_text() == before and time.monotonic() - started < 3.0:
        page.wait_for_timeout(50)  # (the page's CSP refuses Playwright's wait_for_function: it evaluates strings)
    assert int(page.locator(cell).inner_text()) > int(before), f"no change in {time.monotonic() - started:.1f}s"
    assert page.evaluate("window.__same_document") is True  # updated in place: no reload
    # the sparklines draw the points gathered meanwhile
    page.locator('.metrics tr[data-stage="ingest"] svg.spark polyline').first.wait_for(state="attached",
                                                                                         timeout=5000)


def test_pausing_from_the_page_is_seen_by_pipelinectl_status(page, ui_rw: UiProcess, plane: Plane) -> None:
    _open(page, ui_rw, "/pipeline", c="admin", p=PIPELINE)
    try:
        page.click('.control-table tr[data-stage="charge"] button[data-action="pause"]')
        confirm = page.locator("#action .confirm")
        confirm.wait_for()
        assert confirm.locator(".question").inner_text() == \
            "pause stage 'charge' of pipeline 'orders' on context 'admin'?"
        assert "paused (was running)" in confirm.locator(".answer").inner_text()
        assert plane.stage("charge")["state"] == "running"  # asking changed nothing
        shoot(page, "confirm")
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert page.locator("#action .outcome .message").inner_text() == \
            "stage orders/charge: paused (was running)"

        status = plane.cli.run("status", "-o", "json")
        assert status.rc == 0, status
        doc = status.json()
        stages = {s["name"]: s["state"] for s in (doc["items"][0] if "items" in doc else doc)["stages"]}
        assert stages["charge"] == "paused"
        audit = [a for a in plane.cli.audit_lines() if a["verb"] == "pause"]
        assert audit and audit[-1]["target"] == "orders/charge" and audit[-1]["context"] == "admin"
        assert audit[-1]["request_id"]
        page.locator('g.node[data-stage="charge"][data-state="paused"]').wait_for(timeout=5000)
        shoot(page, "paused")

        # scale: the plane refuses a value out of range with the CLI's message, in place
        form = page.locator('.control-table tr[data-stage="charge"] form.scale')
        form.locator('input[name="parallelism"]').fill("99")
        page.evaluate("document.querySelector('.control-table tr[data-stage=\"charge\"] input[name=parallelism]')"
                      ".removeAttribute('max')")
        form.locator("button").click()
        page.locator("#action .outcome.refused").wait_for()
        assert "--parallelism 99 is outside [1, 16] for stage 'charge'" in \
            page.locator("#action .outcome .message").inner_text()
        assert plane.stage("charge")["parallelism"] == 2
    finally:
        plane.resume("charge")
    assert page.js_errors == []


def test_on_a_protected_context_the_page_asks_for_the_contexts_name(page, ui_prod: UiProcess, plane: Plane) -> None:
    _open(page, ui_prod, "/pipeline", c="prod", p=PIPELINE)
    before = plane.stage("ship")
    try:
        page.click('.control-table tr[data-stage="ship"] button[data-action="pause"]')
        confirm = page.locator("#action .confirm")
        confirm.wait_for()
        assert "Context 'prod' is protected: type its name to confirm" in confirm.locator("label.protected").inner_text()
        confirm.locator('input[name="confirm_context"]').fill("admin")
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.refused").wait_for()
        assert page.locator("#action .outcome .message").inner_text() == \
            "context 'prod' is protected: type its name to confirm; nothing was changed"
        assert plane.stage("ship")["version"] == before["version"]

        page.click('.control-table tr[data-stage="ship"] button[data-action="pause"]')
        page.locator("#action .confirm").wait_for()
        page.locator('#action input[name="confirm_context"]').fill("prod")
        page.click("#action .confirm-yes")
        page.locator("#action .outcome.done").wait_for()
        assert plane.stage("ship")["state"] == "paused"
        audit = [a for a in plane.cli.audit_lines() if a["verb"] == "pause"]
        assert audit[-1]["context"] == "prod" and audit[-1]["target"] == "orders/ship"
    finally:
        plane.resume("ship")
    assert page.js_errors == []


def test_without_allow_writes_no_action_control_exists(page, ui_ro: UiProcess, plane: Plane) -> None:
    saga_id = _a_saga(plane)
    for path, params in (("/pipeline", PIPELINE_PAGE), ("/dlq", PIPELINE_PAGE),
                         ("/dlq/item", {**PIPELINE_PAGE, "id": plane.xss_id}),
                         ("/sagas", PIPELINE_PAGE), ("/saga", {**PIPELINE_PAGE, "id": saga_id})):
        _open(page, ui_ro, path, **params)
        page.locator("main").wait_for()
        assert page.locator("[hx-post], [data-action], form[method=post]").count() == 0, path
        assert page.locator(".mode.readonly").inner_text() == "read-only"
    before = plane.stage("validate")
    csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    with ui_ro.client() as client:  # and the endpoint itself refuses
        answer = client.post("/act/apply", data={"c": "admin", "p": PIPELINE, "action": "pause", "stage": "validate"},
                             headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 403 and "--allow-writes" in answer.text
    assert plane.stage("validate")["state"] == before["state"]


def test_a_viewer_tokens_action_is_refused_with_the_planes_message(page, ui_viewer: UiProcess, plane: Plane) -> None:
    _open(page, ui_viewer, "/pipeline", c="viewer", p=PIPELINE)
    page.click('.control-table tr[data-stage="ship"] button[data-action="pause"]')
    refused = page.locator("#action .outcome.refused")
    refused.wait_for()
    shown = refused.locator(".message").inner_text()
    cli = plane.cli.run("--context", "viewer", "pause", "ship", "--dry-run")
    assert cli.rc == 5, cli
    assert shown == cli.stderr.strip().removeprefix("error: ")  # the same words the CLI prints
    assert refused.get_attribute("data-code") == "PERMISSION_DENIED"
    shoot(page, "viewer-refused")
    assert plane.stage("ship")["state"] == "running"


def test_dlq_browser_pages_through_1000_items(page, ui_ro: UiProcess, plane: Plane) -> None:
    _open(page, ui_ro, "/dlq", **PIPELINE_PAGE)
    page.select_option('select[name="stage"]', "validate")
    page.select_option('select[name="error_kind"]', "validation")
    page.fill('input[name="until"]', plane.seeded_until)
    page.click('form.filters button[type="submit"]')
    page.wait_for_url(re.compile(r"until="))
    seen: list[str] = []
    for number in range(SEEDED // 50):
        table = page.locator("table.dlq")
        assert table.get_attribute("data-page") == str(number)
        ids = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert len(ids) == 50, (number, len(ids))
        seen += ids
        if number == 1:
            shoot(page, "dlq")
            page.click('.pager a[rel="prev"]')  # back one page: the same items again
            assert page.locator("table.dlq tbody tr").first.get_attribute("data-id") == seen[0]
            page.click('.pager a[rel="next"]')
        if number < SEEDED // 50 - 1:
            page.click('.pager a[rel="next"]')
    assert page.locator('.pager a[rel="next"]').count() == 0  # the last page
    assert len(seen) == len(set(seen)) == SEEDED
    with api_client(plane, "viewer") as client:
        expected = client.get(f"/v1/pipelines/{PIPELINE}/dlq", params={
            "stage": "validate", "error_kind": "validation", "until": plane.seeded_until, "page_size": 1000}).json()
    assert seen == [item["id"] for item in expected["items"]]

    page.click(f'table.dlq a:text-is("{seen[-1]}")')  # an item's detail: headers and payload
    page.locator("#payload").wait_for()
    assert '"amount_cents": -100' in page.locator("#payload").inner_text()
    shoot(page, "dlq-item")
    assert page.js_errors == []


def test_a_bad_filter_is_refused_in_place(page, ui_ro: UiProcess) -> None:
    _open(page, ui_ro, "/dlq", **PIPELINE_PAGE, since="yesterday-ish")
    problem = page.locator(".problem")
    assert "--since" in problem.inner_text() and problem.get_attribute("data-code") == "INVALID_ARGUMENT"


def test_xss_payloads_from_the_plane_are_inert(page, ui_rw: UiProcess, plane: Plane) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    pages = [("/dlq", {"c": "admin", "p": PIPELINE, "stage": "ship"}),
             ("/dlq/item", {"c": "admin", "p": PIPELINE, "id": plane.xss_id}),
             ("/pipeline", {"c": "admin", "p": PIPELINE})]
    for path, params in pages:
        _open(page, ui_rw, path, **params)
        if path == "/pipeline":
            page.locator("#errors [data-ready]").wait_for(state="attached")
            page.locator(f'#errors tr[data-id="{plane.xss_id}"]').wait_for()
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__xss") == "undefined", path
        assert page.locator("img, iframe, main script, [onerror], [onload], [onfocus]").count() == 0, path
        assert page.locator("script").count() == 1  # htmx, nothing else
    # ... and shown as the text it is
    assert page.locator(f'#errors tr[data-id="{plane.xss_id}"] .message').get_attribute("title") == XSS_MESSAGE
    _open(page, ui_rw, "/dlq/item", c="admin", p=PIPELINE, id=plane.xss_id)
    assert page.locator("#item-message").inner_text() == XSS_MESSAGE
    payload = page.locator("#payload").inner_text()
    for value in XSS_PAYLOAD.values():
        assert value.replace('"', '\\"') in payload
    headers = page.locator("table.headers").first.inner_text()
    for key, value in XSS_HEADERS.items():
        assert key in headers and value in headers
    # the redrive confirmation names the item as text too
    page.click('button[data-action="dlq-redrive"]')
    page.locator("#action .confirm").wait_for()
    assert plane.xss_id in page.locator("#action .confirm .ids").inner_text()
    page.click("#action .confirm-no")
    page.locator("#action .outcome.cancelled").wait_for()
    shoot(page, "xss-item")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []


def test_a_request_without_the_access_token_gets_403(page, ui_rw: UiProcess, plane: Plane) -> None:
    with ui_rw.client(token=False) as anonymous:
        for path in ("/", "/card?c=admin", "/pipeline?c=admin&p=orders", "/live?c=admin&p=orders",
                     "/dlq?c=admin&p=orders", "/static/ui.css", "/?token=wrong"):
            answer = anonymous.get(path)
            assert answer.status_code == 403, (path, answer.status_code)
            assert plane.server.tokens["admin"] not in answer.text
        answer = anonymous.post("/act/apply", data={"c": "admin", "p": PIPELINE, "action": "pause", "stage": "ship"})
        assert answer.status_code == 403
    with httpx.Client(base_url=ui_rw.base, cookies={f"pipelinectl-ui-{ui_rw.port}": "not-the-token"}) as forged:
        assert forged.get("/").status_code == 403
    with ui_rw.client(token=False) as anonymous:
        entered = anonymous.get("/?token=" + ui_rw.token)  # the printed URL: a cookie, and the token leaves the URL
        assert entered.status_code == 303 and entered.headers["location"] == "/"
        assert "httponly" in entered.headers["set-cookie"].lower()
        assert "samesite=strict" in entered.headers["set-cookie"].lower()
    with ui_rw.client() as client:
        assert client.get("/", headers={"Host": f"evil.example:{ui_rw.port}"}).status_code == 403  # DNS rebinding
        page_ok = client.get("/pipeline?c=admin&p=orders")
        assert page_ok.status_code == 200
        csp = page_ok.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        for token in plane.server.tokens.values():  # the plane's credentials never reach the browser
            assert token not in page_ok.text
        no_csrf = client.post("/act/apply", data={"c": "admin", "p": PIPELINE, "action": "pause", "stage": "ship"})
        assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
        cross = client.post("/act/apply", data={"c": "admin", "p": PIPELINE, "action": "pause", "stage": "ship"},
                            headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
    assert plane.stage("ship")["state"] == "running"
    page.goto(ui_rw.base + "/")  # a browser without the token
    assert "needs its access token" in page.locator("body").inner_text()


def test_sagas_in_flight_and_one_sagas_timeline(page, ui_rw: UiProcess, plane: Plane) -> None:
    deadline = time.monotonic() + 30
    while (saga_id := _a_saga(plane, "stuck")) is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert saga_id, "the demo made no stuck saga in 30 s"
    _open(page, ui_rw, "/sagas", c="admin", p=PIPELINE)
    rows = page.locator("table.sagas tbody tr")
    statuses = set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)"))
    assert statuses <= {"running", "compensating", "stuck"} and "stuck" in statuses
    shoot(page, "sagas")
    _open(page, ui_rw, "/saga", c="admin", p=PIPELINE, id=saga_id)
    steps = page.locator(".timeline .step").evaluate_all("els => els.map(e => e.dataset.step)")
    with api_client(plane, "viewer") as client:
        saga = client.get(f"/v1/pipelines/{PIPELINE}/sagas/{saga_id}").json()
    assert steps == [s["name"] for s in saga["steps"]]
    assert page.locator("#saga-status").inner_text() == "stuck"
    shoot(page, "saga")
    page.click('button[data-action="saga-retry"]')  # retry, through `saga retry`'s flow
    page.locator("#action .confirm").wait_for()
    assert f"saga '{saga_id}'" in page.locator("#action .question").inner_text()
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert page.locator("#action .outcome .message").inner_text().startswith(f"saga {saga_id}: ")
    assert [a["verb"] for a in plane.cli.audit_lines()][-1] == "saga retry"
    assert page.js_errors == []


def _a_saga(plane: Plane, status: str | None = None) -> str | None:
    with api_client(plane, "viewer") as client:
        params = {"page_size": 200, **({"status": status} if status else {})}
        sagas = client.get(f"/v1/pipelines/{PIPELINE}/sagas", params=params).json()["items"]
    return sagas[0]["id"] if sagas else None


def api_client(plane: Plane, role: str) -> httpx.Client:
    return httpx.Client(base_url=plane.server.url, headers=plane.server.headers(role), timeout=30)


def test_sigterm_stops_the_dashboard_at_once_with_a_live_page_open(page, plane: Plane) -> None:
    ui = UiProcess(plane.cli).start()
    try:
        _open(page, ui, "/pipeline", **PIPELINE_PAGE)
        page.wait_for_timeout(1500)  # the page polls its live fragment
    finally:
        started = time.monotonic()
        code = ui.stop()
    assert code == 0 and time.monotonic() - started < 5, (code, ui.stderr())
    assert "Traceback" not in ui.stderr() and "error" not in ui.stderr().lower(), ui.stderr()


def test_many_live_pages_in_one_browser_all_stay_live(page, ui_ro: UiProcess) -> None:
    """A browser opens at most six connections to one origin: live updates must not hold one each."""
    _open(page, ui_ro)
    pages = [page.context.new_page() for _ in range(8)]
    cell = '.metrics [data-stage="ingest"][data-metric="processed"]'
    for tab in pages:
        tab.goto(ui_ro.page_url("/pipeline", **PIPELINE_PAGE))
        tab.locator(cell).wait_for()
    last = pages[-1]
    before = last.locator(cell).inner_text()
    started = time.monotonic()
    while last.locator(cell).inner_text() == before and time.monotonic() - started < 3.0:
        last.wait_for_timeout(50)
    assert last.locator(cell).inner_text() != before, "the eighth page stopped updating"
    last.goto(ui_ro.page_url("/dlq", **PIPELINE_PAGE))  # and another page still loads
    assert last.locator("table.dlq").count() == 1


def test_redrive_from_the_page_one_item_then_every_match(page, ui_rw: UiProcess, plane: Plane) -> None:
    def dlq(**params: str) -> list[str]:
        with api_client(plane, "viewer") as client:
            return [i["id"] for i in client.get(f"/v1/pipelines/{PIPELINE}/dlq",
                                                params={"page_size": 1000, **params}).json()["items"]]

    deadline = time.monotonic() + 60
    while len(charge := dlq(stage="charge")) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # the demo declines every 41st card: dead letters of `charge` come by themselves
    assert len(charge) >= 2, charge
    one = charge[0]
    _open(page, ui_rw, "/dlq/item", c="admin", p=PIPELINE, id=one)
    page.click('button[data-action="dlq-redrive"]')
    page.locator("#action .confirm").wait_for()
    assert page.locator("#action .question").inner_text().startswith(
        "Redrive 1 DLQ item of pipeline 'orders' on context 'admin'")
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert page.locator("#action .outcome .message").inner_text() == \
        "1 item redriven from pipeline 'orders' (context 'admin')"
    assert one not in dlq()  # it left the DLQ once the stage accepted it

    _open(page, ui_rw, "/dlq", c="admin", p=PIPELINE, stage="charge")
    page.click('button[data-action="dlq-redrive-all"]')
    confirm = page.locator("#action .confirm")
    confirm.wait_for()
    planned = [line for line in confirm.locator(".ids li").all_inner_texts() if line.startswith("dlq-")]
    assert planned and one not in planned and set(planned) <= set(dlq(stage="charge"))
    assert "(stage=charge)" in confirm.locator(".question").inner_text()
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert not set(planned) & set(dlq())
    verbs = [(a["verb"], a["result"]) for a in plane.cli.audit_lines() if a["verb"] == "dlq redrive"]
    assert verbs[-2][1] == "succeeded=1 failed=0" and verbs[-1][1].startswith(f"succeeded={len(planned)} ")


def test_force_fail_from_the_page_needs_a_reason_and_compensates(page, ui_rw: UiProcess, plane: Plane) -> None:
    deadline = time.monotonic() + 30
    while (saga_id := _a_saga(plane, "stuck")) is None and time.monotonic() < deadline:
        time.sleep(0.3)
    assert saga_id, "the demo made no stuck saga in 30 s"
    _open(page, ui_rw, "/saga", c="admin", p=PIPELINE, id=saga_id)
    page.fill('input[name="reason"]', "card processor outage, refund")
    page.click('button[data-action="saga-force-fail"]')
    page.locator("#action .confirm").wait_for()
    assert page.locator("#action .question").inner_text().startswith(f"Force-fail saga '{saga_id}' (order, stuck")
    page.click("#action .confirm-yes")
    page.locator("#action .outcome.done").wait_for()
    assert "(was stuck; context 'admin')" in page.locator("#action .outcome .message").inner_text()
    with api_client(plane, "viewer") as client:
        status = client.get(f"/v1/pipelines/{PIPELINE}/sagas/{saga_id}").json()["status"]
    assert status in ("compensating", "compensated", "failed")
    audit = plane.cli.audit_lines()[-1]
    assert audit["verb"] == "saga force-fail" and audit["arguments"]["reason"] == "card processor outage, refund"
