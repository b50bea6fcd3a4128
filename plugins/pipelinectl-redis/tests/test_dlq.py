"""The dead-letter convention end to end: a real consumer that retries, the sweep, redrive and purge."""

from __future__ import annotations

import pytest
from pipelinectl_redis.testing import add_entries, wait

from pipelinectl.plugin_api import DLQFilter, NotFoundError, UsageError


def _dlq(driver, pipeline: str, **kw) -> list:
    return list(driver.dlq_list(DLQFilter(pipeline=pipeline, all=True, **kw)))


def _pending(admin, stream: str, group: str) -> int:
    return admin.xpending(stream, group)["pending"]


def test_setup_stores_the_convention_and_is_idempotent(admin, driver_for):
    admin.xgroup_create("dq1:in", "parse", id="0", mkstream=True)
    admin.xgroup_create("dq1:in", "audit", id="0")
    driver = driver_for("dq1")
    plan = driver.dlq_setup("dq1", ["parse"], max_deliveries=3, min_idle_ms=1000, dry_run=True)
    assert plan["stages"][0]["action"] == "created" and admin.exists("pipelinectl:stage:{dq1:in}:parse") == 0
    first = driver.dlq_setup("dq1", ["parse"], max_deliveries=3, min_idle_ms=1000)
    assert first["stages"][0]["dlq_stream"] == "dq1:in:dlq:parse"
    stored = admin.hgetall("pipelinectl:stage:{dq1:in}:parse")
    assert (stored[b"dlq_stream"], stored[b"max_deliveries"], stored[b"min_idle_ms"]) == (b"dq1:in:dlq:parse", b"3", b"1000")
    assert b"dq1:in:dlq:parse" in admin.smembers("pipelinectl:dlq-streams")
    assert driver.dlq_setup("dq1", ["parse"], max_deliveries=3, min_idle_ms=1000)["stages"][0]["action"] == "unchanged"
    assert driver.dlq_setup("dq1", ["parse"], max_deliveries=4, min_idle_ms=1000)["stages"][0]["action"] == "updated"
    with pytest.raises(UsageError, match="already the DLQ stream of stage 'parse'"):
        driver.dlq_setup("dq1", ["audit"], dlq_stream="dq1:in:dlq:parse")
    with pytest.raises(UsageError, match="a stream of pipeline 'dq1'"):
        driver.dlq_setup("dq1", ["audit"], dlq_stream="dq1:in")
    with pytest.raises(UsageError, match="one --stage"):
        driver.dlq_setup("dq1", dlq_stream="dq1:dead")
    with pytest.raises(NotFoundError, match="stage 'nope'"):
        driver.dlq_setup("dq1", ["nope"])
    assert driver.get_stage("dq1", "parse").details["dlq"] == "dq1:in:dlq:parse"
    assert driver.get_stage("dq1", "audit").details["dlq"].startswith("not set up")


def test_poison_is_dead_lettered_after_n_deliveries_and_processed_after_redrive(admin, driver_for, workers, tmp_path):
    admin.xgroup_create("dq2:in", "parse", id="0", mkstream=True)
    admin.xgroup_create("dq2:in", "audit", id="0")  # another group on the stream: redrive copies are not for it
    driver = driver_for("dq2")
    driver.dlq_setup("dq2", ["parse"], max_deliveries=3, min_idle_ms=200)
    fix = tmp_path / "fixed"
    worker = workers("dq2:in", "parse", tmp_path / "w.jsonl", fix_file=fix, extra=("--retry-idle", "150"))
    always = tmp_path / "audit-never-fails"
    always.touch()
    auditor = workers("dq2:in", "audit", tmp_path / "a.jsonl", consumer="a1", fix_file=always)
    add_entries(admin, "dq2:in", 1, prefix="good")
    [bad_id] = add_entries(admin, "dq2:in", 1, rule="fail", prefix="bad")
    admin.xadd("dq2:in", {"id": "flaky", "rule": "fail", "tenant": "acme"})
    # the worker retries each failure until it was delivered 3 times, then leaves it for the sweep
    worker.wait_for(lambda rows: len([r for r in rows if r["action"] == "fail"]) == 6, timeout=20)
    assert wait(lambda: admin.xpending_range("dq2:in", "parse", "-", "+", 10)[0]["times_delivered"] == 3
                and all(p["times_delivered"] == 3 for p in admin.xpending_range("dq2:in", "parse", "-", "+", 10)))
    assert _pending(admin, "dq2:in", "parse") == 2 and admin.xlen("dq2:in:dlq:parse") == 0

    wait(lambda: driver.sweep("dq2", dry_run=True)["would_move"] == 2)  # once idle min_idle_ms
    assert _pending(admin, "dq2:in", "parse") == 2  # the dry run moved nothing
    items = wait(lambda: (found := _dlq(driver, "dq2")) and len(found) == 2 and found)  # dlq list sweeps first
    assert _pending(admin, "dq2:in", "parse") == 0 and admin.xlen("dq2:in:dlq:parse") == 2
    by_id = {i.payload["id"]: i for i in items}
    bad, flaky = by_id["bad0"], by_id["flaky"]
    assert (bad.stage, bad.error_kind, bad.attempts, bad.key) == ("parse", "persistent", 3, bad_id)
    assert bad.details["consumer"] == "w1" and bad.details["original"] == "present"
    assert "delivered 3 times without an ack" in bad.message
    assert flaky.payload == {"id": "flaky", "rule": "fail", "tenant": "acme"}
    assert worker.processed_ids() == ["good0"]
    assert driver.dlq_show("dq2", bad.id).payload == {"id": "bad0", "rule": "fail"}
    assert driver.dlq_count(DLQFilter(pipeline="dq2", all=True)) == 2
    stage = driver.get_stage("dq2", "parse")
    assert stage.dlq_size == 2 and stage.failed == 2 and stage.errors_by_kind == {"persistent": 2}
    assert _dlq(driver, "dq2", error_kind="validation") == []

    dry = driver.dlq_redrive(DLQFilter(pipeline="dq2", all=True), dry_run=True)
    assert sorted(dry.matched) == sorted([bad.id, flaky.id]) and dry.succeeded == []
    assert admin.xlen("dq2:in:dlq:parse") == 2
    length = admin.xlen("dq2:in")

    fix.touch()
    result = driver.dlq_redrive(DLQFilter(pipeline="dq2", all=True))
    assert sorted(result.succeeded) == sorted([bad.id, flaky.id]) and result.failed == {}
    assert admin.xlen("dq2:in:dlq:parse") == 0 and admin.xlen("dq2:in") == length + 2
    worker.wait_for(lambda rows: sorted(worker.processed_ids()) == ["bad0", "flaky", "good0"])
    redriven = {r["id"]: r["redrive_of"] for r in worker.rows("processed") if r["redrive_of"]}
    assert redriven == {"bad0": bad.id, "flaky": flaky.id}
    # the other group saw the copies but, following the convention, acked them without processing
    auditor.wait_for(lambda rows: len(auditor.rows("foreign")) == 2)
    assert sorted(auditor.processed_ids()) == ["bad0", "flaky", "good0"]  # the originals, once each
    assert _dlq(driver, "dq2") == []


