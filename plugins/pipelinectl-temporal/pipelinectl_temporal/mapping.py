"""Temporal JSON -> pipelinectl's model. Pure functions, no I/O, unit-tested.

Status mapping (documented in the plugin README):
  Running                        -> running (stuck: an activity is paused, or has failed
                                    `stuck_attempts` (3) times in a row; compensating: cancel
                                    was requested or a compensation activity is scheduled)
  Completed, ContinuedAsNew      -> completed
  Failed, TimedOut, Terminated   -> failed
  Canceled                       -> compensated (cancellation is how a saga is asked to
                                    undo its work; its cancellation handler ran)
  Paused (workflow pause)        -> stuck
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

from pipelinectl.plugin_api import AuditEntry, Saga, SagaEvent, SagaStep, parse_time

TEMPORAL_STATUS = {
    "WORKFLOW_EXECUTION_STATUS_RUNNING": "Running",
    "WORKFLOW_EXECUTION_STATUS_COMPLETED": "Completed",
    "WORKFLOW_EXECUTION_STATUS_FAILED": "Failed",
    "WORKFLOW_EXECUTION_STATUS_CANCELED": "Canceled",
    "WORKFLOW_EXECUTION_STATUS_TERMINATED": "Terminated",
    "WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW": "ContinuedAsNew",
    "WORKFLOW_EXECUTION_STATUS_TIMED_OUT": "TimedOut",
    "WORKFLOW_EXECUTION_STATUS_PAUSED": "Paused",
}
SAGA_STATUS = {
    "Running": "running",
    "Completed": "completed",
    "ContinuedAsNew": "completed",
    "Failed": "failed",
    "TimedOut": "failed",
    "Terminated": "failed",
    "Canceled": "compensated",
    "Paused": "stuck",  # paused by an operator: not progressing until unpaused
}
# saga status -> the visibility clause that selects it (stuck/compensating need a describe too)
STATUS_QUERY = {
    "running": "ExecutionStatus = 'Running'",
    "stuck": "ExecutionStatus IN ('Running', 'Paused')",
    "compensating": "ExecutionStatus = 'Running'",
    "completed": "ExecutionStatus IN ('Completed', 'ContinuedAsNew')",
    "failed": "ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')",
    "compensated": "ExecutionStatus = 'Canceled'",
}
DEFAULT_COMPENSATION_WORDS = ("undo", "compensate", "compensation", "revert", "rollback", "refund", "release")
# Words that make a compensation on their own (an activity named just `compensate`); the others
# ("refund", "release") name business actions too, so they count only beside a step's name.
GENERIC_COMPENSATION_WORDS = frozenset({"undo", "compensate", "compensation", "revert", "rollback"})
DEFAULT_STUCK_ATTEMPTS = 3
ADVANCE_UPDATE = "pipelinectl.advance"  # the update `saga advance` sends (docs/plugins.md)
_SUBJECT = re.compile(r"^[\w.:/@-]{1,40}$")


def temporal_status(raw: str | None) -> str:
    return TEMPORAL_STATUS.get(raw or "", (raw or "Unknown").removeprefix("WORKFLOW_EXECUTION_STATUS_").title())


def quote_value(value: str) -> str:
    """A string literal for a visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_query(status: str | None, definition: str | None, raw: str | None) -> str:
    """AND together the typed filters and the operator's own visibility query."""
    clauses = []
    if status:
        clauses.append(STATUS_QUERY[status])
    if definition:
        clauses.append(f"WorkflowType = {quote_value(definition)}")
    order = ""
    if raw and raw.strip():
        text = raw.strip()
        match = re.search(r"\border\s+by\b", text, re.IGNORECASE)
        if match:
            text, order = text[: match.start()].strip(), " " + text[match.start():].strip()
        if text:
            clauses.append(f"({text})" if clauses else text)
    return " AND ".join(clauses) + order


