"""The dead-letter convention end to end: real advisories, a real worker, redrive and purge."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pipelinectl.plugin_api import DLQFilter, NotFoundError, UsageError
from pipelinectl.testing import eventually

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def _pipeline(admin, driver, stream: str, **consumer) -> None:
    admin.add_stream(stream, [f"{stream.lower()}.>"])
    admin.add_consumer(stream, "parse", filter_subject=f"{stream.lower()}.in", **consumer)
    assert driver.dlq_setup([stream])["action"] in ("created", "updated")


def _dlq(driver, stream: str, **kw) -> list:
    return list(driver.dlq_list(DLQFilter(pipeline=stream, all=True, **kw)))


def _wait(predicate, timeout: float = 15.0):
    return eventually(predicate, timeout=timeout)


def test_setup_is_idempotent_and_covers_each_stream(admin, driver_for):
    driver = driver_for("DS1")
    admin.add_stream("DS1", ["ds1.>"])
    admin.add_stream("DS1B", ["ds1b.>"])
    plan = driver.dlq_setup(["DS1"], dry_run=True)
    assert plan["dry_run"] and plan["action"] in ("created", "updated")
    first = driver.dlq_setup(["DS1"])
    assert "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.DS1.*" in first["subjects"]
    assert "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.DS1.*" in first["subjects"]
    assert driver.dlq_setup(["DS1"])["action"] == "unchanged"
    both = driver.dlq_setup(["DS1", "DS1B"])
    assert both["action"] == "updated" and "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.DS1B.*" in both["subjects"]
    with pytest.raises(NotFoundError):
        driver.dlq_setup(["NOPE"])
    with pytest.raises(UsageError, match="the dead-letter stream itself"):
        driver.dlq_setup(["PIPELINECTL_DLQ"])


def test_poison_reaches_dlq_and_is_processed_after_redrive(admin, driver_for, workers, tmp_path):
    driver = driver_for("DS2")
    _pipeline(admin, driver, "DS2", max_deliver=3, ack_wait=int(2e9))
    fix = tmp_path / "fixed"
    worker = workers("DS2", "parse", tmp_path / "w.jsonl", fix_file=fix)
    admin.publish("ds2.in", {"id": "good", "rule": "ok"})
    admin.publish("ds2.in", {"id": "flaky", "rule": "nak"}, headers={"Nats-Msg-Id": "k-flaky", "Tenant": "acme"})
    admin.publish("ds2.in", {"id": "bad", "rule": "term"})
    items = _wait(lambda: (found := _dlq(driver, "DS2")) and len(found) == 2 and found)
    by_id = {i.payload["id"]: i for i in items}  # JSON payloads are shown as objects

    flaky, bad = by_id["flaky"], by_id["bad"]
    assert (flaky.stage, flaky.error_kind, flaky.attempts, flaky.offset) == ("parse", "persistent", 3, 2)
    assert "gave up after 3 deliveries" in flaky.message
    assert flaky.headers["Tenant"] == "acme" and flaky.key == "k-flaky"
    assert (bad.error_kind, bad.attempts, bad.offset) == ("fatal", 1, 3)
    assert "terminated by the worker" in bad.message
    assert len([r for r in worker.rows("nak") if r["id"] == "flaky"]) == 3
    assert worker.processed_ids() == ["good"]

    shown = driver.dlq_show("DS2", bad.id)
    assert shown.details["original"] == "present" and shown.details["subject"] == "ds2.in"
    assert driver.dlq_count(DLQFilter(pipeline="DS2", all=True)) == 2
    assert driver.dlq_count(DLQFilter(pipeline="DS2", error_kind="fatal")) == 1
    assert [i.id for i in _dlq(driver, "DS2", error_kind="persistent")] == [flaky.id]
    assert _dlq(driver, "DS2", error_kind="validation") == []
    stage = driver.get_stage("DS2", "parse")
    assert stage.dlq_size == 2 and stage.errors_by_kind == {"persistent": 1, "fatal": 1}

    dry = driver.dlq_redrive(DLQFilter(pipeline="DS2", all=True), dry_run=True)
    assert sorted(dry.matched) == sorted([flaky.id, bad.id]) and dry.succeeded == []
    assert driver.dlq_count(DLQFilter(pipeline="DS2", all=True)) == 2

    fix.touch()
    result = driver.dlq_redrive(DLQFilter(pipeline="DS2", all=True))
    assert sorted(result.succeeded) == sorted([flaky.id, bad.id]) and result.failed == {}
    worker.wait_for(lambda rows: sorted(worker.processed_ids()) == ["bad", "flaky", "good"])
    redriven = {r["id"]: r["redrive_of"] for r in worker.rows("processed") if r["redrive_of"]}
    assert redriven == {"flaky": "DS2:2", "bad": "DS2:3"}
    assert _dlq(driver, "DS2") == []


def test_entry_stays_when_the_redrive_publish_is_not_acknowledged(admin, driver_for, workers, tmp_path):
    driver = driver_for("DS3")
    _pipeline(admin, driver, "DS3")
    workers("DS3", "parse", tmp_path / "w.jsonl")
    admin.publish("ds3.in", {"id": "x", "rule": "term"})
    [item] = _wait(lambda: _dlq(driver, "DS3"))
    broken = driver_for("DS3", timeout=1.5, request_timeout=0.5, stage_subjects={"parse": "nowhere.in"})
    result = broken.dlq_redrive(DLQFilter(pipeline="DS3", ids=[item.id]))
    assert result.succeeded == [] and "entry kept" in result.failed[item.id]
    assert [i.id for i in _dlq(driver, "DS3")] == [item.id]


def test_entries_whose_original_is_gone_are_shown_and_kept(admin, driver_for, workers, tmp_path):
    driver = driver_for("DS4")
    _pipeline(admin, driver, "DS4")
    fix = tmp_path / "fixed"
    worker = workers("DS4", "parse", tmp_path / "w.jsonl", fix_file=fix)
    admin.publish("ds4.in", {"id": "a", "rule": "term"})
    admin.publish("ds4.in", {"id": "b", "rule": "term"})
    items = _wait(lambda: (found := _dlq(driver, "DS4")) and len(found) == 2 and found)
    gone = next(i for i in items if i.offset == 1)
    assert admin.api("STREAM.MSG.DELETE.DS4", {"seq": 1})["success"]

    listed = {i.id: i for i in _dlq(driver, "DS4")}
    assert set(listed) == {i.id for i in items}  # never silently skipped
    assert listed[gone.id].details["original"] == "gone" and listed[gone.id].payload is None
    assert "is gone" in listed[gone.id].message

    fix.touch()
    result = driver.dlq_redrive(DLQFilter(pipeline="DS4", all=True))
    assert "is gone" in result.failed[gone.id] and len(result.succeeded) == 1
    worker.wait_for(lambda rows: worker.processed_ids() == ["b"])
    assert [i.id for i in _dlq(driver, "DS4")] == [gone.id]

    purge_plan = driver.dlq_purge(DLQFilter(pipeline="DS4", all=True), dry_run=True)
    assert purge_plan.matched == [gone.id] and driver.dlq_count(DLQFilter(pipeline="DS4", all=True)) == 1
    assert driver.dlq_purge(DLQFilter(pipeline="DS4", all=True)).succeeded == [gone.id]
    assert _dlq(driver, "DS4") == []


def test_dlq_filters_and_errors(admin, driver_for):
    driver = driver_for("DS5")
    admin.add_stream("DS5", ["ds5.>"])
    with pytest.raises(UsageError, match="needs ids or a filter"):
        driver.dlq_redrive(DLQFilter(pipeline="DS5"))
    with pytest.raises(UsageError, match="unknown error kind"):
        list(driver.dlq_list(DLQFilter(pipeline="DS5", error_kind="weird")))
    with pytest.raises(UsageError, match="not a DLQ entry id"):
        driver.dlq_show("DS5", "abc")
    driver.dlq_setup(["DS5"])
    admin.add_stream("DS5B", ["ds5b.>"])
    with pytest.raises(NotFoundError, match="does not record pipeline 'DS5B'") as err:
        list(driver.dlq_list(DLQFilter(pipeline="DS5B", all=True)))
    assert "dlq setup -p DS5B" in err.value.one_line()
    with pytest.raises(NotFoundError, match="does not record"):
        driver.dlq_count(DLQFilter(pipeline="DS5B", all=True))
    # status still works, and says the DLQ does not cover that stream
    admin.add_consumer("DS5B", "parse")
    assert driver.get_stage("DS5B", "parse").details["dlq"].startswith("not set up")
    other = driver_for("DS5", dlq_stream="NO_SUCH_DLQ")
    with pytest.raises(NotFoundError, match="no dead-letter stream 'NO_SUCH_DLQ'") as err:
        list(other.dlq_list(DLQFilter(pipeline="DS5", all=True)))
    assert "pipelinectl nats dlq setup" in err.value.one_line()


def test_dlq_list_pages_through_many_entries(admin, driver_for, workers, tmp_path):
    driver = driver_for("DS6")
    _pipeline(admin, driver, "DS6")
    workers("DS6", "parse", tmp_path / "w.jsonl")
    for i in range(25):
        admin.publish("ds6.in", {"id": f"p{i}", "rule": "term"})
    _wait(lambda: driver.dlq_count(DLQFilter(pipeline="DS6", all=True)) == 25)
    pages = driver.dlq_list(DLQFilter(pipeline="DS6", all=True), page_size=10)
    first = next(pages)  # a generator: the first page is read without the rest
    rest = list(pages)
    ids = [first.id] + [i.id for i in rest]
    assert len(ids) == 25 and ids == sorted(ids, key=int)
    assert admin.consumer_names("PIPELINECTL_DLQ") == []  # each page's temporary reader is gone
    since = next(i for i in rest if i.offset == 20).last_seen
    assert {i.offset for i in driver.dlq_list(DLQFilter(pipeline="DS6", since=since))} >= {20, 21, 22, 23, 24, 25}


def test_server_restart_in_the_middle_of_a_redrive_loses_no_message(fresh_server, driver_for, workers, tmp_path):
    """SIGKILL the server after some entries are redriven; the same redrive call carries on after restart."""
    from pipelinectl.plugin_api import Connection  # noqa: F401  (the driver below is the real one)

    server = fresh_server
    admin_url = server.url
    driver = driver_for("DSR", url=admin_url, timeout=30.0, request_timeout=1.0)
    setup = driver_for("DSR", url=admin_url)
    setup.link.run(setup.link.api("STREAM.CREATE.DSR", {"name": "DSR", "subjects": ["dsr.>"], "storage": "file"}))
    setup.link.run(setup.link.api("CONSUMER.CREATE.DSR.parse", {"stream_name": "DSR", "config": {
        "durable_name": "parse", "ack_policy": "explicit", "filter_subject": "dsr.in"}}))
    setup.dlq_setup(["DSR"])
    fix = tmp_path / "fixed"
    worker = workers("DSR", "parse", tmp_path / "w.jsonl", url=admin_url, fix_file=fix)
    n = 120
    for i in range(n):
        setup.link.run(setup.link.publish("dsr.in", json.dumps({"id": f"p{i}", "rule": "term"}).encode(), {}))
    _wait(lambda: driver.dlq_count(DLQFilter(pipeline="DSR", all=True)) == n)
    setup.close()
    fix.touch()

    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(1.0)
        server.start()
        restarted.set()

    def progress(what: str, done: int, matched: int) -> None:
        if done == 50 and server.proc.poll() is None:  # the end of a page: the next page read meets the outage
            server.kill()
            threading.Thread(target=restart_later, daemon=True).start()

    traced: list[str] = []
    driver.progress = progress
    driver.bulk_page = 50
    driver.link.connection.trace = traced.append
    result = driver.dlq_redrive(DLQFilter(pipeline="DSR", all=True))
    assert restarted.is_set()
    assert any("retrying" in line for line in traced)  # the call really waited out the restart
    assert any("CONSUMER.CREATE.PIPELINECTL_DLQ" in line for line in traced[traced.index("nats: disconnected"):])
    assert result.failed == {} and len(result.succeeded) == n
    worker.wait_for(lambda rows: len(set(worker.processed_ids())) == n, timeout=30)
    time.sleep(0.5)
    # every poison message was processed after the redrive ...
    assert sorted(set(worker.processed_ids())) == sorted(f"p{i}" for i in range(n))
    # ... and republished exactly once: one stream copy per id (a worker may see a copy twice
    # when its ack died with the server; that is JetStream's at-least-once, not a second publish)
    copies: dict[str, set[int]] = {}
    for row in worker.rows("processed"):
        copies.setdefault(row["id"], set()).add(row["seq"])
    assert all(len(seqs) == 1 for seqs in copies.values()), copies
    check = driver_for("DSR", url=admin_url)
    state = check.link.run(check.link.api("STREAM.INFO.DSR"))["state"]
    assert state["last_seq"] == 2 * n  # n originals + n redriven copies, no duplicate publish
    assert driver.dlq_count(DLQFilter(pipeline="DSR", all=True)) == 0


def test_status_without_a_pipeline_lists_streams_but_not_the_dlq(admin, driver_for):
    driver = driver_for(None)
    admin.add_stream("DS7", ["ds7.>"])
    driver.dlq_setup(["DS7"])
    names = [p.name for p in driver.status()]
    assert "DS7" in names and "PIPELINECTL_DLQ" not in names
