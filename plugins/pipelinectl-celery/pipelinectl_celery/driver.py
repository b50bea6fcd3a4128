"""CeleryControlPlane: the ControlPlane verbs on a Celery app with a Redis broker and result backend.

Mapping (docs/plugins/celery.md has the operator's version):
- pipeline = the Celery app the context points at (broker URL; `result_backend` setting);
- stage = a queue, with the workers consuming it (Celery's inspect API);
- pause/resume = cancel_consumer/add_consumer for the queue on its workers;
- scale = pool_grow/pool_shrink on the workers consuming the queue (prefork pool);
- dead letters = failure records in the result backend (results.py), redriven exactly once.
Replay, drain and sagas are not Celery concepts: they stay unsupported, saying why.

Celery is imported only by the verbs that talk to workers or build task messages (link.py).
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelinectl.plugin_api import (
    BulkResult,
    Capability,
    ConflictError,
    Connection,
    DLQFilter,
    DLQItem,
    NotFoundError,
    Pipeline,
    PipelinectlError,
    Stage,
    StaleVersionError,
    UnavailableError,
    UnsupportedError,
    UnsupportedVerbs,
    UsageError,
    format_time,
)

from . import results
from .link import Link, float_setting

PAUSE_PREFIX = "pipelinectl:celery:paused:"
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: a queue is one list per priority step
PRIORITY_SEP = "\x06\x16"
DEFAULT_MAX_POOL = 32
PREVIEW_TRACEBACK_LINES = 1

ProgressFn = Callable[[str, int, int], None]

NO_REPLAY = ("the Redis broker deletes a task message once a worker has taken it, so there is no log of past "
             "tasks to replay from; re-send failed tasks with 'pipelinectl dlq redrive'")
NO_DRAIN = ("Celery cannot stop producers from adding to a queue; use 'pipelinectl pause' to stop the workers "
            "taking tasks from it")
NO_LIMIT = ("Celery's rate limits are per task type and per worker, not per queue: set one with "
            "'celery -A APP control rate_limit TASK 50/s'")
NO_SAGAS = "Celery has no sagas (a canvas chain is not tracked as one by the broker or result backend)"


def _default_progress(what: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{what} {done}/{total}{end}")
        sys.stderr.flush()


def _names(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _queue_of(task: dict[str, Any]) -> str | None:
    info = task.get("delivery_info") or (task.get("request") or {}).get("delivery_info") or {}
    return info.get("routing_key")


def _time(epoch: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(epoch), UTC) if epoch else None
    except (TypeError, ValueError, OSError):
        return None


@dataclass
class Worker:
    """What one worker said about itself in one round of inspect broadcasts."""

    name: str
    queues: list[str] = field(default_factory=list)
    processes: int = 0
    pool_impl: str = ""
    concurrency: int = 0
    autoscaler: dict[str, Any] | None = None
    active: list[dict[str, Any]] = field(default_factory=list)
    reserved: list[dict[str, Any]] = field(default_factory=list)
    scheduled: list[dict[str, Any]] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    prefetch: int | None = None

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "queues": self.queues, "pool_processes": self.processes,
                "pool": self.pool_impl, "concurrency": self.concurrency, "autoscaler": self.autoscaler,
                "active": len(self.active), "reserved": len(self.reserved), "scheduled": len(self.scheduled),
                "prefetch_count": self.prefetch, "processed": sum(self.totals.values())}


class CeleryControlPlane(UnsupportedVerbs):
    """A ControlPlane over one Celery app (a Redis broker, a Redis result backend, and its workers)."""

    driver = "celery"
    url_schemes = ("redis", "rediss")
    capabilities = frozenset({
        Capability.STATUS, Capability.PAUSE, Capability.RESUME, Capability.SCALE, Capability.DLQ_LIST,
        Capability.DLQ_SHOW, Capability.DLQ_REDRIVE, Capability.DLQ_PURGE,
    })

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        settings = connection.settings
        self.link = Link(connection)
        names = _names(connection.pipeline)
        if len(names) > 1:
            raise UsageError("a celery context is one Celery app: give one pipeline name",
                             hint="name the queues with --set queues=a,b")
        self.name = names[0] if names else str(settings.get("app") or "celery")
        self.queues = _names(settings.get("queues"))
        self.kinds = results.ErrorKinds(settings.get("error_kinds"))
        self.max_pool = int(float_setting(connection, "max_pool", DEFAULT_MAX_POOL, 1, 10_000))
        self.key_prefix = str(settings.get("result_keyprefix") or "")
        # `status` counts failure records by scanning the result backend; a huge backend may turn it off
        self.count_failures = str(settings.get("status_failures", "true")).lower() not in ("false", "no", "0", "off")
        self.progress: ProgressFn | None = _default_progress
        self.scan_count = 1000  # keys per SCAN/MGET round over the result backend
        self.redrive_batch = 100  # tasks published per round trip by dlq redrive
        self._publish_once: Any = None
        self.unreadable_results = 0  # records of the last scan that are not JSON (never unpickled)

    def close(self) -> None:
        self.link.close()

    def server_version(self) -> str:
        """Shown by `pipelinectl version`: the broker's Redis version and the workers that answer."""
        self.link.start_verb()
        info = self.link.call(lambda: self.link.broker().info("server"), what="server info")
        workers = self.link.online_workers()
        return f"redis {info.get('redis_version', '?')} (celery broker; {len(workers)} workers online)"

    # -- reading the workers ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Worker]:
        """Every online worker: its queues, pool and tasks (one broadcast per inspect command)."""
        online = self.link.online_workers()
        if not online:
            return {}
        by = self.link.by_node
        queues = by("active_queues", online)
        stats = by("stats", online)
        active = by("active", online)
        reserved = by("reserved", online)
        scheduled = by("scheduled", online)
        registered = by("registered", online, taskinfoitems=["rate_limit"])
        workers: dict[str, Worker] = {}
        for node in online:
            stat = stats.get(node) if isinstance(stats.get(node), dict) else {}
            pool = stat.get("pool") or {}
            processes = pool.get("processes")
            workers[node] = Worker(
                name=node,
                queues=[q.get("name") for q in queues.get(node) or [] if isinstance(q, dict) and q.get("name")],
                processes=len(processes) if isinstance(processes, list) else int(pool.get("max-concurrency") or 0),
                pool_impl=str(pool.get("implementation") or ""),
                concurrency=int(pool.get("max-concurrency") or 0),
                autoscaler=stat.get("autoscaler") or None,
                active=list(active.get(node) or []),
                reserved=list(reserved.get(node) or []),
                scheduled=list(scheduled.get(node) or []),
                registered=[str(t) for t in registered.get(node) or []],
                totals={str(k): int(v) for k, v in (stat.get("total") or {}).items()},
                prefetch=stat.get("prefetch_count"),
            )
        return workers

    def _paused(self) -> dict[str, dict[str, Any]]:
        """Queues paused through pipelinectl: queue -> {workers, at} (markers on the broker)."""
        broker = self.link.broker()

        def read() -> dict[str, dict[str, Any]]:
            keys = sorted(broker.scan_iter(match=f"{PAUSE_PREFIX}*", count=500))
            values = broker.mget(keys) if keys else []
            found: dict[str, dict[str, Any]] = {}
            for key, value in zip(keys, values, strict=True):
                name = (key.decode() if isinstance(key, bytes) else key)[len(PAUSE_PREFIX):]
                try:
                    found[name] = json.loads(value) if value else {}
                except ValueError:
                    found[name] = {}
            return found

        return self.link.call(read, what="pause markers")

    def _depths(self, queues: list[str]) -> dict[str, int]:
        broker = self.link.broker()

        def read() -> dict[str, int]:
            pipe = broker.pipeline(transaction=False)
            for queue in queues:
                for key in self._queue_keys(queue):
                    pipe.llen(key)
            sizes = pipe.execute()
            step = len(PRIORITY_STEPS)
            return {q: sum(int(s) for s in sizes[i * step:(i + 1) * step]) for i, q in enumerate(queues)}

        return self.link.call(read, what="queue depths") if queues else {}

    @staticmethod
    def _queue_keys(queue: str) -> list[str]:
        return [queue if pri == 0 else f"{queue}{PRIORITY_SEP}{pri}" for pri in PRIORITY_STEPS]

    def _known_queues(self, workers: dict[str, Worker], paused: dict[str, Any]) -> list[str]:
        if self.queues:
            return list(self.queues)
        found = {q for w in workers.values() for q in w.queues} | set(paused)
        return sorted(found)

    # -- building models --------------------------------------------------------------------------------
    def _stage(self, queue: str, workers: dict[str, Worker], depth: int, failures: dict[str, int],
               paused: dict[str, Any] | None) -> Stage:
        consumers = [w for w in workers.values() if queue in w.queues]
        processes = sum(w.processes for w in consumers)
        active = [t for w in consumers for t in w.active if _queue_of(t) == queue]
        reserved = [t for w in consumers for t in w.reserved if _queue_of(t) == queue]
        scheduled = [t for w in consumers for t in w.scheduled if _queue_of(t) == queue]
        task_types: dict[str, str | None] = {}
        for worker in consumers:
            for entry in worker.registered:
                name, _, extra = entry.partition(" ")
                rate = extra.strip("[]").partition("rate_limit=")[2] or None if extra else None
                task_types.setdefault(name, rate)
        by_kind: dict[str, int] = {}
        for exc_type, count in failures.items():
            kind = self.kinds.of(exc_type)
            by_kind[kind] = by_kind.get(kind, 0) + count
        dead = sum(failures.values())
        is_paused = paused is not None and not consumers
        minimum = max(1, len(consumers))
        details: dict[str, Any] = {
            "queue": queue,
            "workers": [w.view() for w in consumers],
            "consumers": len(consumers),
            "active": len(active),
            "reserved": len(reserved),
            "scheduled": len(scheduled),
            "registered_tasks": sorted(task_types),
            "rate_limits": {name: rate for name, rate in sorted(task_types.items()) if rate},
            "failures_by_exception": dict(sorted(failures.items())) if self.count_failures else "not counted "
                                     "(setting status_failures=false; see 'pipelinectl dlq list')",
            "result_backend": self.link.backend_display,
        }
        if paused is not None:
            details["paused_by_pipelinectl"] = {"workers": paused.get("workers") or [], "at": paused.get("at")}
            if consumers:
                details["pause_note"] = (f"paused through pipelinectl, but {', '.join(w.name for w in consumers)} "
                                         "consume(s) it again (a worker restarted with -Q?)")
        if not consumers and paused is None:
            details["note"] = "no online worker consumes this queue"
        version_source = {"consumers": sorted((w.name, w.processes) for w in consumers), "paused": is_paused}
        return Stage(
            pipeline=self.name,
            name=queue,
            state="paused" if is_paused else "running",
            parallelism=processes,
            min_parallelism=minimum,
            max_parallelism=max(minimum, len(consumers) * self.max_pool),
            in_flight=len(active),
            queue_depth=depth,
            failed=dead,
            errors_by_kind=by_kind,
            dlq_size=dead,
            version=zlib.crc32(json.dumps(version_source).encode()) & 0x7FFFFFFF,
            details=details,
        )

    def _failure_counts(self) -> dict[str, dict[str, int]]:
        """queue -> {exception class: failure records} over the whole result backend."""
        counts: dict[str, dict[str, int]] = {}
        for failure in self._failures():
            per_queue = counts.setdefault(failure.queue, {})
            per_queue[failure.exc_type] = per_queue.get(failure.exc_type, 0) + 1
        return counts

    def _check_pipeline(self, pipeline: str | None) -> None:
        if pipeline is not None and pipeline != self.name:
            raise NotFoundError(f"pipeline '{pipeline}' not found: this context is the Celery app '{self.name}'",
                                hint=f"use -p {self.name}, or another context")

    def _build(self, only: str | None = None, *, count_failures: bool | None = None
               ) -> tuple[list[Stage], dict[str, Worker], dict[str, dict[str, int]]]:
        workers = self.snapshot()
        paused = self._paused()
        queues = self._known_queues(workers, paused)
        if only is not None:
            if only not in queues and not (only == results.UNKNOWN_QUEUE and not self.queues):
                raise NotFoundError(f"stage '{only}' not found in pipeline '{self.name}' "
                                    "(no online worker consumes a queue of that name)",
                                    hint=f"known queues: {', '.join(queues)}" if queues else
                                    "no worker is online; name the queues with --set queues=a,b")
            queues = [only]
        depths = self._depths(queues)
        counting = self.count_failures if count_failures is None else count_failures
        failures = self._failure_counts() if counting else {}
        stages = [self._stage(q, workers, depths.get(q, 0), failures.get(q, {}), paused.get(q)) for q in queues]
        return stages, workers, failures

    # -- status -----------------------------------------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        self.link.start_verb()
        self._check_pipeline(pipeline)
        stages, workers, failures = self._build()
        counted = {s.name for s in stages}
        other_failures = sum(sum(v.values()) for q, v in failures.items() if q not in counted)
        return [Pipeline(
            name=self.name,
            stages=stages,
            dlq_size=sum(s.dlq_size for s in stages) + other_failures,
            driver=self.driver,
            details={
                "broker": self.link.url,
                "result_backend": self.link.backend_display,
                "workers": sorted(workers),
                "failures_outside_stages": other_failures,
                **({"results_not_json": self.unreadable_results,
                    "results_note": "result records that are not JSON are not read (the app's result_serializer "
                                    "is not json): their failures are not counted or listed"}
                   if self.unreadable_results else {}),
            },
        )]

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        self.link.start_verb()
        self._check_pipeline(pipeline)
        return self._build(stage)[0][0]

    # -- pause / resume ---------------------------------------------------------------------------------
    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        if until is not None:
            raise UnsupportedError.verb(self.driver, "pause --until",
                                        "Celery workers cannot resume a queue by themselves at a time; "
                                        "pause, then run 'pipelinectl resume' when it is time")
        self.link.start_verb()
        self._check_pipeline(pipeline)
        before, workers, _ = self._build(stage)
        current = before[0]
        self._check_version(current, expected_version)
        consumers = [w.name for w in workers.values() if stage in w.queues]
        if current.state == "paused" and not consumers:
            return current
        if not consumers:
            raise ConflictError(f"no online worker consumes queue '{stage}': there is nothing to pause",
                                hint="start a worker with -Q, or check 'pipelinectl celery workers'")
        if dry_run:
            return self._projected(current, state="paused", parallelism=0, in_flight=current.in_flight)
        marker = {"workers": sorted(set(consumers) | set((self._paused().get(stage) or {}).get("workers") or [])),
                  "at": format_time(datetime.now(UTC))}
        broker = self.link.broker()
        self.link.call(lambda: broker.set(f"{PAUSE_PREFIX}{stage}", json.dumps(marker)), what="pause marker")
        answers = self.link.by_node("cancel_consumer", consumers, queue=stage)
        self._require_all(answers, consumers, f"cancel_consumer {stage}")
        return self._after(stage, lambda s: s.state == "paused", "pause")

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        self.link.start_verb()
        self._check_pipeline(pipeline)
        before, workers, _ = self._build(stage)
        current = before[0]
        self._check_version(current, expected_version)
        marker = self._paused().get(stage)
        online = sorted(workers)
        recorded = [w for w in (marker or {}).get("workers") or [] if w in workers]
        targets = [w for w in (recorded or online) if stage not in workers[w].queues]
        if current.state == "running" and marker is None:
            return current  # running, and not paused by us: nothing to do
        if not online:
            raise ConflictError(f"no worker is online to resume queue '{stage}' on",
                                hint="start the workers; a worker started with -Q consumes the queue by itself")
        if dry_run:
            return self._projected(current, state="running")
        if targets:
            answers = self.link.by_node("add_consumer", targets, queue=stage)
            self._require_all(answers, targets, f"add_consumer {stage}")
        broker = self.link.broker()
        self.link.call(lambda: broker.delete(f"{PAUSE_PREFIX}{stage}"), what="pause marker")
        return self._after(stage, lambda s: s.state == "running" and s.details["consumers"] > 0, "resume")

    # -- scale ------------------------------------------------------------------------------------------
    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        if isinstance(parallelism, bool) or not isinstance(parallelism, int):
            raise UsageError(f"--parallelism must be a whole number, got {parallelism!r}")
        self.link.start_verb()
        self._check_pipeline(pipeline)
        before, workers, _ = self._build(stage)
        current = before[0]
        self._check_version(current, expected_version)
        consumers = sorted((w for w in workers.values() if stage in w.queues), key=lambda w: w.name)
        if not consumers:
            raise ConflictError(f"no online worker consumes queue '{stage}': there is no pool to scale",
                                hint="resume the queue or start a worker with -Q")
        if not current.min_parallelism <= parallelism <= current.max_parallelism:
            raise UsageError(f"--parallelism {parallelism} is outside [{current.min_parallelism}, "
                             f"{current.max_parallelism}] for queue '{stage}' ({len(consumers)} workers, "
                             f"at most {self.max_pool} processes each: setting max_pool)")
        not_prefork = [w.name for w in consumers if "prefork" not in w.pool_impl]
        if not_prefork:
            raise UnsupportedError.verb(self.driver, "scale",
                                        f"only the prefork pool grows and shrinks; {', '.join(not_prefork)} "
                                        "run another pool")
        share, extra = divmod(parallelism, len(consumers))
        plan = {w.name: share + (1 if i < extra else 0) - w.processes for i, w in enumerate(consumers)}
        if dry_run:
            return self._projected(current, parallelism=parallelism)
        for worker in consumers:
            delta = plan[worker.name]
            if delta == 0:
                continue
            command = "pool_grow" if delta > 0 else "pool_shrink"
            answers = self.link.by_node(command, [worker.name], n=abs(delta))
            self._require_all(answers, [worker.name], command)
        return self._after(stage, lambda s: s.parallelism == parallelism, "scale")

    # -- helpers of the stage verbs -----------------------------------------------------------------------
    @staticmethod
    def _check_version(stage: Stage, expected: int | None) -> None:
        if expected is not None and expected != stage.version:
            raise StaleVersionError(f"stage '{stage.name}' changed since it was read (version {stage.version}, "
                                    f"expected {expected})", hint="read it again and retry")

    @staticmethod
    def _projected(stage: Stage, **changes: Any) -> Stage:
        data = stage.to_dict()
        data.update(changes)
        return Stage.from_dict(data)

    @staticmethod
    def _require_all(answers: dict[str, Any], nodes: list[str], what: str) -> None:
        """Every node must have answered `ok`: a missing or failed reply is reported, never assumed."""
        missing = [n for n in nodes if n not in answers]
        failed = {n: a.get("error") for n, a in answers.items() if isinstance(a, dict) and "error" in a}
        if failed:
            text = "; ".join(f"{n}: {e}" for n, e in sorted(failed.items()))
            raise ConflictError(f"celery: {what} refused by {text}")
        if missing:
            raise UnavailableError(f"celery: no reply to {what} from {', '.join(missing)} in time",
                                   hint="the command may still take effect; check with 'pipelinectl status'")

    def _after(self, stage: str, done: Callable[[Stage], bool], verb: str) -> Stage:
        """Read the stage back until the workers show the change (they apply control commands asynchronously)."""
        import time

        while not done(self._build(stage, count_failures=False)[0][0]):  # polls skip the backend scan
            if self.link.remaining() < self.link.reply_timeout + 0.5:
                raise UnavailableError(f"celery: the workers acknowledged '{verb}' but do not show it yet",
                                       hint="check again with 'pipelinectl status -o wide'")
            time.sleep(0.1)
        return self._build(stage)[0][0]

    # -- dead letters -----------------------------------------------------------------------------------
    def _meta_key(self, task_id: str) -> str:
        return f"{self.key_prefix}{results.META_PREFIX}{task_id}"

    def _failures(self) -> Iterator[results.Failure]:
        """Every failure record of the result backend (SCAN + MGET in rounds; order is the backend's)."""
        backend = self.link.backend()
        pattern = f"{self.key_prefix}{results.META_PREFIX}*"
        self.unreadable_results = 0
        cursor: int | str = 0
        while True:
            cursor, keys = self.link.call(lambda c=cursor: backend.scan(c, match=pattern, count=self.scan_count),
                                          what="result backend scan")
            if keys:
                values = self.link.call(lambda k=keys: backend.mget(k), what="result backend read")
                for key, value in zip(keys, values, strict=True):
                    name = key.decode() if isinstance(key, bytes) else key
                    if not results.readable(value):
                        self.unreadable_results += 1
                        continue
                    failure = results.parse(name, value, self.key_prefix)
                    if failure is not None:
                        yield failure
            if int(cursor) == 0:
                return

    def _read(self, task_ids: list[str]) -> list[results.Failure]:
        """The failure records of these task ids that exist (a gone or non-failed one is left out)."""
        if not task_ids:
            return []
        backend = self.link.backend()
        keys = [self._meta_key(t) for t in task_ids]
        values = self.link.call(lambda: backend.mget(keys), what="result backend read")
        found = [results.parse(k, v, self.key_prefix) for k, v in zip(keys, values, strict=True)]
        return [f for f in found if f is not None]

    def _check_filter(self, selection: DLQFilter) -> None:
        self._check_pipeline(selection.pipeline)
        if selection.error_kind is not None and selection.error_kind not in results.ERROR_KINDS:
            raise UsageError(f"unknown error kind '{selection.error_kind}'",
                             hint=f"choose from {', '.join(results.ERROR_KINDS)}")

    def _matches(self, failure: results.Failure, selection: DLQFilter) -> bool:
        if selection.stage and failure.queue != selection.stage:
            return False
        if selection.error_kind and self.kinds.of(failure.exc_type) != selection.error_kind:
            return False
        when = failure.time
        if selection.since and (when is None or when < selection.since):
            return False
        return not (selection.until and (when is None or when >= selection.until))

    def _selected(self, selection: DLQFilter, page_size: int) -> Iterator[results.Failure]:
        """Matching failure records, oldest first, read page by page.

        A first pass keeps only (time, task id) of each match, so the whole DLQ is never held;
        each page is then read again (a record redriven or purged meanwhile is skipped).
        """
        self._check_filter(selection)
        if selection.ids:
            wanted = list(dict.fromkeys(selection.ids))
            for start in range(0, len(wanted), page_size):
                yield from (f for f in self._read(wanted[start:start + page_size]) if self._matches(f, selection))
            return
        epoch = datetime.min.replace(tzinfo=UTC)
        index = sorted((f.time or epoch, f.task_id) for f in self._failures() if self._matches(f, selection))
        for start in range(0, len(index), page_size):
            yield from self._read([task_id for _, task_id in index[start:start + page_size]])

    def _item(self, failure: results.Failure, full: bool) -> DLQItem:
        meta = failure.meta
        details: dict[str, Any] = {
            "task": failure.name,
            "exception": failure.exc_type,
            "exception_module": failure.exc_module,
            "worker": meta.get("worker"),
            "retries": meta.get("retries"),
            "queue": meta.get("queue"),
            "result_key": failure.key,
            "redrivable": failure.extended and failure.queue != results.UNKNOWN_QUEUE,
            "redrive_task_id": failure.redrive_id,
        }
        if not failure.extended:
            details["note"] = "the record has no task name/arguments: the app does not set result_extended=True"
        traceback = str(meta.get("traceback") or "")
        if full:
            details["traceback"] = traceback
        elif traceback:
            details["traceback_last_line"] = traceback.strip().splitlines()[-PREVIEW_TRACEBACK_LINES]
        payload = {"task": failure.name, "args": meta.get("args"), "kwargs": meta.get("kwargs")} \
            if failure.extended else None
        retries = meta.get("retries")
        return DLQItem(
            id=failure.task_id, pipeline=self.name, stage=failure.queue, error_kind=self.kinds.of(failure.exc_type),
            message=failure.describe(), attempts=int(retries) + 1 if isinstance(retries, int) else 1,
            first_seen=failure.time, last_seen=failure.time, payload=payload, details=details,
        )

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        self.link.start_verb()
        for failure in self._selected(selection, max(1, page_size)):
            yield self._item(failure, full=False)

    def dlq_count(self, selection: DLQFilter) -> int:
        self.link.start_verb()
        self._check_filter(selection)
        if selection.ids:
            return sum(1 for _ in self._selected(selection, 500))
        return sum(1 for f in self._failures() if self._matches(f, selection))

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        self.link.start_verb()
        self._check_pipeline(pipeline)
        found = self._read([item_id])
        if not found:
            raise NotFoundError(f"DLQ item '{item_id}' not found in pipeline '{self.name}' "
                                "(no failure record of that task id in the result backend)")
        return self._item(found[0], full=True)

    @staticmethod
    def _require_selection(selection: DLQFilter, action: str) -> None:
        if selection.is_empty():
            raise UsageError(f"dlq {action} needs ids or a filter (--all, --stage, --error-kind, --since, --until)")

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """Send each failed task again; its record leaves the result backend only once the broker has the task."""
        self.link.start_verb()
        self._require_selection(selection, "redrive")
        result = BulkResult(action="redrive", pipeline=self.name, dry_run=dry_run)
        batch: list[results.Failure] = []
        for failure in self._selected(selection, 200):
            result.matched.append(failure.task_id)
            refused = self._not_redrivable(failure)
            if refused:
                result.failed[failure.task_id] = refused
                continue
            if dry_run:
                continue
            batch.append(failure)
            if len(batch) >= self.redrive_batch:
                if not self._flush(batch, result):
                    return result
                batch = []
        if batch:
            self._flush(batch, result)
        return result

    def _flush(self, batch: list[results.Failure], result: BulkResult) -> bool:
        """Redrive one batch into `result`; False when the broker stayed away past the deadline (stop)."""
        try:
            self._redrive_batch(batch)
        except PipelinectlError as exc:
            for failure in batch:
                result.failed[failure.task_id] = f"not redriven: {exc.message}; record kept"
            return not isinstance(exc, UnavailableError)
        result.succeeded.extend(f.task_id for f in batch)
        if self.progress:
            self.progress("redriving", len(result.succeeded), len(result.matched))
        return True

    @staticmethod
    def _not_redrivable(failure: results.Failure) -> str | None:
        if not failure.extended:
            return "the record has no task name/arguments (the app does not set result_extended=True); record kept"
        if failure.queue == results.UNKNOWN_QUEUE:
            return "the record does not say which queue the task came from; record kept"
        return None

    def _redrive_batch(self, batch: list[results.Failure]) -> None:
        """Publish each task with its marker in one atomic script (exactly once, even across retries and
        crashes: a marker that exists means sent), then remove the records of the whole batch."""
        broker = self.link.broker()
        app = self.link.app()
        channel = self.link.call(lambda: self.link.kombu().default_channel, what="broker channel")
        messages = [results.redrive_message(app, channel, f) for f in batch]
        if self._publish_once is None:
            self._publish_once = broker.register_script(results.PUBLISH_ONCE)
        script = self._publish_once

        def publish() -> list[int]:
            pipe = broker.pipeline(transaction=False)
            for failure, message in zip(batch, messages, strict=True):
                script(keys=[failure.marker, failure.queue], args=[message, failure.redrive_id, results.MARKER_TTL],
                       client=pipe)
            return pipe.execute()

        self.link.call(publish, what=f"redrive of {len(batch)} tasks")  # safe to retry: the markers say what was sent
        backend = self.link.backend()
        keys = [f.key for f in batch]
        self.link.call(lambda: backend.delete(*keys), what=f"removing {len(keys)} failure records")

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        self.link.start_verb()
        self._require_selection(selection, "purge")
        result = BulkResult(action="purge", pipeline=self.name, dry_run=dry_run)
        backend = self.link.backend()
        for failure in self._selected(selection, 500):
            result.matched.append(failure.task_id)
            if dry_run:
                continue
            try:
                self.link.call(lambda f=failure: backend.delete(f.key), what=f"removing the record of {failure.task_id}")
            except PipelinectlError as exc:
                result.failed[failure.task_id] = exc.message
                continue
            result.succeeded.append(failure.task_id)
        return result

    # -- Celery-only verbs (the `pipelinectl celery` commands) ----------------------------------------------
    def workers(self) -> list[dict[str, Any]]:
        self.link.start_verb()
        return [{"kind": "CeleryWorker", **w.view(), "registered_tasks": sorted(t.split(" ")[0] for t in w.registered)}
                for w in self.snapshot().values()]

    def tasks(self, queue: str | None = None, states: tuple[str, ...] = ("active", "reserved", "scheduled"),
              older_than: float | None = None) -> list[dict[str, Any]]:
        """Tasks the workers hold now; `older_than` (seconds) keeps active tasks running at least that long."""
        self.link.start_verb()
        now = datetime.now(UTC)
        found: list[dict[str, Any]] = []
        for worker in self.snapshot().values():
            for state in states:
                for entry in getattr(worker, state):
                    request = entry.get("request") if state == "scheduled" else entry
                    request = request or {}
                    task_queue = _queue_of(entry)
                    if queue is not None and task_queue != queue:
                        continue
                    started = _time(request.get("time_start"))
                    running_for = (now - started).total_seconds() if started else None
                    if older_than is not None and (state != "active" or running_for is None
                                                   or running_for < older_than):
                        continue
                    found.append({
                        "kind": "CeleryTask", "id": request.get("id"), "name": request.get("name") or request.get("type"),
                        "state": state, "worker": worker.name, "queue": task_queue, "args": request.get("args"),
                        "kwargs": request.get("kwargs"), "started": format_time(started),
                        "running_seconds": round(running_for, 3) if running_for is not None else None,
                        "eta": entry.get("eta") if state == "scheduled" else None,
                    })
        return sorted(found, key=lambda t: (t["state"], t["started"] or "", str(t["id"])))

    def revoke(self, task_ids: list[str], *, terminate: bool = False, signal: str = "SIGTERM",
               dry_run: bool = False) -> dict[str, Any]:
        """Revoke tasks on every online worker (and terminate them if running); confirmed by `revoked`."""
        self.link.start_verb()
        if not task_ids:
            raise UsageError("name the task ids to revoke")
        online = self.link.online_workers()
        if not online:
            raise ConflictError("no worker is online: a revoke is kept only in the memory of workers that hear it")
        outcome: dict[str, Any] = {"kind": "CeleryRevoke", "ids": list(task_ids), "terminate": terminate,
                                   "signal": signal if terminate else None, "workers": online, "dry_run": dry_run,
                                   "acknowledged": {}}
        if dry_run:
            return outcome
        answers = self.link.by_node("revoke", online, task_id=list(task_ids), terminate=terminate, signal=signal)
        self._require_all(answers, online, "revoke")
        outcome["acknowledged"] = {node: answer.get("ok") for node, answer in sorted(answers.items())}
        revoked = self.link.by_node("revoked", online)
        outcome["revoked_on"] = sorted(n for n, ids in revoked.items() if set(task_ids) <= set(ids or []))
        return outcome

    def rate_limit(self, task: str, rate: str | None, *, dry_run: bool = False) -> dict[str, Any]:
        """Set (or with None remove) a task type's rate limit on every online worker that has the task."""
        self.link.start_verb()
        rate = _check_rate(rate)
        workers = self.snapshot()
        having = sorted(w.name for w in workers.values() if task in {t.split(" ")[0] for t in w.registered})
        if not having:
            known = sorted({t.split(" ")[0] for w in workers.values() for t in w.registered})
            raise NotFoundError(f"no online worker has the task type '{task}'",
                                hint=f"registered: {', '.join(known)}" if known else "no worker is online")
        outcome: dict[str, Any] = {"kind": "CeleryRateLimit", "task": task, "rate_limit": rate, "workers": having,
                                   "dry_run": dry_run}
        if dry_run:
            return outcome
        answers = self.link.by_node("rate_limit", having, task_name=task, rate_limit=rate)
        self._require_all(answers, having, "rate_limit")
        return outcome

    # -- what Celery cannot do --------------------------------------------------------------------------------
    def drain(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "drain", NO_DRAIN)

    def limit(self, pipeline, stage, rate, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "limit", NO_LIMIT)

    def replay(self, request):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "replay", NO_REPLAY)

    def replay_list(self, pipeline):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "replay list", NO_REPLAY)

    def replay_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "replay show", NO_REPLAY)

    def replay_cancel(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "replay cancel", NO_REPLAY)

    def saga_list(self, selection, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga list", NO_SAGAS)

    def saga_show(self, pipeline, saga_id):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga inspect", NO_SAGAS)

    def saga_force_fail(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga force-fail", NO_SAGAS)

    def saga_retry(self, pipeline, saga_id, reason=None, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga retry", NO_SAGAS)

    def saga_force_complete(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga force-complete", NO_SAGAS)

    def saga_cancel(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga cancel", NO_SAGAS)

    def saga_advance(self, pipeline, saga_id, step, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "saga advance", NO_SAGAS)

    def saga_batch(self, action, selection, reason, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, f"saga {action} --query", NO_SAGAS)


def _check_rate(rate: str | None) -> str | None:
    """Celery's rate syntax: N (per second), N/s, N/m or N/h; 0 or 'none' removes the limit."""
    if rate is None or str(rate).strip().lower() in ("", "0", "none", "off"):
        return None
    text = str(rate).strip()
    number, _, unit = text.partition("/")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value <= 0 or unit not in ("", "s", "m", "h"):
        raise UsageError(f"'{rate}' is not a Celery rate limit", hint="use N, N/s, N/m or N/h (0 or none removes it)")
    return text
