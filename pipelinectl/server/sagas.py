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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelinectl import model as m
from pipelinectl.errors import ConflictError, NotFoundError, UsageError

from .store import dumps, loads, now

if TYPE_CHECKING:
    from .runtime import PipelineRuntime, Step

log = logging.getLogger("pipelinectl.server")

LEASE = 5.0
TERMINAL = ("completed", "compensated", "failed")
ACTIVE = ("running", "compensating")
FORWARD_DONE = ("completed", "compensating", "compensated", "compensation_failed")


@dataclass
class SagaContext:
    """What a step or compensator receives. Return a dict from a step to merge it into `data`."""

    saga_id: str
    data: dict[str, Any]
    step: str
    attempt: int
    retries: int  # how many times an operator retried this saga


class SagaCoordinator:
    def __init__(self, pipeline: PipelineRuntime) -> None:
        self.p = pipeline
        self.store = pipeline.store
        self.defs = pipeline.spec.sagas
        self.running: dict[str, asyncio.Task] = {}

    def tasks(self) -> list[asyncio.Task]:
        return list(self.running.values())

    # bookkeeping ------------------------------------------------------------------------------------
    def _event(self, sid: str, type_: str, step: str | None = None, message: str | None = None) -> None:
        seq = self.store.scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_events WHERE saga_id=?", (sid,))
        self.store.run("INSERT INTO saga_events(saga_id, seq, time, type, step, message) VALUES (?,?,?,?,?,?)",
                       (sid, seq, now(), type_, step, message))

    def _update(self, sid: str, **cols: Any) -> None:
        cols["updated_at"] = now()
        sets = ", ".join(f"{k}=?" for k in cols)
        self.store.run(f"UPDATE sagas SET {sets} WHERE id=?", [*cols.values(), sid])

    def _step_update(self, sid: str, idx: int, **cols: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in cols)
        self.store.run(f"UPDATE saga_steps SET {sets} WHERE saga_id=? AND idx=?", [*cols.values(), sid, idx])

    def _skip_pending(self, sid: str) -> None:
        """A closed saga shows its never-started steps as skipped, not as still to come."""
        self.store.run("UPDATE saga_steps SET status='skipped' WHERE saga_id=? AND status='pending'", (sid,))

    def _row(self, sid: str) -> Any:
        row = self.store.one("SELECT * FROM sagas WHERE id=? AND pipeline=?", (sid, self.p.name))
        if row is None:
            raise NotFoundError(f"saga {sid!r} not found in pipeline {self.p.name!r}")
        return row

    def _claim(self, sid: str) -> bool:
        """Take the lease if nobody (alive) holds it: one coordinator per saga at a time."""
        t = now()
        with self.store.tx():
            cur = self.store.run(
                "UPDATE sagas SET owner=?, lease_until=? WHERE id=? AND status IN ('running','compensating') "
                "AND (owner IS NULL OR owner=? OR lease_until<?)",
                (self.p.runtime.instance, t + LEASE, sid, self.p.runtime.instance, t),
            )
        return cur.rowcount == 1

    def _spawn(self, sid: str) -> None:
        if sid in self.running or self.p.stopping:
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
                self.store.db.executemany("UPDATE sagas SET lease_until=? WHERE id=? AND owner=?",
                                          [(t + LEASE, sid, self.p.runtime.instance) for sid in self.running])
        rows = self.store.all(
            "SELECT id FROM sagas WHERE pipeline=? AND status IN ('running','compensating') "
            "AND (owner IS NULL OR lease_until<? OR owner=?) LIMIT 200",
            (self.p.name, t, self.p.runtime.instance),
        )
        for row in rows:
            self._spawn(row["id"])

    # starting ---------------------------------------------------------------------------------------
    def start(self, definition: str, sid: str, data: Any = None) -> str:
        d = self.defs.get(definition)
        if d is None:
            raise ValueError(f"unknown saga definition {definition!r}")
        t = now()
        with self.store.tx():
            fresh = self.store.run(
                "INSERT OR IGNORE INTO sagas(id, pipeline, definition, status, data, started_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (sid, self.p.name, definition, "running", dumps(data or {}), t, t),
            ).rowcount == 1
            if fresh:
                self.store.db.executemany(
                    "INSERT INTO saga_steps(saga_id, idx, name, status) VALUES (?,?,?,'pending')",
                    [(sid, i, s.name) for i, s in enumerate(d.steps)],
                )
                self._event(sid, "saga_started", message=f"definition {definition}")
        if fresh:
            self._spawn(sid)
        return sid

    # driving ----------------------------------------------------------------------------------------
    async def _run(self, sid: str) -> None:
        try:
            while not self.p.stopping:
                row = self._row(sid)
                steps = self.defs[row["definition"]].steps
                if row["status"] == "running":
                    if row["current"] >= len(steps):
                        with self.store.tx():
                            self._update(sid, status="completed", closed_at=now(), owner=None)
                            self._event(sid, "saga_completed")
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
                    self.store.run("UPDATE sagas SET owner=NULL WHERE id=? AND owner=?", (sid, self.p.runtime.instance))
            except Exception:  # store closed at shutdown: the lease simply expires
                pass

    async def _forward(self, row: Any, idx: int, step: Step) -> bool:
        from .runtime import classify

        sid = row["id"]
        data = loads(row["data"]) or {}
        attempt = 0
        while True:
            attempt += 1
            with self.store.tx():
                self.store.run(
                    "UPDATE saga_steps SET status='running', attempts=attempts+1, "
                    "started_at=COALESCE(started_at, ?) WHERE saga_id=? AND idx=?", (now(), sid, idx))
                self._update(sid)
                self._event(sid, "step_started", step.name, f"attempt {attempt}")
            ctx = SagaContext(sid, data, step.name, attempt, row["retries"])
            try:
                result = await step.action(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind, message = classify(exc), (str(exc) or type(exc).__name__)[:500]
                if kind == "transient" and attempt < step.retry.max_attempts:
                    with self.store.tx():
                        self._step_update(sid, idx, error=message)
                        self._event(sid, "step_retrying", step.name, message)
                    await asyncio.sleep(step.retry.delay(attempt))
                    continue
                with self.store.tx():
                    self._step_update(sid, idx, status="failed", error=message, finished_at=now())
                    if kind == "transient":
                        self._update(sid, status="stuck", last_error=message, owner=None)
                        self._event(sid, "saga_stuck", step.name,
                                    f"retries exhausted after {attempt} attempts: {message}")
                    else:
                        self._update(sid, status="compensating", phase="compensate", last_error=message)
                        self._event(sid, "step_failed", step.name, message)
                return kind != "transient"
            if isinstance(result, dict):
                data.update(result)
            with self.store.tx():
                self._step_update(sid, idx, status="completed", finished_at=now(), error=None)
                self._update(sid, current=idx + 1, data=dumps(data))
                self._event(sid, "step_completed", step.name)
            return True

    async def _compensate(self, row: Any, steps: list[Step]) -> None:
        from .runtime import classify

        sid = row["id"]
        data = loads(row["data"]) or {}
        done = self.store.all("SELECT idx, status FROM saga_steps WHERE saga_id=? AND status IN "
                              "('completed','compensating','compensation_failed') ORDER BY idx DESC", (sid,))
        for r in done:
            idx, step = r["idx"], steps[r["idx"]]
            if step.compensate is None:
                with self.store.tx():
                    self._step_update(sid, idx, compensation="none")
                continue
            attempt = 0
            while True:
                attempt += 1
                with self.store.tx():
                    self._step_update(sid, idx, status="compensating", compensation="running")
                    self._update(sid)
                    self._event(sid, "compensation_started", step.name, f"attempt {attempt}")
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
                        self._step_update(sid, idx, status="compensation_failed", compensation="failed", error=message)
                        self._update(sid, status="failed", last_error=f"compensation of {step.name} failed: {message}",
                                     closed_at=now(), owner=None)
                        self._event(sid, "compensation_failed", step.name, message)
                        self._event(sid, "saga_failed", message="a compensation failed; operator action needed")
                    return
                with self.store.tx():
                    self._step_update(sid, idx, status="compensated", compensation="compensated")
                    self._event(sid, "step_compensated", step.name)
                break
        forced_empty = row["phase"] == "force-fail" and not done
        with self.store.tx():
            self._skip_pending(sid)
            status = "failed" if forced_empty else "compensated"
            self._update(sid, status=status, closed_at=now(), owner=None)
            self._event(sid, f"saga_{status}",
                        message="nothing to compensate" if forced_empty else "completed steps compensated in reverse")

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
            names = [r["name"] for r in self.store.all(
                "SELECT name FROM saga_steps WHERE saga_id=? AND status IN ('completed','compensating','compensation_failed') "
                "ORDER BY idx DESC", (sid,))]
            if not names:
                return self._dry(sid, "failed", "end it failed: no completed step to compensate", compensate=names)
            return self._dry(sid, "compensating", f"compensate {', '.join(names)} (in reverse), then end compensated",
                             compensate=names)
        await self._cancel(sid)
        with self.store.tx():
            self.store.run("UPDATE saga_steps SET status='cancelled', finished_at=? WHERE saga_id=? AND status='running'",
                           (now(), sid))
            self._update(sid, status="compensating", phase="force-fail", last_error=f"force-failed: {reason}",
                         owner=None)
            self._event(sid, "force_fail", message=reason)
        self._spawn(sid)
        await self._settle(sid, 5.0)
        return self.get(sid)

    async def retry(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        row = self._row(sid)
        if row["status"] not in ("stuck", "failed"):
            raise ConflictError(f"saga {sid!r} is {row['status']}; retry needs a stuck or failed saga",
                                detail={"status": row["status"]})
        comp_failed = self.store.scalar(
            "SELECT COUNT(*) FROM saga_steps WHERE saga_id=? AND status='compensation_failed'", (sid,))
        if dry_run:
            if comp_failed:
                return self._dry(sid, "compensating", "resume compensation")
            view = self.get(sid, row=row)
            step = f"step {view.current_step}" if view.current_step else "the current step"
            return self._dry(sid, "running", f"run it again from {step}")
        with self.store.tx():
            if comp_failed:
                self.store.run("UPDATE saga_steps SET status='completed', compensation='failed' "
                               "WHERE saga_id=? AND status='compensation_failed'", (sid,))
                self._update(sid, status="compensating", retries=row["retries"] + 1, closed_at=None, owner=None)
            else:
                self._update(sid, status="running", phase="forward", retries=row["retries"] + 1, closed_at=None,
                             owner=None)
                self.store.run("UPDATE saga_steps SET status='pending', error=NULL WHERE saga_id=? AND idx>=? "
                               "AND status IN ('failed','cancelled','running','skipped')", (sid, row["current"]))
            self._event(sid, "retry", message=(reason or "").strip() or None)
        self._spawn(sid)
        return self.get(sid)

    async def force_complete(self, sid: str, reason: str | None, dry_run: bool = False) -> m.Saga:
        row = self._row(sid)
        reason = self._need_reason(reason)
        self._not_terminal(row, "force-complete")
        if dry_run:
            names = [r["name"] for r in self.store.all(
                "SELECT name FROM saga_steps WHERE saga_id=? AND status IN ('pending','running','failed','cancelled') "
                "ORDER BY idx", (sid,))]
            would = f"skip {', '.join(names)} and mark it completed" if names else "mark it completed"
            return self._dry(sid, "completed", would, skip=names)
        await self._cancel(sid)
        with self.store.tx():
            self.store.run("UPDATE saga_steps SET status='skipped', finished_at=? WHERE saga_id=? "
                           "AND status IN ('pending','running','failed','cancelled')", (now(), sid))
            n = self.store.scalar("SELECT COUNT(*) FROM saga_steps WHERE saga_id=?", (sid,))
            self._update(sid, status="completed", current=n, closed_at=now(), owner=None)
            self._event(sid, "force_complete", message=reason)
        return self.get(sid)

    # views --------------------------------------------------------------------------------------------
    def get(self, sid: str, full: bool = True, row: Any = None) -> m.Saga:
        from .runtime import to_dt

        row = row if row is not None else self._row(sid)
        steps = self.store.all("SELECT * FROM saga_steps WHERE saga_id=? ORDER BY idx", (row["id"],))
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
                           for e in self.store.all("SELECT * FROM saga_events WHERE saga_id=? ORDER BY seq",
                                                   (row["id"],))]
        return saga

    def list(self, status: str | None, definition: str | None, page_size: int,
             page_token: str | None) -> tuple[list[m.Saga], str | None, int]:
        from .runtime import decode_token, encode_token

        where, args = ["pipeline=?"], [self.p.name]
        if status:
            where.append("status=?")
            args.append(status)
        if definition:
            where.append("definition=?")
            args.append(definition)
        cond = " AND ".join(where)
        total = self.store.scalar(f"SELECT COUNT(*) FROM sagas WHERE {cond}", args)
        before = decode_token(page_token) or (1 << 62)
        rows = self.store.all(f"SELECT rowid AS rid, * FROM sagas WHERE {cond} AND rowid<? ORDER BY rowid DESC LIMIT ?",
                              [*args, before, page_size + 1])
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1]["rid"]) if more and rows else None
        return [self.get(r["id"], full=False, row=r) for r in rows], token, total
