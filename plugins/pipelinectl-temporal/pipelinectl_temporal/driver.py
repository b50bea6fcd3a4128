"""The Temporal driver: pipelinectl's saga verbs on a Temporal namespace.

pipeline == namespace. A saga is a workflow execution (its id is the workflow
id; the latest run is meant). Context settings (`config set-context ... --set`):
  task_queues        task queues `status` reports on (default: those of recent workflows)
  workflow_types     workflow types `status` counts (default: all)
  stuck_attempts     failed attempts in a row that make a running saga "stuck" (default 3)
  compensation_words activity-name words marking a compensation (default undo, compensate, ...)
  pause_scope        "activities" (default: pause/resume a workflow's pending activities) or
                     "workflow" (PauseWorkflowExecution; the server must enable it)
  identity           who the history records as the sender of each request
                     (default pipelinectl:USER@HOST); what `pipelinectl audit` shows as the actor
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pipelinectl.plugin_api import (
    SAGA_STATUSES,
    AuditEntry,
    AuditFilter,
    BatchJob,
    Capability,
    ConflictError,
    Connection,
    NotFoundError,
    Pipeline,
    RateLimit,
    Saga,
    SagaFilter,
    Stage,
    UnsupportedError,
    UnsupportedVerbs,
    UsageError,
    default_burst,
    parse_time,
)

from . import mapping
from .client import TemporalHTTP, seg

DRIVER = "temporal"
AUDIT_SCAN_CAP = 200  # workflows whose histories one `audit` reads (newest first), unless --target names one


def default_identity() -> str:
    """`pipelinectl:USER@HOST`, as the temporal CLI's `temporal-cli:USER@HOST`: who did it, from where."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"pipelinectl:{user}@{socket.gethostname()}"
ADVANCE_UPDATE = mapping.ADVANCE_UPDATE  # the update a workflow implements to opt into `saga advance`
# First server version whose HTTP API has workflow-scoped activity pause/unpause/reset
# (`/workflows/{id}/activities/{activity}/pause`), verified against 1.32.0. Older
# servers (1.27+) take `{execution, id}` at `/activities/pause`.
WORKFLOW_SCOPED_ACTIVITY_API = (1, 32)
OLDEST_SCAN_CAP = 20_000  # running workflows read to find the oldest where visibility cannot sort
BATCH_ACTIONS = {
    "force-fail": "cancellationOperation",
    "cancel": "cancellationOperation",
    "terminate": "terminationOperation",
    "retry": "resetOperation",
    "reset": "resetOperation",
}


