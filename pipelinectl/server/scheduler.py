"""The stage scheduler: each stage a worker pool over a bounded queue, fed by the pipeline's input.

An item lives in exactly one place at a time: a `work` row at one stage (queued
or in flight), the DLQ, or done. Moving it is one all-or-nothing part of a group
commit (`Store.later`) that also records `applied(stage, key)`, so a crash
re-runs at most the handler calls whose moves were not yet committed, and the
idempotency record makes a replayed or re-run item skip a stage whose effect
was already committed. An item counts as in flight at its stage until its move
has committed; only then does it enter the next stage's queue, whose place was
held for it meanwhile (`reserved`), so queues stay within their capacity. The
in-memory deques mirror the `work` table and are rebuilt from it at start.

Whether a stage takes its next item is decided in one place (`StageRuntime._may_take`),
and what happens to a taken item in another (`StageRuntime._process`): the gates
that pausing, draining and resizing act on. A rate limit is one more condition of
the first (a token bucket: no token, no take, and a timer wakes a worker when the
next token is due); a disabled stage one more outcome of the second (the item is
passed on unprocessed, and recorded in `bypassed` in the same commit that moves it,
for `replay --skipped`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pipelinectl import model as m

from . import audit
from .definition import Item, SagaStarter, StageDef, classify
from .rows import dlq_id, to_dt
from .store import Store, dumps, loads, now

log = logging.getLogger("pipelinectl.server")

Source = Callable[[int], AsyncIterator[tuple[str, Any]]]


class KEEP:
    """`StageRuntime.change(rate_limit=KEEP)`: leave the limit as it is (None clears it)."""


@dataclass
class Feed:
    """One running source: the first append of it that failed, after which it stops."""

    failed: BaseException | None = None


@dataclass(slots=True)
class Work:
    """An item at a stage: the in-memory mirror of one `work` row.

    `applied_here` is whether its stage had already applied its key when the
    item arrived there (read in the transaction that moved it; None: unknown).
    """

    id: int
    key: str
    offset: int | None
    payload: Any
    origin: str
    first_seen: float
    applied_here: bool | None = None




class TokenBucket:
    """A stage's rate limit: `burst` tokens, refilled at `per_second`; taking an item costs one.

    It starts full, so a limit set on a stage with a backlog lets `burst` items
    through at once, then `per_second`.
    """

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self.tokens, self.at = float(burst), clock()

    def wait(self) -> float:
        """0 when a token is there now, else the seconds until one is."""
        t = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (t - self.at) * self.per_second)
        self.at = t
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.per_second

    def take(self) -> None:
        self.tokens -= 1.0


class Signal:
    """Wake-ups for tasks waiting on a condition: `notify(1)` wakes one waiter, `notify()` all.

    Waking one (not all) keeps the cost of moving an item independent of the
    pool size. A woken task that is cancelled passes its wake-up on, so none is lost.
    """

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future] = deque()

    def waiting(self) -> bool:
        return bool(self._waiters)

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
    """One stage: its settings (state, parallelism, version), its queue, its workers and counters."""

    def __init__(self, pipeline: Scheduler, spec: StageDef, index: int) -> None:
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
        self.note: str | None = None  # why it is paused or disabled
        self.rate_limit: m.RateLimit | None = None
        self.bucket: TokenBucket | None = None
        self._refill: asyncio.TimerHandle | None = None  # wakes a worker when the next token is due
        self.processed = self.failed = self.skipped = self.retries = 0
        self.errors_by_kind: dict[str, int] = {}
        self.in_flight = 0
        self.reserved = 0  # places in the queue held for items whose move here is being committed
        self.applying: dict[str, int] = {}  # keys this stage applied in moves not yet committed
        self.active = 0
        self.tasks: set[asyncio.Task] = set()
        self.window: deque[list[int]] = deque()  # [second, done, failed] of the last minute, one per second
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
        self._set_limit(m.RateLimit.from_dict(loads(row["rate_limit"])) if row["rate_limit"] else None)

    def persist_settings(self) -> None:
        self.p.store.save_stage_settings(self.p.name, self.name, state=self.state, parallelism=self.parallelism,
                                         version=self.version, paused_until=self.paused_until, note=self.note,
                                         rate_limit=None if self.rate_limit is None else dumps(self.rate_limit.to_dict()))

    def change(self, *, state: str | None = None, parallelism: int | None = None,
               paused_until: float | None = None, note: str | None = None,
               rate_limit: m.RateLimit | None | type[KEEP] = KEEP) -> None:
        """Apply a settings change: bump the version, persist, wake the workers.

        `note` is the reason of a paused or disabled stage; `rate_limit` None clears the limit.
        """
        if state is not None:
            self.state = state
            self.paused_until = paused_until if state == "paused" else None
            self.note = note if state in ("paused", "disabled") else None
        if parallelism is not None:
            self.parallelism = parallelism
        if rate_limit is not KEEP:
            self._set_limit(rate_limit)  # type: ignore[arg-type]
        self.version += 1
        self.changed_at = time.monotonic()
        with self.p.store.tx():
            self.persist_settings()
        self.ensure_workers()
        self.wake_all()
        self.check_drained()

    def _set_limit(self, limit: m.RateLimit | None) -> None:
        """A new bucket (full) for a new limit, none without one; a pending refill wake-up goes."""
        self.rate_limit = limit
        self.bucket = None if limit is None else TokenBucket(limit.per_second, limit.burst)
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None

    def _refilled(self) -> None:
        self._refill = None
        self.work_ready.notify(1)

    def wake_all(self) -> None:
        self.work_ready.notify()
        self.room.notify()

    def check_drained(self) -> None:
        if self.state == "draining" and not self.queue and self.in_flight == 0 and self.reserved == 0:
            with self.p.store.tx():
                self.change(state="paused", note="drained")
                audit.record(self.p.store, "drained", pipeline=self.p.name, target=self.name, system=True,
                             reason="drain finished: queue empty, nothing in flight", result="paused")

    def idle(self) -> bool:
        """Some worker of this stage waits for an item to arrive."""
        return self.work_ready.waiting() and self.state in ("running", "draining")

    def has_room(self) -> bool:
        return self.state != "draining" and len(self.queue) + self.reserved < self.spec.capacity

    async def wait_room(self) -> None:
        """Backpressure: wait while this stage's queue is full (or it is draining)."""
        await self.room.wait_for(lambda: self.has_room() or self.p.stopping)
        if self.p.stopping:
            raise asyncio.CancelledError

    async def reserve_room(self) -> None:
        """Wait for room and hold one place for an item until its move here commits (`accept` or `unreserve`)."""
        if self.p.stopping or not self.has_room():
            await self.wait_room()
        self.reserved += 1

    def unreserve(self) -> None:
        """The move did not commit: give the held place back."""
        self.reserved -= 1
        self.room.notify(1)
        self.check_drained()

    def accept(self, work: Work, reserved: bool = False) -> None:
        """Put an item (already committed to this stage in the store) into the queue."""
        if reserved:
            self.reserved -= 1
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

    def _may_take(self) -> bool:
        """The gate: whether this stage takes its next item now (its state and rate limit allow it, one is queued).

        A disabled stage takes every item, unlimited: it only passes them on.
        """
        if not self.queue or self.state not in ("running", "draining", "disabled"):
            return False
        if self.bucket is None or self.state == "disabled":
            return True
        wait = self.bucket.wait()
        if wait > 0.0:
            if self._refill is None:
                self._refill = asyncio.get_running_loop().call_later(wait, self._refilled)
            return False
        return True

    def _can_take(self) -> bool:
        return self.p.stopping or self.active > self.parallelism or self._may_take()

    async def _take(self) -> Work | None:
        await self.work_ready.wait_for(self._can_take)
        if self.p.stopping or self.active > self.parallelism:
            self.active -= 1  # scale-down (or stop): this worker leaves; checked and done without a yield
            if self.queue:
                self.work_ready.notify(1)  # the wake-up this worker got belongs to another
            return None
        self.last_take = time.monotonic()
        if self.bucket is not None and self.state != "disabled":
            self.bucket.take()
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
                await self._process(work)  # the item's move is queued; its commit settles it
            except asyncio.CancelledError:
                self._settle()
                raise  # shutdown: the work row stays at this stage and is picked up after restart
            except Exception:  # a bug in the runtime itself: keep the item, log, go on
                log.exception("stage %s/%s: unexpected error", self.p.name, self.name)
                await asyncio.sleep(1.0)
                self._requeue(work)

    def _settle(self) -> None:
        """An item left this stage's hands: moved on, dead-lettered, or back in the queue."""
        self.in_flight -= 1
        self.check_drained()

    def _requeue(self, work: Work) -> None:
        self.queue.appendleft(work)
        self.work_ready.notify(1)
        self._settle()

    def _commit_failed(self, work: Work, error: BaseException) -> None:
        """The store refused the item's move: it is still here (the work row unchanged); try again in a second."""
        log.error("stage %s/%s: could not commit item %s: %r", self.p.name, self.name, work.key, error)
        asyncio.get_running_loop().call_later(1.0, self._requeue, work)

    async def _process(self, work: Work) -> None:
        """Decide what happens to a taken item: passed on (its key was already applied here) or handled.

        Returns once the item's move (on, or to the DLQ) is queued for the next
        group commit; it raises only if nothing was queued.
        """
        store = self.p.store
        applied = work.applied_here
        if applied is None or work.key in self.p.shared_keys:  # maybe applied since it arrived: look again
            applied = work.key in self.applying or store.is_applied(self.p.name, self.name, work.key)
        if applied:
            await self._forward(work, work.payload, skipped=True)
            return
        if self.state == "disabled":  # bypassed: on unprocessed, recorded for `replay --skipped`
            await self._forward(work, work.payload, bypass=True)
            return
        retry = self.spec.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            item = Item(work.key, work.payload, work.offset, self.name, attempt, work.origin, self.p.start_saga)
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
                        store.count(self.p.name, self.name, retries=1)
                    await asyncio.sleep(retry.delay(attempt))
                    continue
                self._dead_letter(work, kind, message, attempt)
                return
            await self._forward(work, work.payload if out is None else out)
            return

    async def _forward(self, work: Work, payload: Any, skipped: bool = False, bypass: bool = False) -> None:
        """Record the stage's effect and hand the item to the next stage (or finish it), in a group commit.

        `skipped`: the handler did not run because the key was applied here
        already (perhaps by a move still waiting for its commit, see `applying`).
        `bypass`: the stage is disabled; the item goes on as it came, and is recorded.
        """
        data = None if self.next is None or bypass else dumps(payload)
        if self.next is not None:
            await self.next.reserve_room()
        if not (skipped or bypass):
            self.applying[work.key] = self.applying.get(work.key, 0) + 1
        idle = self.next is not None and self.next.idle()  # a worker there waits for this very item
        self.p.store.later(Move(self, work, payload, data, now(), skipped, bypass), soon=idle)

    def _moved(self, move: Move, error: BaseException | None) -> None:
        """After the commit of a `Move` (or its failure)."""
        work, nxt = move.work, self.next
        if not (move.skipped or move.bypass):
            left = self.applying.pop(work.key, 1) - 1
            if left > 0:
                self.applying[work.key] = left
        if error is not None:
            if nxt is not None:
                nxt.unreserve()
            self._commit_failed(work, error)
            return
        if move.bypass:
            pass  # counted in the `bypassed` table (Stage.bypassed)
        elif move.fresh:
            self.processed += 1
            self._tally(move.t, ok=True)
        else:
            self.skipped += 1
        if nxt is None:
            self.p.retire(work.key)
        else:
            work.payload, work.applied_here = move.payload, move.applied_next
            nxt.accept(work, reserved=True)
        self._settle()

    def _dead_letter(self, work: Work, kind: str, message: str, attempts: int) -> None:
        if kind == "fatal" and self.state != "paused":  # paused before any other item is taken
            self.change(state="paused", note=f"fatal error on item {work.key}: {message[:200]}")
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.p.store.later(DeadLetter(self, work, kind, message[:2000], attempts, now()))

    def _dead_lettered(self, part: DeadLetter, error: BaseException | None) -> None:
        """After the commit of a `DeadLetter` (or its failure)."""
        if error is not None:
            self._commit_failed(part.work, error)
            return
        self.failed += 1
        self._tally(part.t, ok=False)
        self.p.retire(part.work.key)
        self._settle()

    # views --------------------------------------------------------------------------------------------
    def _tally(self, t: float, ok: bool) -> None:
        """Count an item done or failed in its second (a few dozen counters, not an entry per item)."""
        second = int(t)
        if not self.window or self.window[-1][0] != second:
            self.window.append([second, 0, 0])
            if len(self.window) > 120:
                self.window.popleft()
        self.window[-1][1 if ok else 2] += 1

    def view(self, dlq_size: int | None = None, bypassed: int | None = None) -> m.Stage:
        t = now()
        while self.window and self.window[0][0] < t - 60:
            self.window.popleft()
        ok = sum(b[1] for b in self.window)
        total = ok + sum(b[2] for b in self.window)
        span = max(1.0, min(60.0, t - self.p.started_at))
        details: dict[str, Any] = {
            "retries": self.retries,
            "skipped_duplicates": self.skipped,
            "workers": self.active,
        }
        if self.note and self.state == "paused":
            details["paused_reason"] = self.note
        if bypassed is None:
            bypassed = self.p.store.bypassed_count_by_stage(self.p.name).get(self.name, 0)
        return m.Stage(
            pipeline=self.p.name, name=self.name, state=self.state, parallelism=self.parallelism,
            min_parallelism=self.spec.min_parallelism, max_parallelism=self.spec.max_parallelism,
            in_flight=self.in_flight, queue_depth=len(self.queue), queue_capacity=self.spec.capacity,
            processed=self.processed, failed=self.failed, throughput=round(ok / span, 3),
            error_rate=round((total - ok) / total, 4) if total else 0.0,
            errors_by_kind=dict(self.errors_by_kind),
            dlq_size=self.p.store.dlq_count(self.p.name, self.name) if dlq_size is None else dlq_size,
            paused_until=to_dt(self.paused_until), rate_limit=self.rate_limit,
            disabled_reason=self.note if self.state == "disabled" else None, bypassed=bypassed,
            version=self.version, details=details,
        )


