"""status, pause/resume and scale against a real redis-server and a real consumer process."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pipelinectl_redis.testing import add_entries

from pipelinectl.plugin_api import NotFoundError, SagaFilter, StaleVersionError, UnsupportedError, UsageError


def _group(admin, stream: str, group: str = "parse", start: str = "0") -> None:
    admin.xgroup_create(stream, group, id=start, mkstream=True)


def test_status_matches_what_redis_says(admin, driver_for):
    _group(admin, "st1:in")
    _group(admin, "st1:in", "audit")
    add_entries(admin, "st1:in", 10)
    admin.xreadgroup("parse", "c1", {"st1:in": ">"}, count=4)
    admin.xreadgroup("parse", "c2", {"st1:in": ">"}, count=2)
    done = admin.xreadgroup("parse", "c2", {"st1:in": ">"}, count=1)
    admin.xack("st1:in", "parse", done[0][1][0][0])
    admin.xadd("st1:out", {"x": "1"})  # a second stream of the same pipeline, no groups

    [pipeline] = driver_for("st1").status()
    assert pipeline.name == "st1" and pipeline.driver == "redis"
    assert set(pipeline.details["streams"]) == {"st1:in", "st1:out"}
    stages = {s.name: s for s in pipeline.stages}
    assert set(stages) == {"parse", "audit"}
    parse = stages["parse"]
    [engine] = [g for g in admin.xinfo_groups("st1:in") if g["name"] == b"parse"]
    consumers = {c["name"].decode(): c for c in admin.xinfo_consumers("st1:in", "parse")}
    # what pipelinectl says == what Redis says
    assert parse.in_flight == engine["pending"] == 6
    assert parse.queue_depth == engine["lag"] == 3
    assert parse.details["last_delivered_id"] == engine["last-delivered-id"].decode()
    assert parse.details["entries_read"] == engine["entries-read"] == 7
    assert parse.processed == 1
    shown = {c["name"]: c for c in parse.details["consumers"]}
    assert set(shown) == set(consumers) == {"c1", "c2"}
    assert shown["c1"]["pending"] == 4 and shown["c2"]["pending"] == 2
    assert all(abs(shown[n]["idle_ms"] - consumers[n]["idle"]) < 2000 for n in shown)
    assert parse.state == "running" and parse.details["dlq"].startswith("not set up")
    assert stages["audit"].queue_depth == 10 and stages["audit"].in_flight == 0
    assert parse.to_dict()["kind"] == "Stage"


def test_lag_is_counted_when_redis_cannot_tell(admin, driver_for):
    _group(admin, "st2:in")
    ids = add_entries(admin, "st2:in", 6)
    admin.xgroup_setid("st2:in", "parse", ids[2])  # SETID without ENTRIESREAD: Redis reports lag nil
    assert [g["lag"] for g in admin.xinfo_groups("st2:in")] == [None]
    stage = driver_for("st2").get_stage("st2", "parse")
    assert stage.queue_depth == 3 and stage.details["lag"] == 3


def test_unknown_pipeline_and_stage(admin, driver_for):
    _group(admin, "st3:in")
    driver = driver_for()
    with pytest.raises(NotFoundError, match="pipeline 'nope' not found"):
        driver.get_stage("nope", "parse")
    with pytest.raises(NotFoundError, match="stage 'nah' not found in pipeline 'st3'") as err:
        driver.pause("st3", "nah")
    assert "known stages: parse" in err.value.one_line()


def test_same_group_on_two_streams_is_named_by_stream(admin, driver_for):
    _group(admin, "st4:a")
    _group(admin, "st4:b")
    _group(admin, "st4:b", "only")
    driver = driver_for("st4")
    names = sorted(s.name for s in driver.status()[0].stages)
    assert names == ["only", "st4:a/parse", "st4:b/parse"]
    with pytest.raises(UsageError, match="several streams"):
        driver.pause("st4", "parse")
    assert driver.pause("st4", "st4:b/parse").state == "paused"
    assert driver.get_stage("st4", "st4:a/parse").state == "running"


def test_streams_setting_names_the_pipeline_streams(admin, driver_for):
    _group(admin, "orders-raw")
    _group(admin, "parsed-orders", "ship")
    driver = driver_for("orders", streams="orders-raw, parsed-orders")
    [pipeline] = driver.status()
    assert sorted(s.name for s in pipeline.stages) == ["parse", "ship"]
    assert pipeline.details["streams_from"] == "setting 'streams'"


def test_paused_stage_receives_nothing_until_resumed(admin, driver_for, workers, tmp_path):
    _group(admin, "st5:in")
    worker = workers("st5:in", "parse", tmp_path / "w.jsonl")
    driver = driver_for("st5")
    add_entries(admin, "st5:in", 1, prefix="before")
    worker.wait_for(lambda rows: worker.processed_ids() == ["before0"])

    stage = driver.pause("st5", "parse")
    assert stage.state == "paused" and stage.paused_until is None and stage.version == 1
    worker.wait_for(lambda rows: any(r["action"] == "state" and r["paused"] for r in rows))
    read_before = admin.xinfo_groups("st5:in")[0]["entries-read"]
    add_entries(admin, "st5:in", 5, prefix="p")
    time.sleep(1.5)
    # the consumer side: nothing processed; the engine side: nothing delivered to the group
    assert worker.processed_ids() == ["before0"]
    [engine] = admin.xinfo_groups("st5:in")
    assert engine["entries-read"] == read_before and engine["lag"] == 5 and engine["pending"] == 0
    status = driver.get_stage("st5", "parse")
    assert status.state == "paused" and status.queue_depth == 5
    assert admin.hget("pipelinectl:stage:{st5:in}:parse", "paused") == b"1"

    assert driver.resume("st5", "parse").state == "running"
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 6)
    assert sorted(worker.processed_ids()) == sorted(["before0"] + [f"p{i}" for i in range(5)])
    assert admin.xinfo_groups("st5:in")[0]["lag"] == 0


def test_pause_until_expires_in_the_consumer(admin, driver_for, workers, tmp_path):
    _group(admin, "st6:in")
    driver = driver_for("st6")
    until = datetime.now(UTC) + timedelta(seconds=2)
    stage = driver.pause("st6", "parse", until=until)
    assert stage.state == "paused" and abs((stage.paused_until - until).total_seconds()) < 0.01
    worker = workers("st6:in", "parse", tmp_path / "w.jsonl")
    add_entries(admin, "st6:in", 1, prefix="held")
    time.sleep(0.7)
    assert worker.processed_ids() == []
    worker.wait_for(lambda rows: worker.processed_ids() == ["held0"], timeout=10)
    assert worker.rows("processed")[0]["t"] >= until.timestamp() - 0.05
    assert driver.get_stage("st6", "parse").state == "running"


def test_pause_refuses_the_past_and_dry_run_changes_nothing(admin, driver_for):
    _group(admin, "st7:in")
    driver = driver_for("st7")
    with pytest.raises(UsageError, match="in the past"):
        driver.pause("st7", "parse", until=datetime.now(UTC) - timedelta(minutes=1))
    assert driver.pause("st7", "parse", dry_run=True).state == "paused"
    assert driver.scale("st7", "parse", 9, dry_run=True).parallelism == 9
    assert admin.exists("pipelinectl:stage:{st7:in}:parse") == 0


def test_scale_is_observed_in_real_processing(admin, driver_for, workers, tmp_path):
    _group(admin, "st8:in")
    worker = workers("st8:in", "parse", tmp_path / "w.jsonl", delay=0.2)
    driver = driver_for("st8")
    add_entries(admin, "st8:in", 4, prefix="a")
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 4)
    assert max(r["inflight"] for r in worker.rows("processed")) == 1

    stage = driver.scale("st8", "parse", 4)
    assert stage.parallelism == 4 and stage.details["parallelism_set"]
    worker.wait_for(lambda rows: any(r["action"] == "state" and r["parallelism"] == 4 for r in rows))
    add_entries(admin, "st8:in", 12, prefix="b")
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 16)
    peak = max(r["inflight"] for r in worker.rows("processed") if r["id"].startswith("b"))
    assert 2 <= peak <= 4


def test_scale_validates_and_versions_guard_lost_updates(admin, driver_for):
    _group(admin, "st9:in")
    driver = driver_for("st9")
    for bad in (0, -1, True, 2.5):
        with pytest.raises(UsageError, match="whole number >= 1"):
            driver.scale("st9", "parse", bad)
    with pytest.raises(UsageError, match="exceeds the stage's max_parallelism 64"):
        driver.scale("st9", "parse", 65)
    stage = driver.scale("st9", "parse", 3)
    with pytest.raises(StaleVersionError):
        driver.scale("st9", "parse", 6, expected_version=stage.version - 1)
    assert admin.hget("pipelinectl:stage:{st9:in}:parse", "parallelism") == b"3"
    assert driver.scale("st9", "parse", 6, expected_version=stage.version).parallelism == 6


def test_sagas_and_drain_are_unsupported(driver_for):
    driver = driver_for("x")
    with pytest.raises(UnsupportedError, match="not supported by the redis driver"):
        driver.saga_list(SagaFilter(pipeline="x"))
    with pytest.raises(UnsupportedError, match="drain") as err:
        driver.drain("x", "parse")
    assert "pause the stage" in err.value.one_line()


def test_status_without_a_pipeline_hides_dlq_streams(admin, driver_for):
    _group(admin, "st10")
    driver = driver_for("st10")
    driver.dlq_setup("st10", max_deliveries=2)
    admin.xadd("st10:dlq:parse", {"pipelinectl-dlq:original": "gone"})
    names = [p.name for p in driver_for(None).status()]
    assert "st10" in names and "st10:dlq:parse" not in names
    assert [s.name for s in driver.status()[0].stages] == ["parse"]
