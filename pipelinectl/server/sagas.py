"""The saga coordinator: forward steps with compensators, state and an event trail in SQLite.

Each state change is one transaction that also appends an event, so the trail
is the history and the row is the present. A saga is driven by the one
coordinator that holds its lease (`owner`, `lease_until`, renewed every
second); after a crash the lease runs out and the next coordinator resumes the
saga at its current step (steps run at least once: make them idempotent by
saga id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelinectl import model as m
from pipelinectl.errors import ConflictError, NotFoundError, UsageError

from . import audit
from .definition import SagaDef, Step, classify
from .rows import decode_token, encode_token, to_dt
from .store import Store, dumps, loads, now

log = logging.getLogger("pipelinectl.server")

LEASE = 5.0
TERMINAL = ("completed", "compensated", "failed", "cancelled")
ACTIVE = ("running", "compensating")
FORWARD_DONE = ("completed", "compensating", "compensated", "compensation_failed")
COMPENSABLE = ("completed", "compensating", "compensation_failed")  # forward done, not yet undone
UNFINISHED = ("pending", "running", "failed", "cancelled")
CANCELLABLE = ("running", "stuck")  # forward steps still to come


@dataclass
class SagaContext:
    """What a step or compensator receives. Return a dict from a step to merge it into `data`."""

    saga_id: str
    data: dict[str, Any]
    step: str
    attempt: int
    retries: int  # how many times an operator retried this saga


class SagaCoordinator:
    """Drives one pipeline's sagas; `instance` names this coordinator in the leases it holds."""

    def __init__(self, store: Store, pipeline: str, defs: dict[str, SagaDef], instance: str,
                 stopping: Callable[[], bool]) -> None:
        self.store = store
        self.pipeline = pipeline
        self.defs = defs
        self.instance = instance
        self.stopping = stopping
        self.running: dict[str, asyncio.Task] = {}

    def tasks(self) -> list[asyncio.Task]:
        return list(self.running.values())

    # bookkeeping ------------------------------------------------------------------------------------
    def _skip_pending(self, sid: str) -> None:
        """A closed saga shows its never-started steps as skipped, not as still to come."""
        self.store.update_saga_steps(sid, ("pending",), status="skipped")

    def _row(self, sid: str) -> Any:
        row = self.store.saga_row(self.pipeline, sid)
        if row is None:
            raise NotFoundError(f"saga {sid!r} not found in pipeline {self.pipeline!r}")
        return row

    def _claim(self, sid: str) -> bool:
        """Take the lease if nobody (alive) holds it: one coordinator per saga at a time.

        Taking over a lease another coordinator left to run out is recovering its saga after a crash:
        that goes into the audit trail, in the same transaction.
        """
        t = now()
        with self.store.tx():
            row = self.store.saga_row(self.pipeline, sid)
            claimed = self.store.claim_saga(sid, self.instance, t + LEASE, t)
            if claimed and row is not None and row["owner"] not in (None, self.instance):
                audit.record(self.store, "saga recover", pipeline=self.pipeline, target=sid, system=True,
                             arguments={"status": row["status"], "step_index": row["current"]},
                             reason="its coordinator's lease ran out (crashed or stopped)",
                             result=f"resumed {row['status']}")
            return claimed

    def _spawn(self, sid: str) -> None:
        if sid in self.running or self.stopping():
            return
        if self._claim(sid):
            task = asyncio.get_running_loop().create_task(self._run(sid), name=f"saga {sid}")
            self.running[sid] = task
            task.add_done_callback(lambda _t, sid=sid: self.running.pop(sid, None))

    def start_coordinator(self) -> None:
        self.tick()

    def tick(self) -> None:
        """Renew our leases; adopt active sagas whose owner's lease ran out (a crashed coordinator)."""
        t = now()
        if self.running:
            with self.store.tx():
                self.store.renew_leases(self.instance, t + LEASE, self.running)
        for sid in self.store.adoptable_sagas(self.pipeline, self.instance, t):
            self._spawn(sid)

    # starting ---------------------------------------------------------------------------------------
    def start(self, definition: str, sid: str, data: Any = None) -> str:
        d = self.defs.get(definition)
        if d is None:
            raise ValueError(f"unknown saga definition {definition!r}")
        t = now()
        with self.store.tx():
            fresh = self.store.add_saga(sid, self.pipeline, definition, data or {}, [s.name for s in d.steps], t)
            if fresh:
                self.store.saga_event(sid, "saga_started", message=f"definition {definition}")
        if fresh:
            self._spawn(sid)
        return sid

    # driving ----------------------------------------------------------------------------------------
    async def _run(self, sid: str) -> None:
        try:
            while not self.stopping():
                row = self._row(sid)
                steps = self.defs[row["definition"]].steps
                if row["status"] == "running":
                    if row["current"] >= len(steps):
                        with self.store.tx():
                            self.store.update_saga(sid, status="completed", closed_at=now(), owner=None)
                            self.store.saga_event(sid, "saga_completed")
                        return
                    if not await self._forward(row, row["current"], steps[row["current"]]):
                        return
                elif row["status"] == "compensating":
                    await self._compensate(row, steps)
                    return
                else:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in the coordinator: leave the saga for the next lease holder
            log.exception("saga %s: coordinator error", sid)
        finally:
            try:
                with self.store.tx():
                    self.store.release_saga(sid, self.instance)
            except Exception:  # store closed at shutdown: the lease simply expires
                pass

    async def _forward(self, row: Any, idx: int, step: Step) -> bool:
        sid = row["id"]
        data = loads(row["data"]) or {}
        attempt = 0
        while True:
            attempt += 1
            with self.store.tx():
                self.store.start_saga_step(sid, idx, now())
                self.store.update_saga(sid)
                self.store.saga_event(sid, "step_started", step.name, f"attempt {attempt}")
            ctx = SagaContext(sid, data, step.name, attempt, row["retries"])
            try:
                result = await step.action(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind, message = classify(exc), (str(exc) or type(exc).__name__)[:500]
                if kind == "transient" and attempt < step.retry.max_attempts:
                    with self.store.tx():
                        self.store.update_saga_step(sid, idx, error=message)
                        self.store.saga_event(sid, "step_retrying", step.name, message)
                    await asyncio.sleep(step.retry.delay(attempt))
                    continue
                with self.store.tx():
                    self.store.update_saga_step(sid, idx, status="failed", error=message, finished_at=now())
                    if kind == "transient":
                        self.store.update_saga(sid, status="stuck", last_error=message, owner=None)
                        self.store.saga_event(sid, "saga_stuck", step.name,
                                    f"retries exhausted after {attempt} attempts: {message}")
                        audit.record(self.store, "saga stuck", pipeline=self.pipeline, target=sid, system=True,
                                     arguments={"step": step.name, "attempts": attempt},
                                     reason="retries exhausted", result=message[:200])
                    else:
                        self.store.update_saga(sid, status="compensating", phase="compensate", last_error=message)
                        self.store.saga_event(sid, "step_failed", step.name, message)
                return kind != "transient"
            if isinstance(result, dict):
                data.update(result)
            with self.store.tx():
                self.store.update_saga_step(sid, idx, status="completed", finished_at=now(), error=None)
                self.store.update_saga(sid, current=idx + 1, data=dumps(data))
                self.store.saga_event(sid, "step_completed", step.name)
            return True

    async def _compensate(self, row: Any, steps: list[Step]) -> None:
        sid = row["id"]
        data = loads(row["data"]) or {}
        done = self.store.saga_steps(sid, COMPENSABLE, newest_first=True)
        for r in done:
            idx, step = r["idx"], steps[r["idx"]]
            if step.compensate is None:
                with self.store.tx():
                    self.store.update_saga_step(sid, idx, compensation="none")
                continue
            attempt = 0
            while True:
                attempt += 1
                with self.store.tx():
                    self.store.update_saga_step(sid, idx, status="compensating", compensation="running")
                    self.store.update_saga(sid)
                    self.store.saga_event(sid, "compensation_started", step.name, f"attempt {attempt}")
                try:
                    await step.compensate(SagaContext(sid, data, step.name, attempt, row["retries"]))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    message = (str(exc) or type(exc).__name__)[:500]
                    if classify(exc) == "transient" and attempt < step.retry.max_attempts:
                        await asyncio.sleep(step.retry.delay(attempt))
                        continue
                    with self.store.tx():
                        self._skip_pending(sid)
                        self.store.update_saga_step(sid, idx, status="compensation_failed", compensation="failed", error=message)
                        self.store.update_saga(sid, status="failed", last_error=f"compensation of {step.name} failed: {message}",
                                     closed_at=now(), owner=None)
                        self.store.saga_event(sid, "compensation_failed", step.name, message)
                        self.store.saga_event(sid, "saga_failed", message="a compensation failed; operator action needed")
                    return
                with self.store.tx():
                    self.store.update_saga_step(sid, idx, status="compensated", compensation="compensated")
                    self.store.saga_event(sid, "step_compensated", step.name)
                break
        forced_empty = row["phase"] == "force-fail" and not done
        with self.store.tx():
            self._skip_pending(sid)
            status = "failed" if forced_empty else "cancelled" if row["phase"] == "cancel" else "compensated"
            self.store.update_saga(sid, status=status, closed_at=now(), owner=None)
            self.store.saga_event(sid, f"saga_{status}",
                        message="nothing to compensate" if forced_empty or not done
                        else "completed steps compensated in reverse")

    async def _cancel(self, sid: str) -> None:
        task = self.running.pop(sid, None)
        if task is not None:
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: B036 - the cancelled task's outcome is not ours to report
                pass

    async def _settle(self, sid: str, timeout: float) -> None:
        task = self.running.get(sid)
        if task is not None:
            await asyncio.wait([task], timeout=timeout)

    # operator verbs ---------------------------------------------------------------------------------
    def _need_reason(self, reason: str | None) -> str:
        if not reason or not reason.strip():
            raise UsageError("a reason is required", hint="say why, e.g. --reason 'INC-123: customer cancelled'")
        return reason.strip()

    def _not_terminal(self, row: Any, verb: str) -> None:
        if row["status"] in TERMINAL:
            raise ConflictError(f"saga {row['id']!r} is {row['status']}; {verb} needs a saga that is not finished",
                                detail={"status": row["status"]})

    def _dry(self, sid: str, status: str, would: str, **extra: Any) -> m.Saga:
        """A dry run's answer: the saga as the action would leave it (`status`), what it would do
        (`details.would`) and the status it has now (`details.status_before`). Nothing is written."""
        view = self.get(sid)
        view.details.update({"dry_run": True, "would": would, "status_before": view.status, **extra})
        view.status = status
        return view

    async def force_fail(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        row = self._row(sid)
        reason = self._need_reason(reason)
        self._not_terminal(row, "force-fail")
        if dry_run:
            names = [r["name"] for r in self.store.saga_steps(sid, COMPENSABLE, newest_first=True)]
            if not names:
                return self._dry(sid, "failed", "end it failed: no completed step to compensate", compensate=names)
            return self._dry(sid, "compensating", f"compensate {', '.join(names)} (in reverse), then end compensated",
                             compensate=names)
        await self._cancel(sid)
        with self.store.tx():
            self.store.update_saga_steps(sid, ("running",), status="cancelled", finished_at=now())
            self.store.update_saga(sid, status="compensating", phase="force-fail", last_error=f"force-failed: {reason}",
                         owner=None)
            self.store.saga_event(sid, "force_fail", message=reason)
            self._audit("saga force-fail", sid, row, reason, "compensating")
        self._spawn(sid)
        await self._settle(sid, 5.0)
        return self.get(sid)

    async def retry(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        row = self._row(sid)
        if row["status"] not in ("stuck", "failed"):
            raise ConflictError(f"saga {sid!r} is {row['status']}; retry needs a stuck or failed saga",
                                detail={"status": row["status"]})
        comp_failed = len(self.store.saga_steps(sid, ("compensation_failed",)))
        if dry_run:
            if comp_failed:
                return self._dry(sid, "compensating", "resume compensation")
            view = self.get(sid, row=row)
            step = f"step {view.current_step}" if view.current_step else "the current step"
            return self._dry(sid, "running", f"run it again from {step}")
        with self.store.tx():
            if comp_failed:
                self.store.update_saga_steps(sid, ("compensation_failed",), status="completed", compensation="failed")
                self.store.update_saga(sid, status="compensating", retries=row["retries"] + 1, closed_at=None, owner=None)
            else:
                self.store.update_saga(sid, status="running", phase="forward", retries=row["retries"] + 1, closed_at=None,
                             owner=None)
                self.store.update_saga_steps(sid, ("failed", "cancelled", "running", "skipped"), from_idx=row["current"],
                                             status="pending", error=None)
            self.store.saga_event(sid, "retry", message=(reason or "").strip() or None)
            self._audit("saga retry", sid, row, (reason or "").strip() or None,
                        "compensating" if comp_failed else "running")
        self._spawn(sid)
        return self.get(sid)

    async def force_complete(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        row = self._row(sid)
        reason = self._need_reason(reason)
        self._not_terminal(row, "force-complete")
        if dry_run:
            names = [r["name"] for r in self.store.saga_steps(sid, UNFINISHED)]
            would = f"skip {', '.join(names)} and mark it completed" if names else "mark it completed"
            return self._dry(sid, "completed", would, skip=names)
        await self._cancel(sid)
        with self.store.tx():
            self.store.update_saga_steps(sid, UNFINISHED, status="skipped", finished_at=now())
            n = len(self.store.saga_steps(sid))
            self.store.update_saga(sid, status="completed", current=n, closed_at=now(), owner=None)
            self.store.saga_event(sid, "force_complete", message=reason)
            self._audit("saga force-complete", sid, row, reason, "completed")
        return self.get(sid)

    async def cancel(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        """Graceful: no further forward step; the completed ones are compensated in reverse; ends cancelled.

        One transaction moves it to compensating with phase `cancel`, so a crash right after resumes the
        compensation (the next lease holder runs it) and still ends cancelled.
        """
        row = self._row(sid)
        reason = self._need_reason(reason)
        if row["status"] not in CANCELLABLE:
            raise ConflictError(f"saga {sid!r} is {row['status']}; cancel needs a running or stuck saga",
                                detail={"status": row["status"]})
        names = [r["name"] for r in self.store.saga_steps(sid, COMPENSABLE, newest_first=True)]
        if dry_run:
            would = (f"stop, compensate {', '.join(names)} (in reverse), then end cancelled" if names
                     else "stop and end cancelled: no completed step to compensate")
            return self._dry(sid, "compensating" if names else "cancelled", would, compensate=names)
        await self._cancel(sid)
        with self.store.tx():
            self.store.update_saga_steps(sid, ("running",), status="cancelled", finished_at=now())
            self.store.update_saga(sid, status="compensating", phase="cancel", last_error=f"cancelled: {reason}",
                                   owner=None)
            self.store.saga_event(sid, "cancel", message=reason)
            self._audit("saga cancel", sid, row, reason, "compensating", compensate=names)
        self._spawn(sid)
        await self._settle(sid, 5.0)
        return self.get(sid)

    async def advance(self, sid: str, step: str, reason: str | None, result: Any = None,
                      dry_run: bool = False) -> m.Saga:
        """An operator did the current step by hand: record it done with `result` and go on with the next.

        A dict result merges into the saga's data as the step's own return value would. Refused (409)
        unless the saga is running or stuck and `step` is its current step.
        """
        reason = self._need_reason(reason)
        row = self._check_advance(self._row(sid), step)
        steps = self.defs[row["definition"]].steps
        following = steps[row["current"] + 1].name if row["current"] + 1 < len(steps) else None
        if dry_run:
            would = f"record step {step} done by hand, then " + (f"go on with {following}" if following
                                                                 else "complete the saga")
            return self._dry(sid, "running", would, step=step, next_step=following)
        await self._cancel(sid)
        try:  # it may have moved on while its step was being stopped
            row = self._check_advance(self._row(sid), step)
        except ConflictError:
            self._spawn(sid)  # drive it on as before
            raise
        idx = row["current"]
        data = loads(row["data"]) or {}
        if isinstance(result, dict):
            data.update(result)
        shown = dumps(result)
        with self.store.tx():
            self.store.update_saga_step(sid, idx, status="completed", finished_at=now(), error=None)
            self.store.update_saga(sid, status="running", phase="forward", current=idx + 1, data=dumps(data),
                                   last_error=None, closed_at=None, owner=None)
            caller = audit.current_actor()
            self.store.saga_event(sid, "step_advanced", step,
                                  f"advanced by operator {caller}: {reason}; result {shown[:300]}")
            self._audit("saga advance", sid, row, reason, f"step {step} done, next {following or '(end)'}",
                        step=step, result=result)
        self._spawn(sid)
        return self.get(sid)

    def _check_advance(self, row: Any, step: str) -> Any:
        sid, status = row["id"], row["status"]
        if status not in CANCELLABLE:
            raise ConflictError(f"saga {sid!r} is {status}; advance needs a running or stuck saga",
                                detail={"status": status})
        names = [s["name"] for s in self.store.saga_steps(sid)]
        current = names[row["current"]] if row["current"] < len(names) else None
        if step != current:
            raise ConflictError(f"step {step!r} is not the current step of saga {sid!r} (it is {current!r}); "
                                "nothing was changed", detail={"status": status, "current_step": current})
        return row

    def _audit(self, verb: str, sid: str, row: Any, reason: str | None, outcome: str, **arguments: Any) -> None:
        audit.record(self.store, verb, pipeline=self.pipeline, target=sid, reason=reason,
                     arguments={"status_before": row["status"], **arguments}, result=outcome)

    # views --------------------------------------------------------------------------------------------
    def get(self, sid: str, full: bool = True, row: Any = None) -> m.Saga:
        row = row if row is not None else self._row(sid)
        steps = self.store.saga_steps(row["id"])
        current = steps[row["current"]]["name"] if row["current"] < len(steps) else None
        saga = m.Saga(
            id=row["id"], pipeline=row["pipeline"], definition=row["definition"], status=row["status"],
            current_step=current if row["status"] not in ("completed", "compensated") else None,
            completed_steps=[s["name"] for s in steps if s["status"] in FORWARD_DONE],
            last_error=row["last_error"], started_at=to_dt(row["started_at"]), updated_at=to_dt(row["updated_at"]),
            closed_at=to_dt(row["closed_at"]),
            details={"phase": row["phase"], "retries": row["retries"], "data": loads(row["data"]) or {}},
        )
        if full:
            saga.steps = [m.SagaStep(name=s["name"], status=s["status"], attempts=s["attempts"],
                                     started_at=to_dt(s["started_at"]), finished_at=to_dt(s["finished_at"]),
                                     error=s["error"], compensation=s["compensation"]) for s in steps]
            saga.events = [m.SagaEvent(seq=e["seq"], time=to_dt(e["time"]), type=e["type"], step=e["step"],
                                       message=e["message"])
                           for e in self.store.saga_events(row["id"])]
        return saga

    def list(self, status: str | None, definition: str | None, page_size: int,
             page_token: str | None) -> tuple[list[m.Saga], str | None, int]:
        total = self.store.saga_total(self.pipeline, status, definition)
        before = decode_token(page_token) or (1 << 62)
        rows = self.store.saga_page(self.pipeline, status, definition, before, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1]["rid"]) if more and rows else None
        return [self.get(r["id"], full=False, row=r) for r in rows], token, total