# --- the parts of a group commit (see Store.later): one small object per item, no closures ----------------


class Move:
    """An item leaves its stage: applied there, and on to the next stage (or done)."""

    __slots__ = ("stage", "work", "payload", "data", "t", "skipped", "bypass", "fresh", "applied_next")

    def __init__(self, stage: StageRuntime, work: Work, payload: Any, data: str | None, t: float,
                 skipped: bool, bypass: bool = False) -> None:
        self.stage, self.work, self.payload, self.data, self.t, self.skipped = stage, work, payload, data, t, skipped
        self.bypass = bypass
        self.fresh, self.applied_next = False, None

    def run(self) -> None:
        st, work = self.stage, self.work
        store, pipeline, nxt = st.p.store, st.p.name, st.next
        if self.bypass:
            store.record_bypass(pipeline, st.name, work.key, work.offset, dumps(work.payload), work.origin, self.t)
        else:
            self.fresh = store.mark_applied(pipeline, st.name, work.key, self.t)
            if self.skipped and self.fresh:  # the move it was skipped for did not commit after all: run it again
                raise RuntimeError(f"key {work.key!r} was not applied at {st.name!r}")
            store.count(pipeline, st.name, processed=int(self.fresh), skipped=int(not self.fresh))
        if nxt is None:
            store.drop_work(work.id)
        else:
            store.move_work(work.id, nxt.name, self.data)
            self.applied_next = store.is_applied(pipeline, nxt.name, work.key)

    def done(self, error: BaseException | None) -> None:
        self.stage._moved(self, error)


