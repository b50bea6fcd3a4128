"""Stage knobs in the real runtime (real SQLite, real asyncio workers): rate limit, disable/enable, replay --skipped."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipelinectl import model as m
from pipelinectl.errors import ConflictError, UsageError
from pipelinectl.server import Pipeline, Runtime, StageDef, audit
from tests.server.test_runtime import until

pytestmark = pytest.mark.slow  # seconds of real throughput


def limited_pipeline() -> Pipeline:
    async def work(item):
        return None

    p = Pipeline("rl")
    p.add_stage(StageDef("work", work, parallelism=4, capacity=5000))
    return p


def test_a_rate_limit_of_20_per_second_holds_and_clears_live_and_survives_a_restart(tmp_path):
    db = tmp_path / "rl.db"

    async def first_run() -> None:
        rt = Runtime([limited_pipeline()], db)
        await rt.start()
        pr = rt.pipeline("rl")
        st = pr.stage("work")
        pr.limit("work", "20/s")
        for n in range(1200):
            await rt.submit("rl", f"k{n}", n)
        await asyncio.sleep(1.5)  # past the initial burst (a full bucket: 20 items)
        start, t0 = st.processed, time.monotonic()
        await asyncio.sleep(10.0)
        rate = (st.processed - start) / (time.monotonic() - t0)
        assert 18.0 <= rate <= 22.0, f"{rate:.2f} items/s under a 20/s limit"
        view = st.view()
        assert view.rate_limit is not None and view.rate_limit.rate == "20/s" and view.rate_limit.burst == 20
        # cleared live: the backlog drains at full speed, no restart
        version = view.version
        cleared = pr.limit("work", None)
        assert cleared.rate_limit is None and cleared.version == version + 1
        await until(lambda: st.processed == 1200, timeout=10)
        pr.limit("work", "3000/m", burst=7)
        await rt.stop(5)

    async def second_run() -> None:
        rt = Runtime([limited_pipeline()], db)
        await rt.start()
        view = rt.pipeline("rl").stage("work").view()
        assert view.rate_limit is not None and (view.rate_limit.rate, view.rate_limit.per_second,
                                                view.rate_limit.burst) == ("3000/m", 50.0, 7)
        trail, _, _ = audit.listing(rt.store, m.AuditFilter(verb="limit"), 10, None)
        assert [e.result.split(", version")[0] for e in trail] == [  # each entry says what the stage was left with
            "running, parallelism 4, limit 20/s (burst 20)", "running, parallelism 4",
            "running, parallelism 4, limit 3000/m (burst 7)"]
        await rt.stop(5)

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_bad_rates_and_dry_runs_change_nothing(tmp_path):
    async def scenario() -> None:
        rt = Runtime([limited_pipeline()], tmp_path / "bad.db")
        await rt.start()
        pr = rt.pipeline("rl")
        before = pr.stage("work").view()
        for rate in ("0/s", "-5/s", "abc", "5/d", "", "5"):
            with pytest.raises(UsageError):
                pr.limit("work", rate)
        with pytest.raises(UsageError):
            pr.limit("work", "5/s", burst=0)
        planned = pr.limit("work", "9/s", dry_run=True)
        assert planned.rate_limit.rate == "9/s" and planned.details["dry_run"] is True
        disabled = pr.disable("work", "maintenance", dry_run=True)
        assert disabled.state == "disabled" and disabled.disabled_reason == "maintenance"
        after = pr.stage("work").view()
        assert (after.rate_limit, after.state, after.version) == (before.rate_limit, before.state, before.version)
        await rt.stop(5)

    asyncio.run(scenario())


def test_disable_bypasses_enable_then_replay_skipped_processes_exactly_those_once(tmp_path):
    seen: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    got_at_c: dict[str, object] = {}

    def handler(name: str):
        async def fn(item):
            seen[name].append(item.key)
            if name == "c":
                got_at_c.setdefault(item.key, item.payload)
            return {**item.payload, name: True}
        return fn

    p = Pipeline("d")
    for name in "abc":
        p.add_stage(StageDef(name, handler(name), parallelism=2, capacity=100))

    async def scenario() -> None:
        rt = Runtime([p], tmp_path / "d.db")
        await rt.start()
        pr = rt.pipeline("d")
        b = pr.stage("b")
        for n in range(10):  # processed by all three
            await rt.submit("d", f"early{n}", {"n": n})
        await until(lambda: len(seen["c"]) == 10)
        disabled = pr.disable("b", "vendor outage")
        assert disabled.state == "disabled" and disabled.disabled_reason == "vendor outage"
        for verb in (lambda: pr.pause("b"), lambda: pr.resume("b"), lambda: pr.drain("b"),
                     lambda: pr.replay_skipped("b")):
            with pytest.raises(ConflictError):
                verb()
        for n in range(25):  # bypass b: they reach c unprocessed by b
            await rt.submit("d", f"late{n}", {"n": n})
        await until(lambda: len(seen["c"]) == 35)
        late = {f"late{n}" for n in range(25)}
        assert not late & set(seen["b"])
        assert all("b" not in got_at_c[k] and got_at_c[k]["a"] for k in late)
        assert b.view().bypassed == 25 and pr.view().stages[1].bypassed == 25
        assert b.processed == 10

        enabled = pr.enable("b")
        assert enabled.state == "running" and enabled.disabled_reason is None
        planned = pr.replay_skipped("b", dry_run=True)
        assert (planned.state, planned.total, planned.source) == ("planned", 25, "skipped")
        assert b.view().bypassed == 25  # the dry run changed nothing
        job = pr.replay_skipped("b")
        await until(lambda: pr.replay_get(job.id).state == "completed")
        await until(lambda: b.processed == 35 and not b.queue and b.in_flight == 0 and not pr.stage("c").queue)
        done = pr.replay_get(job.id)
        assert (done.total, done.replayed, done.skipped) == (25, 25, 0)
        assert sorted(k for k in seen["b"] if k.startswith("late")) == sorted(late)  # each exactly once
        assert len(seen["c"]) == 35  # c had applied them already: skipped by key, not twice
        assert b.view().bypassed == 0
        again = pr.replay_skipped("b")
        await until(lambda: pr.replay_get(again.id).state == "completed")
        assert pr.replay_get(again.id).total == 0 and len(seen["b"]) == 35
        await rt.stop(5)

    asyncio.run(scenario())


def test_bypass_records_survive_a_restart(tmp_path):
    async def work(item):
        return None

    def pipeline() -> Pipeline:
        p = Pipeline("s")
        p.add_stage(StageDef("x", work))
        p.add_stage(StageDef("y", work))
        return p

    async def first() -> None:
        rt = Runtime([pipeline()], tmp_path / "s.db")
        await rt.start()
        pr = rt.pipeline("s")
        pr.disable("x", "bad deploy")
        for n in range(5):
            await rt.submit("s", f"k{n}", n)
        await until(lambda: pr.stage("y").processed == 5)
        await rt.stop(5)

    async def second() -> None:
        rt = Runtime([pipeline()], tmp_path / "s.db")
        await rt.start()
        view = rt.pipeline("s").stage("x").view()
        assert (view.state, view.disabled_reason, view.bypassed) == ("disabled", "bad deploy", 5)
        await rt.stop(5)

    asyncio.run(first())
    asyncio.run(second())


def test_the_real_server_keeps_a_limit_and_a_disabled_stage_across_sigkill(tmp_path):
    import httpx

    from tests.support.server import start_server

    srv = start_server(tmp_path / "one")
    base = srv.url + "/v1/pipelines/orders/stages/"
    try:
        for verb, body in (("limit", {"rate": "3000/m", "burst": 9}), ("disable", {"reason": "crash drill"})):
            answer = httpx.post(base + f"charge/{verb}" if verb == "limit" else base + f"notify/{verb}", json=body,
                                headers=srv.headers("operator"), timeout=10)
            assert answer.status_code == 200, answer.text
        bad = httpx.post(base + "charge/limit", json={"rate": "0/s"}, headers=srv.headers("operator"), timeout=10)
        assert bad.status_code == 422 and bad.json()["code"] == "INVALID_ARGUMENT"
    finally:
        srv.kill()
    again = start_server(tmp_path / "two", db=srv.db)
    try:
        charge = httpx.get(base.replace(srv.url, again.url) + "charge", headers=again.headers("viewer"), timeout=10).json()
        notify = httpx.get(base.replace(srv.url, again.url) + "notify", headers=again.headers("viewer"), timeout=10).json()
        assert charge["rate_limit"] == {"kind": "RateLimit", "rate": "3000/m", "per_second": 50.0, "burst": 9}
        assert (notify["state"], notify["disabled_reason"]) == ("disabled", "crash drill")
    finally:
        again.stop()
