"""The Temporal driver against a real dev server and a real saga worker.

Every claim is checked against what really happened: the server's own view
(describe) and the worker's side effects (which activities ran, in what order).
"""

from __future__ import annotations

import time

import pytest
from pipelinectl_temporal.driver import TemporalControlPlane

from pipelinectl.plugin_api import (
    Capability,
    ConflictError,
    Connection,
    NotFoundError,
    SagaFilter,
    UnsupportedError,
    UsageError,
)
from pipelinectl.testing import eventually

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

NS = "sagas"


@pytest.fixture
def plane(temporal, worker):
    driver = TemporalControlPlane(Connection(context="t", driver="temporal", url=temporal.http_url, namespace=NS,
                                             settings={"task_queues": "orders"}))
    try:
        yield driver
    finally:
        driver.close()


def wait_until(check, timeout: float = 30, what: str = "condition"):
    return eventually(check, timeout=timeout, what=what)


def by_prefix(uid: str, **kw) -> SagaFilter:
    return SagaFilter(pipeline=NS, query=f"WorkflowId STARTS_WITH '{uid}'", **kw)


def test_list_filters_paginates_and_counts(temporal, worker, plane, uid):
    temporal.start_saga(NS, f"{uid}-ok", {"id": f"{uid}-ok"})
    temporal.start_saga(NS, f"{uid}-fail", {"id": f"{uid}-fail", "fail_at": "charge"})
    temporal.start_saga(NS, f"{uid}-stuck", {"id": f"{uid}-stuck", "stuck_at": "ship"})
    temporal.wait_status(NS, f"{uid}-ok", {"COMPLETED"})
    temporal.wait_status(NS, f"{uid}-fail", {"FAILED"})
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}' AND ExecutionStatus != 'Running'", 2)

    everything = {s.id: s for s in plane.saga_list(by_prefix(uid), page_size=1)}  # 3 pages of 1
    assert set(everything) == {f"{uid}-ok", f"{uid}-fail", f"{uid}-stuck"}
    assert everything[f"{uid}-ok"].status == "completed"
    assert everything[f"{uid}-fail"].status == "failed"
    assert everything[f"{uid}-stuck"].details["temporal_status"] == "Running"
    assert all(s.definition == "OrderSaga" and s.pipeline == NS for s in everything.values())

    failed = [s.id for s in plane.saga_list(by_prefix(uid, status="failed"))]
    assert failed == [f"{uid}-fail"]
    assert [s.id for s in plane.saga_list(by_prefix(uid, definition="NoSuchWorkflow"))] == []
    assert plane.saga_count(by_prefix(uid)) == 3
    assert plane.saga_count(by_prefix(uid, status="completed")) == 1

    stuck = wait_until(lambda: list(plane.saga_list(by_prefix(uid, status="stuck"))),
                       what="the stuck saga to be listed as stuck")
    assert [s.id for s in stuck] == [f"{uid}-stuck"]
    assert stuck[0].status == "stuck" and stuck[0].steps == [] and stuck[0].events == []  # a list view
    plane.saga_force_fail(NS, f"{uid}-stuck", "test cleanup", terminate=True)


def test_inspect_timeline_matches_what_ran(temporal, worker, plane, uid):
    saga_id = f"{uid}-fail"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "fail_at": "ship"})
    temporal.wait_status(NS, saga_id, {"FAILED"})

    saga = plane.saga_show(NS, saga_id)
    ran = worker.effects_of(saga_id)
    assert ran == ["reserve", "charge", "ship-error", "undo_charge", "undo_reserve"]
    # The timeline is the same activities, in the same order, with the right outcome.
    assert [s.name for s in saga.steps] == ["reserve", "charge", "ship", "undo_charge", "undo_reserve"]
    assert [s.status for s in saga.steps] == ["completed", "completed", "failed", "compensated", "compensated"]
    steps = {s.name: s for s in saga.steps}
    assert steps["reserve"].compensation == "compensated"
    assert steps["charge"].compensation == "compensated"
    assert steps["ship"].compensation is None
    assert "ship declined" in steps["ship"].error
    assert steps["undo_charge"].details["compensates"] == "charge"
    assert all(s.started_at and s.finished_at and s.finished_at >= s.started_at for s in saga.steps)
    assert saga.status == "failed"
    assert saga.completed_steps == ["reserve", "charge"]
    assert "ship declined" in saga.last_error
    assert saga.closed_at is not None and saga.details["task_queue"] == "orders"
    types = [e.type for e in saga.events]
    assert types[0] == "WorkflowExecutionStarted" and types[-1] == "WorkflowExecutionFailed"
    # Each scheduled activity is joined to its completion through its scheduled event.
    failed_event = next(e for e in saga.events if e.type == "ActivityTaskFailed")
    assert failed_event.step == "ship" and "ship declined" in failed_event.message
    assert saga.details["reset_points"]["before_failed_step"] < saga.details["reset_points"]["last_workflow_task"]


