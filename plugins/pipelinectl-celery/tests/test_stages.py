"""status, pause/resume and scale against real `celery worker` processes, counted on both sides."""

from __future__ import annotations

import time

import pytest

from pipelinectl.plugin_api import (
    ConflictError,
    NotFoundError,
    ReplayRequest,
    SagaFilter,
    StaleVersionError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)


@pytest.fixture(scope="module")
def nodes(workers):
    """Two workers on `st.parse` (one also on `st.enrich`), prefork, concurrency 2."""
    return {"w1": workers.start("w1", "st.parse,st.enrich"), "w2": workers.start("w2", "st.parse")}


def _stage(driver, name):
    [pipeline] = driver.status()
    return next(s for s in pipeline.stages if s.name == name)


def test_status_matches_what_celery_inspect_says(nodes, workers, admin, driver_for):
    driver = driver_for()
    # tasks that hold the pool, and some left waiting in the queue
    for i in range(8):
        admin.send(f"busy{i}", "st.enrich", delay=1.5)
    admin.send("bad", "st.parse", fail="ValueError")
    admin.send("slow", "st.parse", fail="TimeoutError")
    workers.wait_for(lambda: len(workers.rows("fail")) == 2, what="two failures")
    workers.wait_for(lambda: len([r for r in workers.rows("start") if r["item"].startswith("busy")]) >= 2,
                     what="busy tasks running")

    [pipeline] = driver.status()
    inspect = admin.inspect(list(nodes.values()))
    queues = inspect.active_queues()
    stats = inspect.stats()
    active = inspect.active()
    assert pipeline.name == "celery" and pipeline.driver == "celery"
    assert sorted(pipeline.details["workers"]) == sorted(nodes.values())
    by_name = {s.name: s for s in pipeline.stages}
    assert set(by_name) == {q["name"] for qs in queues.values() for q in qs}

    enrich = by_name["st.enrich"]
    assert [w["name"] for w in enrich.details["workers"]] == [nodes["w1"]]
    assert enrich.parallelism == len(stats[nodes["w1"]]["pool"]["processes"]) == 2
    running = [t for t in active[nodes["w1"]] if t["delivery_info"]["routing_key"] == "st.enrich"]
    assert enrich.in_flight == enrich.details["active"] == len(running) == 2
    assert enrich.queue_depth == admin.depth("st.enrich") > 0  # the broker's list length
    assert "t.work" in enrich.details["registered_tasks"]

    assert enrich.details["scheduled"] == 0
    later = admin.send("later", "st.parse", countdown=60)  # an ETA task: the worker holds it, scheduled
    workers.wait_for(lambda: any(inspect.scheduled().values()), what="an ETA task held")
    scheduled = sum(len([t for t in ts if t["request"]["id"] == later]) for ts in inspect.scheduled().values())
    [pipeline] = driver.status()
    by_name = {s.name: s for s in pipeline.stages}
    assert by_name["st.parse"].details["scheduled"] == scheduled == 1
    admin.app.control.revoke(later)

    parse = by_name["st.parse"]
    assert parse.parallelism == 4 and parse.min_parallelism == 2
    assert parse.details["failures_by_exception"] == {"TimeoutError": 1, "ValueError": 1}
    assert parse.errors_by_kind == {"transient": 1, "validation": 1}
    assert parse.dlq_size == parse.failed == 2 == len(admin.failure_keys())
    assert parse.to_dict()["kind"] == "Stage"
    workers.wait_for(lambda: admin.depth("st.enrich") == 0 and not any(inspect.active().values()),
                     timeout=30, what="enrich drained")


