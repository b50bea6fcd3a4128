"""The runtime in-process (real SQLite, real asyncio workers): error kinds, retries, live resize, redrive."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC

from pipelinectl import model as m
from pipelinectl.server import FatalError, Pipeline, RetryPolicy, Runtime, StageDef, TransientError


async def until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


def test_error_kinds_retries_and_fatal_pause(tmp_path):
    calls: dict[str, int] = {}

    async def work(item):
        calls[item.key] = calls.get(item.key, 0) + 1
        n = item.payload["n"]
        if n == 1:
            raise TransientError("always down")
        if n == 2 and item.attempt < 3:
            raise TransientError("flaky")
        if n == 3:
            raise KeyError("bug")  # unknown exception: persistent
        if n == 4:
            raise ValueError("bad input")  # validation
        if n == 5:
            raise FatalError("disk gone")
        return None

    p = Pipeline("t")
    p.add_stage(StageDef("work", work, retry=RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.005)))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "t.db")
        await rt.start()
        for n in range(6):
            await rt.submit("t", f"k{n}", {"n": n})
        pr = rt.pipeline("t")
        await until(lambda: pr.stage("work").state == "paused")  # the fatal item paused the stage
        await until(lambda: pr.stage("work").in_flight == 0)
        items, _, total = pr.dlq_list(m.DLQFilter(pipeline="t"), 100, None)
        kinds = {i.key: (i.error_kind, i.attempts) for i in items}
        assert kinds["k1"] == ("transient", 4)  # retried up to the budget, then dead-lettered
        assert kinds["k3"][0] == "persistent" and kinds["k4"][0] == "validation" and kinds["k5"][0] == "fatal"
        assert "k2" not in kinds and calls["k2"] == 3  # the flaky one succeeded on its third attempt
        view = pr.stage("work").view()
        assert "fatal" in view.details["paused_reason"] and view.errors_by_kind["transient"] == 1
        await rt.stop(5)

    asyncio.run(scenario())


def test_live_resize_under_load_loses_and_doubles_nothing(tmp_path):
    seen: list[str] = []

    async def slow(item):
        await asyncio.sleep(0.002)
        seen.append(item.key)

    p = Pipeline("r")
    p.add_stage(StageDef("a", slow, parallelism=2, max_parallelism=32, capacity=10))
    total = 400

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "r.db")
        await rt.start()
        pr = rt.pipeline("r")

        async def feed() -> None:
            for n in range(total):
                await rt.submit("r", f"k{n}", n)

        feeder = asyncio.create_task(feed())
        for size in (16, 1, 8, 3, 32, 2):
            await asyncio.sleep(0.05)
            pr.scale("a", size)
            await until(lambda size=size: pr.stage("a").active == size)
        await feeder
        await until(lambda: pr.stage("a").processed == total)
        assert sorted(seen) == sorted(f"k{n}" for n in range(total))
        assert len(seen) == len(set(seen))
        await rt.stop(5)

    asyncio.run(scenario())


def test_redrive_is_one_transaction_and_replay_skips_applied(tmp_path):
    broken = {"on": True}

    async def flaky(item):
        if broken["on"] and item.payload % 2:
            raise ValueError("odd")

    p = Pipeline("d")
    p.add_stage(StageDef("a", flaky))
    p.add_stage(StageDef("b", flaky))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "d.db")
        await rt.start()
        pr = rt.pipeline("d")
        for n in range(10):
            await rt.submit("d", f"k{n}", n)
        await until(lambda: pr.dlq_count() == 5 and pr.stage("b").processed == 5)
        items, _, _ = pr.dlq_list(m.DLQFilter(pipeline="d"), 100, None)
        first_seen = {i.key: i.first_seen for i in items}
        again = pr.dlq_redrive(m.DLQFilter(pipeline="d", ids=[items[0].id]))  # still broken: fails again
        assert again.succeeded == [items[0].id]
        await until(lambda: pr.dlq_count() == 5 and not pr.stage("a").queue and pr.stage("a").in_flight == 0)
        refailed = [i for i in pr.dlq_list(m.DLQFilter(pipeline="d"), 100, None)[0] if i.key == items[0].key]
        assert len(refailed) == 1 and refailed[0].first_seen == first_seen[items[0].key]
        assert refailed[0].last_seen > refailed[0].first_seen and refailed[0].details["origin"] == "redrive"
        broken["on"] = False
        result = pr.dlq_redrive(m.DLQFilter(pipeline="d", all=True))
        assert len(result.succeeded) == 5 and pr.dlq_count() == 0
        await until(lambda: pr.stage("b").processed == 10)
        job = pr.replay_start(m.ReplayRequest(pipeline="d", from_offset=0, to_offset=10))
        await until(lambda: pr.replay_get(job.id).state == "completed")
        done = pr.replay_get(job.id)
        assert (done.skipped, done.replayed) == (10, 0)
        assert pr.stage("a").processed == 10 and pr.stage("b").processed == 10
        await rt.stop(5)

    asyncio.run(scenario())
    db = sqlite3.connect(tmp_path / "d.db")
    assert db.execute("SELECT COUNT(*) FROM applied WHERE stage='b'").fetchone()[0] == 10


def test_a_redrive_that_fails_midway_moves_nothing_and_audits_nothing(tmp_path):
    """The moves and their audit entry are one transaction: a failure on the third item rolls back the first two."""
    from pipelinectl.server import audit

    async def reject(item):
        raise ValueError("bad")

    p = Pipeline("x")
    p.add_stage(StageDef("a", reject))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "x.db")
        await rt.start()
        pr = rt.pipeline("x")
        for n in range(4):
            await rt.submit("x", f"k{n}", n)
        await until(lambda: pr.dlq_count() == 4)
        drop = rt.store.drop_dead_letters
        calls = {"n": 0}

        def drop_then_fail(seqs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise sqlite3.OperationalError("disk I/O error")
            return drop(seqs)

        rt.store.drop_dead_letters = drop_then_fail
        try:
            pr.dlq_redrive(m.DLQFilter(pipeline="x", all=True))
        except sqlite3.OperationalError:
            pass
        else:
            raise AssertionError("the failing store did not fail the redrive")
        rt.store.drop_dead_letters = drop
        assert pr.dlq_count() == 4 and not pr.stage("a").queue and pr.stage("a").processed == 0
        trail, _, _ = audit.listing(rt.store, m.AuditFilter(verb="dlq redrive"), 10, None)
        assert trail == []
        result = pr.dlq_redrive(m.DLQFilter(pipeline="x", all=True))  # and it still works afterwards
        trail, _, _ = audit.listing(rt.store, m.AuditFilter(verb="dlq redrive"), 10, None)
        assert len(result.succeeded) == 4 and [e.result for e in trail] == ["4 redriven, 0 failed"]
        await rt.stop(5)

    asyncio.run(scenario())


def test_one_coordinator_per_saga_and_adoption_after_its_lease(tmp_path):
    from pipelinectl.server import Step
    from pipelinectl.server import sagas as saga_module

    runs: list[str] = []
    gate = {"open": False}

    async def slow(ctx):
        runs.append(ctx.saga_id)
        while not gate["open"]:
            await asyncio.sleep(0.01)

    def build() -> Pipeline:
        p = Pipeline("s")
        p.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))
        p.saga("x", [Step("one", slow)])
        return p

    async def scenario() -> None:
        a, b = Runtime([build()], tmp_path / "s.db"), Runtime([build()], tmp_path / "s.db")
        await a.start()
        await b.start()
        a.pipeline("s").sagas.start("x", "saga-1")
        await until(lambda: runs == ["saga-1"])
        for _ in range(3):
            b.pipeline("s").sagas.tick()  # a holds a live lease: b must not drive it too
            await asyncio.sleep(0.05)
        assert runs == ["saga-1"] and not b.pipeline("s").sagas.running
        # a dies without releasing (its task is cancelled mid-step, its lease just stops being renewed)
        a.pipeline("s").sagas.running["saga-1"].cancel()
        a.stopping = True
        with a.store.tx():
            a.store.update_saga("saga-1", owner=a.instance, lease_until=saga_module.now() - 1)
        gate["open"] = True
        b.pipeline("s").sagas.tick()
        await until(lambda: b.pipeline("s").sagas.get("saga-1").status == "completed")
        assert runs == ["saga-1", "saga-1"]
        await b.stop(2)

    asyncio.run(scenario())


def test_pause_until_resumes_by_itself(tmp_path):
    from datetime import datetime, timedelta

    p = Pipeline("u")
    p.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "u.db")
        await rt.start()
        pr = rt.pipeline("u")
        view = pr.pause("a", datetime.now(UTC) + timedelta(seconds=1.2))
        assert view.state == "paused" and view.paused_until is not None
        await until(lambda: pr.stage("a").state == "running", 5)
        assert pr.stage("a").view().paused_until is None
        await rt.stop(2)

    asyncio.run(scenario())


def test_items_of_a_removed_stage_go_to_the_dlq_not_away(tmp_path):
    async def hold(item):
        await asyncio.sleep(3600)

    first = Pipeline("g")
    first.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))
    first.add_stage(StageDef("old", hold, capacity=10))

    async def crash_with_items_in_old() -> None:
        rt = Runtime([first], tmp_path / "g.db")
        await rt.start()
        for n in range(5):
            await rt.submit("g", f"k{n}", n)
        await until(lambda: rt.pipeline("g").stage("old").in_flight + len(rt.pipeline("g").stage("old").queue) == 5)
        await rt.stop(0.1)

    asyncio.run(crash_with_items_in_old())
    second = Pipeline("g")
    second.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))

    async def restart_without_old() -> None:
        rt = Runtime([second], tmp_path / "g.db")
        await rt.start()
        items, _, total = rt.pipeline("g").dlq_list(m.DLQFilter(pipeline="g"), 100, None)
        assert total == 5 and {i.stage for i in items} == {"old"}
        await rt.stop(1)

    asyncio.run(restart_without_old())


def test_a_key_dead_lettered_again_for_the_same_stage_and_kind_updates_its_entry(tmp_path):
    from pipelinectl.server import ValidationError

    async def strict(item):
        if item.payload == 4 and item.origin == "replay":
            raise KeyError("lookup failed")  # persistent: another kind, so another entry
        if item.payload % 4 == 0:
            raise ValidationError(f"bad {item.payload} ({item.origin})")

    p = Pipeline("q")
    p.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))
    p.add_stage(StageDef("b", strict))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "q.db")
        await rt.start()
        pr = rt.pipeline("q")
        for n in range(8):
            await rt.submit("q", f"k{n}", n)
        await until(lambda: pr.dlq_count() == 2 and pr.stage("b").processed == 6)
        before = {i.key: i for i in pr.dlq_list(m.DLQFilter(pipeline="q"), 100, None)[0]}
        assert set(before) == {"k0", "k4"}
        await asyncio.sleep(0.01)  # so that last_seen can move on
        job = pr.replay_start(m.ReplayRequest(pipeline="q", stage="b", from_offset=0, to_offset=8))
        await until(lambda: pr.replay_get(job.id).state == "completed")
        await until(lambda: all(not st.queue and st.in_flight == 0 for st in pr.stages))
        assert pr.replay_get(job.id).replayed == 2  # only the two dead-lettered keys ran again
        entries = pr.dlq_list(m.DLQFilter(pipeline="q"), 100, None)[0]
        validation = {i.key: i for i in entries if i.error_kind == "validation"}
        assert len(entries) == 3 and set(validation) == {"k0", "k4"}  # k0 updated, not duplicated
        k0 = validation["k0"]
        assert k0.id == before["k0"].id and k0.first_seen == before["k0"].first_seen
        assert k0.attempts == 2 and k0.last_seen > before["k0"].last_seen
        assert k0.message == "bad 0 (replay)" and k0.details["origin"] == "replay"
        assert validation["k4"].attempts == 1 and validation["k4"].last_seen == before["k4"].last_seen
        other = [i for i in entries if i.error_kind == "persistent"]
        assert [(i.key, i.attempts) for i in other] == [("k4", 1)]
        await rt.stop(5)

    asyncio.run(scenario())


def test_an_item_skips_what_another_item_with_its_key_applied_after_it_arrived(tmp_path):
    calls: list[str] = []

    async def record(item):
        calls.append(item.key)

    p = Pipeline("k")
    p.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))
    p.add_stage(StageDef("b", record))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "k.db")
        await rt.start()
        pr = rt.pipeline("k")
        pr.pause("b")
        await rt.submit("k", "k0", 0)
        await until(lambda: len(pr.stage("b").queue) == 1)  # the original waits at b, b not yet applied
        job = pr.replay_start(m.ReplayRequest(pipeline="k", stage="a", from_offset=0, to_offset=1))
        await until(lambda: len(pr.stage("b").queue) == 2)  # the replayed copy waits behind it
        assert pr.replay_get(job.id).replayed == 1
        pr.resume("b")
        await until(lambda: pr.stage("b").processed + pr.stage("b").skipped == 2 and pr.stage("b").in_flight == 0)
        assert calls == ["k0"]  # the copy saw that the original applied b meanwhile
        assert (pr.stage("b").processed, pr.stage("b").skipped) == (1, 1)
        await rt.stop(5)

    asyncio.run(scenario())