@pytest.mark.parametrize("summaries", [False, True])
def test_one_generic_activity_shows_each_step_by_name(temporal, worker, plane, uid, summaries):
    """A workflow whose every step is the same activity type: the timeline still tells them apart."""
    saga_id = f"{uid}-generic"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "fail_at": "ship", "summaries": summaries},
                        workflow_type="GenericSaga")
    temporal.wait_status(NS, saga_id, {"FAILED"})
    assert worker.effects_of(saga_id) == ["reserve", "charge", "ship-error", "compensate_charge", "compensate_reserve"]

    saga = plane.saga_show(NS, saga_id)
    if summaries:
        names = ["reserve order", "charge order", "ship order", "undo charge order", "undo reserve order"]
    else:
        names = ["step reserve", "step charge", "step ship", "compensate charge", "compensate reserve"]
    assert [s.name for s in saga.steps] == names
    assert [s.status for s in saga.steps] == ["completed", "completed", "failed", "compensated", "compensated"]
    assert [s.compensation for s in saga.steps[:3]] == ["compensated", "compensated", None]
    assert saga.steps[3].details["compensates"] == names[1] and saga.steps[4].details["compensates"] == names[0]
    assert saga.completed_steps == names[:2]


def test_list_shows_the_current_step_and_stuck_state_of_running_sagas(temporal, worker, plane, uid):
    stuck_id, done_id = f"{uid}-stuck", f"{uid}-done"
    temporal.start_saga(NS, stuck_id, {"id": stuck_id, "stuck_at": "charge"})
    temporal.start_saga(NS, done_id, {"id": done_id})
    temporal.wait_status(NS, done_id, {"COMPLETED"})
    wait_until(lambda: plane.saga_show(NS, stuck_id).status == "stuck", what="the saga to be stuck")
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}'", 2)
    listed = {s.id: s for s in plane.saga_list(by_prefix(uid))}
    assert (listed[stuck_id].status, listed[stuck_id].current_step) == ("stuck", "charge")
    assert listed[done_id].status == "completed" and listed[done_id].current_step is None
    assert listed[stuck_id].completed_steps is None  # the list view cannot tell; inspect can
    plane.saga_force_fail(NS, stuck_id, "test cleanup", terminate=True)


def test_force_fail_reports_the_state_after_the_cancel(temporal, worker, plane, uid):
    saga_id = f"{uid}-stuck"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "ship"})
    wait_until(lambda: plane.saga_show(NS, saga_id).status == "stuck", what="the saga to be stuck")
    planned = plane.saga_force_fail(NS, saga_id, "carrier outage", dry_run=True)
    assert planned.status == "compensating" and planned.details["dry_run"] == "cancel"
    assert temporal.status_of(NS, saga_id) == "RUNNING"  # the dry run changed nothing
    after = plane.saga_force_fail(NS, saga_id, "carrier outage")
    assert after.status in ("compensating", "compensated"), after.status  # never "stuck" after a cancel
    assert after.details["cancel_requested"] is True
    temporal.wait_status(NS, saga_id, {"CANCELED"})
    assert plane.saga_show(NS, saga_id).status == "compensated"


