"""Pure mapping from Temporal JSON to the model (no server needed)."""

from __future__ import annotations

import pytest
from pipelinectl_temporal import mapping


@pytest.mark.parametrize(("status", "definition", "raw", "expected"), [
    (None, None, None, ""),
    ("failed", None, None, "ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')"),
    ("running", "OrderSaga", None, "ExecutionStatus = 'Running' AND WorkflowType = 'OrderSaga'"),
    (None, None, "WorkflowId = 'a' OR WorkflowId = 'b'", "WorkflowId = 'a' OR WorkflowId = 'b'"),
    ("compensated", None, "WorkflowId = 'a' OR WorkflowId = 'b'",
     "ExecutionStatus = 'Canceled' AND (WorkflowId = 'a' OR WorkflowId = 'b')"),
    (None, "it's", "StartTime > '2026-01-01' ORDER BY StartTime",
     "WorkflowType = 'it\\'s' AND (StartTime > '2026-01-01') ORDER BY StartTime"),
])
def test_build_query_ands_filters_with_the_raw_query(status, definition, raw, expected):
    assert mapping.build_query(status, definition, raw) == expected


@pytest.mark.parametrize(("name", "step"), [
    ("undo_charge", "charge"), ("compensate-reserve", "reserve"), ("ChargeCompensation", "charge"),
    ("RefundPayment", "payment"), ("charge", None), ("undo", None), ("release", None),
])
def test_compensation_names(name, step):
    assert mapping.compensated_step(name, mapping.DEFAULT_COMPENSATION_WORDS) == step


def test_failure_message_joins_causes_once():
    failure = {"message": "Activity task failed", "cause": {"message": "ship declined\nstack", "cause": {
        "message": "ship declined\nstack"}}}
    assert mapping.failure_message(failure) == "Activity task failed: ship declined"
    assert mapping.failure_message(None) is None


def test_status_mapping_and_event_names():
    assert mapping.temporal_status("WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW") == "ContinuedAsNew"
    assert mapping.SAGA_STATUS["Canceled"] == "compensated"
    assert mapping.event_name("EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT") == "ActivityTaskTimedOut"


def _event(event_id, kind, **attrs):
    key = mapping.event_name(kind)
    key = key[0].lower() + key[1:] + "EventAttributes"
    return {"eventId": str(event_id), "eventTime": f"2026-01-01T00:00:{event_id:02d}Z",
            "eventType": f"EVENT_TYPE_{kind}", key: attrs}


def test_timeline_joins_on_scheduled_event_and_reads_pending_activity():
    events = [
        _event(1, "WORKFLOW_EXECUTION_STARTED"),
        _event(4, "WORKFLOW_TASK_COMPLETED"),
        _event(5, "ACTIVITY_TASK_SCHEDULED", activityId="1", activityType={"name": "reserve"}),
        _event(6, "ACTIVITY_TASK_STARTED", scheduledEventId="5", attempt=1),
        _event(7, "ACTIVITY_TASK_COMPLETED", scheduledEventId="5", startedEventId="6"),
        _event(10, "WORKFLOW_TASK_COMPLETED"),
        _event(11, "ACTIVITY_TASK_SCHEDULED", activityId="2", activityType={"name": "charge"}),
        _event(12, "ACTIVITY_TASK_TIMED_OUT", scheduledEventId="11", failure={"message": "timeout"},
               retryState="RETRY_STATE_TIMEOUT"),
        _event(16, "WORKFLOW_TASK_COMPLETED"),
        _event(17, "ACTIVITY_TASK_SCHEDULED", activityId="3", activityType={"name": "undo_reserve"}),
    ]
    describe = {
        "workflowExecutionInfo": {"execution": {"workflowId": "w", "runId": "r"}, "type": {"name": "T"},
                                  "status": "WORKFLOW_EXECUTION_STATUS_RUNNING",
                                  "startTime": "2026-01-01T00:00:00Z"},
        "pendingActivities": [{"activityId": "3", "activityType": {"name": "undo_reserve"},
                               "state": "PENDING_ACTIVITY_STATE_SCHEDULED", "attempt": 5,
                               "lastFailure": {"message": "db down"},
                               "scheduledTime": "2026-01-01T00:01:00Z"}],
    }
    saga = mapping.saga_from_history(describe, events, "ns")
    assert [(s.name, s.status) for s in saga.steps] == [
        ("reserve", "completed"), ("charge", "timed_out"), ("undo_reserve", "compensating")]
    reserve, charge, undo = saga.steps
    assert reserve.compensation == "compensating" and reserve.attempts == 1
    assert charge.error == "timeout" and charge.details["retry_state"] == "TIMEOUT"
    assert undo.attempts == 5 and undo.error == "db down" and undo.details["next_retry"]
    assert saga.status == "stuck"  # 4 failed attempts >= 3
    assert saga.current_step == "undo_reserve"
    assert saga.details["reset_points"] == {"first_workflow_task": 4, "last_workflow_task": 16,
                                            "before_failed_step": 10}
    assert saga.details["pending_activities"][0]["failed_attempts"] == 4
    assert [e.seq for e in saga.events] == [1, 5, 6, 7, 11, 12, 17]  # workflow-task noise left out
