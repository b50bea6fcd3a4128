"""Dead letters = failure records of the result backend: list, inspect, redrive exactly once, purge."""

from __future__ import annotations

import json

import pytest

from pipelinectl.plugin_api import DLQFilter, NotFoundError, UsageError


@pytest.fixture(scope="module")
def node(workers):
    return workers.start("d1", "dq.a,dq.b")


@pytest.fixture(autouse=True)
def clean(admin, workers):
    """Each test starts without failure records or markers, and with the bug not yet fixed."""
    for key in admin.failure_keys():
        admin.redis.delete(key)
    for key in admin.redis.scan_iter(match="pipelinectl:celery:*"):
        admin.redis.delete(key)
    workers.fix.unlink(missing_ok=True)
    yield


def _items(driver, **kw):
    return list(driver.dlq_list(DLQFilter(pipeline="celery", all=not kw, **kw)))


def _fail(admin, workers, items: list[tuple[str, str, str]]) -> list[str]:
    """Send tasks that fail (item, queue, exception) and wait until the worker recorded every failure."""
    ids = [admin.send(item, queue, fail=exc) for item, queue, exc in items]
    workers.wait_for(lambda: set(ids) <= set(admin.failure_ids()), what="failure records")
    return ids


def test_failures_are_listed_with_what_a_redrive_needs(node, workers, admin, driver_for):
    driver = driver_for()
    ids = _fail(admin, workers, [("x1", "dq.a", "ValueError"), ("x2", "dq.a", "ConnectionError"),
                                 ("x3", "dq.b", "RuntimeError")])
    items = _items(driver)
    assert sorted(i.id for i in items) == sorted(ids) == sorted(admin.failure_ids())
    assert [i.first_seen for i in items] == sorted(i.first_seen for i in items)  # oldest first
    by_item = {i.payload["args"][0]: i for i in items}
    x1 = by_item["x1"]
    assert (x1.stage, x1.error_kind, x1.attempts) == ("dq.a", "validation", 1)
    assert x1.payload == {"task": "t.work", "args": ["x1"], "kwargs": {"delay": 0.0, "fail": "ValueError"}}
    assert x1.message == "t.work: ValueError: boom x1" and x1.details["worker"] == node
    assert by_item["x2"].error_kind == "transient" and by_item["x3"].error_kind == "persistent"

    shown = driver.dlq_show("celery", x1.id)
    assert "Traceback" in shown.details["traceback"] and shown.details["redrivable"]
    assert [i.id for i in _items(driver, stage="dq.b")] == [by_item["x3"].id]
    assert [i.id for i in _items(driver, error_kind="transient")] == [by_item["x2"].id]
    assert driver.dlq_count(DLQFilter(pipeline="celery", all=True)) == 3
    assert driver.dlq_count(DLQFilter(pipeline="celery", stage="dq.a")) == 2
    stage = driver.get_stage("celery", "dq.a")
    assert stage.dlq_size == 2 and stage.errors_by_kind == {"validation": 1, "transient": 1}
    with pytest.raises(NotFoundError):
        driver.dlq_show("celery", "no-such-task")


def test_redrive_resends_with_the_original_arguments_once(node, workers, admin, driver_for):
    driver = driver_for()
    [bad] = _fail(admin, workers, [("r1", "dq.a", "ValueError")])
    dry = driver.dlq_redrive(DLQFilter(pipeline="celery", all=True), dry_run=True)
    assert dry.matched == [bad] and dry.succeeded == [] and admin.failure_ids() == [bad]

    workers.fix.touch()
    result = driver.dlq_redrive(DLQFilter(pipeline="celery", ids=[bad]))
    assert result.succeeded == [bad] and result.failed == {}
    done = workers.wait_for(lambda: [r for r in workers.rows("done") if r["redrive_of"] == bad], what="redriven run")
    assert done[0]["item"] == "r1" and done[0]["queue"] == "dq.a"
    assert admin.failure_ids() == []  # the record left once the broker had the task
    assert _items(driver) == []
    # the redriven task is an ordinary task of the app: its own result record, with its own id
    meta = json.loads(admin.redis.get(f"celery-task-meta-{done[0]['task_id']}"))
    assert meta["status"] == "SUCCESS" and meta["args"] == ["r1"]
    assert driver.dlq_redrive(DLQFilter(pipeline="celery", ids=[bad])).matched == []