def test_stuck_saga_shows_its_pending_activity(temporal, worker, plane, uid):
    saga_id = f"{uid}-stuck"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge"})
    saga = wait_until(lambda: (s := plane.saga_show(NS, saga_id)).status == "stuck" and s,
                      what="the saga to be stuck")
    pending = saga.details["pending_activities"]
    assert len(pending) == 1 and pending[0]["type"] == "charge"
    assert pending[0]["attempt"] >= 3
    assert "charge backend unavailable" in pending[0]["last_failure"]
    assert pending[0]["next_retry"]
    assert saga.current_step == "charge"
    assert worker.effects_of(saga_id).count("charge-error") >= 3
    plane.saga_force_fail(NS, saga_id, "test cleanup", terminate=True)


def test_force_fail_cancels_and_the_saga_compensates(temporal, worker, plane, uid):
    saga_id = f"{uid}-hold"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    wait_until(lambda: any(p.get("activityType", {}).get("name") == "ship"
                           for p in temporal.describe(NS, saga_id).get("pendingActivities", [])),
               what="ship to be in flight")

    dry = plane.saga_force_fail(NS, saga_id, "dry", dry_run=True)
    assert dry.details["dry_run"] == "cancel"
    assert dry.details["would"] == "cancel the workflow: its compensations run (it ends compensated)"
    assert temporal.status_of(NS, saga_id) == "RUNNING"

    plane.saga_force_fail(NS, saga_id, "customer cancelled the order")
    temporal.wait_status(NS, saga_id, {"CANCELED"})
    assert worker.effects_of(saga_id) == ["reserve", "charge", "undo_charge", "undo_reserve"]
    saga = plane.saga_show(NS, saga_id)
    assert saga.status == "compensated"
    cancel = next(e for e in saga.events if e.type == "WorkflowExecutionCancelRequested")
    assert cancel.message == "customer cancelled the order"
    assert {s.name: s.compensation for s in saga.steps}["charge"] == "compensated"


def test_terminate_ends_at_once_without_compensation(temporal, worker, plane, uid):
    saga_id = f"{uid}-term"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    wait_until(lambda: "charge" in worker.effects_of(saga_id), what="charge to run")
    saga = plane.saga_force_fail(NS, saga_id, "poison order", terminate=True)
    assert temporal.status_of(NS, saga_id) == "TERMINATED"
    assert saga.status == "failed" and "poison order" in saga.last_error
    time.sleep(1)
    assert not [op for op in worker.effects_of(saga_id) if op.startswith("undo")]

    with pytest.raises(ConflictError):
        plane.saga_force_fail(NS, saga_id, "again", terminate=True)


def test_retry_resets_a_stuck_activity_once_fixed(temporal, worker, plane, uid):
    saga_id = f"{uid}-retry"
    # 30 s between attempts: only the operator's retry can make it run again within the test.
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge", "backoff": 30})
    wait_until(lambda: "charge-error" in worker.effects_of(saga_id), what="charge to fail")
    wait_until(lambda: plane.saga_show(NS, saga_id).details["pending_activities"][0]["last_failure"],
               what="the failure to be recorded")

    plan = plane.saga_retry(NS, saga_id, dry_run=True)
    assert plan.details["dry_run"] == {"retry_activities": ["2"]}
    assert plan.details["would"] == "retry activity 2 now"
    worker.fix(saga_id)
    plane.saga_retry(NS, saga_id, "backend fixed")
    temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)
    records = worker.records_of(saga_id)
    assert [r["op"] for r in records] == ["reserve", "charge-error", "charge", "ship"]
    assert records[2]["attempt"] == 1  # reset to attempt 1 and run now, not the server's attempt 2

    with pytest.raises(ConflictError, match="completed"):
        plane.saga_retry(NS, saga_id)  # nothing to retry on a completed saga


def test_pause_and_resume_a_workflows_activities(temporal, worker, plane, uid):
    saga_id = f"{uid}-pause"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "reserve"})
    wait_until(lambda: temporal.describe(NS, saga_id).get("pendingActivities"), what="a pending activity")

    stage = plane.pause(NS, saga_id)
    assert stage.state == "paused" and stage.details["changed"] == ["1"]
    assert temporal.describe(NS, saga_id)["pendingActivities"][0]["paused"] is True
    assert plane.saga_show(NS, saga_id).status == "stuck"

    worker.fix(saga_id)
    stage = plane.resume(NS, saga_id)
    assert stage.details["changed"] == ["1"]
    temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)
    assert worker.effects_of(saga_id)[-3:] == ["reserve", "charge", "ship"]


