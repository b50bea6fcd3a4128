"""An in-memory ControlPlane for the stage/replay/dlq/saga command unit tests, and an in-process runner.

Used for the error paths and the command logic (the end-to-end proof runs the
installed executable against the real reference server). It follows the
server's rules (docs/api.md) closely enough that a test failing here means the
command did something wrong, and it records every mutating call, so a test can
assert that refused input sent nothing.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelinectl.errors import ConflictError, NotFoundError, UsageError
from pipelinectl.model import (
    BatchJob,
    BulkResult,
    DLQFilter,
    DLQItem,
    Pipeline,
    ReplayJob,
    ReplayRequest,
    Saga,
    SagaEvent,
    SagaFilter,
    SagaStep,
    Stage,
)
from pipelinectl.plane import Capability, UnsupportedVerbs
from pipelinectl.testing import read_jsonl

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class FakePlane(UnsupportedVerbs):
    driver = "fake"
    capabilities = frozenset(Capability)

    def __init__(self) -> None:
        self.stages = {
            "parse": Stage(pipeline="orders", name="parse", parallelism=2, min_parallelism=1, max_parallelism=8),
            "enrich": Stage(pipeline="orders", name="enrich", parallelism=4, min_parallelism=1, max_parallelism=16,
                            bypassed=3),
        }
        self.dlq: dict[str, DLQItem] = {}
        for n in range(1, 8):
            self.dlq[f"dlq-{n}"] = DLQItem(
                id=f"dlq-{n}", pipeline="orders", stage="parse" if n <= 5 else "enrich",
                error_kind="validation" if n % 2 else "transient", message=f"bad item {n}", attempts=n,
                first_seen=T0 + timedelta(minutes=n), last_seen=T0 + timedelta(minutes=n), key=f"k{n}",
                offset=100 + n, payload={"n": n})
        self.sagas: dict[str, Saga] = {
            "order-1": Saga(id="order-1", pipeline="orders", definition="order", status="stuck",
                            current_step="charge", completed_steps=["reserve"], last_error="card declined",
                            started_at=T0, updated_at=T0,
                            steps=[SagaStep(name="reserve", status="completed", attempts=1, started_at=T0),
                                   SagaStep(name="charge", status="failed", attempts=3, error="card declined")],
                            events=[SagaEvent(seq=1, time=T0, type="started"),
                                    SagaEvent(seq=2, time=T0, type="step_failed", step="charge",
                                              message="card declined")]),
            "order-2": Saga(id="order-2", pipeline="orders", definition="order", status="completed",
                            started_at=T0, updated_at=T0),
        }
        self.jobs: dict[str, ReplayJob] = {}
        self.batches: dict[str, BatchJob] = {}
        self.calls: list[tuple[str, Any]] = []  # mutating calls that were not dry runs
        self.pages: list[int] = []  # size of each DLQ page handed out
        self.input_offset = 500
        self.last_request_id: str | None = None

    # -- helpers ----------------------------------------------------------------------------------
    def _rid(self) -> None:
        self.last_request_id = f"req-{len(self.calls)}"

    def _stage(self, pipeline: str, name: str) -> Stage:
        if pipeline != "orders":
            raise NotFoundError(f"pipeline {pipeline!r} not found")
        if name not in self.stages:
            raise NotFoundError(f"stage {name!r} not found in pipeline {pipeline!r}")
        return self.stages[name]

    # -- status -----------------------------------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        if pipeline not in (None, "orders"):
            raise NotFoundError(f"pipeline {pipeline!r} not found")
        return [Pipeline(name="orders", stages=[copy.deepcopy(s) for s in self.stages.values()],
                         dlq_size=len(self.dlq))]

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        return copy.deepcopy(self._stage(pipeline, stage))

    # -- stage verbs ------------------------------------------------------------------------------
    def _change(self, verb: str, pipeline: str, stage: str, dry_run: bool, expected_version: int | None,
                **changes: Any) -> Stage:
        st = self._stage(pipeline, stage)
        if expected_version is not None and expected_version != st.version:
            raise ConflictError(f"stage {stage!r} changed")
        view = copy.deepcopy(st)
        for k, v in changes.items():
            setattr(view, k, v)
        if dry_run:
            return view
        self.calls.append((verb, (pipeline, stage, changes)))
        self._rid()
        if any(getattr(st, k) != v for k, v in changes.items()):
            view.version += 1
            self.stages[stage] = view
        return copy.deepcopy(self.stages[stage])

    def pause(self, pipeline, stage, *, until=None, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        return self._change("pause", pipeline, stage, dry_run, expected_version, state="paused", paused_until=until)

    def resume(self, pipeline, stage, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        return self._change("resume", pipeline, stage, dry_run, expected_version, state="running", paused_until=None)

    def drain(self, pipeline, stage, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        state = self._stage(pipeline, stage).state
        return self._change("drain", pipeline, stage, dry_run, expected_version,
                            state="paused" if state == "paused" else "draining")

    def scale(self, pipeline, stage, parallelism, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        st = self._stage(pipeline, stage)
        if not st.min_parallelism <= parallelism <= st.max_parallelism:
            raise UsageError(f"parallelism {parallelism} out of range")
        return self._change("scale", pipeline, stage, dry_run, expected_version, parallelism=parallelism)

    def limit(self, pipeline, stage, rate, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        return self._change("limit", pipeline, stage, dry_run, expected_version, rate_limit=rate)

    def disable(self, pipeline, stage, reason, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        return self._change("disable", pipeline, stage, dry_run, expected_version, state="disabled",
                            disabled_reason=reason)

    def enable(self, pipeline, stage, *, dry_run=False, expected_version=None):  # type: ignore[no-untyped-def]
        return self._change("enable", pipeline, stage, dry_run, expected_version, state="running",
                            disabled_reason=None)

    def replay_skipped(self, pipeline, stage, *, dry_run=False):  # type: ignore[no-untyped-def]
        st = self._stage(pipeline, stage)
        job = ReplayJob(id=f"replay-{len(self.jobs) + 1}", pipeline=pipeline, stage=stage, source="skipped",
                        state="planned" if dry_run else "pending", total=st.bypassed)
        if not dry_run:
            self.calls.append(("replay_skipped", (pipeline, stage)))
            self._rid()
            st.bypassed = 0
            self.jobs[job.id] = job
        return job

    # -- replay -----------------------------------------------------------------------------------
    def replay(self, request: ReplayRequest) -> ReplayJob:
        stage = request.stage or "parse"
        self._stage(request.pipeline, stage)
        if request.from_offset is not None:
            total = max(0, min(request.to_offset or 0, self.input_offset) - request.from_offset)
        else:
            total = 24
        job = ReplayJob(id=f"rpl-{len(self.jobs) + 1}", pipeline=request.pipeline, stage=stage,
                        state="planned" if request.dry_run else "running", from_offset=request.from_offset,
                        to_offset=request.to_offset, from_time=request.from_time, to_time=request.to_time,
                        total=total, created_at=T0)
        if request.dry_run:
            return job
        self.calls.append(("replay", request))
        self._rid()
        self.jobs[job.id] = job
        return copy.deepcopy(job)

    def replay_list(self, pipeline: str) -> list[ReplayJob]:
        return [copy.deepcopy(j) for j in self.jobs.values()]

    def replay_show(self, pipeline: str, job_id: str) -> ReplayJob:
        if job_id not in self.jobs:
            raise NotFoundError(f"replay job {job_id!r} not found")
        job = self.jobs[job_id]
        if job.state == "running":  # each look moves it on, so --wait ends
            job.replayed = min(job.total, job.replayed + max(1, job.total // 3))
            if job.replayed >= job.total:
                job.state = "completed"
        return copy.deepcopy(job)

    def replay_cancel(self, pipeline: str, job_id: str) -> ReplayJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"replay job {job_id!r} not found")
        if job.state not in ("pending", "running"):
            raise ConflictError(f"replay job {job_id!r} is {job.state}")
        self.calls.append(("replay_cancel", job_id))
        job.state = "cancelled"
        return copy.deepcopy(job)

    # -- DLQ --------------------------------------------------------------------------------------
    def _match(self, f: DLQFilter) -> list[DLQItem]:
        out = []
        for item in self.dlq.values():
            if f.ids and item.id not in f.ids:
                continue
            if f.stage and item.stage != f.stage:
                continue
            if f.error_kind and item.error_kind != f.error_kind:
                continue
            if f.since and item.last_seen < f.since:
                continue
            if f.until and item.last_seen >= f.until:
                continue
            out.append(item)
        return out

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        matched = self._match(selection)
        for start in range(0, len(matched), page_size):
            page = matched[start:start + page_size]
            self.pages.append(len(page))
            yield from (copy.deepcopy(i) for i in page)

    def dlq_count(self, selection: DLQFilter) -> int:
        return len(self._match(selection))

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        if item_id not in self.dlq:
            raise NotFoundError(f"DLQ item {item_id!r} not found")
        return copy.deepcopy(self.dlq[item_id])

    def _bulk(self, action: str, selection: DLQFilter, dry_run: bool) -> BulkResult:
        if selection.is_empty():
            raise UsageError("empty selection")
        matched = [i.id for i in self._match(selection)]
        result = BulkResult(action=action, pipeline=selection.pipeline, dry_run=dry_run, matched=matched)
        if not dry_run:
            self.calls.append((f"dlq_{action}", list(matched)))
            self._rid()
            for item_id in matched:
                del self.dlq[item_id]
            result.succeeded = list(matched)
        return result

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        return self._bulk("redrive", selection, dry_run)

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        return self._bulk("purge", selection, dry_run)

    # -- sagas ------------------------------------------------------------------------------------
    def saga_list(self, selection: SagaFilter, *, page_size: int = 200) -> Iterator[Saga]:
        for saga in self.sagas.values():
            if selection.status and saga.status != selection.status:
                continue
            if selection.definition and saga.definition != selection.definition:
                continue
            view = copy.deepcopy(saga)
            view.steps, view.events = [], []  # list views carry neither, as the API's
            yield view

    def saga_show(self, pipeline: str, saga_id: str) -> Saga:
        if saga_id not in self.sagas:
            raise NotFoundError(f"saga {saga_id!r} not found")
        return copy.deepcopy(self.sagas[saga_id])

    def _saga_change(self, verb: str, saga_id: str, status: str, allowed: tuple[str, ...], dry_run: bool,
                     **args: Any) -> Saga:
        saga = self.saga_show("orders", saga_id)
        if saga.status not in allowed:
            raise ConflictError(f"saga {saga_id!r} is {saga.status}")
        saga.status = status
        if dry_run:
            return saga
        self.calls.append((verb, (saga_id, args)))
        self._rid()
        self.sagas[saga_id] = saga
        return copy.deepcopy(saga)

    def saga_force_fail(self, pipeline, saga_id, reason, *, terminate=False, dry_run=False):  # type: ignore[no-untyped-def]
        return self._saga_change("saga_force_fail", saga_id, "compensated", ("running", "stuck", "compensating"),
                                 dry_run, reason=reason, terminate=terminate)

    def saga_retry(self, pipeline, saga_id, reason=None, *, dry_run=False, options=None):  # type: ignore[no-untyped-def]
        return self._saga_change("saga_retry", saga_id, "running", ("stuck", "failed"), dry_run,
                                 reason=reason, options=options)

    def saga_force_complete(self, pipeline, saga_id, reason, *, dry_run=False):  # type: ignore[no-untyped-def]
        return self._saga_change("saga_force_complete", saga_id, "completed", ("running", "stuck", "compensating"),
                                 dry_run, reason=reason)

    def saga_cancel(self, pipeline, saga_id, reason, *, dry_run=False):  # type: ignore[no-untyped-def]
        return self._saga_change("saga_cancel", saga_id, "cancelled", ("running", "stuck"), dry_run, reason=reason)

    def saga_advance(self, pipeline, saga_id, step, reason, *, result=None, dry_run=False):  # type: ignore[no-untyped-def]
        current = self.saga_show(pipeline, saga_id).current_step
        if current != step:
            raise ConflictError(f"step {step!r} is not the current step of saga {saga_id!r} (it is {current!r})")
        after = self._saga_change("saga_advance", saga_id, "running", ("running", "stuck"), dry_run,
                                  step=step, reason=reason, result=result)
        if not dry_run:  # on to the step after it (the fake's sagas have none: done stepping)
            self.sagas[saga_id].completed_steps.append(step)
            self.sagas[saga_id].current_step = after.current_step = None
        return after

    def saga_batch(self, action, selection, reason, *, dry_run=False):  # type: ignore[no-untyped-def]
        matched = [s for s in self.sagas.values() if s.status == "stuck"]
        job = BatchJob(id="batch-1", action=action, query=selection.query or "", state="planned" if dry_run else "running",
                       total=len(matched))
        if not dry_run:
            self.calls.append(("saga_batch", (action, selection.query, reason)))
            self.batches[job.id] = job
        return copy.deepcopy(job)

    def saga_batch_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        job = self.batches[job_id]
        job.state, job.completed = "completed", job.total
        return copy.deepcopy(job)


class NoSagaPlane(FakePlane):
    """A driver without saga support: every saga verb is the mixin's 'unsupported'."""

    driver = "nosaga"
    capabilities = frozenset(c for c in Capability if not c.value.startswith("saga"))

    saga_list = UnsupportedVerbs.saga_list  # type: ignore[assignment]
    saga_show = UnsupportedVerbs.saga_show  # type: ignore[assignment]
    saga_force_fail = UnsupportedVerbs.saga_force_fail  # type: ignore[assignment]
    saga_retry = UnsupportedVerbs.saga_retry  # type: ignore[assignment]
    saga_force_complete = UnsupportedVerbs.saga_force_complete  # type: ignore[assignment]


