"""The pipeline runtime: stages as worker pools over bounded queues, backed by SQLite.

An item lives in exactly one place at a time: a `work` row at one stage (queued
or in flight), the DLQ, or done. Moving it is one transaction that also records
`applied(stage, key)`, so a crash re-runs at most the handler call that was in
flight, and the idempotency record makes a replayed or re-run item skip a stage
whose effect was already committed. The in-memory deques mirror the `work`
table and are rebuilt from it at start.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelinectl import model as m
from pipelinectl.errors import ConflictError, NotFoundError, StaleVersionError, UnprocessableError, UsageError

from .store import Store, dumps, loads, now

log = logging.getLogger("pipelinectl.server")


# --- errors a stage handler raises to classify a failed item ---------------------------------------


class ItemError(Exception):
    """Raise from a handler to say how an item failed; `kind` decides retry vs DLQ."""

    kind = "persistent"


class ValidationError(ItemError):
    """The item itself is bad (schema, business rule). Never retried."""

    kind = "validation"


class TransientError(ItemError):
    """A dependency hiccup (timeout, 503). Retried with backoff under a budget."""

    kind = "transient"


class PersistentError(ItemError):
    """Retrying will not help (bad reference, rejected by a dependency)."""

    kind = "persistent"


class FatalError(ItemError):
    """The stage cannot go on safely: the item is dead-lettered and the stage pauses."""

    kind = "fatal"


def classify(exc: BaseException) -> str:
    """Map any exception to an error kind; unknown exceptions are persistent."""
    if isinstance(exc, ItemError):
        return exc.kind
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "transient"
    if isinstance(exc, ValueError):
        return "validation"
    return "persistent"


# --- definitions: what a pipeline author writes ------------------------------------------------------


@dataclass
class RetryPolicy:
    """Transient retries: exponential backoff with jitter, bounded by attempts and seconds."""

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0
    budget: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


Handler = Callable[["Item"], Awaitable[Any]]


@dataclass
class StageDef:
    name: str
    fn: Handler
    parallelism: int = 1
    min_parallelism: int = 1
    max_parallelism: int = 64
    capacity: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Step:
    """A saga step: `action(ctx)` forward, `compensate(ctx)` to undo it (optional)."""

    name: str
    action: Callable[[Any], Awaitable[Any]]
    compensate: Callable[[Any], Awaitable[Any]] | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3, max_delay=1.0))


@dataclass
class SagaDef:
    name: str
    steps: list[Step]


class Pipeline:
    """A pipeline definition: ordered stages (plain async functions), an optional source and sagas."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[StageDef] = []
        self.source_fn: Callable[[int], AsyncIterator[tuple[str, Any]]] | None = None
        self.sagas: dict[str, SagaDef] = {}

    def stage(self, fn: Handler | None = None, /, **options: Any) -> Any:
        """Decorator: `@p.stage` or `@p.stage(parallelism=4, capacity=50, name="parse")`."""

        def register(f: Handler) -> Handler:
            name = options.pop("name", None) or f.__name__
            self.add_stage(StageDef(name=name, fn=f, **options))
            return f

        return register(fn) if fn is not None else register

    def add_stage(self, spec: StageDef) -> None:
        if any(s.name == spec.name for s in self.stages):
            raise ValueError(f"duplicate stage name {spec.name!r}")
        if not spec.min_parallelism <= spec.parallelism <= spec.max_parallelism:
            raise ValueError(f"stage {spec.name!r}: parallelism outside [min, max]")
        self.stages.append(spec)

    def source(self, fn: Callable[[int], AsyncIterator[tuple[str, Any]]]) -> Any:
        """Decorator for an async generator `fn(start)` yielding `(key, payload)`.

        `start` is how many items the input log already holds, so a restarted
        source continues where it stopped instead of feeding items twice.
        """
        self.source_fn = fn
        return fn

    def saga(self, name: str, steps: list[Step]) -> SagaDef:
        self.sagas[name] = SagaDef(name, steps)
        return self.sagas[name]


@dataclass
class Item:
    """What a stage handler receives. `key` is the idempotency key of the item."""

    key: str
    payload: Any
    offset: int | None
    stage: str
    attempt: int
    origin: str
    _pipeline: PipelineRuntime = field(repr=False)

    async def start_saga(self, definition: str, saga_id: str | None = None, data: Any = None) -> str:
        """Start a saga for this item; starting the same id twice is a no-op."""
        return self._pipeline.sagas.start(definition, saga_id or self.key, data)