class DeadLetter:
    """An item leaves its stage for the DLQ."""

    __slots__ = ("stage", "work", "kind", "message", "attempts", "t")

    def __init__(self, stage: StageRuntime, work: Work, kind: str, message: str, attempts: int, t: float) -> None:
        self.stage, self.work, self.kind, self.message, self.attempts, self.t = stage, work, kind, message, attempts, t

    def run(self) -> None:
        st, work = self.stage, self.work
        store = st.p.store
        seq = store.dead_letter(st.p.name, st.name, work.key, work.offset, dumps(work.payload), self.kind,
                                self.message, self.attempts, work.first_seen, self.t, {"origin": work.origin})
        store.drop_work(work.id)
        why = "retries exhausted" if self.kind == "transient" else f"{self.kind} error"
        audit.record(store, "dead-letter", pipeline=st.p.name, target=st.name, system=True,
                     arguments={"item": dlq_id(seq), "key": work.key, "error_kind": self.kind,
                                "attempts": self.attempts},
                     reason=why, result=self.message[:200])
        store.count(st.p.name, st.name, failed=1, errors_by_kind=st.errors_by_kind)

    def done(self, error: BaseException | None) -> None:
        self.stage._dead_lettered(self, error)


class Append:
    """An item enters the input log and the first stage."""

    __slots__ = ("scheduler", "key", "payload", "data", "t", "feed", "future", "offset", "wid", "applied")

    def __init__(self, scheduler: Scheduler, key: str, payload: Any, feed: Feed | None,
                 future: asyncio.Future | None) -> None:
        self.scheduler, self.key, self.payload, self.feed, self.future = scheduler, key, payload, feed, future
        self.data, self.t = dumps(payload), now()
        self.offset = self.wid = 0
        self.applied = False

    def run(self) -> None:
        if self.feed is not None and self.feed.failed is not None:
            raise RuntimeError("an earlier append of this source failed")
        sched = self.scheduler
        store, first = sched.store, sched.stages[0]
        self.offset = store.next_offset(sched.name)  # from the log itself: never a gap
        self.wid = store.append_input(sched.name, self.offset, self.key, self.data, self.t, first.name)
        self.applied = store.is_applied(sched.name, first.name, self.key)

    def done(self, error: BaseException | None) -> None:
        self.scheduler._appended(self, error)