PLANES: dict[str, FakePlane] = {}


def factory(connection: Any) -> FakePlane:
    """The registered driver: one plane per test, shared by every invocation in it."""
    return PLANES["current"]


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Harness:
    plane: FakePlane
    audit_path: Path
    tty: bool = False
    stdin: str = ""
    runs: list[Run] = field(default_factory=list)

    def __call__(self, *args: str, stdin: str | None = None, tty: bool | None = None) -> Run:
        from pipelinectl.__main__ import main

        out, err = _Stream(self.tty if tty is None else tty), _Stream(self.tty if tty is None else tty)
        inp = _Stream(self.tty if tty is None else tty, self.stdin if stdin is None else stdin)
        saved = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr, sys.stdin = out, err, inp
        try:
            rc = main(list(args))
        finally:
            sys.stdout, sys.stderr, sys.stdin = saved
        run = Run(rc, out.getvalue(), err.getvalue())
        self.runs.append(run)
        return run

    def audit(self) -> list[dict[str, Any]]:
        return read_jsonl(self.audit_path)

    def snapshot(self) -> dict[str, Any]:
        """Everything the plane holds, to compare before/after refused input."""
        p = self.plane
        return {
            "stages": {k: v.to_dict() for k, v in p.stages.items()},
            "dlq": sorted(p.dlq),
            "sagas": {k: v.to_dict() for k, v in p.sagas.items()},
            "jobs": {k: v.to_dict() for k, v in p.jobs.items()},
            "calls": list(p.calls),
        }


class _Stream(io.StringIO):
    def __init__(self, tty: bool, value: str = "") -> None:
        super().__init__(value)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture(name="fake")
def fake_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    from pipelinectl import plugins

    plane = FakePlane()
    PLANES["current"] = plane
    monkeypatch.setitem(plugins.BUILTIN_DRIVERS, "fake", "tests.cli.verbs_fake:factory")
    config = tmp_path / "config.yaml"
    config.write_text("current-context: test\ncontexts:\n  test:\n    driver: fake\n    url: http://fake.invalid\n"
                      "    pipeline: orders\n")
    config.chmod(0o600)
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("PIPELINECTL_CONFIG", str(config))
    monkeypatch.setenv("PIPELINECTL_AUDIT_LOG", str(audit))
    monkeypatch.delenv("PIPELINECTL_CONTEXT", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return Harness(plane, audit)