def test_an_entry_deleted_before_the_sweep_is_kept_as_gone(admin, driver_for):
    admin.xgroup_create("dq3:in", "parse", id="0", mkstream=True)
    driver = driver_for("dq3")
    driver.dlq_setup("dq3", max_deliveries=1, min_idle_ms=0)
    ids = add_entries(admin, "dq3:in", 2)
    admin.xreadgroup("parse", "c1", {"dq3:in": ">"}, count=2)
    admin.xdel("dq3:in", ids[0])  # trimmed/deleted while still pending
    items = {i.key: i for i in _dlq(driver, "dq3")}
    assert set(items) == set(ids)  # never silently skipped
    gone = items[ids[0]]
    assert gone.details["original"] == "gone" and gone.payload is None and "already deleted" in gone.message
    result = driver.dlq_redrive(DLQFilter(pipeline="dq3", all=True))
    assert "nothing to redrive, entry kept" in result.failed[gone.id] and result.succeeded == [items[ids[1]].id]
    assert [i.id for i in _dlq(driver, "dq3")] == [gone.id]
    plan = driver.dlq_purge(DLQFilter(pipeline="dq3", all=True), dry_run=True)
    assert plan.matched == [gone.id] and admin.xlen("dq3:in:dlq:parse") == 1
    assert driver.dlq_purge(DLQFilter(pipeline="dq3", all=True)).succeeded == [gone.id]
    assert admin.xlen("dq3:in:dlq:parse") == 0


def test_redrive_of_an_entry_already_gone_from_the_dlq_fails_and_adds_nothing(admin, driver_for):
    admin.xgroup_create("dq4:in", "parse", id="0", mkstream=True)
    driver = driver_for("dq4")
    driver.dlq_setup("dq4", max_deliveries=1, min_idle_ms=0)
    add_entries(admin, "dq4:in", 1)
    admin.xreadgroup("parse", "c1", {"dq4:in": ">"}, count=1)
    [item] = _dlq(driver, "dq4")
    admin.xdel("dq4:in:dlq:parse", item.details["dlq_id"])  # someone else removed it meanwhile
    result = driver.dlq_redrive(DLQFilter(pipeline="dq4", ids=[item.id]))
    assert result.matched == [] and result.succeeded == []
    assert admin.xlen("dq4:in") == 1  # nothing was added


def test_dlq_filters_and_errors(admin, driver_for):
    admin.xgroup_create("dq5:in", "parse", id="0", mkstream=True)
    driver = driver_for("dq5")
    with pytest.raises(NotFoundError, match="no dead-letter stream is set up") as err:
        _dlq(driver, "dq5")
    assert "pipelinectl redis dlq setup -p dq5" in err.value.one_line()
    driver.dlq_setup("dq5", max_deliveries=1, min_idle_ms=0)
    with pytest.raises(UsageError, match="needs ids or a filter"):
        driver.dlq_redrive(DLQFilter(pipeline="dq5"))
    with pytest.raises(UsageError, match="unknown error kind"):
        _dlq(driver, "dq5", error_kind="weird")
    with pytest.raises(UsageError, match="not a DLQ item id"):
        driver.dlq_show("dq5", "abc")
    with pytest.raises(NotFoundError, match="not found"):
        driver.dlq_show("dq5", "dq5:in:dlq:parse/1-0")
    add_entries(admin, "dq5:in", 25)
    admin.xreadgroup("parse", "c1", {"dq5:in": ">"}, count=25)
    pages = driver.dlq_list(DLQFilter(pipeline="dq5", all=True), page_size=10)
    first = next(pages)  # a generator, read page by page
    ids = [first.id] + [i.id for i in pages]
    assert len(ids) == 25 and len(set(ids)) == 25
    since = driver.dlq_show("dq5", ids[10]).last_seen
    assert len(list(driver.dlq_list(DLQFilter(pipeline="dq5", since=since)))) >= 15