def event_name(raw: str) -> str:
    """EVENT_TYPE_ACTIVITY_TASK_SCHEDULED -> ActivityTaskScheduled (the CLI's spelling)."""
    return "".join(w.title() for w in raw.removeprefix("EVENT_TYPE_").split("_"))


def failure_message(failure: dict[str, Any] | None) -> str | None:
    """A failure and its causes on one line: 'Activity task failed: ship declined'."""
    parts: list[str] = []
    while isinstance(failure, dict):
        msg = (failure.get("message") or "").strip()
        first = msg.splitlines()[0] if msg else ""
        if first and first not in parts:
            parts.append(first)
        failure = failure.get("cause")
    return ": ".join(parts) or None


def compensated_step(activity_type: str, words: tuple[str, ...]) -> str | None:
    """'undo_charge' / 'ChargeCompensation' -> 'charge'; a bare 'compensate' -> '' (its step is
    told by its input or its position); None if not a compensation."""
    tokens = [t for t in re.split(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])", activity_type) if t]
    lowered = [t.lower() for t in tokens]
    if len(tokens) == 1:
        return "" if lowered[0] in words and lowered[0] in GENERIC_COMPENSATION_WORDS else None
    if not tokens:
        return None
    if lowered[0] in words:
        return "_".join(lowered[1:])
    if lowered[-1] in words:
        return "_".join(lowered[:-1])
    return None


def _norm(name: str) -> str:
    return "_".join(t.lower() for t in re.split(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])", name) if t)


def payload_value(payload: Any) -> Any:
    """A payload's value. The HTTP API writes JSON payloads as the value itself ("shorthand");
    a full payload (`metadata.encoding` json/plain, base64 `data`) is decoded; others are None."""
    if not (isinstance(payload, dict) and set(payload) <= {"metadata", "data"} and "metadata" in payload):
        return payload  # shorthand: already the value
    try:
        encoding = base64.b64decode((payload.get("metadata") or {}).get("encoding", "")).decode()
        if encoding != "json/plain":
            return None
        return json.loads(base64.b64decode(payload.get("data") or ""))
    except (ValueError, TypeError):
        return None


def _subject(attrs: dict[str, Any]) -> str | None:
    """The activity's first argument when it names something (`step("charge", order)` -> 'charge')."""
    raw = attrs.get("input") or []
    payloads = raw.get("payloads") or [] if isinstance(raw, dict) else raw
    first = payload_value(payloads[0]) if payloads else None
    return first if isinstance(first, str) and _SUBJECT.match(first) else None