def test_pause_scope_workflow_pauses_the_whole_workflow(temporal, worker, uid):
    saga_id = f"{uid}-wpause"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge", "backoff": 2})
    wait_until(lambda: "charge-error" in worker.effects_of(saga_id), what="charge to fail")
    plane = TemporalControlPlane(Connection(context="t", driver="temporal", url=temporal.http_url, namespace=NS,
                                            settings={"pause_scope": "workflow"}))
    try:
        stage = plane.pause(NS, saga_id)
        assert stage.state == "paused" and temporal.status_of(NS, saga_id) == "PAUSED"
        assert plane.saga_show(NS, saga_id).status == "stuck"
        temporal.wait_visible(NS, f"WorkflowId = '{saga_id}' AND ExecutionStatus = 'Paused'", 1)
        assert [s.id for s in plane.saga_list(by_prefix(saga_id, status="stuck"))] == [saga_id]
        worker.fix(saga_id)
        stage = plane.resume(NS, saga_id)
        assert stage.state == "running"
        temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)
    finally:
        plane.close()


def test_retry_resets_a_failed_saga_to_before_its_failed_step(temporal, worker, plane, uid):
    saga_id = f"{uid}-reset"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "fail_at": "ship"})
    temporal.wait_status(NS, saga_id, {"FAILED"})
    before = plane.saga_show(NS, saga_id)

    worker.fix(saga_id)
    plane.saga_retry(NS, saga_id, "ship fixed")  # a failed saga resets to just before its failed step
    temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)
    after = plane.saga_show(NS, saga_id)
    assert after.details["run_id"] != before.details["run_id"]
    # reserve and charge are kept from history (not rerun); ship runs again and succeeds.
    assert worker.effects_of(saga_id)[-1] == "ship"
    assert worker.effects_of(saga_id).count("reserve") == 1
    assert after.status == "completed"

    # From the first workflow task: the whole saga runs again, on purpose.
    again = plane.saga_retry(NS, saga_id, "rerun all", options={"reset_type": "first"})
    assert again.details["reset_to_event"] == after.details["reset_points"]["first_workflow_task"]
    temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)
    wait_until(lambda: worker.effects_of(saga_id).count("reserve") == 2, what="reserve to run again")


def test_batch_by_query_cancels_every_match_and_reports_progress(temporal, worker, plane, uid):
    ids = [f"{uid}-b{i}" for i in range(3)]
    for saga_id in ids:
        temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    temporal.start_saga(NS, f"{uid}-other", {"id": f"{uid}-other", "hold": 60})
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}-b' AND ExecutionStatus = 'Running'", 3)
    selection = SagaFilter(pipeline=NS, status="running", query=f"WorkflowId STARTS_WITH '{uid}-b'")

    plan = plane.saga_batch("force-fail", selection, "drill", dry_run=True)
    assert plan.state == "planned" and plan.total == 3
    assert all(temporal.status_of(NS, i) == "RUNNING" for i in ids)

    job = plane.saga_batch("force-fail", selection, "region evacuation")
    assert job.id and "WorkflowId STARTS_WITH" in job.query
    job = wait_until(lambda: (j := plane.saga_batch_show(NS, job.id)).state == "completed" and j,
                     what="the batch to finish")
    assert (job.action, job.total, job.completed, job.failed) == ("force-fail", 3, 3, 0)
    for saga_id in ids:
        temporal.wait_status(NS, saga_id, {"CANCELED"})
        assert worker.effects_of(saga_id)[-2:] == ["undo_charge", "undo_reserve"]
    assert temporal.status_of(NS, f"{uid}-other") == "RUNNING"

    job = plane.saga_batch("terminate", SagaFilter(pipeline=NS, query=f"WorkflowId = '{uid}-other'"), "cleanup")
    job = wait_until(lambda: (j := plane.saga_batch_show(NS, job.id)).state == "completed" and j,
                     what="terminate batch")
    assert job.action == "terminate"
    assert temporal.status_of(NS, f"{uid}-other") == "TERMINATED"