def test_pause_stops_the_workers_taking_tasks_until_resumed(nodes, workers, admin, driver_for):
    driver = driver_for()
    started = lambda: [r["item"] for r in workers.rows("start") if r["item"].startswith("p-")]  # noqa: E731
    stage = driver.pause("celery", "st.parse")
    assert stage.state == "paused" and stage.details["consumers"] == 0
    assert stage.details["paused_by_pipelinectl"]["workers"] == sorted(nodes.values())
    queues = admin.inspect(list(nodes.values())).active_queues()
    assert all("st.parse" not in [q["name"] for q in qs] for qs in queues.values())  # Celery's own view
    assert driver.pause("celery", "st.parse").state == "paused"  # again: a no-op

    for i in range(6):
        admin.send(f"p-{i}", "st.parse")
    time.sleep(2.0)
    assert started() == []  # the workers took nothing
    assert admin.depth("st.parse") == 6 == _stage(driver, "st.parse").queue_depth
    assert _stage(driver, "st.parse").state == "paused"

    stage = driver.resume("celery", "st.parse")
    assert stage.state == "running" and stage.details["consumers"] == 2
    workers.wait_for(lambda: len(started()) == 6, what="all six processed after resume")
    assert sorted(started()) == [f"p-{i}" for i in range(6)]
    assert admin.depth("st.parse") == 0
    # the queue came back on the workers that had it, not on others
    queues = admin.inspect(list(nodes.values())).active_queues()
    assert {n: sorted(q["name"] for q in qs) for n, qs in queues.items()} == {
        nodes["w1"]: ["st.enrich", "st.parse"], nodes["w2"]: ["st.parse"]}
    assert driver.resume("celery", "st.parse").state == "running"  # again: a no-op


def test_pause_with_tasks_in_flight_lets_them_finish_and_takes_no_more(nodes, workers, admin, driver_for):
    driver = driver_for()
    for i in range(10):
        admin.send(f"f-{i}", "st.enrich", delay=0.5)
    workers.wait_for(lambda: any(r["item"].startswith("f-") for r in workers.rows("start")), what="first start")
    driver.pause("celery", "st.enrich")
    # what was running (or prefetched) finishes; then nothing more starts
    w1 = nodes["w1"]

    def idle() -> bool:
        inspect = admin.inspect([w1])
        return not inspect.active()[w1] and not inspect.reserved()[w1]

    workers.wait_for(idle, what="in-flight and reserved tasks done")
    taken = len([r for r in workers.rows("start") if r["item"].startswith("f-")])
    time.sleep(1.5)
    after = len([r for r in workers.rows("start") if r["item"].startswith("f-")])
    assert after == taken < 10, (taken, after)
    assert admin.depth("st.enrich") == 10 - taken == _stage(driver, "st.enrich").queue_depth
    driver.resume("celery", "st.enrich")
    workers.wait_for(lambda: len([r for r in workers.rows("done") if r["item"].startswith("f-")]) == 10,
                     what="all ten done")


def test_pause_dry_run_changes_nothing_and_until_is_unsupported(nodes, admin, driver_for):
    driver = driver_for()
    planned = driver.pause("celery", "st.parse", dry_run=True)
    assert planned.state == "paused"
    queues = admin.inspect(list(nodes.values())).active_queues()
    assert all("st.parse" in [q["name"] for q in qs] for qs in queues.values())
    from datetime import UTC, datetime, timedelta

    with pytest.raises(UnsupportedError, match="'pause --until' is not supported by the celery driver"):
        driver.pause("celery", "st.parse", until=datetime.now(UTC) + timedelta(minutes=5))


def test_scale_grows_and_shrinks_the_prefork_pools(nodes, workers, admin, driver_for):
    driver = driver_for()
    before = driver.get_stage("celery", "st.parse")
    assert before.parallelism == 4
    with pytest.raises(StaleVersionError):
        driver.scale("celery", "st.parse", 6, expected_version=before.version + 1)
    planned = driver.scale("celery", "st.parse", 6, dry_run=True)
    assert planned.parallelism == 6 and driver.get_stage("celery", "st.parse").parallelism == 4

    try:
        stage = driver.scale("celery", "st.parse", 6, expected_version=before.version)
        assert stage.parallelism == 6
        stats = admin.inspect(list(nodes.values())).stats()
        assert {n: len(s["pool"]["processes"]) for n, s in stats.items()} == {nodes["w1"]: 3, nodes["w2"]: 3}

        # each worker now runs three tasks at once, never more (enough tasks to keep both pools busy)
        for i in range(12):
            admin.send(f"s-{i}", "st.parse", delay=1.0)
        workers.wait_for(lambda: len([r for r in workers.rows("done") if r["item"].startswith("s-")]) == 12,
                         timeout=60, what="s tasks done")
        assert _peak_concurrency(workers.rows(), "s-") == {nodes["w1"]: 3, nodes["w2"]: 3}
    finally:
        stage = driver.scale("celery", "st.parse", 4)
    assert stage.parallelism == 4
    stats = admin.inspect(list(nodes.values())).stats()
    assert sorted(len(s["pool"]["processes"]) for s in stats.values()) == [2, 2]