def step_names(events: list[dict[str, Any]]) -> dict[str, tuple[str, str, str | None]]:
    """scheduled event id -> (step name, activity type, subject), so steps can be told apart.

    A step is named by the activity's summary, else its activity id when the workflow chose
    one (SDKs number them 1, 2, 3 by default), else its type when the type runs once; a type
    that runs several times adds its first argument when that names something
    (`step charge`), else its occurrence (`compensate #2`).
    """
    scheduled = [(str(e.get("eventId")), e, _attrs(e)) for e in events
                 if e.get("eventType") == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
    runs = Counter((attrs.get("activityType") or {}).get("name", "?") for _, _, attrs in scheduled)
    seen: Counter[str] = Counter()
    names: dict[str, tuple[str, str, str | None]] = {}
    for event_id, event, attrs in scheduled:
        activity_type = (attrs.get("activityType") or {}).get("name", "?")
        activity_id = str(attrs.get("activityId") or "")
        summary = payload_value((event.get("userMetadata") or {}).get("summary"))
        subject = _subject(attrs)
        if isinstance(summary, str) and summary.strip():
            name = summary.strip().splitlines()[0]
        elif activity_id and not activity_id.isdigit():
            name = activity_id
        elif runs[activity_type] == 1:
            name = activity_type
        elif subject:
            name = f"{activity_type} {subject}"
        else:
            seen[activity_type] += 1
            name = f"{activity_type} #{seen[activity_type]}"
        names[event_id] = (name, activity_type, subject)
    return names


def saga_from_info(info: dict[str, Any], namespace: str) -> Saga:
    """A list-view saga from a WorkflowExecutionInfo (no steps, no events)."""
    status = temporal_status(info.get("status"))
    execution = info.get("execution") or {}
    paused = "TemporalPauseInfo" in ((info.get("searchAttributes") or {}).get("indexedFields") or {})
    saga_status = SAGA_STATUS.get(status, "running")
    if status == "Running" and paused:
        saga_status = "stuck"
    details: dict[str, Any] = {
        "temporal_status": status,
        "run_id": execution.get("runId"),
        "task_queue": info.get("taskQueue"),
    }
    if paused:
        details["paused"] = True
    if info.get("historyLength"):
        details["history_length"] = int(info["historyLength"])
    if info.get("parentExecution"):
        details["parent_workflow_id"] = info["parentExecution"].get("workflowId")
    return Saga(
        id=execution.get("workflowId", ""),
        pipeline=namespace,
        definition=(info.get("type") or {}).get("name", ""),
        status=saga_status,
        started_at=parse_time(info.get("startTime")),
        updated_at=parse_time(info.get("closeTime") or info.get("executionTime") or info.get("startTime")),
        closed_at=parse_time(info.get("closeTime")),
        completed_steps=None,  # only the history tells: `saga inspect` reads it
        details=details,
    )


_FINAL_ACTIVITY = {
    "EVENT_TYPE_ACTIVITY_TASK_COMPLETED": "completed",
    "EVENT_TYPE_ACTIVITY_TASK_FAILED": "failed",
    "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT": "timed_out",
    "EVENT_TYPE_ACTIVITY_TASK_CANCELED": "cancelled",
}
_COMPENSATION_STATUS = {"completed": "compensated", "failed": "compensation_failed",
                        "timed_out": "compensation_failed", "running": "compensating",
                        "pending": "compensating", "cancelled": "cancelled"}
_QUIET_EVENTS = {
    "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
}


def _attrs(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventAttributes") and isinstance(value, dict):
            return value
    return {}


def _event_message(kind: str, attrs: dict[str, Any]) -> str | None:
    if "failure" in attrs:
        return failure_message(attrs.get("failure"))
    if attrs.get("reason"):
        return str(attrs["reason"])
    if attrs.get("cause") and isinstance(attrs["cause"], str):
        return attrs["cause"]
    if kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
        name = ((attrs.get("acceptedRequest") or {}).get("input") or {}).get("name")
        return f"update {name}"
    if kind == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED":
        return f"signal {attrs.get('signalName')}"
    if kind == "EVENT_TYPE_TIMER_STARTED":
        return f"timer {attrs.get('timerId')} for {attrs.get('startToFireTimeout')}"
    if kind == "EVENT_TYPE_ACTIVITY_TASK_STARTED" and attrs.get("attempt"):
        return f"attempt {attrs['attempt']}"
    return None


def saga_from_history(
    describe: dict[str, Any],
    events: list[dict[str, Any]],
    namespace: str,
    *,
    compensation_words: tuple[str, ...] = DEFAULT_COMPENSATION_WORDS,
    stuck_attempts: int = DEFAULT_STUCK_ATTEMPTS,
) -> Saga:
    """The inspect view: state, pending activities, and a step timeline from history.

    Each ActivityTaskScheduled event opens a step; its Started/Completed/Failed/
    TimedOut/Canceled events join it through `scheduledEventId`. A step still
    open is matched to the pending activity with the same activity id.
    """
    info = describe.get("workflowExecutionInfo") or {}
    saga = saga_from_info(info, namespace)
    status = saga.details["temporal_status"]
    pending = {p.get("activityId"): p for p in describe.get("pendingActivities") or []}

    names = step_names(events)
    steps: dict[str, SagaStep] = {}  # scheduled event id -> step
    saga_events: list[SagaEvent] = []
    first_wft_completed: int | None = None
    last_wft_completed: int | None = None
    wft_before: dict[str, int | None] = {}  # scheduled event id -> last WFT completed before it
    cancel_requested = False
    close_failure: str | None = None
    advances: list[dict[str, Any]] = []  # `saga advance` requests the workflow accepted

    for event in events:
        kind = event.get("eventType", "")
        event_id = int(event.get("eventId", 0))
        when = parse_time(event.get("eventTime"))
        attrs = _attrs(event)
        step_name: str | None = None
        if kind == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED":
            first_wft_completed = first_wft_completed or event_id
            last_wft_completed = event_id
        elif kind == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED":
            step_name, activity_type, subject = names[str(event_id)]
            steps[str(event_id)] = SagaStep(
                name=step_name,
                status="pending",
                details={"activity_id": attrs.get("activityId"), "activity_type": activity_type,
                         "scheduled_event_id": event_id, "scheduled_at": event.get("eventTime"),
                         "task_queue": (attrs.get("taskQueue") or {}).get("name")},
            )
            if subject:
                steps[str(event_id)].details["subject"] = subject
            wft_before[str(event_id)] = last_wft_completed
        elif kind.startswith("EVENT_TYPE_ACTIVITY_TASK_"):
            step = steps.get(str(attrs.get("scheduledEventId")))
            if step is not None:
                step_name = step.name
                if kind == "EVENT_TYPE_ACTIVITY_TASK_STARTED":
                    step.status = "running"
                    step.started_at = when
                    step.attempts = int(attrs.get("attempt") or 1)
                elif kind in _FINAL_ACTIVITY:
                    step.status = _FINAL_ACTIVITY[kind]
                    step.finished_at = when
                    if "failure" in attrs:
                        step.error = failure_message(attrs["failure"])
                        if attrs.get("retryState"):
                            step.details["retry_state"] = attrs["retryState"].removeprefix("RETRY_STATE_")
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED":
            cancel_requested = True
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            update = (attrs.get("acceptedRequest") or {}).get("input") or {}
            args = update.get("args") or []
            request = payload_value(args[0]) if args else None
            if update.get("name") == ADVANCE_UPDATE and isinstance(request, dict):
                advances.append({**request, "event_id": event_id})
                step_name = request.get("step")
        elif kind in ("EVENT_TYPE_WORKFLOW_EXECUTION_FAILED", "EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT"):
            close_failure = failure_message(attrs.get("failure")) or event_name(kind)
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED":
            close_failure = "terminated" + (f": {attrs['reason']}" if attrs.get("reason") else "")
        if kind in _QUIET_EVENTS or not kind:
            continue
        saga_events.append(SagaEvent(seq=event_id, time=when or datetime.min, type=event_name(kind),
                                     step=step_name, message=_event_message(kind, attrs)))

    # Open steps: fill in from the pending activity (attempt, last failure, next retry).
    for step in steps.values():
        if step.status not in ("pending", "running"):
            continue
        p = pending.get(step.details.get("activity_id"))
        if not p:
            continue
        state = (p.get("state") or "").removeprefix("PENDING_ACTIVITY_STATE_")
        step.status = "running" if state == "STARTED" else "pending"
        step.attempts = int(p.get("attempt") or step.attempts or 1)
        step.details["state"] = state.lower()
        if p.get("paused"):
            step.details["paused"] = True
        if p.get("lastFailure"):
            step.error = failure_message(p["lastFailure"])
        next_retry = p.get("nextAttemptScheduleTime") or (p.get("scheduledTime") if step.attempts > 1 else None)
        if next_retry and state != "PAUSED":
            step.details["next_retry"] = next_retry
        if p.get("lastHeartbeatTime"):
            step.details["last_heartbeat"] = p["lastHeartbeatTime"]

    # Steps an operator did by hand (`saga advance`): done, whatever became of the activity.
    for advance in advances:
        for step in reversed(list(steps.values())):
            if str(step.details.get("activity_id")) == str(advance.get("activity_id")) and \
                    step.details.get("activity_type") == advance.get("activity_type"):
                step.status = "completed"
                step.details["advanced"] = {k: advance.get(k) for k in ("reason", "result", "identity", "event_id")}
                break

    # Compensations: 'undo_charge' compensates the last 'charge' step before it; a bare
    # 'compensate' the step its input names, else the latest one not yet compensated.
    ordered = list(steps.values())
    targets = {id(step): _compensation_target(step, compensation_words) for step in ordered}
    forward = [s for s in ordered if targets[id(s)] is None]
    compensating = False
    for index, step in enumerate(ordered):
        target = targets[id(step)]
        if target is None:
            continue
        comp_status = _COMPENSATION_STATUS.get(step.status, step.status)
        step.status = comp_status
        if comp_status == "compensating":
            compensating = True
        for earlier in reversed(ordered[:index]):
            if targets[id(earlier)] is not None or earlier.compensation is not None:
                continue
            keys = {_norm(earlier.name), _norm(earlier.details["activity_type"]),
                    _norm(earlier.details.get("subject") or "")}
            if (target and target in keys) or (not target and earlier.status == "completed"):
                earlier.compensation = comp_status
                step.details["compensates"] = earlier.name
                break

    saga.steps = ordered
    saga.events = saga_events
    saga.completed_steps = [s.name for s in forward if s.status == "completed"]
    open_steps = [s for s in ordered if s.status in ("pending", "running", "compensating")]
    saga.current_step = open_steps[-1].name if open_steps else None
    if not events and pending:  # a describe alone (list views): the pending activity is where it is
        saga.current_step = (next(iter(pending.values())).get("activityType") or {}).get("name")

    errors = [s.error for s in ordered if s.error]
    saga.last_error = close_failure or (errors[-1] if errors else None)
    if events:
        saga.updated_at = parse_time(events[-1].get("eventTime")) or saga.updated_at

    if status == "Running":
        # `attempt` is the attempt running or due next, so attempt - 1 have failed. Once a cancel
        # is requested, a stuck forward step is being cancelled: only a stuck compensation counts.
        compensation_ids = {s.details.get("activity_id") for s in ordered if targets[id(s)] is not None}
        watched = [p for p in pending.values()
                   if not cancel_requested or p.get("activityId") in compensation_ids]
        stuck = any(p.get("paused") for p in watched) or any(
            int(p.get("attempt") or 1) - 1 >= stuck_attempts and p.get("lastFailure") for p in watched
        )
        if stuck:
            saga.status = "stuck"
        elif cancel_requested or compensating:
            saga.status = "compensating"
        else:
            saga.status = "running"
    saga.details["cancel_requested"] = cancel_requested
    saga.details["pending_activities"] = [
        {
            "activity_id": p.get("activityId"),
            "type": (p.get("activityType") or {}).get("name"),
            "state": (p.get("state") or "").removeprefix("PENDING_ACTIVITY_STATE_").lower(),
            "attempt": int(p.get("attempt") or 1),
            "failed_attempts": int(p.get("attempt") or 1) - 1,  # attempt N runs (or is due) after N-1 failures
            "last_failure": failure_message(p.get("lastFailure")),
            "next_retry": p.get("nextAttemptScheduleTime") or p.get("scheduledTime"),
            "paused": bool(p.get("paused")),
        }
        for p in pending.values()
    ]
    saga.details["reset_points"] = _reset_points(ordered, wft_before, first_wft_completed, last_wft_completed)
    config = describe.get("executionConfig") or {}
    if (config.get("taskQueue") or {}).get("name"):
        saga.details["task_queue"] = config["taskQueue"]["name"]
    return saga


def _compensation_target(step: SagaStep, words: tuple[str, ...]) -> str | None:
    """The (normalised) name of the step this one compensates; '' for "the latest"; None: not a compensation."""
    target = compensated_step(step.details["activity_type"], words)
    if target is None and step.name != step.details["activity_type"]:
        target = compensated_step(step.name, words)  # a summary such as "refund payment"
    if target == "" and step.details.get("subject"):
        target = _norm(step.details["subject"])
    return target


def _reset_points(steps: list[SagaStep], wft_before: dict[str, int | None],
                  first_wft: int | None, last_wft: int | None) -> dict[str, int]:
    """Event ids an operator can reset to: first and last workflow task, just before the first failed step."""
    points: dict[str, int] = {}
    if first_wft is not None:
        points["first_workflow_task"] = first_wft
    if last_wft is not None:
        points["last_workflow_task"] = last_wft
    for step in steps:
        if step.status in ("failed", "timed_out") or (step.status in ("pending", "running") and step.error):
            before = wft_before.get(str(step.details.get("scheduled_event_id")))
            if before is not None:
                points["before_failed_step"] = before
            break
    return points


# -- the audit trail: operator requests recorded in a workflow's history, with the identity that sent them --
# event type -> (the verb as pipelinectl names it, the attribute holding the reason)
AUDITED_EVENTS = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED": ("start", None),
    "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED": ("saga cancel", "cause"),
    "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED": ("saga force-fail --terminate", "reason"),
    "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED": ("signal", None),
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED": ("update", None),
    "EVENT_TYPE_WORKFLOW_TASK_FAILED": ("saga retry", None),  # only a reset's (cause RESET_WORKFLOW)
}


def audit_entries(workflow_id: str, namespace: str, events: list[dict[str, Any]]) -> list[AuditEntry]:
    """The history events of one run that an operator (or a client) caused, as AuditEntry, oldest first.

    The actor is the `identity` the sender set (pipelinectl sends `pipelinectl:USER@HOST`, or the
    context's `identity` setting); events without one (a worker's own decisions) are not listed.
    """
    out: list[AuditEntry] = []
    for event in events:
        kind = event.get("eventType") or ""
        if kind not in AUDITED_EVENTS:
            continue
        attrs = _attrs(event)
        verb, reason_key = AUDITED_EVENTS[kind]
        identity = attrs.get("identity")
        arguments: dict[str, Any] = {}
        reason = attrs.get(reason_key) if reason_key else None
        if kind == "EVENT_TYPE_WORKFLOW_TASK_FAILED":
            if attrs.get("cause") != "WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW":
                continue
            reason = (attrs.get("failure") or {}).get("message")
            arguments["base_run_id"] = attrs.get("baseRunId")
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED":
            verb = f"signal {attrs.get('signalName')}"
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            request = attrs.get("acceptedRequest") or {}
            identity = (request.get("meta") or {}).get("identity")
            name = (request.get("input") or {}).get("name")
            verb = "saga advance" if name == ADVANCE_UPDATE else f"update {name}"
            args = (request.get("input") or {}).get("args") or []
            if isinstance(args, dict):  # Payloads, as the proto JSON spells them
                args = args.get("payloads") or []
            first = args[0] if args else None  # the HTTP API's shorthand: the JSON value itself
            if isinstance(first, dict) and "metadata" in first:
                first = payload_value(first)
            if isinstance(first, dict):
                reason = first.get("reason")
                arguments = {k: first.get(k) for k in ("step", "result") if k in first}
        elif kind == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED":
            arguments["workflow_type"] = (attrs.get("workflowType") or {}).get("name")
        if not identity:
            continue
        out.append(AuditEntry(
            id=f"{workflow_id}/{event.get('eventId')}", time=parse_time(event.get("eventTime")), actor=str(identity),
            verb=verb, target=workflow_id, pipeline=namespace, arguments=arguments, reason=reason,
            result=event_name(kind), details={"event_id": int(event.get("eventId") or 0)}))
    return out
