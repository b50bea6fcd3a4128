"""The pipeline verbs: what the control-plane API does to one pipeline.

Status views, the stage verbs (pause, resume, drain, scale, limit, disable,
enable: version checks and dry runs here, the change itself in the scheduler),
replay jobs (of an input range, or of the items a disabled stage bypassed), and
the DLQ (list, show, redrive, purge). Sagas have their own verbs in `sagas.py`.

A disabled stage lets the pipeline flow without it; pause, resume and drain
would each mean something else for it, so they are refused (409) until it is
enabled. Scale and limit are settings it keeps for when it is enabled again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pipelinectl import model as m
from pipelinectl.errors import ConflictError, NotFoundError, StaleVersionError, UnprocessableError, UsageError
from pipelinectl.rates import rate_limit

from . import audit
from .definition import Pipeline
from .rows import decode_token, dlq_id, dlq_item, encode_token, parse_dlq_id, replay_job, to_ts
from .sagas import SagaCoordinator
from .scheduler import Scheduler, StageRuntime, Work
from .store import DLQQuery, Store, loads, now

log = logging.getLogger("pipelinectl.server")
DONE = {"redrive": "redriven", "purge": "purged"}  # a bulk DLQ verb's result, as the audit trail words it


class PipelineRuntime:
    """One running pipeline: its scheduler, its saga coordinator, and the verbs the API calls on it."""

    def __init__(self, store: Store, spec: Pipeline, instance: str, stopping: Callable[[], bool]) -> None:
        self.spec = spec
        self.name = spec.name
        self.store = store
        self._stopping = stopping
        self.sagas = SagaCoordinator(store, spec.name, spec.sagas, instance, stopping)
        self.scheduler = Scheduler(spec.name, spec.stages, store, stopping, self.sagas.start)
        self.stages = self.scheduler.stages
        self.by_name = self.scheduler.by_name
        self.replays: dict[str, asyncio.Task] = {}

    @property
    def stopping(self) -> bool:
        return self._stopping()

    @property
    def next_offset(self) -> int:
        return self.scheduler.next_offset

    def start(self) -> None:
        for hook in self.spec.start_hooks:
            hook(self.view)
        self.scheduler.start(self.spec.source_fn)
        for job_id in self.store.active_replays(self.name):
            self._spawn_replay(job_id)
        self.sagas.start_coordinator()

    def stop(self) -> list[asyncio.Task]:
        """Begin stopping: workers leave once idle, source and replays are cancelled; the tasks to await."""
        replays = list(self.replays.values())
        for task in replays:
            task.cancel()
        return self.scheduler.stop() + replays + self.sagas.tasks()

    def tick(self) -> None:
        self.scheduler.tick()
        self.sagas.tick()

    async def ingest(self, key: str, payload: Any) -> int:
        return await self.scheduler.ingest(key, payload)

    # lookups and views ------------------------------------------------------------------------------------
    def stage(self, name: str) -> StageRuntime:
        st = self.by_name.get(name)
        if st is None:
            raise NotFoundError(f"stage {name!r} not found in pipeline {self.name!r}",
                                detail={"pipeline": self.name, "stage": name})
        return st

    def dlq_count(self, stage: str | None = None) -> int:
        return self.store.dlq_count(self.name, stage)

    def view(self) -> m.Pipeline:
        per_stage = self.store.dlq_count_by_stage(self.name)
        bypassed = self.store.bypassed_count_by_stage(self.name)
        by_status = self.store.saga_count_by_status(self.name)
        return m.Pipeline(
            name=self.name,
            stages=[st.view(per_stage.get(st.name, 0), bypassed.get(st.name, 0)) for st in self.stages],
            input_offset=self.next_offset,
            dlq_size=sum(per_stage.values()),
            sagas_in_flight=sum(by_status.get(s, 0) for s in ("running", "compensating", "stuck")),
            sagas_by_status=by_status,
            driver="http",
            details={"saga_definitions": sorted(self.spec.sagas)},
        )

    # stage verbs ----------------------------------------------------------------------------------------
    def _check_version(self, st: StageRuntime, if_match: int | None) -> None:
        if if_match is not None and if_match != st.version:
            raise StaleVersionError(
                f"stage {st.name!r} changed since you read it: it is now {st.state} with parallelism "
                f"{st.parallelism} (version {st.version}, you sent {if_match}); nothing was changed",
                hint="re-read the stage and retry",
                detail={"current_version": st.version, "current": st.view().to_dict()},
            )

    def _preview(self, st: StageRuntime, **changes: Any) -> m.Stage:
        view = st.view()
        for k, v in changes.items():
            setattr(view, k, v)
        view.details["dry_run"] = True
        return view

    def _not_disabled(self, st: StageRuntime, verb: str) -> None:
        if st.state == "disabled":
            raise ConflictError(f"stage {st.name!r} is disabled ({st.note}); {verb} does not apply to a disabled "
                                "stage; enable it first", detail={"state": st.state, "reason": st.note})

    def _change(self, st: StageRuntime, verb: str, arguments: dict[str, Any], *, reason: str | None = None,
                **changes: Any) -> m.Stage:
        """A stage verb's change (none: it already holds) and its audit entry, in one transaction."""
        with self.store.tx():
            if changes:
                st.change(**changes)
            limit = f", limit {st.rate_limit.rate} (burst {st.rate_limit.burst})" if st.rate_limit else ""
            result = f"{st.state}, parallelism {st.parallelism}{limit}, version {st.version}"
            audit.record(self.store, verb, pipeline=self.name, target=st.name, arguments=arguments, reason=reason,
                         result=result + ("" if changes else " (unchanged)"))
        return st.view()

    def pause(self, name: str, until: datetime | None = None, *, if_match: int | None = None,
              dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        self._not_disabled(st, "pause")
        until_ts = to_ts(until)
        if until_ts is not None and until_ts <= now():
            raise UnprocessableError("'until' must be in the future", detail={"until": m.format_time(until)})
        if dry_run:
            return self._preview(st, state="paused", paused_until=until)
        changes = {}
        if st.state != "paused" or st.paused_until != until_ts:
            changes = dict(state="paused", paused_until=until_ts, note="paused by operator")
        return self._change(st, "pause", {"until": m.format_time(until)} if until else {}, **changes)

    def resume(self, name: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        self._not_disabled(st, "resume")
        if dry_run:
            return self._preview(st, state="running", paused_until=None)
        return self._change(st, "resume", {}, **({"state": "running"} if st.state != "running" else {}))

    def drain(self, name: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        self._not_disabled(st, "drain")
        if dry_run:
            return self._preview(st, state=st.state if st.state == "paused" else "draining")
        return self._change(st, "drain", {}, **({"state": "draining"} if st.state == "running" else {}))

    def scale(self, name: str, parallelism: int, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        lo, hi = st.spec.min_parallelism, st.spec.max_parallelism
        if not lo <= parallelism <= hi:
            raise UnprocessableError(f"parallelism {parallelism} is outside [{lo}, {hi}] for stage {name!r}",
                                     detail={"min_parallelism": lo, "max_parallelism": hi, "parallelism": parallelism})
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, parallelism=parallelism)
        return self._change(st, "scale", {"parallelism": parallelism},
                            **({"parallelism": parallelism} if parallelism != st.parallelism else {}))

    def limit(self, name: str, rate: str | None, burst: int | None = None, *, if_match: int | None = None,
              dry_run: bool = False) -> m.Stage:
        """Set the stage's rate limit (`rate` None: clear it), live; the runtime keeps it across restarts."""
        st = self.stage(name)
        if rate is None and burst is not None:
            raise UnprocessableError("burst goes with a rate; to clear the limit send rate null alone")
        try:
            limit = None if rate is None else rate_limit(rate, burst, option="rate")
        except UsageError as exc:  # well-formed JSON, but not a rate: 422, as the document says
            raise UnprocessableError(exc.message, hint=exc.hint) from None
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, rate_limit=limit)
        arguments = {"rate": limit.rate, "burst": limit.burst} if limit else {"clear": True}
        return self._change(st, "limit", arguments, **({"rate_limit": limit} if limit != st.rate_limit else {}))

    def disable(self, name: str, reason: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        """Bypass the stage: queued and new items flow on unprocessed, each recorded for `replay_skipped`."""
        st = self.stage(name)
        reason = reason.strip()
        if not reason:
            raise UsageError("reason must not be blank")
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, state="disabled", paused_until=None, disabled_reason=reason)
        changes = dict(state="disabled", note=reason) if st.state != "disabled" or st.note != reason else {}
        return self._change(st, "disable", {}, reason=reason, **changes)

    def enable(self, name: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, state="running", disabled_reason=None) if st.state == "disabled" \
                else self._preview(st)
        return self._change(st, "enable", {}, **({"state": "running"} if st.state == "disabled" else {}))

    # DLQ -----------------------------------------------------------------------------------------------
    def _dlq_query(self, f: m.DLQFilter) -> DLQQuery:
        seqs = None
        if f.ids:
            seqs = tuple(-1 if seq is None else seq for seq in map(parse_dlq_id, f.ids))
        return DLQQuery(self.name, seqs=seqs, stage=f.stage or None, error_kind=f.error_kind or None,
                        since=to_ts(f.since) if f.since else None, until=to_ts(f.until) if f.until else None)

    def dlq_list(self, f: m.DLQFilter, page_size: int, page_token: str | None) -> tuple[list[m.DLQItem], str | None, int]:
        q = self._dlq_query(f)
        total = self.store.dlq_total(q)
        rows = self.store.dlq_rows(q, after=decode_token(page_token), limit=page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1]["seq"]) if more and rows else None
        return [dlq_item(r) for r in rows], token, total

    def dlq_get(self, item_id: str) -> m.DLQItem:
        seq = parse_dlq_id(item_id)
        row = None if seq is None else self.store.dlq_row(self.name, seq)
        if row is None:
            raise NotFoundError(f"DLQ item {item_id!r} not found in pipeline {self.name!r}")
        return dlq_item(row)

    def _dlq_select(self, f: m.DLQFilter) -> tuple[list[Any], dict[str, str]]:
        if f.is_empty():
            raise UsageError("select DLQ items with ids, all, or at least one filter (stage, error_kind, since, until)")
        if f.stage:
            self.stage(f.stage)
        if f.error_kind and f.error_kind not in m.ERROR_KINDS:
            raise UsageError(f"unknown error kind {f.error_kind!r}", detail={"allowed": list(m.ERROR_KINDS)})
        rows = self.store.dlq_rows(self._dlq_query(f), limit=10000)
        found = {dlq_id(r["seq"]) for r in rows}
        missing = {i: "not found" for i in f.ids if i not in found}
        return rows, missing

    def dlq_redrive(self, f: m.DLQFilter, dry_run: bool = False) -> m.BulkResult:
        rows, failed = self._dlq_select(f)
        result = m.BulkResult(action="redrive", pipeline=self.name, dry_run=dry_run,
                              matched=[dlq_id(r["seq"]) for r in rows], failed=dict(failed))
        if dry_run:
            return result
        admitted: list[tuple[Any, Work]] = []
        # Every move and the audit entry in one transaction: an item is never in both the DLQ and its stage,
        # never in neither, and a redrive that happened is never missing from the trail.
        with self.store.tx():
            for r in rows:
                st = self.by_name.get(r["stage"])
                if st is None:
                    result.failed[dlq_id(r["seq"])] = f"stage {r['stage']!r} no longer exists"
                    continue
                first_seen = r["first_seen"]  # if it fails again, its DLQ entry keeps the original first sighting
                wid = self.store.add_work(self.name, st.name, r["key"], r["offset"], r["payload"], "redrive", first_seen)
                self.store.drop_dead_letters([r["seq"]])
                admitted.append((st, Work(wid, r["key"], r["offset"], loads(r["payload"]), "redrive", first_seen)))
                result.succeeded.append(dlq_id(r["seq"]))
            self._audit_bulk(result, f)
        for st, work in admitted:  # the workers see it only once it is committed
            self.scheduler.admit(st, work)
        return result

    def _audit_bulk(self, result: m.BulkResult, f: m.DLQFilter) -> None:
        selection = {k: v for k, v in (("ids", f.ids[:100] or None), ("all", f.all or None), ("stage", f.stage),
                                       ("error_kind", f.error_kind), ("since", m.format_time(f.since)),
                                       ("until", m.format_time(f.until))) if v}
        audit.record(self.store, f"dlq {result.action}", pipeline=self.name, target=f.stage or "dlq",
                     arguments={**selection, "items": result.succeeded[:100]},
                     result=f"{len(result.succeeded)} {DONE[result.action]}, {len(result.failed)} failed")

    def dlq_purge(self, f: m.DLQFilter, dry_run: bool = False) -> m.BulkResult:
        rows, failed = self._dlq_select(f)
        ids = [dlq_id(r["seq"]) for r in rows]
        result = m.BulkResult(action="purge", pipeline=self.name, dry_run=dry_run, matched=ids, failed=failed)
        if not dry_run:
            with self.store.tx():
                self.store.drop_dead_letters([r["seq"] for r in rows])
                result.succeeded = ids
                self._audit_bulk(result, f)
        return result

    # replay ---------------------------------------------------------------------------------------------
    def _replay_range(self, req: m.ReplayRequest) -> tuple[int, int]:
        offsets = req.from_offset is not None or req.to_offset is not None
        times = req.from_time is not None or req.to_time is not None
        if offsets == times:
            raise UsageError("give a replay range by offsets (from_offset, to_offset) or by times (from_time, to_time)")
        if offsets:
            if req.from_offset is None or req.to_offset is None:
                raise UsageError("an offset range needs both from_offset and to_offset")
            if req.from_offset < 0 or req.to_offset <= req.from_offset:
                raise UnprocessableError("to_offset must be greater than from_offset, and offsets are >= 0",
                                         detail={"from_offset": req.from_offset, "to_offset": req.to_offset})
            return max(0, req.from_offset), min(req.to_offset, self.next_offset)
        if req.from_time is None or req.to_time is None:
            raise UsageError("a time range needs both from_time and to_time")
        a, b = to_ts(req.from_time), to_ts(req.to_time)
        if b <= a:  # type: ignore[operator]
            raise UnprocessableError("to_time must be after from_time")

        def first_at(ts: float) -> int:
            off = self.store.first_offset_at(self.name, ts)
            return self.next_offset if off is None else off

        return first_at(a), first_at(b)  # type: ignore[arg-type]

    def replay_start(self, req: m.ReplayRequest) -> m.ReplayJob:
        stage = self.stage(req.stage) if req.stage else self.stages[0]
        start, end = self._replay_range(req)
        end = max(start, end)
        total, done = self.store.count_inputs(self.name, start, end, self.stages[-1].name)
        t = now()
        job_id = ("plan-" if req.dry_run else "replay-") + uuid.uuid4().hex[:12]
        row = dict(id=job_id, pipeline=self.name, stage=stage.name, state="planned" if req.dry_run else "pending",
                   from_offset=req.from_offset, to_offset=req.to_offset, from_time=to_ts(req.from_time),
                   to_time=to_ts(req.to_time), start_offset=start, end_offset=end, cursor=start, total=total,
                   replayed=0, skipped=done if req.dry_run else 0, created_at=t, finished_at=None, error=None,
                   source="range")
        if req.dry_run:
            return replay_job(row)
        with self.store.tx():
            self.store.add_replay(row)
            ranged = {k: v for k, v in (("from_offset", req.from_offset), ("to_offset", req.to_offset),
                                        ("from_time", m.format_time(req.from_time)),
                                        ("to_time", m.format_time(req.to_time))) if v is not None}
            audit.record(self.store, "replay", pipeline=self.name, target=stage.name, arguments=ranged,
                         result=f"job {job_id}: {total} items from offset {start} to {end}")
        self._spawn_replay(job_id)
        return replay_job(row)

    def replay_skipped(self, name: str, *, dry_run: bool = False) -> m.ReplayJob:
        """A job that feeds the items `name` bypassed while disabled back into it, each once (its record goes)."""
        st = self.stage(name)
        if st.state == "disabled":
            raise ConflictError(f"stage {name!r} is still disabled ({st.note}): its items would be bypassed again; "
                                "enable it first", detail={"state": st.state})
        for job_id in self.store.active_replays(self.name):
            other = self.store.replay_row(job_id)
            if other is not None and other["source"] == "skipped" and other["stage"] == name:
                raise ConflictError(f"replay job {job_id} is already replaying the items stage {name!r} skipped",
                                    detail={"job": job_id})
        upto = self.store.bypassed_last(self.name, name)
        total, done = self.store.bypassed_counts(self.name, name, upto)
        job_id = ("plan-" if dry_run else "replay-") + uuid.uuid4().hex[:12]
        row = dict(id=job_id, pipeline=self.name, stage=name, state="planned" if dry_run else "pending",
                   from_offset=None, to_offset=None, from_time=None, to_time=None, start_offset=0, end_offset=upto,
                   cursor=0, total=total, replayed=0, skipped=done if dry_run else 0, created_at=now(),
                   finished_at=None, error=None, source="skipped")
        if dry_run:
            return replay_job(row)
        with self.store.tx():
            self.store.add_replay(row)
            audit.record(self.store, "replay skipped", pipeline=self.name, target=name,
                         result=f"job {job_id}: {total} bypassed items")
        self._spawn_replay(job_id)
        return replay_job(row)

    def _spawn_replay(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_replay(job_id), name=f"replay {job_id}")
        self.replays[job_id] = task
        task.add_done_callback(lambda _t: self.replays.pop(job_id, None))

    async def _run_replay(self, job_id: str) -> None:
        """Feed the range into its stage, one committed step per item, so progress survives a crash."""
        store = self.store
        job = store.replay_row(job_id)
        st = self.by_name.get(job["stage"]) if job else None
        if job is None or st is None:
            return
        with store.tx():
            store.set_replay_state(job_id, "running", only_from="pending")
        try:
            if not await self._feed(job_id, job, st):
                return
            with store.tx():
                store.set_replay_state(job_id, "completed", only_from="running", finished_at=now())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("replay %s failed", job_id)
            with store.tx():
                store.set_replay_state(job_id, "failed", finished_at=now(), error=type(exc).__name__)

    async def _feed(self, job_id: str, job: Any, st: StageRuntime) -> bool:
        """Feed the job's items into its stage, one committed step per item, so progress survives a crash.

        A range job feeds the inputs of its range, skipping those the last stage applied; a
        `skipped` job feeds the records of what the stage bypassed (up to the job's end),
        skipping those the stage applied since, and drops each record in the step that
        feeds it, so a crash or a second job never feeds one twice. False: the job was stopped.
        """
        store, cursor = self.store, job["cursor"]
        skipped = job["source"] == "skipped"
        applied_at = st.name if skipped else self.stages[-1].name

        def page() -> list[Any]:
            if skipped:
                return store.bypassed_rows(self.name, st.name, cursor, job["end_offset"], 100)
            return store.inputs(self.name, cursor, job["end_offset"], 100)

        while rows := page():
            for r in rows:
                done = store.is_applied(self.name, applied_at, r["key"])
                if not done:
                    await st.wait_room()
                if store.replay_state(job_id) != "running":
                    return False
                cursor = r["seq"] if skipped else r["offset"] + 1
                t = now()
                with store.tx():
                    if skipped:
                        store.drop_bypassed(r["seq"])
                    if done:
                        store.advance_replay(job_id, cursor, skipped=1)
                    else:
                        wid = store.add_work(self.name, st.name, r["key"], r["offset"], r["payload"], "replay", t)
                        store.advance_replay(job_id, cursor, replayed=1)
                if not done:
                    self.scheduler.admit(st, Work(wid, r["key"], r["offset"], loads(r["payload"]), "replay", t))
                await asyncio.sleep(0)
        return True

    def replay_get(self, job_id: str) -> m.ReplayJob:
        row = self.store.replay_row(job_id, self.name)
        if row is None:
            raise NotFoundError(f"replay job {job_id!r} not found in pipeline {self.name!r}")
        return replay_job(row)

    def replay_list(self) -> list[m.ReplayJob]:
        return [replay_job(r) for r in self.store.replay_rows(self.name)]

    def replay_cancel(self, job_id: str) -> m.ReplayJob:
        job = self.replay_get(job_id)
        if job.state not in ("pending", "running"):
            raise ConflictError(f"replay job {job_id!r} is {job.state}; only pending or running jobs can be cancelled",
                                detail={"state": job.state})
        with self.store.tx():
            self.store.set_replay_state(job_id, "cancelled", finished_at=now())
            audit.record(self.store, "replay cancel", pipeline=self.name, target=job_id,
                         arguments={"stage": job.stage}, result=f"cancelled (was {job.state})")
        task = self.replays.pop(job_id, None)
        if task is not None:
            task.cancel()
        return self.replay_get(job_id)