# --- one pipeline's stages and input ------------------------------------------------------------------


class Scheduler:
    """One pipeline's stages, linked in order, and its input: the durable input log, `ingest`, the source."""

    def __init__(self, name: str, specs: list[StageDef], store: Store, stopping: Callable[[], bool],
                 start_saga: SagaStarter) -> None:
        self.name = name
        self.store = store
        self._stopping = stopping
        self.start_saga = start_saga
        self.started_at = now()
        self.stages = [StageRuntime(self, s, i) for i, s in enumerate(specs)]
        for a, b in zip(self.stages, self.stages[1:], strict=False):
            a.next = b
        self.by_name = {s.name: s for s in self.stages}
        self.next_offset = 0
        self.tasks: set[asyncio.Task] = set()
        # Keys of the items in the pipeline (queued or in flight), and those of them that had
        # company (two live items with one key) since their count was last zero: only for
        # those can a stage have applied the key after the item arrived there.
        self.live_keys: dict[str, int] = {}
        self.shared_keys: set[str] = set()

    @property
    def stopping(self) -> bool:
        return self._stopping()

    def admit(self, stage: StageRuntime, work: Work, reserved: bool = False) -> None:
        """A new item enters the pipeline at `stage` (from the input, a replay, a redrive or the store)."""
        n = self.live_keys.get(work.key, 0) + 1
        self.live_keys[work.key] = n
        if n > 1:
            self.shared_keys.add(work.key)
        stage.accept(work, reserved)

    def retire(self, key: str) -> None:
        """An item left the pipeline (done or dead-lettered)."""
        n = self.live_keys.pop(key, 1) - 1
        if n > 0:
            self.live_keys[key] = n
        else:
            self.shared_keys.discard(key)

    def restore(self) -> None:
        """Load stage settings and counters, and refill the queues from the `work` table."""
        store = self.store
        with store.tx():
            for st in self.stages:
                row = store.stage_row(self.name, st.name)
                if row is None:
                    store.add_stage(self.name, st.name, "running", st.spec.parallelism)
                else:
                    st.load(row)
        for row in store.works(self.name):
            st = self.by_name.get(row["stage"])
            if st is None:  # a stage removed from the definition: its items wait in the DLQ instead
                with store.tx():
                    store.dead_letter(self.name, row["stage"], row["key"], row["offset"], row["payload"], "persistent",
                                      f"stage {row['stage']!r} no longer exists in the pipeline definition", 0,
                                      row["first_seen"], now(), {"origin": row["origin"]})
                    store.drop_work(row["id"])
                continue
            self.admit(st, Work(row["id"], row["key"], row["offset"], loads(row["payload"]), row["origin"],
                                row["first_seen"]))
        self.next_offset = store.next_offset(self.name)

    def start(self, source: Source | None) -> None:
        self.restore()
        for st in self.stages:
            st.ensure_workers()
            st.check_drained()
        if source is not None:
            task = asyncio.get_running_loop().create_task(self._run_source(source), name=f"{self.name}/source")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def stop(self) -> list[asyncio.Task]:
        """Wake every waiting worker (they see `stopping` and leave), cancel the source; the tasks to await."""
        for st in self.stages:
            st.wake_all()
        for task in self.tasks:
            task.cancel()
        return [t for st in self.stages for t in st.tasks] + list(self.tasks)

    def tick(self) -> None:
        """Once a second: resume stages whose `pause --until` has passed."""
        t = now()
        for st in self.stages:
            if st.state == "paused" and st.paused_until is not None and st.paused_until <= t:
                with self.store.tx():
                    st.change(state="running")
                    audit.record(self.store, "resume", pipeline=self.name, target=st.name, system=True,
                                 reason="pause --until reached", result="running")

    # input ----------------------------------------------------------------------------------------------
    async def ingest(self, key: str, payload: Any) -> int:
        """Append one item to the durable input log and hand it to the first stage (waits for room).

        Returns the item's offset once the append is committed.
        """
        await self.stages[0].reserve_room()
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._append(key, payload, done=done)
        return await done

    def _append(self, key: str, payload: Any, feed: Feed | None = None, done: asyncio.Future | None = None) -> None:
        """Queue the append of an item (its room in the first stage reserved) for the next group commit.

        Appends of one `feed` (a source) after one that failed fail too, so the
        log always holds a prefix of what the source yielded, and a restarted
        source, told how many items the log holds, neither skips nor repeats one.
        """
        self.store.later(Append(self, key, payload, feed, done), soon=self.stages[0].idle())

    def _appended(self, part: Append, error: BaseException | None) -> None:
        """After the commit of an `Append` (or its failure)."""
        first, done = self.stages[0], part.future
        if error is not None:
            first.unreserve()
            if part.feed is not None and part.feed.failed is None:
                part.feed.failed = error
            if done is not None and not done.done():
                done.set_exception(error)
            return
        self.next_offset = max(self.next_offset, part.offset + 1)
        self.admit(first, Work(part.wid, part.key, part.offset, part.payload, "input", part.t, part.applied),
                   reserved=True)
        if done is not None and not done.done():
            done.set_result(part.offset)

    async def _run_source(self, source: Source) -> None:
        """Feed the source into the first stage without waiting for each append's commit: they group."""
        first, feed = self.stages[0], Feed()
        try:
            async for key, payload in source(self.next_offset):
                if feed.failed is not None:
                    raise feed.failed
                await first.reserve_room()
                self._append(str(key), payload, feed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pipeline %s: source failed", self.name)