def test_batch_retry_resets_the_activities_of_stuck_sagas(temporal, worker, plane, uid):
    ids = [f"{uid}-r{i}" for i in range(2)]
    for saga_id in ids:
        temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge", "backoff": 30})
    temporal.start_saga(NS, f"{uid}-r-done", {"id": f"{uid}-r-done"})
    temporal.wait_status(NS, f"{uid}-r-done", {"COMPLETED"})
    for saga_id in ids:
        wait_until(lambda s=saga_id: "charge-error" in worker.effects_of(s), what="charge to fail")
        wait_until(lambda s=saga_id: temporal.describe(NS, s)["pendingActivities"][0].get("lastFailure"),
                   what="the failure recorded")
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}-r' AND ExecutionStatus != 'Running'", 1)

    with pytest.raises(UsageError, match="2 running and 1 closed"):
        plane.saga_batch("retry", SagaFilter(pipeline=NS, query=f"WorkflowId STARTS_WITH '{uid}-r'"), "mixed")

    for saga_id in ids:
        worker.fix(saga_id)
    selection = SagaFilter(pipeline=NS, status="running", query=f"WorkflowId STARTS_WITH '{uid}-r'")
    job = plane.saga_batch("retry", selection, "payments back")
    assert job.action == "retry"
    for saga_id in ids:
        temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=20)  # long before the 30 s backoff
        assert {"op": "charge", "order": saga_id, "attempt": 1} in worker.records_of(saga_id)
    done = wait_until(lambda: (j := plane.saga_batch_show(NS, job.id)).state == "completed" and j,
                      what="the batch to finish")
    assert (done.action, done.total, done.failed) == ("retry", 2, 0)


def test_status_counts_queues_and_oldest_running(temporal, worker, plane, uid):
    saga_id = f"{uid}-old"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    temporal.wait_visible(NS, f"WorkflowId = '{saga_id}' AND ExecutionStatus = 'Running'", 1)
    (pipeline,) = plane.status()
    assert pipeline.name == NS and pipeline.driver == "temporal"
    running = plane.saga_count(SagaFilter(pipeline=NS, status="running"))
    assert pipeline.sagas_by_status["running"] == running >= 1
    assert pipeline.sagas_in_flight >= running
    assert pipeline.details["server_version"] == plane.http.system_info()["serverVersion"]
    oldest = pipeline.details["oldest_running"]
    assert pipeline.details["oldest_running_complete"] is True
    assert [o["started_at"] for o in oldest] == sorted(o["started_at"] for o in oldest)
    assert len(oldest) == min(running, 5)
    if running <= 5:
        assert saga_id in [o["id"] for o in oldest]
    (queue,) = pipeline.stages
    assert queue.name == "orders" and queue.in_flight >= 1
    assert queue.details["workers"], "the running worker polls this queue"
    plane.saga_force_fail(NS, saga_id, "cleanup", terminate=True)


def test_errors_are_the_documented_kinds(temporal, plane):
    with pytest.raises(NotFoundError, match="not found"):
        plane.saga_show(NS, "no-such-saga")
    with pytest.raises(NotFoundError):
        plane.saga_show("no-such-namespace", "x")
    with pytest.raises(UnsupportedError) as err:
        plane.saga_force_complete(NS, "x", "why")
    assert err.value.exit_code == 7 and "temporal" in err.value.message
    assert Capability.SAGA_FORCE_COMPLETE not in plane.capabilities
    with pytest.raises(UnsupportedError, match="'replay' is not supported by the temporal driver"):
        plane.replay(None)


