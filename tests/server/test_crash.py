"""SIGKILL mid-work loses nothing and doubles nothing; SIGTERM stops gracefully within a bound."""

from __future__ import annotations

import random
import signal
import sqlite3
import time

import httpx
import pytest

from pipelinectl.testing import eventually
from tests.support.server import start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

TOTAL = 300
P = "/v1/pipelines/counted"


def get(srv, path=""):
    r = httpx.get(srv.url + P + path, headers=srv.headers("admin"), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def stages(srv):
    return {s["name"]: s for s in get(srv)["stages"]}


def wait(predicate, timeout):
    eventually(predicate, timeout=timeout, interval=0.2)


def test_sigkill_and_restart_counts_every_item_exactly_once(tmp_path):
    env = {"CRASH_TOTAL": str(TOTAL)}
    spec = ("tests.server.crash_pipeline:build",)
    srv = start_server(tmp_path, demo=False, pipelines=spec, env=env)
    try:
        r = httpx.post(srv.url + P + "/stages/c/scale", json={"parallelism": 3}, headers=srv.headers("admin"))
        assert r.status_code == 200
        wait(lambda: stages(srv)["c"]["processed"] >= 40, 60)
        paused = httpx.post(srv.url + P + "/stages/b/pause", headers=srv.headers("admin")).json()
        busy = stages(srv)
        assert busy["c"]["processed"] < TOTAL - 50, "the pipeline finished before the kill: slow it down"
        srv.kill()  # SIGKILL: no shutdown hook runs

        srv = start_server(tmp_path, demo=False, pipelines=spec, env=env, db=srv.db)
        after = stages(srv)
        assert after["b"]["state"] == "paused" and after["b"]["version"] == paused["version"]
        assert after["c"]["parallelism"] == 3
        assert after["c"]["processed"] >= busy["c"]["processed"]
        httpx.post(srv.url + P + "/stages/b/resume", headers=srv.headers("admin"))
        wait(lambda: stages(srv)["c"]["processed"] >= 100, 60)
        srv.kill()  # a second crash, mid-stream again

        srv = start_server(tmp_path, demo=False, pipelines=spec, env=env, db=srv.db)

        wait(lambda: settled(srv, TOTAL), 90)
        p = get(srv)
        final = p["stages"][-1]["processed"]
        dlq = get(srv, "/dlq?page_size=1000")
        assert final + dlq["total"] == TOTAL
        assert dlq["total"] == TOTAL // 10  # the poison inputs, n % 10 == 7, each exactly once
        assert all(i["error_kind"] == "validation" and i["stage"] == "a" for i in dlq["items"])
    finally:
        code = srv.stop(signal.SIGTERM, timeout=20)
    assert code == 0, srv.output()[-2000:]

    assert_conserved(srv.db, TOTAL)


def settled(srv, total):
    p = get(srv)
    idle = all(s["queue_depth"] == 0 and s["in_flight"] == 0 for s in p["stages"])
    return idle and p["input_offset"] == total and p["stages"][-1]["processed"] + p["dlq_size"] == total


def assert_conserved(db_path, total):
    """processed + dead-lettered = input, each key in exactly one of them, every counter exact."""
    db = sqlite3.connect(db_path)
    keys = [k for (k,) in db.execute("SELECT key FROM input_log WHERE pipeline='counted'")]
    assert len(keys) == len(set(keys)) == total  # the source resumed without feeding items twice
    offsets = [o for (o,) in db.execute('SELECT "offset" FROM input_log WHERE pipeline=\'counted\' ORDER BY 1')]
    assert offsets == list(range(total))  # no gap in the log
    done = {k for (k,) in db.execute("SELECT key FROM applied WHERE pipeline='counted' AND stage='c'")}
    dead = [k for (k,) in db.execute("SELECT key FROM dlq WHERE pipeline='counted'")]
    assert len(dead) == len(set(dead)) == total // 10  # the poison inputs (n % 10 == 7), each once
    assert not (done & set(dead))  # none both processed and dead-lettered
    assert done | set(dead) == set(keys)  # none lost
    assert db.execute("SELECT COUNT(*) FROM work").fetchone()[0] == 0
    counters = dict(db.execute("SELECT name, processed FROM stages WHERE pipeline='counted'").fetchall())
    assert counters["c"] == len(done)  # none doubled
    assert counters["a"] == counters["b"] == len(done)  # every stage counted each item once
    db.close()


def test_repeated_sigkill_during_group_commits_loses_and_doubles_nothing(tmp_path):
    """Fast stages move many items per commit; killed at random moments, the counts still add up exactly."""
    total = 3000
    env = {"CRASH_TOTAL": str(total), "CRASH_SCALE": "0.2", "CRASH_PARALLELISM": "8"}
    spec = ("tests.server.crash_pipeline:build",)
    rng = random.Random(1234)
    srv = start_server(tmp_path, demo=False, pipelines=spec, env=env)
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.3, 1.2))
            assert not settled(srv, total), "the pipeline finished before the kill: make it longer"
            srv.kill()
            srv = start_server(tmp_path, demo=False, pipelines=spec, env=env, db=srv.db)
        wait(lambda: settled(srv, total), 120)
        dlq = get(srv, "/dlq?page_size=1000")
        assert get(srv)["stages"][-1]["processed"] + dlq["total"] == total
    finally:
        code = srv.stop(signal.SIGTERM, timeout=20)
    assert code == 0, srv.output()[-2000:]
    assert_conserved(srv.db, total)