def _peak_concurrency(rows, prefix: str) -> dict[str, int]:
    """Per worker, the most tasks (named prefix...) that were running at the same moment."""
    events = sorted((r["t"], 1 if r["action"] == "start" else -1, r["worker"]) for r in rows
                    if r["action"] in ("start", "done") and str(r.get("item", "")).startswith(prefix))
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _, step, worker in events:
        running[worker] = running.get(worker, 0) + step
        peak[worker] = max(peak.get(worker, 0), running[worker])
    return peak


def test_scale_refuses_bad_values_and_changes_nothing(nodes, admin, driver_for):
    driver = driver_for(max_pool=4)
    for bad in (1, 9, True, 2.5):
        with pytest.raises(UsageError):
            driver.scale("celery", "st.parse", bad)
    stats = admin.inspect(list(nodes.values())).stats()
    assert sorted(len(s["pool"]["processes"]) for s in stats.values()) == [2, 2]


def test_unknown_pipeline_and_stage_are_not_found(nodes, driver_for):
    driver = driver_for()
    with pytest.raises(NotFoundError, match="stage 'nope' not found") as err:
        driver.get_stage("celery", "nope")
    assert "st.parse" in err.value.one_line()
    with pytest.raises(NotFoundError, match="pipeline 'other' not found"):
        driver.pause("other", "st.parse")
    named = driver_for(pipeline="orders", queues="st.parse,st.idle")
    [pipeline] = named.status()
    assert pipeline.name == "orders" and [s.name for s in pipeline.stages] == ["st.parse", "st.idle"]
    idle = pipeline.stages[1]
    assert idle.details["consumers"] == 0 and "no online worker" in idle.details["note"]
    with pytest.raises(ConflictError, match="no online worker consumes queue 'st.idle'"):
        named.pause("orders", "st.idle")


def test_verbs_celery_cannot_do_are_unsupported_and_say_why(driver_for):
    driver = driver_for()
    with pytest.raises(UnsupportedError, match="'replay' is not supported by the celery driver: the Redis broker"):
        driver.replay(ReplayRequest(pipeline="celery", from_offset=1, to_offset=2))
    with pytest.raises(UnsupportedError, match="'drain' is not supported"):
        driver.drain("celery", "st.parse")
    with pytest.raises(UnsupportedError, match="'saga list' is not supported by the celery driver: Celery has no sagas"):
        driver.saga_list(SagaFilter(pipeline="celery"))


def test_a_worker_that_does_not_answer_costs_one_reply_timeout_at_most(nodes, admin, driver_for):
    """A stale control binding (a worker killed with SIGKILL) is asked too: its silence is bounded."""
    admin.redis.sadd("_kombu.binding.celery.pidbox", "\x06\x16\x06\x16ghost@nowhere.celery.pidbox")
    try:
        driver = driver_for(reply_timeout=0.5)
        started = time.monotonic()
        [pipeline] = driver.status()
        elapsed = time.monotonic() - started
        assert sorted(pipeline.details["workers"]) == sorted(nodes.values())
        assert elapsed < 0.5 + 1.5, f"took {elapsed:.2f}s"
        short = driver_for(timeout=0.3)  # the verb's deadline bounds the wait below reply_timeout
        started = time.monotonic()
        try:
            short.status()
        except UnavailableError:
            pass  # the deadline may pass before every inspect is done: said so, not waited out
        assert time.monotonic() - started < 0.3 + 1.0
    finally:
        admin.redis.srem("_kombu.binding.celery.pidbox", "\x06\x16\x06\x16ghost@nowhere.celery.pidbox")


def test_status_can_leave_the_failure_scan_out(nodes, driver_for):
    stage = driver_for(status_failures="false").get_stage("celery", "st.parse")
    assert stage.details["failures_by_exception"].startswith("not counted")