def _batch_action(operation_type: str) -> str:
    """BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW (already stripped, lower case) -> the verb that started it."""
    for prefix, action in (("cancel", "force-fail"), ("terminate", "terminate"), ("reset", "retry")):
        if operation_type.startswith(prefix):
            return action
    return operation_type


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class TemporalControlPlane(UnsupportedVerbs):
    """Sagas on Temporal through its HTTP API (no gRPC, no SDK)."""

    driver = DRIVER
    url_schemes = ("http", "https")  # the frontend's HTTP API port
    capabilities = frozenset({
        Capability.STATUS,
        Capability.PAUSE,
        Capability.RESUME,
        Capability.LIMIT,
        Capability.SAGA_LIST,
        Capability.SAGA_SHOW,
        Capability.SAGA_FORCE_FAIL,
        Capability.SAGA_TERMINATE,
        Capability.SAGA_RETRY,
        Capability.SAGA_CANCEL,
        Capability.SAGA_ADVANCE,
        Capability.SAGA_QUERY,
        Capability.SAGA_BATCH,
        Capability.AUDIT,
    })

    def __init__(self, connection: Connection, transport: Any = None) -> None:
        self.connection = connection
        self.http = TemporalHTTP(connection, transport=transport)
        settings = connection.settings or {}
        self.task_queues = _as_list(settings.get("task_queues") or settings.get("task_queue"))
        self.workflow_types = _as_list(settings.get("workflow_types") or settings.get("workflow_type"))
        try:
            self.stuck_attempts = int(settings.get("stuck_attempts") or mapping.DEFAULT_STUCK_ATTEMPTS)
        except (TypeError, ValueError):
            raise UsageError(f"context '{connection.context}': stuck_attempts must be a whole number, "
                             f"not '{settings.get('stuck_attempts')}'") from None
        words = _as_list(settings.get("compensation_words"))
        self.compensation_words = tuple(w.lower() for w in words) or mapping.DEFAULT_COMPENSATION_WORDS
        self.identity = str(settings.get("identity") or default_identity())
        self.pause_scope = str(settings.get("pause_scope") or "activities").lower()
        if self.pause_scope not in ("activities", "workflow"):
            raise UsageError(f"context '{connection.context}': pause_scope must be 'activities' or 'workflow', "
                             f"not '{self.pause_scope}'")

    # -- helpers ----------------------------------------------------------
    def namespace_of(self, pipeline: str | None) -> str:
        ns = pipeline or self.connection.namespace or self.connection.pipeline
        if not ns:
            raise UsageError("no Temporal namespace: set the context's namespace or pass -p NAMESPACE")
        return ns

    def _wf(self, ns: str, saga_id: str, suffix: str = "") -> str:
        if not saga_id:
            raise UsageError("a saga id (the workflow id) is required")
        return f"/api/v1/namespaces/{seg(ns)}/workflows/{seg(saga_id)}{suffix}"

    def _describe(self, ns: str, saga_id: str) -> dict[str, Any]:
        try:
            return self.http.request("GET", self._wf(ns, saga_id))
        except NotFoundError as exc:
            raise NotFoundError(f"saga '{saga_id}' not found in namespace '{ns}'",
                                hint=exc.message) from None

    def _history(self, ns: str, saga_id: str, run_id: str | None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"maximumPageSize": 1000}
            if run_id:
                params["execution.runId"] = run_id
            if token:
                params["nextPageToken"] = token
            page = self.http.request("GET", self._wf(ns, saga_id, "/history"), params=params)
            events.extend((page.get("history") or {}).get("events") or [])
            token = page.get("nextPageToken")
            if not token:
                return events

    def _require_running(self, saga: Saga, verb: str) -> None:
        if saga.details.get("temporal_status") not in ("Running", "Paused"):
            raise ConflictError(
                f"saga '{saga.id}' is already closed ({saga.details.get('temporal_status')}); nothing to {verb}")

    def close(self) -> None:
        self.http.close()

    def server_version(self) -> str | None:
        """Shown by `pipelinectl version`."""
        return f"Temporal {self.http.system_info().get('serverVersion', '?')}"

    # -- audit trail: the operator requests in workflow histories ----------------
    def audit_list(self, selection: AuditFilter, *, page_size: int = 500) -> Iterator[AuditEntry]:
        """Each workflow's history events that carry a sender's identity (cancel, terminate, signal,
        update, reset, start), filtered as the reference plane filters its trail.

        Workflows are those --target names, else the newest AUDIT_SCAN_CAP that were open at or after
        --since (still running, or closed since then): an event at time t needs its workflow open at t.
        """
        ns = self.namespace_of(selection.pipeline)
        clauses = []
        if selection.target:
            clauses.append(f"WorkflowId = {mapping.quote_value(selection.target)}")
        if selection.since:
            since = selection.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            clauses.append(f"(ExecutionStatus = 'Running' OR CloseTime >= '{since}')")
        params: dict[str, Any] = {"pageSize": min(max(page_size, 1), AUDIT_SCAN_CAP)}
        if clauses:
            params["query"] = " AND ".join(clauses)
        page = self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/workflows", params=params)
        entries: list[AuditEntry] = []
        for info in page.get("executions") or []:
            execution = info.get("execution") or {}
            wid = execution.get("workflowId") or ""
            events = self._history(ns, wid, execution.get("runId"))
            entries += mapping.audit_entries(wid, ns, events)
        entries.sort(key=lambda e: e.time, reverse=selection.newest_first)
        for e in entries:
            if ((selection.since is None or e.time >= selection.since)
                    and (selection.until is None or e.time < selection.until)
                    and selection.actor in (None, e.actor) and selection.verb in (None, e.verb)):
                yield e

    # -- sagas: read ------------------------------------------------------
    def saga_list(self, selection: SagaFilter, *, page_size: int = 200) -> Iterator[Saga]:
        ns = self.namespace_of(selection.pipeline)
        if selection.status and selection.status not in SAGA_STATUSES:
            raise UsageError(f"unknown saga status '{selection.status}'",
                             hint="one of " + ", ".join(SAGA_STATUSES))
        query = mapping.build_query(selection.status, selection.definition, selection.query)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"pageSize": page_size}
            if query:
                params["query"] = query
            if token:
                params["nextPageToken"] = token
            page = self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/workflows", params=params)
            sagas = self._with_running_state(ns, [mapping.saga_from_info(i, ns) for i in page.get("executions") or []])
            for saga in sagas:
                if selection.status == "compensating" and saga.status != "compensating":
                    # Only the history tells a compensation in progress from a run forward.
                    try:
                        saga.status = self.saga_show(ns, saga.id).status
                    except NotFoundError:  # gone since the page was read
                        continue
                if selection.status in ("stuck", "compensating") and saga.status != selection.status:
                    continue
                yield saga
            token = page.get("nextPageToken")
            if not token:
                return

    def _with_running_state(self, ns: str, sagas: list[Saga]) -> list[Saga]:
        """Running sagas of a listed page, described (a few at a time): stuck or not, and the current step.

        Visibility knows only "Running"; the describe tells a stuck saga (paused, or failing
        attempt after attempt) and its pending activity. Closed sagas need nothing more.
        """
        running = [s for s in sagas if s.details.get("temporal_status") in ("Running", "Paused")]
        if not running:
            return sagas
        from concurrent.futures import ThreadPoolExecutor

        def describe(saga: Saga) -> Saga | None:
            try:
                described = mapping.saga_from_history(self._describe(ns, saga.id), [], ns,
                                                      compensation_words=self.compensation_words,
                                                      stuck_attempts=self.stuck_attempts)
            except NotFoundError:  # gone since the page was read
                return None
            saga.status, saga.current_step = described.status, described.current_step
            return saga

        with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
            gone = {id(s) for s, kept in zip(running, pool.map(describe, running), strict=True) if kept is None}
        return [s for s in sagas if id(s) not in gone]

    def saga_count(self, selection: SagaFilter) -> int:
        """How many workflows match (CountWorkflowExecutions); stuck/compensating count running ones."""
        ns = self.namespace_of(selection.pipeline)
        query = mapping.build_query(selection.status, selection.definition, selection.query)
        params = {"query": query} if query else None
        page = self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/workflow-count", params=params)
        return int(page.get("count") or 0)

    def count_by_status(self, selection: SagaFilter) -> dict[str, int]:
        """Temporal status -> count (`GROUP BY ExecutionStatus`, one request)."""
        import base64
        import json

        ns = self.namespace_of(selection.pipeline)
        query = mapping.build_query(selection.status, selection.definition, selection.query)
        grouped = self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/workflow-count",
                                    params={"query": (f"{query} " if query else "") + "GROUP BY ExecutionStatus"})
        counts: dict[str, int] = {}
        for group in grouped.get("groups") or []:
            raw = ((group.get("groupValues") or [{}])[0]).get("data", "")
            try:
                name = json.loads(base64.b64decode(raw)) if raw else "?"
            except ValueError:
                name = str(raw)
            counts[str(name)] = counts.get(str(name), 0) + int(group.get("count") or 0)
        return counts

    def saga_show(self, pipeline: str, saga_id: str) -> Saga:
        ns = self.namespace_of(pipeline)
        describe = self._describe(ns, saga_id)
        run_id = ((describe.get("workflowExecutionInfo") or {}).get("execution") or {}).get("runId")
        events = self._history(ns, saga_id, run_id)
        return mapping.saga_from_history(describe, events, ns, compensation_words=self.compensation_words,
                                         stuck_attempts=self.stuck_attempts)

    # -- sagas: write -----------------------------------------------------
    def saga_force_fail(self, pipeline: str, saga_id: str, reason: str, *,
                        terminate: bool = False, dry_run: bool = False) -> Saga:
        """Cancel (the workflow's own compensations run) or, with terminate, end it at once."""
        ns = self.namespace_of(pipeline)
        saga = mapping.saga_from_info(self._describe(ns, saga_id).get("workflowExecutionInfo") or {}, ns)
        self._require_running(saga, "terminate" if terminate else "cancel")
        if dry_run:  # the answer says what would happen (docs/api.md); the status it ends in is the workflow's
            saga.details["dry_run"] = "terminate" if terminate else "cancel"
            saga.details["status_before"] = saga.status
            saga.details["would"] = ("terminate the workflow at once, without compensations (it ends failed)"
                                     if terminate else "cancel the workflow: its compensations run "
                                                       "(it ends compensated)")
            # What the action leads to: terminated at once, or cancel requested (its compensations run).
            saga.status = "failed" if terminate else "compensating"
            saga.details["cancel_requested"] = not terminate
            return saga
        execution = {"workflowId": saga_id, "runId": saga.details.get("run_id")}
        if terminate:
            self.http.request("POST", self._wf(ns, saga_id, "/terminate"), body={
                "namespace": ns, "workflowExecution": execution, "reason": reason, "identity": self.identity})
        else:
            self.http.request("POST", self._wf(ns, saga_id, "/cancel"), retry=True, body={
                "namespace": ns, "workflowExecution": execution, "reason": reason, "identity": self.identity,
                "requestId": str(uuid.uuid4())})
        return self.saga_show(ns, saga_id)

    def saga_cancel(self, pipeline: str, saga_id: str, reason: str, *, dry_run: bool = False) -> Saga:
        """RequestCancelWorkflowExecution: the workflow's cancellation handling compensates, it ends Canceled."""
        return self.saga_force_fail(pipeline, saga_id, reason, dry_run=dry_run)

    def saga_advance(self, pipeline: str, saga_id: str, step: str, reason: str, *,
                     result: Any = None, dry_run: bool = False) -> Saga:
        """Send the `pipelinectl.advance` update: the workflow records `step` as done and goes on.

        Only the current step (the pending activity) can be advanced; a workflow without the
        update handler is told apart from one that refuses (unsupported vs. conflict).
        """
        ns = self.namespace_of(pipeline)
        saga = self.saga_show(ns, saga_id)
        self._require_running(saga, "advance")
        current = next((s for s in reversed(saga.steps) if s.status in ("pending", "running")), None)
        if current is None:
            raise ConflictError(f"saga '{saga_id}' has no step in progress to advance",
                                hint="see 'pipelinectl saga inspect " + saga_id + "'")
        if step not in (current.name, current.details.get("activity_type")):
            raise ConflictError(f"saga '{saga_id}' is at step '{current.name}', not '{step}'",
                                hint=f"advance the current step: --step {current.name}")
        if dry_run:
            saga.details["dry_run"] = {"advance": current.name, "result": result}
            saga.status = "running"  # the next step starts
            return saga
        request = {"step": step, "activity_type": current.details.get("activity_type"),
                   "activity_id": current.details.get("activity_id"), "result": result, "reason": reason,
                   "identity": self.identity}
        update_id = f"pipelinectl-advance-{uuid.uuid4()}"
        answer = self.http.request("POST", self._wf(ns, saga_id, f"/update/{seg(ADVANCE_UPDATE)}"), retry=True, body={
            "namespace": ns,
            "workflowExecution": {"workflowId": saga_id, "runId": saga.details.get("run_id")},
            "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
            "request": {"meta": {"updateId": update_id, "identity": self.identity},
                        "input": {"name": ADVANCE_UPDATE, "args": [request]}},
        })
        failure = (answer.get("outcome") or {}).get("failure")
        if failure:
            message = mapping.failure_message(failure) or "refused"
            if "not found" in message.lower() or "unknown update" in message.lower():
                raise UnsupportedError.verb(
                    DRIVER, "saga advance",
                    f"workflow type '{saga.definition}' does not implement the '{ADVANCE_UPDATE}' update "
                    "(see docs/plugins.md: Temporal)")
            raise ConflictError(f"saga '{saga_id}' refused to advance: {message}")
        fresh = self.saga_show(ns, saga_id)
        fresh.details["advanced"] = {"step": current.name, "update_id": update_id}
        return fresh

    def saga_retry(self, pipeline: str, saga_id: str, reason: str | None = None, *,
                   dry_run: bool = False, options: dict[str, Any] | None = None) -> Saga:
        """Retry a stuck activity (reset/unpause it) or reset the workflow.

        A closed saga is reset (a new run): by default to the last workflow task
        completed before its first failed step, so that step runs again; without a
        failed step (terminated, timed out), to its last completed workflow task.
        options: event_id (reset to that WorkflowTaskCompleted event), reset_type
        ("last" workflow task, "first", or "failed-step"), activity_id (only this
        pending activity).
        """
        ns = self.namespace_of(pipeline)
        options = dict(options or {})
        reason = reason or "retried with pipelinectl"
        saga = self.saga_show(ns, saga_id)
        running = saga.details.get("temporal_status") in ("Running", "Paused")
        wants_reset = bool(options.get("event_id") or options.get("reset_type"))
        if running and not wants_reset:
            targets = [p for p in saga.details.get("pending_activities", [])
                       if p.get("paused") or p.get("last_failure") or p.get("attempt", 1) > 1]
            if options.get("activity_id"):
                targets = [p for p in targets if str(p["activity_id"]) == str(options["activity_id"])]
            if not targets:
                raise ConflictError(
                    f"saga '{saga_id}' is running with no failing or paused activity; nothing to retry",
                    hint="pass an event id to reset the workflow to it")
            if dry_run:
                ids = [str(p["activity_id"]) for p in targets]
                saga.details["dry_run"] = {"retry_activities": [p["activity_id"] for p in targets]}
                saga.details["status_before"] = saga.status
                saga.details["would"] = f"retry activit{'y' if len(ids) == 1 else 'ies'} {', '.join(ids)} now"
                saga.status = "running"  # its failing activities run again now
                return saga
            for p in targets:
                self._activity_op(ns, saga_id, saga.details.get("run_id"), str(p["activity_id"]),
                                  "reset", reason)
            return self.saga_show(ns, saga_id)
        if saga.details.get("temporal_status") in ("Completed", "ContinuedAsNew") and not wants_reset:
            raise ConflictError(f"saga '{saga_id}' is completed; nothing to retry",
                                hint="pass an event id to rerun it from there")
        event_id = self._reset_event(saga, options)
        if dry_run:
            saga.details["dry_run"] = {"reset_to_event": event_id}
            saga.details["status_before"] = saga.status
            saga.details["would"] = f"reset the workflow to event {event_id} (a new run, running from there)"
            saga.status = "running"  # a new run from that point
            return saga
        answer = self.http.request("POST", self._wf(ns, saga_id, "/reset"), retry=True, body={
            "namespace": ns,
            "workflowExecution": {"workflowId": saga_id, "runId": saga.details.get("run_id")},
            "reason": reason,
            "workflowTaskFinishEventId": str(event_id),
            "requestId": str(uuid.uuid4()),
            "identity": self.identity,
        })
        fresh = self.saga_show(ns, saga_id)
        fresh.details["reset_from_run"] = saga.details.get("run_id")
        fresh.details["reset_to_event"] = event_id
        if answer.get("runId"):
            fresh.details["run_id"] = answer["runId"]
        return fresh

    def _reset_event(self, saga: Saga, options: dict[str, Any]) -> int:
        points = saga.details.get("reset_points", {})
        if options.get("event_id"):
            try:
                return int(options["event_id"])
            except (TypeError, ValueError):
                raise UsageError(f"event id must be a number, got '{options['event_id']}'") from None
        default = "failed-step" if "before_failed_step" in points else "last"
        kind = str(options.get("reset_type") or default).lower()
        if kind in ("last", "last-workflow-task"):
            key = "last_workflow_task"
        elif kind in ("failed-step", "failed_step", "failure"):
            key = "before_failed_step"
        elif kind in ("first", "first-workflow-task"):
            key = "first_workflow_task"
        else:
            raise UsageError(f"unknown reset type '{kind}'", hint="one of: last, first, failed-step")
        if key not in points:
            raise ConflictError(f"saga '{saga.id}' has no {key.replace('_', ' ')} to reset to")
        return int(points[key])

    def _activity_op(self, ns: str, saga_id: str, run_id: str | None, activity_id: str,
                     op: str, reason: str) -> None:
        """Pause, unpause or reset one activity, on the endpoint this server version has."""
        version = self.http.server_version()
        if version and version < (1, 27):
            raise UnsupportedError.verb(DRIVER, f"activity {op}",
                                        f"Temporal server {'.'.join(map(str, version))} has no activity {op}")
        body: dict[str, Any] = {"namespace": ns, "identity": self.identity}
        if version >= WORKFLOW_SCOPED_ACTIVITY_API:
            path = self._wf(ns, saga_id, f"/activities/{seg(activity_id)}/{op}")
            body.update({"workflowId": saga_id, "activityId": activity_id})
            if run_id:
                body["runId"] = run_id
        else:
            path = f"/api/v1/namespaces/{seg(ns)}/activities/{op}"
            body.update({"execution": {"workflowId": saga_id}, "id": activity_id})
        if op == "reset":  # attempts back to 1, run now, and unpaused if it was paused
            body.update({"resetHeartbeat": True, "keepPaused": False})
        elif op == "pause" or version >= WORKFLOW_SCOPED_ACTIVITY_API:
            body["reason"] = reason  # the older unpause request has no reason field
        try:
            self.http.request("POST", path, body=body)
        except UnsupportedError as exc:
            raise UnsupportedError.verb(DRIVER, f"activity {op}", exc.message) from None

    def saga_force_complete(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(
            DRIVER, "saga force-complete",
            "Temporal cannot complete a workflow from outside; use force-fail, terminate or retry")

    # -- sagas: batch -----------------------------------------------------
    def saga_batch(self, action: str, selection: SagaFilter, reason: str, *,
                   dry_run: bool = False) -> BatchJob:
        """Start a server-side batch over every workflow the query selects."""
        ns = self.namespace_of(selection.pipeline)
        operation = BATCH_ACTIONS.get(action)
        if operation is None:
            raise UsageError(f"unknown batch action '{action}'", hint="one of " + ", ".join(BATCH_ACTIONS))
        if selection.status in ("stuck", "compensating"):
            raise UsageError(f"--status {selection.status} cannot select a Temporal batch",
                             hint="select with a visibility query instead")
        query = mapping.build_query(selection.status, selection.definition, selection.query)
        if not query:
            raise UsageError("a batch needs a query or a filter; refusing to act on every workflow")
        reason = reason or f"{action} with pipelinectl"  # Temporal requires a reason
        total = self.saga_count(selection)
        op_body: dict[str, Any] = {"identity": self.identity}
        if operation == "resetOperation":
            operation, op_body = self._retry_operation(selection, query, total)
        if dry_run:
            return BatchJob(id="", action=action, query=query, state="planned", total=total)
        job_id = f"pipelinectl-{uuid.uuid4()}"
        self.http.request("POST", f"/api/v1/namespaces/{seg(ns)}/batch-operations/{seg(job_id)}", retry=True,
                          body={"namespace": ns, "jobId": job_id, "reason": reason,
                                "visibilityQuery": query, operation: op_body})
        job = self._batch_show(ns, job_id, attempts=10)
        job.action = action
        if not job.total:
            job.total = total
        return job

    def _retry_operation(self, selection: SagaFilter, query: str, total: int) -> tuple[str, dict[str, Any]]:
        """Retry many: running sagas get their activities reset (attempt 1, now, unpaused);
        closed ones are reset to their last workflow task. One batch does one of the two."""
        running_query = f"({query}) AND ExecutionStatus = 'Running'"
        running = self.saga_count(SagaFilter(pipeline=selection.pipeline, query=running_query))
        if running and running != total:
            raise UsageError(
                f"the query matches {running} running and {total - running} closed saga(s); retry one kind at a time",
                hint="add \"AND ExecutionStatus = 'Running'\" (resets their activities) "
                     "or \"AND ExecutionStatus != 'Running'\" (resets the workflows)")
        if running:
            version = self.http.server_version()
            if version and version < WORKFLOW_SCOPED_ACTIVITY_API:
                raise UnsupportedError.verb(DRIVER, "saga retry --query (running sagas)",
                                            f"batch activity reset is used from Temporal 1.32; server is "
                                            f"{'.'.join(map(str, version))}")
            return "resetActivitiesOperation", {"identity": self.identity, "matchAll": True, "resetAttempts": True,
                                                "resetHeartbeat": True, "keepPaused": False}
        return "resetOperation", {"identity": self.identity, "options": {"lastWorkflowTask": {}}}

    def _batch_show(self, ns: str, job_id: str, attempts: int = 1) -> BatchJob:
        for attempt in range(attempts):
            try:
                data = self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/batch-operations/{seg(job_id)}")
                break
            except NotFoundError:
                if attempt == attempts - 1:
                    raise NotFoundError(f"batch job '{job_id}' not found in namespace '{ns}'") from None
                time.sleep(0.2)
        state = (data.get("state") or "").removeprefix("BATCH_OPERATION_STATE_").lower()
        op = (data.get("operationType") or "").removeprefix("BATCH_OPERATION_TYPE_").lower()
        return BatchJob(
            id=data.get("jobId", job_id),
            action=_batch_action(op),
            query=data.get("query", ""),
            state={"running": "running", "completed": "completed", "failed": "failed"}.get(state, state),
            total=int(data.get("totalOperationCount") or 0),
            completed=int(data.get("completeOperationCount") or 0),
            failed=int(data.get("failureOperationCount") or 0),
            started_at=parse_time(data.get("startTime")),
            finished_at=parse_time(data.get("closeTime")),
        )

    def saga_batch_show(self, pipeline: str, job_id: str) -> BatchJob:
        return self._batch_show(self.namespace_of(pipeline), job_id)

    # -- pause / resume: a workflow's activities (stage == workflow id) ---
    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        """Pause every pending activity of workflow `stage` (Temporal pauses activities, not queues)."""
        if until is not None:
            raise UnsupportedError.verb(DRIVER, "pause --until", "Temporal has no timed activity pause")
        return self._pause_activities(pipeline, stage, "pause", dry_run)

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        return self._pause_activities(pipeline, stage, "unpause", dry_run)

    def _pause_activities(self, pipeline: str, workflow_id: str, op: str, dry_run: bool) -> Stage:
        ns = self.namespace_of(pipeline)
        if self.pause_scope == "workflow":
            return self._pause_workflow(ns, workflow_id, op, dry_run)
        describe = self._describe(ns, workflow_id)
        saga = mapping.saga_from_info(describe.get("workflowExecutionInfo") or {}, ns)
        self._require_running(saga, op)
        pending = describe.get("pendingActivities") or []
        targets = [p for p in pending if bool(p.get("paused")) == (op == "unpause")]
        if not dry_run:
            for p in targets:
                self._activity_op(ns, workflow_id, saga.details.get("run_id"), str(p.get("activityId")),
                                  op, f"{op} with pipelinectl")
            describe = self._describe(ns, workflow_id)
            pending = describe.get("pendingActivities") or []
        paused = [p for p in pending if p.get("paused")]
        return Stage(
            pipeline=ns,
            name=workflow_id,
            state="paused" if pending and len(paused) == len(pending) else "running",
            in_flight=len(pending),
            details={"kind": "workflow", "activities": [
                {"activity_id": p.get("activityId"), "type": (p.get("activityType") or {}).get("name"),
                 "paused": bool(p.get("paused"))} for p in pending],
                "changed": [p.get("activityId") for p in targets], "dry_run": dry_run},
        )

    def _pause_workflow(self, ns: str, workflow_id: str, op: str, dry_run: bool) -> Stage:
        """PauseWorkflowExecution: the whole workflow stops (timers, tasks); needs the server's
        frontend.WorkflowPauseEnabled, else Temporal answers UNIMPLEMENTED -> exit 7."""
        verb = "pause" if op == "pause" else "resume"
        info = self._describe(ns, workflow_id).get("workflowExecutionInfo") or {}
        status = mapping.temporal_status(info.get("status"))
        if status not in ("Running", "Paused"):
            raise ConflictError(f"saga '{workflow_id}' is already closed ({status}); nothing to {verb}")
        wanted = "Paused" if op == "pause" else "Running"
        if not dry_run and status != wanted:
            try:
                self.http.request("POST", self._wf(ns, workflow_id, f"/{op}"), retry=True, body={
                    "namespace": ns, "workflowId": workflow_id,
                    "runId": (info.get("execution") or {}).get("runId"),
                    "identity": self.identity, "reason": f"{verb} with pipelinectl", "requestId": str(uuid.uuid4())})
            except UnsupportedError as exc:
                raise UnsupportedError.verb(DRIVER, f"{verb} (workflow)", exc.message) from None
            status = mapping.temporal_status(
                (self._describe(ns, workflow_id).get("workflowExecutionInfo") or {}).get("status"))
        return Stage(pipeline=ns, name=workflow_id, state="paused" if status == "Paused" else "running",
                     details={"kind": "workflow", "scope": "workflow", "temporal_status": status,
                              "dry_run": dry_run})

    # -- status -----------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        """Counts by status, one stage per task queue (pollers, running workflows), oldest running."""
        ns = self.namespace_of(pipeline)
        base = f"/api/v1/namespaces/{seg(ns)}"
        scope = ""
        if self.workflow_types:
            scope = "WorkflowType IN (" + ", ".join(mapping.quote_value(t) for t in self.workflow_types) + ")"
        by_status: dict[str, int] = {}
        for name, n in self.count_by_status(SagaFilter(pipeline=ns, query=scope or None)).items():
            saga_status = mapping.SAGA_STATUS.get(name, name.lower())
            by_status[saga_status] = by_status.get(saga_status, 0) + n
        running_q = "ExecutionStatus = 'Running'" + (f" AND {scope}" if scope else "")
        now = datetime.now(UTC)
        oldest = []
        queues = list(self.task_queues)
        oldest_infos, complete = self._oldest_running(base, running_q, 5)
        for info in oldest_infos:
            started = parse_time(info.get("startTime"))
            oldest.append({"id": (info.get("execution") or {}).get("workflowId"),
                           "type": (info.get("type") or {}).get("name"),
                           "started_at": info.get("startTime"),
                           "age_seconds": round((now - started).total_seconds()) if started else None})
            if not self.task_queues and info.get("taskQueue") and info["taskQueue"] not in queues:
                queues.append(info["taskQueue"])
        stages = [self._queue_stage(ns, q, scope) for q in queues]
        return [Pipeline(
            name=ns,
            driver=DRIVER,
            stages=stages,
            sagas_in_flight=by_status.get("running", 0) + by_status.get("stuck", 0),
            sagas_by_status=by_status,
            details={"server_version": self.http.system_info().get("serverVersion"),
                     "oldest_running": oldest,
                     "oldest_running_complete": complete,  # False: more running than were scanned
                     "workflow_types": self.workflow_types or None},
        )]

    def _oldest_running(self, base: str, query: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """The `limit` oldest running workflows, and whether every running one was seen.

        ORDER BY where visibility supports it (Elasticsearch); SQL visibility cannot sort,
        so every page is read (keeping only the oldest) up to OLDEST_SCAN_CAP workflows.
        """
        try:
            page = self.http.request("GET", f"{base}/workflows",
                                     params={"query": query + " ORDER BY StartTime ASC", "pageSize": limit})
            return list(page.get("executions") or []), True
        except UsageError:
            pass
        import heapq

        oldest: list[dict[str, Any]] = []
        scanned = 0
        token: str | None = None
        while scanned < OLDEST_SCAN_CAP:
            params: dict[str, Any] = {"query": query, "pageSize": 1000}
            if token:
                params["nextPageToken"] = token
            page = self.http.request("GET", f"{base}/workflows", params=params)
            executions = page.get("executions") or []
            scanned += len(executions)
            oldest = heapq.nsmallest(limit, oldest + executions, key=lambda i: i.get("startTime") or "")
            token = page.get("nextPageToken")
            if not token:
                return oldest, True
        return oldest, False

    def limit(self, pipeline: str, stage: str, rate: RateLimit | None, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        """The rate limit of task queue `stage` (UpdateTaskQueueConfig, Temporal server 1.28+).

        The server dispatches at most that many activity tasks a second from the queue, to all its
        workers together (it overrides the workers' own limit); None puts back the default.
        """
        if rate is not None and rate.burst != default_burst(rate.per_second):
            raise UnsupportedError.verb(DRIVER, "limit --burst", "a Temporal task queue's rate limit has no burst")
        ns = self.namespace_of(pipeline)
        if not dry_run:
            update: dict[str, Any] = {"reason": "pipelinectl limit " + ("--clear" if rate is None else rate.rate)}
            if rate is not None:
                update["rateLimit"] = {"requestsPerSecond": rate.per_second}
            self.http.request("POST", f"/api/v1/namespaces/{seg(ns)}/task-queues/{seg(stage)}/update-config",
                              body={"namespace": ns, "taskQueue": stage, "taskQueueType": "TASK_QUEUE_TYPE_ACTIVITY",
                                    "identity": self.identity, "updateQueueRateLimit": update})
        view = self._queue_stage(ns, stage, "")
        if dry_run:
            view.rate_limit = rate
            view.details["dry_run"] = True
        return view

    @staticmethod
    def _queue_limit(config: dict[str, Any]) -> RateLimit | None:
        """The activity queue's rate limit set through the API, as a RateLimit (Temporal counts per second)."""
        rps = ((config.get("queueRateLimit") or {}).get("rateLimit") or {}).get("requestsPerSecond")
        if not rps:
            return None
        per_second = float(rps)
        return RateLimit(rate=f"{per_second:g}/s", per_second=per_second, burst=default_burst(per_second))

    def _queue_stage(self, ns: str, queue: str, scope: str) -> Stage:
        pollers: list[dict[str, Any]] = []
        backlog = 0
        limit = None
        try:
            for kind in ("TASK_QUEUE_TYPE_WORKFLOW", "TASK_QUEUE_TYPE_ACTIVITY"):
                activity = kind == "TASK_QUEUE_TYPE_ACTIVITY"
                params = {"taskQueueType": kind, "reportStats": "true"}
                if activity:
                    params["reportConfig"] = "true"
                data = self.http.request(
                    "GET", f"/api/v1/namespaces/{seg(ns)}/task-queues/{seg(queue)}", params=params)
                if activity:
                    limit = self._queue_limit(data.get("config") or {})
                for p in data.get("pollers") or []:
                    pollers.append({"identity": p.get("identity"), "type": kind.rsplit("_", 1)[-1].lower(),
                                    "last_access": p.get("lastAccessTime")})
                stats = data.get("stats") or {}
                backlog += int(stats.get("approximateBacklogCount") or 0)
        except NotFoundError:
            pass
        q = f"TaskQueue = {mapping.quote_value(queue)} AND ExecutionStatus = 'Running'"
        if scope:
            q += f" AND {scope}"
        running = int(self.http.request("GET", f"/api/v1/namespaces/{seg(ns)}/workflow-count",
                                        params={"query": q}).get("count") or 0)
        workers = sorted({p["identity"] for p in pollers if p.get("identity")})
        return Stage(pipeline=ns, name=queue, state="running", parallelism=len(workers),
                     in_flight=running, queue_depth=backlog, rate_limit=limit,
                     details={"kind": "task_queue", "workers": workers, "pollers": pollers,
                              "no_workers": not workers})