def test_sigterm_is_graceful_and_bounded(tmp_path):
    srv = start_server(tmp_path)
    time.sleep(2)  # the demo is busy: stages have items in flight
    t0 = time.monotonic()
    code = srv.stop(signal.SIGTERM, timeout=30)
    elapsed = time.monotonic() - t0
    assert code == 0, srv.output()[-2000:]
    assert elapsed < 15
    assert "control plane stopped" in srv.output()  # the lifespan shutdown ran to its end
    srv2 = start_server(tmp_path, db=srv.db)  # and it starts again from the same state
    try:
        r = httpx.get(srv2.url + "/v1/pipelines/orders", headers=srv2.headers("viewer"))
        assert r.status_code == 200 and r.json()["input_offset"] > 0
    finally:
        srv2.stop()


def test_sigkill_keeps_dlq_sagas_and_replay_jobs_and_resumes_them(tmp_path):
    srv = start_server(tmp_path)
    base = "/v1/pipelines/orders"

    def call(method, path, **kw):
        return httpx.request(method, srv.url + base + path, headers=srv.headers("admin"), timeout=15, **kw)

    wait(lambda: call("GET", "/sagas", params={"status": "running"}).json()["total"] >= 2
         and call("GET", "/dlq").json()["total"] >= 2, 60)
    call("POST", "/stages/ship/pause")
    wait(lambda: call("GET", "/stages/ship").json()["queue_depth"] >= 50, 60)
    job = call("POST", "/replays", json={"stage": "ship", "from_offset": 0, "to_offset": 500}).json()
    time.sleep(0.3)
    running_before = {s["id"] for s in call("GET", "/sagas", params={"status": "running"}).json()["items"]}
    dlq_before = {i["id"] for i in call("GET", "/dlq", params={"page_size": 1000}).json()["items"]}
    sagas_before = call("GET", "/sagas", params={"page_size": 1000}).json()["total"]
    srv.kill()

    srv = start_server(tmp_path, db=srv.db)
    try:
        dlq_after = {i["id"] for i in call("GET", "/dlq", params={"page_size": 1000}).json()["items"]}
        assert dlq_before <= dlq_after
        assert call("GET", "/sagas", params={"page_size": 1000}).json()["total"] >= sagas_before
        assert call("GET", f"/replays/{job['id']}").json()["state"] in ("pending", "running")
        assert call("GET", "/stages/ship").json()["state"] == "paused"
        # interrupted sagas are adopted once the dead coordinator's lease runs out, and finish
        restarted = time.time()

        def moved_on() -> bool:
            for sid in running_before:
                s = call("GET", f"/sagas/{sid}").json()
                if s["status"] == "running":
                    return False
            return True

        wait(moved_on, 45)
        for sid in running_before:
            s = call("GET", f"/sagas/{sid}").json()
            assert any(e["time"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(restarted - 1))
                       for e in s["events"]), s
        c = call("POST", f"/replays/{job['id']}/cancel")
        assert c.status_code == 200 and c.json()["state"] == "cancelled"
        call("POST", "/stages/ship/resume")
    finally:
        srv.stop()


def test_backpressure_bounds_every_queue(tmp_path):
    srv = start_server(tmp_path, demo=False, pipelines=("tests.server.crash_pipeline:build",),
                       env={"CRASH_TOTAL": "100000"})
    try:
        r = httpx.post(srv.url + P + "/stages/c/pause", headers=srv.headers("admin"))
        assert r.status_code == 200

        def offset() -> int:
            return get(srv)["input_offset"]

        time.sleep(1.5)
        held = offset()
        time.sleep(1.0)
        assert offset() == held  # the source is held: input stops growing
        p = get(srv)
        for s in p["stages"]:
            assert s["queue_depth"] <= s["queue_capacity"], s
        # every input is somewhere bounded: a queue, a worker's hands, the DLQ, or done
        inside = sum(s["queue_depth"] + s["in_flight"] for s in p["stages"])
        assert held == inside + p["dlq_size"] + p["stages"][-1]["processed"]
        assert stages(srv)["c"]["queue_depth"] == 20 and stages(srv)["b"]["queue_depth"] == 20
        httpx.post(srv.url + P + "/stages/c/resume", headers=srv.headers("admin"))
        wait(lambda: offset() > held, 10)
    finally:
        srv.stop()
