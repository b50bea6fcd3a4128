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
    ("RefundPayment", "payment"), ("charge", None), ("release", None), ("refund", None),
    # a bare generic word is a compensation whose step is not in its name ("" = decided by position/input)
    ("compensate", ""), ("undo", ""), ("Rollback", ""),
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


def _payload(value):
    import base64
    import json

    return {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(json.dumps(value).encode()).decode()}


def _scheduled(event_id, activity_type, activity_id, *args, summary=None):
    event = _event(event_id, "ACTIVITY_TASK_SCHEDULED", activityId=activity_id, activityType={"name": activity_type},
                   input={"payloads": [_payload(a) for a in args]})
    if summary:
        event["userMetadata"] = {"summary": _payload(summary)}
    return event


def _done(event_id, scheduled):
    return _event(event_id, "ACTIVITY_TASK_COMPLETED", scheduledEventId=str(scheduled))


CLOSED = {"workflowExecutionInfo": {"execution": {"workflowId": "w", "runId": "r"}, "type": {"name": "T"},
                                    "status": "WORKFLOW_EXECUTION_STATUS_FAILED",
                                    "startTime": "2026-01-01T00:00:00Z"}}


def test_one_generic_activity_is_told_apart_by_its_input():
    events = [
        _scheduled(5, "step", "1", "reserve", {"id": "o1"}), _done(6, 5),
        _scheduled(7, "step", "2", "charge", {"id": "o1"}), _done(8, 7),
        _scheduled(9, "step", "3", "ship", {"id": "o1"}),
        _event(10, "ACTIVITY_TASK_FAILED", scheduledEventId="9", failure={"message": "declined"}),
        _scheduled(11, "compensate", "4", "charge", {"id": "o1"}), _done(12, 11),
        _scheduled(13, "compensate", "5", "reserve", {"id": "o1"}), _done(14, 13),
    ]
    saga = mapping.saga_from_history(CLOSED, events, "ns")
    assert [(s.name, s.status) for s in saga.steps] == [
        ("step reserve", "completed"), ("step charge", "completed"), ("step ship", "failed"),
        ("compensate charge", "compensated"), ("compensate reserve", "compensated")]
    assert [s.compensation for s in saga.steps[:3]] == ["compensated", "compensated", None]
    assert saga.steps[3].details["compensates"] == "step charge"
    assert all(s.details["activity_type"] in ("step", "compensate") for s in saga.steps)
    assert saga.completed_steps == ["step reserve", "step charge"]


def test_a_bare_compensate_activity_compensates_the_latest_uncompensated_step():
    events = [
        _scheduled(5, "reserve", "1", {"id": "o1"}), _done(6, 5),
        _scheduled(7, "charge", "2", {"id": "o1"}), _done(8, 7),
        _scheduled(9, "compensate", "3", {"id": "o1"}), _done(10, 9),
        _scheduled(11, "compensate", "4", {"id": "o1"}), _done(12, 11),
    ]
    saga = mapping.saga_from_history(CLOSED, events, "ns")
    statuses = [(s.name, s.status, s.compensation) for s in saga.steps]
    assert statuses == [("reserve", "completed", "compensated"), ("charge", "completed", "compensated"),
                        ("compensate #1", "compensated", None), ("compensate #2", "compensated", None)]
    assert saga.steps[2].details["compensates"] == "charge" and saga.steps[3].details["compensates"] == "reserve"
    assert saga.completed_steps == ["reserve", "charge"]


def test_steps_are_named_by_summary_then_activity_id():
    events = [
        _scheduled(5, "step", "1", "x", summary="reserve stock"), _done(6, 5),
        _scheduled(7, "step", "charge-card", "y"), _done(8, 7),
    ]
    saga = mapping.saga_from_history(CLOSED, events, "ns")
    assert [s.name for s in saga.steps] == ["reserve stock", "charge-card"]


def test_the_http_apis_payload_shorthand_is_read_too():
    """Temporal's HTTP API writes JSON payloads as plain values: `"input": ["charge", {...}]`, `"summary": "..."`."""
    first = _event(5, "ACTIVITY_TASK_SCHEDULED", activityId="1", activityType={"name": "step"},
                   input=["reserve", {"id": "o1"}])
    first["userMetadata"] = {"summary": "reserve stock"}
    second = _event(7, "ACTIVITY_TASK_SCHEDULED", activityId="2", activityType={"name": "step"},
                    input=["charge", {"id": "o1"}])
    saga = mapping.saga_from_history(CLOSED, [first, _done(6, 5), second, _done(8, 7)], "ns")
    assert [s.name for s in saga.steps] == ["reserve stock", "step charge"]


def test_a_list_view_does_not_claim_zero_completed_steps():
    saga = mapping.saga_from_info(CLOSED["workflowExecutionInfo"], "ns")
    assert saga.completed_steps is None  # unknown without the history: shown as '-', not 0


def test_a_cancel_request_makes_a_running_saga_compensating_even_if_an_activity_was_stuck():
    describe = {
        "workflowExecutionInfo": {"execution": {"workflowId": "w", "runId": "r"}, "type": {"name": "T"},
                                  "status": "WORKFLOW_EXECUTION_STATUS_RUNNING",
                                  "startTime": "2026-01-01T00:00:00Z"},
        "pendingActivities": [{"activityId": "1", "activityType": {"name": "charge"}, "attempt": 9,
                               "lastFailure": {"message": "down"}}],
    }
    events = [_scheduled(5, "charge", "1", {"id": "o1"}),
              _event(6, "WORKFLOW_EXECUTION_CANCEL_REQUESTED", reason="operator")]
    saga = mapping.saga_from_history(describe, events, "ns")
    assert saga.status == "compensating" and saga.details["cancel_requested"] is True