def test_a_crash_between_publish_and_record_removal_never_sends_twice(node, workers, admin, driver_for):
    """The publish and its marker are one transaction: a redrive that dies before the record is
    removed, run again, removes the record without sending the task a second time."""
    driver = driver_for()
    [bad] = _fail(admin, workers, [("c1", "dq.b", "ValueError")])
    workers.fix.touch()
    backend = driver.link.backend()
    real_delete = backend.delete
    backend.delete = lambda *keys: (_ for _ in ()).throw(RuntimeError("killed"))  # the process 'dies' here
    first = driver.dlq_redrive(DLQFilter(pipeline="celery", ids=[bad]))
    assert first.succeeded == [] and "record kept" in first.failed[bad]
    assert admin.failure_ids() == [bad]
    workers.wait_for(lambda: [r for r in workers.rows("done") if r["redrive_of"] == bad], what="the one send")

    backend.delete = real_delete
    again = driver.dlq_redrive(DLQFilter(pipeline="celery", ids=[bad]))
    assert again.succeeded == [bad] and admin.failure_ids() == []
    import time

    time.sleep(1.0)
    runs = [r for r in workers.rows("start") if r["redrive_of"] == bad]
    assert len(runs) == 1, runs


def test_records_without_result_extended_are_listed_but_kept_on_redrive(node, admin, driver_for):
    """A record written by an app without result_extended has no name/args: redrive refuses it."""
    from celery import Celery

    plain = Celery("plain", broker=admin.broker, backend=admin.broker, set_as_current=False)
    plain.conf.result_extended = False
    plain.backend.mark_as_failure("plain-task-1", ValueError("no args kept"))
    driver = driver_for()
    [item] = _items(driver)
    assert item.id == "plain-task-1" and item.stage == "-" and item.payload is None
    assert "result_extended" in item.details["note"]
    result = driver.dlq_redrive(DLQFilter(pipeline="celery", all=True))
    assert result.succeeded == [] and "result_extended" in result.failed["plain-task-1"]
    assert admin.failure_ids() == ["plain-task-1"]
    purged = driver.dlq_purge(DLQFilter(pipeline="celery", all=True))
    assert purged.succeeded == ["plain-task-1"] and admin.failure_ids() == []


def test_purge_dry_run_then_for_real(node, workers, admin, driver_for):
    driver = driver_for()
    ids = _fail(admin, workers, [("p1", "dq.a", "KeyError"), ("p2", "dq.b", "KeyError")])
    plan = driver.dlq_purge(DLQFilter(pipeline="celery", stage="dq.a"), dry_run=True)
    assert len(plan.matched) == 1 and sorted(admin.failure_ids()) == sorted(ids)
    done = driver.dlq_purge(DLQFilter(pipeline="celery", stage="dq.a"))
    assert done.succeeded == plan.matched and len(admin.failure_ids()) == 1
    with pytest.raises(UsageError, match="needs ids or a filter"):
        driver.dlq_purge(DLQFilter(pipeline="celery"))
    with pytest.raises(UsageError, match="unknown error kind"):
        _items(driver, error_kind="weird")


def test_list_pages_and_error_kind_overrides(node, workers, admin, driver_for):
    _fail(admin, workers, [(f"m{i}", "dq.a", "LookupError") for i in range(12)])
    driver = driver_for(error_kinds="LookupError=fatal")
    pages = driver.dlq_list(DLQFilter(pipeline="celery", all=True), page_size=5)
    first = next(pages)
    rest = list(pages)
    assert len(rest) == 11 and first.error_kind == "fatal"
    assert driver.get_stage("celery", "dq.a").errors_by_kind == {"fatal": 12}
    with pytest.raises(UsageError, match="not an error kind"):
        driver_for(error_kinds="LookupError=bad")


def test_records_that_are_not_json_are_counted_never_decoded(node, admin, driver_for):
    """A result_serializer other than json (pickle!) is not read: status says how many records it skipped."""
    admin.redis.set("celery-task-meta-pickled-1", b"\x80\x04\x95 pickled bytes")
    try:
        driver = driver_for()
        assert _items(driver) == []
        [pipeline] = driver.status()
        assert pipeline.details["results_not_json"] == 1 and "not JSON" in pipeline.details["results_note"]
    finally:
        admin.redis.delete("celery-task-meta-pickled-1")
