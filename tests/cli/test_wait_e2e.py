"""`pipelinectl wait` against a real control plane: met, timed out, missing target, strict parsing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cli import CliEnv, validate_output
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, CliEnv]]:
    root = tmp_path_factory.mktemp("wait-e2e")
    server = start_server(root / "server", env={"PIPELINECTL_DEMO_RATE": "6"})
    try:
        cli = CliEnv(root / "user")
        cli.set_context("demo", server.url, token=server.tokens["admin"], pipeline="orders")
        yield server, cli
    finally:
        server.stop()


def api(server: RunningServer, method: str, path: str, **kw):
    response = httpx.request(method, server.url + "/v1/pipelines/orders" + path, headers=server.headers("admin"),
                             timeout=10, **kw)
    response.raise_for_status()
    return response.json()


def test_state_met_after_a_pause_elsewhere(env):
    server, cli = env
    api(server, "POST", "/stages/notify/resume", json={})
    timer = threading.Timer(3.0, lambda: api(server, "POST", "/stages/notify/pause", json={}))
    started = time.monotonic()
    timer.start()
    try:
        result = cli.run("wait", "stage/notify", "--for", "state=paused", "--for-timeout", "20s", "-o", "json")
    finally:
        timer.join()
        api(server, "POST", "/stages/notify/resume", json={})
    assert result.rc == 0, result
    assert time.monotonic() - started >= 3.0  # it returned only after the pause, 3 s in
    doc = result.json()
    validate_output(doc)  # the documented WaitResult shape (docs/output.md)
    assert doc["kind"] == "WaitResult" and doc["met"] is True and doc["observed"] == "paused"
    assert doc["condition"] == "state=paused" and doc["target"] == "stage orders/notify"


def test_timeout_prints_the_last_value_and_exits_8(env):
    _, cli = env
    started = time.monotonic()
    result = cli.run("wait", "charge", "--for", "state=draining", "--for-timeout", "2s")
    assert result.rc == 8, result
    assert 1.5 < time.monotonic() - started < 15
    assert result.stdout == ""  # the one error line says it all, with the last observed value
    assert result.stderr == ("error: state=draining not met within 2s "
                             "(stage orders/charge: last observed state=running)\n")


def test_stage_option_names_the_target_as_runbooks_write_it(env):
    _, cli = env
    result = cli.run("wait", "--for", "in_flight>=0", "--stage", "charge", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["target"] == "stage orders/charge"
    twice = cli.run("wait", "ship", "--for", "state=paused", "--stage", "charge")
    assert twice.rc == 2 and "stage given twice" in twice.stderr
    kind = cli.run("wait", "--for", "state=paused", "--stage", "charge", "--error-kind", "validation")
    assert kind.rc == 2 and "--error-kind goes with dlq conditions only" in kind.stderr


def test_dlq_count_by_stage_and_kind(env):
    server, cli = env
    # every 17th order is poison and fails validation: the demo's DLQ fills within seconds
    result = cli.run("wait", "--for", "dlq>=1", "--stage", "validate", "--error-kind", "validation",
                     "--for-timeout", "30s", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["observed"] >= 1
    total = api(server, "GET", "/dlq", params={"stage": "validate", "error_kind": "validation"})["total"]
    assert total >= result.json()["observed"]
    # a count that cannot be reached in time
    result = cli.run("wait", "--for", f"dlq<={0}", "--stage", "validate", "--for-timeout", "1s", "-o", "json")
    assert result.rc == 8, result
    validate_output(result.json())
    assert result.json()["met"] is False and result.json()["observed"] >= 1


def test_queue_depth_and_in_flight_on_a_paused_stage(env):
    server, cli = env
    api(server, "POST", "/stages/ship/pause", json={})
    try:
        result = cli.run("wait", "ship", "--for", "in_flight<=0", "--for-timeout", "30s")
        assert result.rc == 0, result
        assert "in_flight=0" in result.stdout
        # paused, its queue fills up as orders keep arriving
        result = cli.run("wait", "ship", "--for", "queue_depth>=2", "--for-timeout", "30s", "-o", "json")
        assert result.rc == 0, result
        assert result.json()["observed"] >= 2
        assert api(server, "GET", "/stages/ship")["queue_depth"] >= 2
    finally:
        api(server, "POST", "/stages/ship/resume", json={})


def test_missing_targets_fail_fast_with_3(env):
    _, cli = env
    for args in (("nope", "--for", "state=paused"),
                 ("saga/saga-missing", "--for", "saga=completed"),
                 ("replay/rp-missing", "--for", "replay=completed"),
                 ("--for", "dlq>=1", "--stage", "nope")):
        started = time.monotonic()
        result = cli.run("wait", *args, "--for-timeout", "30s")
        assert result.rc == 3, result
        assert time.monotonic() - started < 10, "a missing target must not wait for the timeout"
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("condition", ["state", "state=", "state~paused", "state=sleeping", "depth<=3",
                                       "queue_depth<=-1", "queue_depth<=ten", "saga>=completed", "dlq=many"])
def test_malformed_conditions_are_one_line_usage_errors(env, condition):
    _, cli = env
    result = cli.run("wait", "charge", "--for", condition)
    assert result.rc == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--for" in lines[0], result


def test_replay_completed(env):
    server, cli = env
    job = api(server, "POST", "/replays", json={"stage": "notify", "from_offset": 0, "to_offset": 5})
    result = cli.run("wait", f"replay/{job['id']}", "--for", "replay=completed", "--for-timeout", "60s", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["observed"] == "completed"
    assert api(server, "GET", f"/replays/{job['id']}")["state"] == "completed"


def test_saga_status_met_and_a_final_status_ends_the_wait_at_once(env):
    server, cli = env
    deadline = time.monotonic() + 120
    stuck = []
    while not stuck and time.monotonic() < deadline:
        stuck = api(server, "GET", "/sagas", params={"status": "stuck"})["items"]
        time.sleep(0.5)
    assert stuck, "the demo makes stuck sagas"
    saga_id = stuck[0]["id"]
    result = cli.run("wait", f"saga/{saga_id}", "--for", "saga=stuck", "-o", "json")
    assert result.rc == 0 and result.json()["observed"] == "stuck", result
    api(server, "POST", f"/sagas/{saga_id}/force-fail", json={"reason": "wait test"})
    result = cli.run("wait", f"saga/{saga_id}", "--for", "saga=compensated", "--for-timeout", "30s")
    assert result.rc == 0, result
    assert f"saga {saga_id}: saga=compensated" in result.stdout
    started = time.monotonic()
    result = cli.run("wait", f"saga/{saga_id}", "--for", "saga=completed", "--for-timeout", "60s")
    assert result.rc == 8, result
    assert time.monotonic() - started < 15, "a closed saga cannot complete: no waiting for the timeout"
    assert "compensated, a final status" in result.stderr