def test_advance_records_the_current_step_done_and_the_saga_goes_on(temporal, worker, plane, uid):
    saga_id = f"{uid}-stuck"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge"})
    wait_until(lambda: plane.saga_show(NS, saga_id).status == "stuck", what="the saga to be stuck")

    with pytest.raises(ConflictError, match="at step 'charge', not 'ship'"):
        plane.saga_advance(NS, saga_id, "ship", "wrong step")
    planned = plane.saga_advance(NS, saga_id, "charge", "charged by hand", result={"receipt": "r-1"}, dry_run=True)
    assert planned.details["dry_run"] == {"advance": "charge", "result": {"receipt": "r-1"}}
    assert temporal.status_of(NS, saga_id) == "RUNNING" and "ship" not in worker.effects_of(saga_id)

    plane.saga_advance(NS, saga_id, "charge", "charged by hand", result={"receipt": "r-1"})
    temporal.wait_status(NS, saga_id, {"COMPLETED"})
    ran = worker.effects_of(saga_id)
    assert ran[0] == "reserve" and ran[-1] == "ship" and "charge" not in ran  # charge never succeeded: done by hand
    saga = plane.saga_show(NS, saga_id)
    steps = {s.name: s for s in saga.steps}
    assert [s.name for s in saga.steps] == ["reserve", "charge", "ship"]
    assert steps["charge"].status == "completed"
    assert steps["charge"].details["advanced"]["result"] == {"receipt": "r-1"}
    assert steps["charge"].details["advanced"]["reason"] == "charged by hand"
    assert saga.status == "completed" and saga.completed_steps == ["reserve", "charge", "ship"]


def test_advance_on_a_workflow_without_the_convention_is_unsupported(temporal, worker, plane, uid):
    saga_id = f"{uid}-generic"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "charge"}, workflow_type="GenericSaga")
    wait_until(lambda: plane.saga_show(NS, saga_id).current_step == "step charge", what="the charge step")
    with pytest.raises(UnsupportedError, match="'saga advance' is not supported by the temporal driver: "
                                               "workflow type 'GenericSaga' does not implement"):
        plane.saga_advance(NS, saga_id, "step charge", "by hand")
    assert temporal.status_of(NS, saga_id) == "RUNNING"
    plane.saga_force_fail(NS, saga_id, "test cleanup", terminate=True)


def test_cancel_compensates_completed_steps_in_reverse_and_ends_compensated(temporal, worker, plane, uid):
    saga_id = f"{uid}-stuck"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "ship"})
    wait_until(lambda: plane.saga_show(NS, saga_id).status == "stuck", what="the saga to be stuck")
    plane.saga_cancel(NS, saga_id, "order withdrawn")
    temporal.wait_status(NS, saga_id, {"CANCELED"})
    assert worker.effects_of(saga_id)[-2:] == ["undo_charge", "undo_reserve"]
    assert plane.saga_show(NS, saga_id).status == "compensated"


def test_limit_sets_shows_and_clears_a_task_queue_rate_limit(temporal, uid):
    from pipelinectl.plugin_api import rate_limit

    queue = f"{uid}-limited"
    driver = TemporalControlPlane(Connection(context="t", driver="temporal", url=temporal.http_url, namespace=NS,
                                             settings={"task_queues": queue}))
    try:
        assert Capability.LIMIT in driver.capabilities
        planned = driver.limit(NS, queue, rate_limit("20/s"), dry_run=True)
        assert planned.rate_limit.rate == "20/s" and planned.details["dry_run"] is True
        assert driver.status()[0].stages[0].rate_limit is None, "a dry run changes nothing"
        done = driver.limit(NS, queue, rate_limit("3000/m"))
        assert (done.rate_limit.rate, done.rate_limit.per_second) == ("50/s", 50.0)
        (stage,) = driver.status()[0].stages  # read back from the server's task queue config
        assert stage.name == queue and stage.rate_limit.per_second == 50.0
        config = driver.http.request("GET", f"/api/v1/namespaces/{NS}/task-queues/{queue}",
                                     params={"taskQueueType": "TASK_QUEUE_TYPE_ACTIVITY", "reportConfig": "true"})
        assert config["config"]["queueRateLimit"]["rateLimit"]["requestsPerSecond"] == 50
        with pytest.raises(UnsupportedError, match="no burst"):
            driver.limit(NS, queue, rate_limit("5/s", 20))
        assert driver.limit(NS, queue, None).rate_limit is None
        assert driver.status()[0].stages[0].rate_limit is None
        for verb in (lambda: driver.disable(NS, queue, "why"), lambda: driver.replay_skipped(NS, queue)):
            with pytest.raises(UnsupportedError) as caught:
                verb()
            assert "\n" not in caught.value.one_line() and "temporal driver" in caught.value.message
    finally:
        driver.close()