@dataclass
class Work:
    id: int
    key: str
    offset: int | None
    payload: Any
    origin: str
    first_seen: float


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def to_ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class Signal:
    """Wake-ups for tasks waiting on a condition: `notify(1)` wakes one waiter, `notify()` all.

    Waking one (not all) keeps the cost of moving an item independent of the
    pool size. A woken task that is cancelled passes its wake-up on, so none is lost.
    """

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future] = deque()

    def notify(self, n: int | None = None) -> None:
        while self._waiters and (n is None or n > 0):
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                if n is not None:
                    n -= 1

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self.notify(1)
                raise


# --- one stage at run time ----------------------------------------------------------------------------


class StageRuntime:
    def __init__(self, pipeline: PipelineRuntime, spec: StageDef, index: int) -> None:
        self.p = pipeline
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.next: StageRuntime | None = None
        self.queue: deque[Work] = deque()
        self.state = "running"
        self.parallelism = spec.parallelism
        self.version = 1
        self.paused_until: float | None = None
        self.note: str | None = None
        self.processed = self.failed = self.skipped = self.retries = 0
        self.errors_by_kind: dict[str, int] = {}
        self.in_flight = 0
        self.active = 0
        self.tasks: set[asyncio.Task] = set()
        self.window: deque[tuple[float, bool]] = deque()
        self.work_ready = Signal()  # workers of this stage wait here
        self.room = Signal()  # whoever feeds this stage waits here while it is full
        self.last_take: float = 0.0  # monotonic time of the last item taken (the bench reads it)
        self.changed_at: float = 0.0  # monotonic time of the last settings change

    # state --------------------------------------------------------------------------------------------
    def load(self, row: Any) -> None:
        self.state = row["state"]
        self.parallelism = max(self.spec.min_parallelism, min(self.spec.max_parallelism, row["parallelism"]))
        self.version = row["version"]
        self.paused_until = row["paused_until"]
        self.processed, self.failed = row["processed"], row["failed"]
        self.skipped, self.retries = row["skipped"], row["retries"]
        self.errors_by_kind = loads(row["errors_by_kind"]) or {}
        self.note = row["note"]

    def persist_settings(self) -> None:
        self.p.store.run(
            "UPDATE stages SET state=?, parallelism=?, version=?, paused_until=?, note=? WHERE pipeline=? AND name=?",
            (self.state, self.parallelism, self.version, self.paused_until, self.note, self.p.name, self.name),
        )

    def change(self, *, state: str | None = None, parallelism: int | None = None,
               paused_until: float | None = None, note: str | None = None) -> None:
        """Apply a settings change: bump the version, persist, wake the workers."""
        if state is not None:
            self.state = state
            self.paused_until = paused_until if state == "paused" else None
            self.note = note if state == "paused" else None
        if parallelism is not None:
            self.parallelism = parallelism
        self.version += 1
        self.changed_at = time.monotonic()
        with self.p.store.tx():
            self.persist_settings()
        self.ensure_workers()
        self.wake_all()
        self.check_drained()

    def wake_all(self) -> None:
        self.work_ready.notify()
        self.room.notify()

    def check_drained(self) -> None:
        if self.state == "draining" and not self.queue and self.in_flight == 0:
            self.change(state="paused", note="drained")

    def has_room(self) -> bool:
        return self.state != "draining" and len(self.queue) < self.spec.capacity

    async def wait_room(self) -> None:
        """Backpressure: wait while this stage's queue is full (or it is draining)."""
        await self.room.wait_for(lambda: self.has_room() or self.p.stopping)
        if self.p.stopping:
            raise asyncio.CancelledError

    def accept(self, work: Work) -> None:
        """Put an item (already committed to this stage in the store) into the queue."""
        self.queue.append(work)
        self.work_ready.notify(1)
        if self.has_room():
            self.room.notify(1)  # pass the turn to the next waiting producer

    # workers ------------------------------------------------------------------------------------------
    def ensure_workers(self) -> None:
        while self.active < self.parallelism and not self.p.stopping:
            self.active += 1
            task = asyncio.get_running_loop().create_task(self._worker(), name=f"{self.p.name}/{self.name}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _can_take(self) -> bool:
        return self.p.stopping or self.active > self.parallelism or (
            self.state in ("running", "draining") and bool(self.queue)
        )

    async def _take(self) -> Work | None:
        await self.work_ready.wait_for(self._can_take)
        if self.p.stopping or self.active > self.parallelism:
            self.active -= 1  # scale-down (or stop): this worker leaves; checked and done without a yield
            if self.queue:
                self.work_ready.notify(1)  # the wake-up this worker got belongs to another
            return None
        self.last_take = time.monotonic()
        self.in_flight += 1
        work = self.queue.popleft()
        if self.queue:
            self.work_ready.notify(1)
        self.room.notify(1)
        return work

    async def _worker(self) -> None:
        while True:
            try:
                work = await self._take()
            except asyncio.CancelledError:
                self.active -= 1
                raise
            if work is None:
                return
            try:
                await self._process(work)
            except asyncio.CancelledError:
                raise  # shutdown: the work row stays at this stage and is picked up after restart
            except Exception:  # a bug in the runtime itself: keep the item, log, go on
                log.exception("stage %s/%s: unexpected error", self.p.name, self.name)
                await asyncio.sleep(1.0)
                self.queue.appendleft(work)
                self.work_ready.notify(1)
            finally:
                self.in_flight -= 1
                self.check_drained()

    async def _process(self, work: Work) -> None:
        store = self.p.store
        if store.one("SELECT 1 FROM applied WHERE pipeline=? AND stage=? AND key=?", (self.p.name, self.name, work.key)):
            self.skipped += 1
            with store.tx():
                store.run("UPDATE stages SET skipped=skipped+1 WHERE pipeline=? AND name=?", (self.p.name, self.name))
            await self._forward(work, work.payload, already_applied=True)
            return
        retry = self.spec.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            item = Item(work.key, work.payload, work.offset, self.name, attempt, work.origin, self.p)
            try:
                out = await self.spec.fn(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified below; the runtime never dies of a handler error
                kind = classify(exc)
                message = str(exc) or type(exc).__name__
                if kind == "transient" and attempt < retry.max_attempts and time.monotonic() - started < retry.budget:
                    self.retries += 1
                    with store.tx():
                        store.run("UPDATE stages SET retries=retries+1 WHERE pipeline=? AND name=?", (self.p.name, self.name))
                    await asyncio.sleep(retry.delay(attempt))
                    continue
                self._dead_letter(work, kind, message, attempt)
                return
            await self._forward(work, work.payload if out is None else out)
            return

    async def _forward(self, work: Work, payload: Any, already_applied: bool = False) -> None:
        store, nxt = self.p.store, self.next
        if nxt is not None:
            await nxt.wait_room()
        t = now()
        # No await from here to the end: the commit and the queue move are one step for every other task.
        with store.tx():
            fresh = store.run(
                "INSERT OR IGNORE INTO applied(pipeline, stage, key, ts) VALUES (?,?,?,?)",
                (self.p.name, self.name, work.key, t),
            ).rowcount == 1
            if fresh:
                store.run("UPDATE stages SET processed=processed+1 WHERE pipeline=? AND name=?", (self.p.name, self.name))
            if nxt is None:
                store.run("DELETE FROM work WHERE id=?", (work.id,))
            else:
                store.run("UPDATE work SET stage=?, payload=? WHERE id=?", (nxt.name, dumps(payload), work.id))
        if fresh:
            self.processed += 1
            self.window.append((t, True))
        elif not already_applied:
            self.skipped += 1
        if nxt is not None:
            work.payload = payload
            nxt.accept(work)

    def _dead_letter(self, work: Work, kind: str, message: str, attempts: int) -> None:
        store, t = self.p.store, now()
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        with store.tx():
            store.run(
                'INSERT INTO dlq(pipeline, stage, key, "offset", payload, error_kind, message, attempts, first_seen, '
                "last_seen, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (self.p.name, self.name, work.key, work.offset, dumps(work.payload), kind, message[:2000], attempts,
                 work.first_seen, t, dumps({"origin": work.origin})),
            )
            store.run("DELETE FROM work WHERE id=?", (work.id,))
            store.run(
                "UPDATE stages SET failed=failed+1, errors_by_kind=? WHERE pipeline=? AND name=?",
                (dumps(self.errors_by_kind), self.p.name, self.name),
            )
        self.failed += 1
        self.window.append((t, False))
        if kind == "fatal" and self.state != "paused":
            self.change(state="paused", note=f"fatal error on item {work.key}: {message[:200]}")

    # views --------------------------------------------------------------------------------------------
    def view(self, dlq_size: int | None = None) -> m.Stage:
        t = now()
        while self.window and self.window[0][0] < t - 60:
            self.window.popleft()
        span = max(1.0, min(60.0, t - self.p.started_at))
        ok = sum(1 for _, good in self.window if good)
        total = len(self.window)
        details: dict[str, Any] = {
            "retries": self.retries,
            "skipped_duplicates": self.skipped,
            "workers": self.active,
        }
        if self.note:
            details["paused_reason"] = self.note
        return m.Stage(
            pipeline=self.p.name, name=self.name, state=self.state, parallelism=self.parallelism,
            min_parallelism=self.spec.min_parallelism, max_parallelism=self.spec.max_parallelism,
            in_flight=self.in_flight, queue_depth=len(self.queue), queue_capacity=self.spec.capacity,
            processed=self.processed, failed=self.failed, throughput=round(ok / span, 3),
            error_rate=round((total - ok) / total, 4) if total else 0.0,
            errors_by_kind=dict(self.errors_by_kind),
            dlq_size=self.p.dlq_count(self.name) if dlq_size is None else dlq_size,
            paused_until=to_dt(self.paused_until), version=self.version, details=details,
        )


# --- one pipeline at run time -------------------------------------------------------------------------


class PipelineRuntime:
    def __init__(self, runtime: Runtime, spec: Pipeline) -> None:
        from .sagas import SagaCoordinator

        self.runtime = runtime
        self.spec = spec
        self.name = spec.name
        self.store = runtime.store
        self.stages = [StageRuntime(self, s, i) for i, s in enumerate(spec.stages)]
        for a, b in zip(self.stages, self.stages[1:], strict=False):
            a.next = b
        self.by_name = {s.name: s for s in self.stages}
        self.sagas = SagaCoordinator(self)
        self.next_offset = 0
        self.started_at = now()
        self.replays: dict[str, asyncio.Task] = {}
        self.tasks: set[asyncio.Task] = set()

    @property
    def stopping(self) -> bool:
        return self.runtime.stopping

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def load(self) -> None:
        store = self.store
        with store.tx():
            for st in self.stages:
                row = store.one("SELECT * FROM stages WHERE pipeline=? AND name=?", (self.name, st.name))
                if row is None:
                    store.run(
                        "INSERT INTO stages(pipeline, name, state, parallelism, version) VALUES (?,?,?,?,1)",
                        (self.name, st.name, "running", st.spec.parallelism),
                    )
                else:
                    st.load(row)
        for row in store.all('SELECT id, stage, key, "offset", payload, origin, first_seen FROM work '
                             "WHERE pipeline=? ORDER BY id", (self.name,)):
            st = self.by_name.get(row["stage"])
            if st is None:  # a stage removed from the definition: its items wait in the DLQ instead
                t = now()
                with store.tx():
                    store.run(
                        'INSERT INTO dlq(pipeline, stage, key, "offset", payload, error_kind, message, attempts, '
                        "first_seen, last_seen, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (self.name, row["stage"], row["key"], row["offset"], row["payload"], "persistent",
                         f"stage {row['stage']!r} no longer exists in the pipeline definition", 0,
                         row["first_seen"], t, dumps({"origin": row["origin"]})),
                    )
                    store.run("DELETE FROM work WHERE id=?", (row["id"],))
                continue
            st.queue.append(Work(row["id"], row["key"], row["offset"], loads(row["payload"]), row["origin"],
                                 row["first_seen"]))
        last = store.scalar('SELECT MAX("offset") FROM input_log WHERE pipeline=?', (self.name,))
        self.next_offset = 0 if last is None else last + 1

    def start(self) -> None:
        self.load()
        for st in self.stages:
            st.ensure_workers()
            st.check_drained()
        if self.spec.source_fn is not None:
            self.spawn(self._run_source(), f"{self.name}/source")
        for row in self.store.all("SELECT id FROM replay_jobs WHERE pipeline=? AND state IN ('pending','running')",
                                  (self.name,)):
            self.replays[row["id"]] = self.spawn(self._run_replay(row["id"]), f"replay {row['id']}")
        self.sagas.start_coordinator()

    # input ----------------------------------------------------------------------------------------------
    async def ingest(self, key: str, payload: Any) -> int:
        """Append one item to the durable input log and hand it to the first stage (waits for room)."""
        first = self.stages[0]
        await first.wait_room()
        t = now()
        offset = self.next_offset
        with self.store.tx():
            self.store.run('INSERT INTO input_log(pipeline, "offset", key, payload, ts) VALUES (?,?,?,?,?)',
                           (self.name, offset, key, dumps(payload), t))
            wid = self.store.run(
                'INSERT INTO work(pipeline, stage, key, "offset", payload, origin, first_seen) VALUES (?,?,?,?,?,?,?)',
                (self.name, first.name, key, offset, dumps(payload), "input", t),
            ).lastrowid
        self.next_offset = offset + 1
        first.accept(Work(wid, key, offset, payload, "input", t))
        await asyncio.sleep(0)  # a fast source must not hold the loop while the first queue has room
        return offset

    async def _run_source(self) -> None:
        assert self.spec.source_fn is not None
        try:
            async for key, payload in self.spec.source_fn(self.next_offset):
                await self.ingest(str(key), payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pipeline %s: source failed", self.name)

    # lookups --------------------------------------------------------------------------------------------
    def stage(self, name: str) -> StageRuntime:
        st = self.by_name.get(name)
        if st is None:
            raise NotFoundError(f"stage {name!r} not found in pipeline {self.name!r}",
                                detail={"pipeline": self.name, "stage": name})
        return st

    def dlq_count(self, stage: str | None = None) -> int:
        if stage is None:
            return self.store.scalar("SELECT COUNT(*) FROM dlq WHERE pipeline=?", (self.name,))
        return self.store.scalar("SELECT COUNT(*) FROM dlq WHERE pipeline=? AND stage=?", (self.name, stage))

    def view(self) -> m.Pipeline:
        per_stage = dict(self.store.all("SELECT stage, COUNT(*) FROM dlq WHERE pipeline=? GROUP BY stage", (self.name,)))
        by_status = dict(self.store.all("SELECT status, COUNT(*) FROM sagas WHERE pipeline=? GROUP BY status",
                                        (self.name,)))
        return m.Pipeline(
            name=self.name,
            stages=[st.view(per_stage.get(st.name, 0)) for st in self.stages],
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

    def pause(self, name: str, until: datetime | None = None, *, if_match: int | None = None,
              dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        until_ts = to_ts(until)
        if until_ts is not None and until_ts <= now():
            raise UnprocessableError("'until' must be in the future", detail={"until": m.format_time(until)})
        if dry_run:
            return self._preview(st, state="paused", paused_until=until)
        if st.state != "paused" or st.paused_until != until_ts:
            st.change(state="paused", paused_until=until_ts, note="paused by operator")
        return st.view()

    def resume(self, name: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, state="running", paused_until=None)
        if st.state != "running":
            st.change(state="running")
        return st.view()

    def drain(self, name: str, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, state=st.state if st.state == "paused" else "draining")
        if st.state == "running":
            st.change(state="draining")
        return st.view()

    def scale(self, name: str, parallelism: int, *, if_match: int | None = None, dry_run: bool = False) -> m.Stage:
        st = self.stage(name)
        lo, hi = st.spec.min_parallelism, st.spec.max_parallelism
        if not lo <= parallelism <= hi:
            raise UnprocessableError(f"parallelism {parallelism} is outside [{lo}, {hi}] for stage {name!r}",
                                     detail={"min_parallelism": lo, "max_parallelism": hi, "parallelism": parallelism})
        self._check_version(st, if_match)
        if dry_run:
            return self._preview(st, parallelism=parallelism)
        if parallelism != st.parallelism:
            st.change(parallelism=parallelism)
        return st.view()

    def tick(self) -> None:
        """Once a second: resume stages whose `pause --until` has passed."""
        t = now()
        for st in self.stages:
            if st.state == "paused" and st.paused_until is not None and st.paused_until <= t:
                st.change(state="running")

    # DLQ -----------------------------------------------------------------------------------------------
    def _dlq_where(self, f: m.DLQFilter) -> tuple[str, list[Any]]:
        where, args = ["pipeline=?"], [self.name]
        if f.ids:
            seqs = [parse_dlq_id(i) for i in f.ids]
            where.append(f"seq IN ({','.join('?' * len(seqs))})")
            args += [s if s is not None else -1 for s in seqs]
        if f.stage:
            where.append("stage=?")
            args.append(f.stage)
        if f.error_kind:
            where.append("error_kind=?")
            args.append(f.error_kind)
        if f.since:
            where.append("last_seen>=?")
            args.append(to_ts(f.since))
        if f.until:
            where.append("last_seen<?")
            args.append(to_ts(f.until))
        return " AND ".join(where), args

    def dlq_list(self, f: m.DLQFilter, page_size: int, page_token: str | None) -> tuple[list[m.DLQItem], str | None, int]:
        where, args = self._dlq_where(f)
        total = self.store.scalar(f"SELECT COUNT(*) FROM dlq WHERE {where}", args)
        after = decode_token(page_token)
        rows = self.store.all(f"SELECT * FROM dlq WHERE {where} AND seq>? ORDER BY seq LIMIT ?",
                              [*args, after, page_size + 1])
        more = len(rows) > page_size
        rows = rows[:page_size]
        token = encode_token(rows[-1]["seq"]) if more and rows else None
        return [dlq_item(r) for r in rows], token, total

    def dlq_get(self, item_id: str) -> m.DLQItem:
        seq = parse_dlq_id(item_id)
        row = None if seq is None else self.store.one("SELECT * FROM dlq WHERE pipeline=? AND seq=?", (self.name, seq))
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
        where, args = self._dlq_where(f)
        rows = self.store.all(f"SELECT * FROM dlq WHERE {where} ORDER BY seq LIMIT 10000", args)
        found = {dlq_id(r["seq"]) for r in rows}
        missing = {i: "not found" for i in f.ids if i not in found}
        return rows, missing

    def dlq_redrive(self, f: m.DLQFilter, dry_run: bool = False) -> m.BulkResult:
        rows, failed = self._dlq_select(f)
        result = m.BulkResult(action="redrive", pipeline=self.name, dry_run=dry_run,
                              matched=[dlq_id(r["seq"]) for r in rows], failed=dict(failed))
        if dry_run:
            return result
        for r in rows:
            st = self.by_name.get(r["stage"])
            if st is None:
                result.failed[dlq_id(r["seq"])] = f"stage {r['stage']!r} no longer exists"
                continue
            first_seen = r["first_seen"]  # if it fails again, its DLQ entry keeps the original first sighting
            # Accept into the stage and leave the DLQ in one transaction: never in both, never in neither.
            with self.store.tx():
                wid = self.store.run(
                    'INSERT INTO work(pipeline, stage, key, "offset", payload, origin, first_seen) '
                    "VALUES (?,?,?,?,?,?,?)",
                    (self.name, st.name, r["key"], r["offset"], r["payload"], "redrive", first_seen),
                ).lastrowid
                self.store.run("DELETE FROM dlq WHERE seq=?", (r["seq"],))
            st.accept(Work(wid, r["key"], r["offset"], loads(r["payload"]), "redrive", first_seen))
            result.succeeded.append(dlq_id(r["seq"]))
        return result

    def dlq_purge(self, f: m.DLQFilter, dry_run: bool = False) -> m.BulkResult:
        rows, failed = self._dlq_select(f)
        ids = [dlq_id(r["seq"]) for r in rows]
        result = m.BulkResult(action="purge", pipeline=self.name, dry_run=dry_run, matched=ids, failed=failed)
        if not dry_run:
            with self.store.tx():
                self.store.db.executemany("DELETE FROM dlq WHERE seq=?", [(r["seq"],) for r in rows])
            result.succeeded = ids
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

        def first_at(ts: float | None) -> int:
            off = self.store.scalar('SELECT MIN("offset") FROM input_log WHERE pipeline=? AND ts>=?', (self.name, ts))
            return self.next_offset if off is None else off

        return first_at(a), first_at(b)

    def _count_range(self, start: int, end: int, last_stage: str) -> tuple[int, int]:
        total = self.store.scalar('SELECT COUNT(*) FROM input_log WHERE pipeline=? AND "offset">=? AND "offset"<?',
                                  (self.name, start, end))
        done = self.store.scalar(
            'SELECT COUNT(*) FROM input_log i JOIN applied a ON a.pipeline=i.pipeline AND a.key=i.key AND a.stage=? '
            'WHERE i.pipeline=? AND i."offset">=? AND i."offset"<?', (last_stage, self.name, start, end))
        return total, done

    def replay_start(self, req: m.ReplayRequest) -> m.ReplayJob:
        stage = self.stage(req.stage) if req.stage else self.stages[0]
        start, end = self._replay_range(req)
        end = max(start, end)
        total, done = self._count_range(start, end, self.stages[-1].name)
        t = now()
        job_id = ("plan-" if req.dry_run else "replay-") + uuid.uuid4().hex[:12]
        row = dict(id=job_id, pipeline=self.name, stage=stage.name, state="planned" if req.dry_run else "pending",
                   from_offset=req.from_offset, to_offset=req.to_offset, from_time=to_ts(req.from_time),
                   to_time=to_ts(req.to_time), start_offset=start, end_offset=end, cursor=start, total=total,
                   replayed=0, skipped=done if req.dry_run else 0, created_at=t, finished_at=None, error=None)
        if req.dry_run:
            return replay_job(row)
        with self.store.tx():
            self.store.run(f"INSERT INTO replay_jobs({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                           list(row.values()))
        self.replays[job_id] = self.spawn(self._run_replay(job_id), f"replay {job_id}")
        return replay_job(row)

    async def _run_replay(self, job_id: str) -> None:
        """Feed the range into its stage, one committed step per item, so progress survives a crash."""
        store = self.store
        job = store.one("SELECT * FROM replay_jobs WHERE id=?", (job_id,))
        st = self.by_name.get(job["stage"]) if job else None
        if job is None or st is None:
            return
        last = self.stages[-1].name
        with store.tx():
            store.run("UPDATE replay_jobs SET state='running' WHERE id=? AND state='pending'", (job_id,))
        cursor = job["cursor"]
        try:
            while True:
                rows = store.all('SELECT * FROM input_log WHERE pipeline=? AND "offset">=? AND "offset"<? '
                                 'ORDER BY "offset" LIMIT 100', (self.name, cursor, job["end_offset"]))
                if not rows:
                    break
                for r in rows:
                    done = store.one("SELECT 1 FROM applied WHERE pipeline=? AND stage=? AND key=?",
                                     (self.name, last, r["key"]))
                    if not done:
                        await st.wait_room()
                    state = store.scalar("SELECT state FROM replay_jobs WHERE id=?", (job_id,))
                    if state != "running":
                        return
                    cursor = r["offset"] + 1
                    t = now()
                    with store.tx():
                        if done:
                            store.run("UPDATE replay_jobs SET skipped=skipped+1, cursor=? WHERE id=?", (cursor, job_id))
                        else:
                            wid = store.run(
                                'INSERT INTO work(pipeline, stage, key, "offset", payload, origin, first_seen) '
                                "VALUES (?,?,?,?,?,?,?)",
                                (self.name, st.name, r["key"], r["offset"], r["payload"], "replay", t),
                            ).lastrowid
                            store.run("UPDATE replay_jobs SET replayed=replayed+1, cursor=? WHERE id=?", (cursor, job_id))
                    if not done:
                        st.accept(Work(wid, r["key"], r["offset"], loads(r["payload"]), "replay", t))
                    await asyncio.sleep(0)
            with store.tx():
                store.run("UPDATE replay_jobs SET state='completed', finished_at=? WHERE id=? AND state='running'",
                          (now(), job_id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("replay %s failed", job_id)
            with store.tx():
                store.run("UPDATE replay_jobs SET state='failed', finished_at=?, error=? WHERE id=?",
                          (now(), type(exc).__name__, job_id))
        finally:
            self.replays.pop(job_id, None)

    def replay_get(self, job_id: str) -> m.ReplayJob:
        row = self.store.one("SELECT * FROM replay_jobs WHERE id=? AND pipeline=?", (job_id, self.name))
        if row is None:
            raise NotFoundError(f"replay job {job_id!r} not found in pipeline {self.name!r}")
        return replay_job(dict(row))

    def replay_list(self) -> list[m.ReplayJob]:
        rows = self.store.all("SELECT * FROM replay_jobs WHERE pipeline=? ORDER BY created_at DESC LIMIT 1000",
                              (self.name,))
        return [replay_job(dict(r)) for r in rows]

    def replay_cancel(self, job_id: str) -> m.ReplayJob:
        job = self.replay_get(job_id)
        if job.state not in ("pending", "running"):
            raise ConflictError(f"replay job {job_id!r} is {job.state}; only pending or running jobs can be cancelled",
                                detail={"state": job.state})
        with self.store.tx():
            self.store.run("UPDATE replay_jobs SET state='cancelled', finished_at=? WHERE id=?", (now(), job_id))
        task = self.replays.pop(job_id, None)
        if task is not None:
            task.cancel()
        return self.replay_get(job_id)


# --- the whole runtime --------------------------------------------------------------------------------


class Runtime:
    """Runs pipelines over one SQLite database. `start()` resumes whatever a crash left."""

    def __init__(self, pipelines: list[Pipeline], db_path: str | Path) -> None:
        self.store = Store(db_path)
        self.instance = uuid.uuid4().hex
        self.stopping = False
        self.pipelines = {p.name: PipelineRuntime(self, p) for p in pipelines}
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        for p in self.pipelines.values():
            p.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="ticker")

    async def _tick(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            for p in self.pipelines.values():
                p.tick()
                p.sagas.tick()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking items, let in-flight ones finish within `timeout`, then cancel the rest.

        Cancelled items keep their `work` row and are processed after the next start.
        """
        self.stopping = True
        tasks: list[asyncio.Task] = []
        for p in self.pipelines.values():
            for st in p.stages:
                st.wake_all()
            for task in list(p.tasks):
                if task.get_name().endswith("/source") or task.get_name().startswith("replay"):
                    task.cancel()
            tasks += [t for st in p.stages for t in st.tasks] + list(p.tasks) + p.sagas.tasks()
        if self._ticker:
            self._ticker.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        self.store.close()

    def pipeline(self, name: str) -> PipelineRuntime:
        p = self.pipelines.get(name)
        if p is None:
            raise NotFoundError(f"pipeline {name!r} not found", detail={"pipelines": sorted(self.pipelines)})
        return p

    async def submit(self, pipeline: str, key: str, payload: Any) -> int:
        """Append an item to a pipeline's input log; returns its offset. Waits while the first stage is full."""
        return await self.pipeline(pipeline).ingest(key, payload)


# --- row conversion -------------------------------------------------------------------------------------


def dlq_id(seq: int) -> str:
    return f"dlq-{seq}"


def parse_dlq_id(text: str) -> int | None:
    if text.startswith("dlq-") and text[4:].isdigit() and len(text) < 24:
        return int(text[4:])
    return None


def encode_token(seq: int) -> str:
    return f"s{seq}"


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    if token.startswith("s") and token[1:].isdigit() and len(token) < 24:
        return int(token[1:])
    raise UsageError("invalid page_token", hint="pass the next_page_token of the previous page unchanged")


def dlq_item(r: Any) -> m.DLQItem:
    return m.DLQItem(
        id=dlq_id(r["seq"]), pipeline=r["pipeline"], stage=r["stage"], error_kind=r["error_kind"],
        message=r["message"], attempts=r["attempts"], first_seen=to_dt(r["first_seen"]),
        last_seen=to_dt(r["last_seen"]), key=r["key"], offset=r["offset"], payload=loads(r["payload"]),
        headers=loads(r["headers"]) or {}, details=loads(r["details"]) or {},
    )


def replay_job(r: dict[str, Any]) -> m.ReplayJob:
    return m.ReplayJob(
        id=r["id"], pipeline=r["pipeline"], stage=r["stage"], state=r["state"],
        from_offset=r["start_offset"], to_offset=r["end_offset"],
        from_time=to_dt(r["from_time"]), to_time=to_dt(r["to_time"]), total=r["total"], replayed=r["replayed"],
        skipped=r["skipped"], created_at=to_dt(r["created_at"]), finished_at=to_dt(r["finished_at"]),
        error=r["error"],
    )
