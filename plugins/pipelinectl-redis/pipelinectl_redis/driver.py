"""RedisControlPlane: the ControlPlane verbs on Redis Streams (redis-py).

Mapping (README.md has the operator's version, docs/plugins/redis.md the conventions):
- pipeline = a set of streams: the context's `streams` setting, else every stream whose key
  is the pipeline's name or starts with `NAME:`; stage = a consumer group on one of them.
- pause/resume/scale = the stage hash consumers poll (conventions.py); nothing is faked:
  a consumer that does not follow the convention is not paused.
- replay = XGROUP SETID when the range reaches the group's last delivered id (only that
  group sees the entries again), else read-and-republish with a dedupe hash.
- dead letters = a DLQ stream per stage, filled by the sweep (pending entries delivered
  max_deliveries times), redriven with one atomic script.
Sagas and drain are not Redis Streams concepts: they stay unsupported.
"""

from __future__ import annotations

import heapq
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelinectl.plugin_api import (
    ERROR_KINDS,
    BulkResult,
    Capability,
    ConflictError,
    Connection,
    DLQFilter,
    DLQItem,
    NotFoundError,
    Pipeline,
    ReplayJob,
    ReplayRequest,
    Stage,
    StaleVersionError,
    UnsupportedError,
    UnsupportedVerbs,
    UsageError,
    format_time,
)

from . import conventions as cv
from .conventions import text
from .link import Link

PREVIEW_CHARS = 512
PAGE = 500  # entries per XRANGE / XPENDING page
REPLAY_BATCH = 200  # entries per republish script call
REDRIVE_BATCH = 50  # redrive scripts sent in one round trip
LAG_COUNT_CAP = 100_000  # counting a lag Redis cannot tell stops here (details.lag_at_least)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _key(entry_id: str) -> tuple[int, int]:
    return cv.parse_id(entry_id)


@dataclass
class Group:
    """One consumer group as XINFO GROUPS shows it, with the stage hash that goes with it."""

    stream: str
    name: str
    info: dict[str, Any]
    settings: cv.StageSettings
    display: str = ""

    @property
    def last_delivered_id(self) -> str:
        return text(self.info.get("last-delivered-id")) or "0-0"

    @property
    def entries_read(self) -> int | None:
        value = self.info.get("entries-read")
        return None if value is None else int(value)

    @property
    def lag(self) -> int | None:
        value = self.info.get("lag")
        return None if value is None else int(value)


class RedisControlPlane(UnsupportedVerbs):
    """A ControlPlane over one Redis server's streams."""

    driver = "redis"
    url_schemes = ("redis", "rediss")
    capabilities = frozenset({
        Capability.STATUS, Capability.PAUSE, Capability.PAUSE_UNTIL, Capability.RESUME, Capability.SCALE,
        Capability.REPLAY, Capability.REPLAY_BY_TIME, Capability.DLQ_LIST, Capability.DLQ_SHOW,
        Capability.DLQ_REDRIVE, Capability.DLQ_PURGE,
    })

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.link = Link(connection)
        settings = connection.settings or {}
        self.streams_setting = [s.strip() for s in str(settings.get("streams") or "").split(",") if s.strip()]
        self.pipelines = [p.strip() for p in (connection.pipeline or "").split(",") if p.strip()]
        if self.streams_setting and len(self.pipelines) > 1:
            raise UsageError(f"context '{connection.context}': the 'streams' setting lists the streams of one "
                             "pipeline; this context names several")
        try:
            self.replay_dedupe_ms = int(float(settings.get("replay_dedupe_seconds", cv.DEFAULT_REPLAY_DEDUPE_SECONDS)) * 1000)
        except (TypeError, ValueError):
            raise UsageError(f"context '{connection.context}': setting 'replay_dedupe_seconds' must be a number") from None
        self.bulk_page = 200

    def close(self) -> None:
        self.link.close()

    def server_version(self) -> str:
        """Shown by `pipelinectl version`."""
        info = self.link.call(lambda r: r.info("server"), what="INFO server")
        mode = text(info.get("redis_mode")) or "standalone"
        return f"redis {text(info.get('redis_version'))} ({mode})"

    # -- pipelines and their streams ----------------------------------------------------------------
    def _names(self, pipeline: str | None) -> list[str]:
        if pipeline:
            return [p.strip() for p in pipeline.split(",") if p.strip()]
        return list(self.pipelines)

    def _one(self, pipeline: str | None) -> str:
        names = self._names(pipeline)
        if len(names) != 1:
            raise UsageError("choose one pipeline with -p/--pipeline; this context names: "
                             f"{', '.join(names) or 'none'}")
        return names[0]

    def _dlq_streams(self) -> set[str]:
        members = self.link.call(lambda r: r.smembers(cv.DLQ_STREAMS), what="SMEMBERS")
        return {text(m) for m in members}

    def _scan_streams(self, match: str) -> list[str]:
        def scan(r: Any) -> list[str]:
            return sorted({text(k) for k in r.scan_iter(match=match, count=1000, _type="STREAM")})

        return self.link.call(scan, what=f"SCAN {match}")

    def _streams(self, pipeline: str) -> list[str]:
        """The streams of a pipeline: the `streams` setting, else the key prefix `NAME` / `NAME:*`."""
        if self.streams_setting and (not self.pipelines or pipeline == self.pipelines[0]):
            existing = self.link.call(lambda r: [r.type(s) for s in self.streams_setting], what="TYPE")
            found = [s for s, t in zip(self.streams_setting, existing, strict=True) if text(t) == "stream"]
            if not found:
                raise NotFoundError(f"pipeline '{pipeline}' not found: none of its streams "
                                    f"({', '.join(self.streams_setting)}) exists at {self.link.url}")
            return found
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in pipeline)
        names = set(self._scan_streams(escaped)) | set(self._scan_streams(escaped + ":*"))
        names -= self._dlq_streams()
        names = {n for n in names if not n.startswith(cv.PREFIX + ":")}
        if not names:
            raise NotFoundError(f"pipeline '{pipeline}' not found: no stream named '{pipeline}' or "
                                f"'{pipeline}:*' at {self.link.url}",
                                hint="or list its streams in the context: --set streams=STREAM,STREAM")
        return sorted(names)

    def _groups(self, streams: list[str]) -> list[Group]:
        """Every consumer group of these streams, with its stage hash; display names unique in the pipeline."""

        def read(r: Any) -> list[Group]:
            found: list[Group] = []
            for stream in streams:
                for info in r.xinfo_groups(stream):
                    name = text(info.get("name"))
                    found.append(Group(stream, name, info, cv.StageSettings()))
            if found:
                pipe = r.pipeline(transaction=False)
                for g in found:
                    pipe.hgetall(cv.stage_key(g.stream, g.name))
                for g, data in zip(found, pipe.execute(), strict=True):
                    g.settings = cv.StageSettings.from_hash(data)
            return found

        groups = self.link.call(read, what="XINFO GROUPS")
        counts: dict[str, int] = {}
        for g in groups:
            counts[g.name] = counts.get(g.name, 0) + 1
        for g in groups:
            g.display = g.name if counts[g.name] == 1 else f"{g.stream}/{g.name}"
        return groups

    def _find(self, pipeline: str, stage: str) -> Group:
        """A stage by name: `GROUP`, or `STREAM/GROUP` when several streams have that group."""
        if not stage or not stage.strip():
            raise UsageError("stage: empty name")
        groups = self._groups(self._streams(pipeline))
        for g in groups:
            if stage in (g.display, f"{g.stream}/{g.name}"):
                return g
        same = [g for g in groups if g.name == stage]
        if same:
            raise UsageError(f"stage '{stage}' is a consumer group of several streams of pipeline '{pipeline}'; "
                             f"name one: {', '.join(g.display for g in same)}")
        known = ", ".join(g.display for g in groups) or "none (no consumer groups)"
        raise NotFoundError(f"stage '{stage}' not found in pipeline '{pipeline}' (no consumer group of that name)",
                            hint=f"known stages: {known}")

    # -- status -------------------------------------------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        names = self._names(pipeline)
        if not names:  # no pipeline named anywhere: each stream is a pipeline of its own
            hidden = self._dlq_streams()
            names = [s for s in self._scan_streams("*") if s not in hidden and not s.startswith(cv.PREFIX + ":")]
        return [self._pipeline(name) for name in names]

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        name = self._one(pipeline)
        group = self._find(name, stage)
        return self._stages(name, [group])[0]

    def _pipeline(self, name: str) -> Pipeline:
        streams = self._streams(name)
        groups = self._groups(streams)
        stages = self._stages(name, groups)

        def read(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for s in streams:
                pipe.xinfo_stream(s)
            return pipe.execute()

        infos = self.link.call(read, what="XINFO STREAM")
        return Pipeline(
            name=name,
            stages=stages,
            dlq_size=sum(s.dlq_size for s in stages),
            driver=self.driver,
            details={
                "streams": {
                    s: {
                        "length": int(info.get("length", 0)),
                        "last_generated_id": text(info.get("last-generated-id")),
                        "entries_added": info.get("entries-added"),
                        "first_entry_id": text(info["first-entry"][0]) if info.get("first-entry") else None,
                    } for s, info in zip(streams, infos, strict=True)
                },
                "streams_from": "setting 'streams'" if self.streams_setting else f"key prefix '{name}:'",
            },
        )

    def _stages(self, pipeline: str, groups: list[Group]) -> list[Stage]:
        def read(r: Any) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for g in groups:
                pipe.xinfo_consumers(g.stream, g.name)
                if g.settings.dlq_stream:
                    pipe.xlen(g.settings.dlq_stream)
            return pipe.execute()

        answers = iter(self.link.call(read, what="XINFO CONSUMERS"))
        now = _now_ms()
        stages = []
        for g in groups:
            consumers = next(answers)
            dlq_size = int(next(answers)) if g.settings.dlq_stream else 0
            stages.append(self._stage(pipeline, g, consumers, dlq_size, now))
        return stages

    def _lag(self, g: Group) -> tuple[int, bool]:
        """Entries not yet delivered to the group: Redis's `lag`, or counted when Redis cannot tell."""
        if g.lag is not None:
            return g.lag, True

        def count(r: Any) -> tuple[int, bool]:
            total, start = 0, "(" + g.last_delivered_id
            while total < LAG_COUNT_CAP:
                page = r.xrange(g.stream, min=start, max="+", count=PAGE * 2)
                total += len(page)
                if len(page) < PAGE * 2:
                    return total, True
                start = "(" + text(page[-1][0])
            return total, False

        return self.link.call(count, what="XRANGE (lag)")

    def _stage(self, pipeline: str, g: Group, consumers: list[dict[str, Any]], dlq_size: int, now: int) -> Stage:
        s = g.settings
        paused = s.paused_now(now)
        lag, exact = self._lag(g)
        pending = int(g.info.get("pending", 0))
        until = datetime.fromtimestamp(s.paused_until_ms / 1000, tz=UTC) if paused and s.paused_until_ms else None
        details: dict[str, Any] = {
            "stream": g.stream,
            "group": g.name,
            "last_delivered_id": g.last_delivered_id,
            "entries_read": g.entries_read,
            "lag": lag if exact else None,
            "lag_at_least": None if exact else lag,
            "pending": pending,
            "consumers": [
                {"name": text(c.get("name")), "pending": int(c.get("pending", 0)), "idle_ms": int(c.get("idle", 0))}
                for c in consumers
            ],
            "stage_key": cv.stage_key(g.stream, g.name),
            "parallelism_set": s.parallelism is not None,
            "dlq": s.dlq_stream or f"not set up (pipelinectl redis dlq setup -s {g.display})",
        }
        if s.dlq_stream:
            details.update(max_deliveries=s.max_deliveries, min_idle_ms=s.min_idle_ms)
        entries_read = g.entries_read
        return Stage(
            pipeline=pipeline,
            name=g.display,
            state="paused" if paused else "running",
            parallelism=s.parallelism or 1,
            min_parallelism=1,
            max_parallelism=max(s.max_parallelism, s.parallelism or 1),
            in_flight=pending,
            queue_depth=lag,
            processed=max(0, entries_read - pending) if entries_read is not None else 0,
            failed=dlq_size,
            errors_by_kind={"persistent": dlq_size} if dlq_size else {},
            dlq_size=dlq_size,
            paused_until=until,
            version=s.version,
            details=details,
        )

    # -- stage control: the stage hash ---------------------------------------------------------------------
    def _set_stage(self, g: Group, changes: dict[str, str | bool], expected_version: int | None) -> None:
        answer = self.link.run_script(
            "set_stage", cv.SET_STAGE, [cv.stage_key(g.stream, g.name)],
            ["" if expected_version is None else str(expected_version), json.dumps(changes)],
            what=f"set stage hash of '{g.display}'")
        if text(answer[0]) == "stale":
            raise StaleVersionError(
                f"stage '{g.display}' changed since version {expected_version} was read (now {int(answer[1])}); "
                "nothing was changed", hint="read it again with 'status' and retry")

    def _check_version(self, g: Group, expected: int | None) -> None:
        if expected is not None and expected != g.settings.version:
            raise StaleVersionError(
                f"stage '{g.display}' changed since version {expected} was read (now {g.settings.version}); "
                "nothing was changed", hint="read it again with 'status' and retry")

    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        name = self._one(pipeline)
        if until is not None:
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            if until.timestamp() * 1000 <= _now_ms():
                raise UsageError(f"--until {format_time(until)} is in the past; nothing was changed")
        g = self._find(name, stage)
        self._check_version(g, expected_version)
        if dry_run:
            planned = self._stages(name, [g])[0]
            planned.state, planned.paused_until = "paused", until
            return planned
        changes: dict[str, str | bool] = {"paused": "1",
                                          "paused_until": str(int(until.timestamp() * 1000)) if until else False}
        self._set_stage(g, changes, expected_version)
        return self.get_stage(name, stage)

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        name = self._one(pipeline)
        g = self._find(name, stage)
        self._check_version(g, expected_version)
        if dry_run:
            planned = self._stages(name, [g])[0]
            planned.state, planned.paused_until = "running", None
            return planned
        self._set_stage(g, {"paused": False, "paused_until": False}, expected_version)
        return self.get_stage(name, stage)

    def drain(self, pipeline: str, stage: str, **kw: Any) -> Stage:
        raise UnsupportedError.verb(
            self.driver, "drain",
            "a Redis stream has no input gate apart from its consumers; pause the stage and wait for "
            "its pending count (status) to reach 0")

    def limit(self, pipeline, stage, rate, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "limit", "Redis Streams have no delivery rate limit for a "
                                    "consumer group")

    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        name = self._one(pipeline)
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise UsageError(f"--parallelism must be a whole number >= 1 (entries each consumer processes at once), "
                             f"got {parallelism!r}; nothing was changed")
        g = self._find(name, stage)
        self._check_version(g, expected_version)
        if parallelism > g.settings.max_parallelism:
            raise UsageError(f"--parallelism {parallelism} exceeds the stage's max_parallelism "
                             f"{g.settings.max_parallelism} (field of {cv.stage_key(g.stream, g.name)}); "
                             "nothing was changed")
        if dry_run:
            planned = self._stages(name, [g])[0]
            planned.parallelism = parallelism
            return planned
        self._set_stage(g, {"parallelism": str(parallelism)}, expected_version)
        return self.get_stage(name, stage)

    # -- replay ---------------------------------------------------------------------------------------------
    def replay(self, request: ReplayRequest) -> ReplayJob:
        """Offsets are stream-id milliseconds (`A` means `A-0`), times are turned into ids the same way."""
        name = self._one(request.pipeline)
        by_offset = request.from_offset is not None or request.to_offset is not None
        by_time = request.from_time is not None or request.to_time is not None
        if by_offset == by_time:
            raise UsageError("replay needs an id range (--from-offset/--to-offset: stream-id milliseconds) "
                             "or a time range, not both or neither")
        if by_offset:
            if request.from_offset is None or request.from_offset < 0:
                raise UsageError("replay --from-offset must be the milliseconds part of a stream id (>= 0)")
            start = cv.format_id(request.from_offset, 0)
            end = cv.format_id(request.to_offset, 0) if request.to_offset is not None else None
        else:
            if request.from_time is None:
                raise UsageError("replay by time needs a start time")
            start = cv.ms_id(request.from_time)
            end = cv.ms_id(request.to_time) if request.to_time is not None else None
        job = self.replay_ids(name, request.stage, start, end, dry_run=request.dry_run)
        job.from_offset, job.to_offset = request.from_offset, request.to_offset
        job.from_time, job.to_time = request.from_time, request.to_time
        return job

    def replay_ids(self, pipeline: str, stage: str | None, start: str, end: str | None, *,
                   dry_run: bool = False) -> ReplayJob:
        """Replay entries with start <= id < end (end None: to the last delivered entry) into one group.

        The job id says how: `rewind-...` (XGROUP SETID: only this group sees the entries again,
        nothing is copied) when the range reaches the group's last delivered id; `republish-...`
        (copies XADDed to the stream, each original at most once per group within the dedupe
        window) when the range ends before it.
        """
        for value, option in ((start, "start"), (end, "end")):
            if value is not None:
                try:
                    cv.parse_id(value)
                except ValueError:
                    raise UsageError(f"replay {option} '{value}' is not a stream id (MS or MS-SEQ)") from None
        if end is not None and _key(end) <= _key(start):
            raise UsageError(f"replay range is empty: the end {end} must be after the start {start} (end is exclusive)")
        for _attempt in range(3):
            g = self._replay_target(pipeline, stage)
            job = self._replay_once(pipeline, g, start, end, dry_run)
            if job is not None:
                return job
        raise ConflictError(f"stage '{g.display}' kept moving while the replay was planned; nothing was changed",
                            hint="run the replay again, or pause the stage first")

    def _replay_target(self, pipeline: str, stage: str | None) -> Group:
        if stage is not None:
            return self._find(pipeline, stage)
        groups = self._groups(self._streams(pipeline))
        if not groups:
            raise NotFoundError(f"pipeline '{pipeline}' has no stages (consumer groups) to replay into")
        return groups[0]

    def _count_range(self, stream: str, start: str, end: str, *, inclusive_end: bool) -> int:
        def count(r: Any) -> int:
            total, low = 0, start
            high = end if inclusive_end else "(" + end
            while True:
                page = r.xrange(stream, min=low, max=high, count=PAGE * 2)
                total += len(page)
                if len(page) < PAGE * 2:
                    return total
                low = "(" + text(page[-1][0])

        return self.link.call(count, what="XRANGE (count)")

    def _replay_once(self, pipeline: str, g: Group, start: str, end: str | None, dry_run: bool) -> ReplayJob | None:
        last = g.last_delivered_id
        job = ReplayJob(id="", pipeline=pipeline, stage=g.display, state="planned" if dry_run else "running",
                        created_at=datetime.now(UTC))
        if _key(start) > _key(last):  # nothing of the range was delivered yet: it will be, without a replay
            job.id, job.state = f"none-{uuid.uuid4().hex[:12]}", "planned" if dry_run else "completed"
            return job
        if end is None or _key(end) > _key(last):
            return self._rewind(g, start, last, job, dry_run)
        return self._republish(g, start, end, job, dry_run)

    def _rewind(self, g: Group, start: str, last: str, job: ReplayJob, dry_run: bool) -> ReplayJob | None:
        job.id = f"rewind-{uuid.uuid4().hex[:12]}"
        job.total = self._count_range(g.stream, start, last, inclusive_end=True)
        if dry_run:
            return job
        new_id = cv.previous_id(start)
        info = self.link.call(lambda r: r.xinfo_stream(g.stream), what="XINFO STREAM")
        max_deleted = text(info.get("max-deleted-entry-id")) or "0-0"
        entries_read = ""
        if g.entries_read is not None and _key(max_deleted) <= _key(new_id):  # no deletion inside: exact
            entries_read = str(max(0, g.entries_read - job.total))
        answer = self.link.run_script("rewind", cv.REWIND, [g.stream], [g.name, last, new_id, entries_read],
                                      what=f"XGROUP SETID of '{g.display}'")
        outcome = text(answer[0])
        if outcome == "moved":
            return None
        if outcome == "nogroup":
            raise NotFoundError(f"stage '{g.display}' was deleted while the replay was planned; nothing was changed")
        job.replayed, job.state, job.finished_at = job.total, "completed", datetime.now(UTC)
        return job

    def _republish(self, g: Group, start: str, end: str, job: ReplayJob, dry_run: bool) -> ReplayJob:
        job.id = f"republish-{uuid.uuid4().hex[:12]}"
        seen = cv.replayed_key(g.stream, g.name)

        low, planned = start, set()  # a dry run counts an origin once, as the script does
        while True:
            page = self.link.call(lambda r, lo=low: r.xrange(g.stream, min=lo, max="(" + end, count=REPLAY_BATCH),
                                  what="XRANGE (replay)")
            if not page:
                break
            low = "(" + text(page[-1][0])
            job.total += len(page)
            if dry_run:
                origins = [self._origin(entry_id, fields) for entry_id, fields in page]
                done = self.link.call(lambda r, o=origins: r.hmget(seen, o), what="HMGET (replay dedupe)")
                for origin, copy in zip(origins, done, strict=True):
                    if copy is not None or origin in planned:
                        job.skipped += 1
                    planned.add(origin)
                if len(page) < REPLAY_BATCH:
                    break
                continue
            replayed, skipped, missing = self.link.run_script(
                "republish", cv.REPUBLISH, [g.stream, seen],
                [g.name, str(self.replay_dedupe_ms), *[text(entry_id) for entry_id, _ in page]],
                what=f"republish into '{g.display}'")
            job.replayed += int(replayed)
            job.skipped += int(skipped)
            job.total -= int(missing)  # deleted between the read and the script
            if len(page) < REPLAY_BATCH:
                break
        if not dry_run:
            job.state, job.finished_at = "completed", datetime.now(UTC)
        return job

    @staticmethod
    def _origin(entry_id: Any, fields: dict[Any, Any]) -> str:
        for key, value in (fields or {}).items():
            if text(key) == cv.REPLAY_OF:
                return text(value)
        return text(entry_id)

    # -- dead letters: the sweep ----------------------------------------------------------------------------
    def _dlq_groups(self, pipeline: str, stage: str | None = None, *, required: bool = True) -> list[Group]:
        groups = [self._find(pipeline, stage)] if stage else self._groups(self._streams(pipeline))
        set_up = [g for g in groups if g.settings.dlq_stream]
        if required and not set_up:
            which = f"stage '{groups[0].display}'" if stage else f"any stage of pipeline '{pipeline}'"
            raise NotFoundError(f"no dead-letter stream is set up for {which}",
                                hint=f"run 'pipelinectl redis dlq setup -p {pipeline}'")
        return set_up

    def sweep(self, pipeline: str, stage: str | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        """Move entries delivered max_deliveries times (idle at least min_idle_ms) to their stage's DLQ stream."""
        name = self._one(pipeline)
        report: dict[str, Any] = {"kind": "RedisDLQSweep", "pipeline": name, "dry_run": dry_run, "stages": []}
        for g in self._dlq_groups(name, stage):
            moved = self._sweep_group(g, dry_run)
            report["stages"].append({"stage": g.display, "stream": g.stream, "group": g.name,
                                     "dlq_stream": g.settings.dlq_stream, "max_deliveries": g.settings.max_deliveries,
                                     "moved" if not dry_run else "would_move": moved})
        key = "would_move" if dry_run else "moved"
        report[key] = sum(s[key] for s in report["stages"])
        return report

    def _sweep_group(self, g: Group, dry_run: bool) -> int:
        s = g.settings
        reason = f"delivered {s.max_deliveries} time{'' if s.max_deliveries == 1 else 's'} without an ack (max_deliveries {s.max_deliveries})"
        moved, low = 0, "-"
        while True:
            page = self.link.call(
                lambda r, lo=low: r.xpending_range(g.stream, g.name, min=lo, max="+", count=PAGE, idle=s.min_idle_ms),
                what=f"XPENDING of '{g.display}'")
            due = [text(p["message_id"]) for p in page if int(p["times_delivered"]) >= s.max_deliveries]
            if due and dry_run:
                moved += len(due)
            elif due:
                answer = self.link.run_script(
                    "sweep", cv.SWEEP, [g.stream, s.dlq_stream or ""],
                    [g.name, str(s.max_deliveries), str(s.min_idle_ms), reason, *due],
                    what=f"dead-letter sweep of '{g.display}'")
                moved += len(answer) // 2
            if len(page) < PAGE:
                return moved
            low = "(" + text(page[-1]["message_id"])

    # -- dead letters: reading ----------------------------------------------------------------------------------
    def _check_filter(self, selection: DLQFilter) -> str:
        name = self._one(selection.pipeline)
        if selection.error_kind is not None and selection.error_kind not in ERROR_KINDS:
            raise UsageError(f"unknown error kind '{selection.error_kind}'; one of: {', '.join(ERROR_KINDS)}")
        for item_id in selection.ids:
            self._split_id(item_id)
        return name

    @staticmethod
    def _split_id(item_id: str) -> tuple[str, str]:
        dlq_stream, sep, entry_id = str(item_id).rpartition("/")
        try:
            cv.parse_id(entry_id)
        except ValueError:
            sep = ""
        if not sep or not dlq_stream or "-" not in entry_id:
            raise UsageError(f"'{item_id}' is not a DLQ item id of the redis driver (DLQ_STREAM/ENTRY_ID, "
                             "as 'dlq list' shows it)")
        return dlq_stream, entry_id

    def _matches(self, entry: cv.DeadEntry, g: Group, selection: DLQFilter) -> bool:
        if entry.stream != g.stream or entry.group != g.name:
            return False
        if selection.error_kind and entry.kind != selection.error_kind:
            return False
        when = cv.id_time(entry.id)
        if selection.since and (when is None or when < selection.since):
            return False
        return not (selection.until and (when is None or when >= selection.until))

    def _read_dlq(self, g: Group, page_size: int) -> Iterator[cv.DeadEntry]:
        dlq = g.settings.dlq_stream or ""
        low = "-"
        while True:
            page = self.link.call(lambda r, lo=low: r.xrange(dlq, min=lo, max="+", count=page_size),
                                  what=f"XRANGE {dlq}")
            for entry_id, fields in page:
                yield cv.parse_dead_entry(dlq, entry_id, fields)
            if len(page) < page_size:
                return
            low = "(" + text(page[-1][0])

    def _entries(self, selection: DLQFilter, page_size: int, *, sweep: bool) -> Iterator[tuple[cv.DeadEntry, Group]]:
        name = self._check_filter(selection)
        groups = self._dlq_groups(name, selection.stage)
        if sweep:
            for g in groups:
                self._sweep_group(g, dry_run=False)
        if selection.ids:
            by_dlq = {g.settings.dlq_stream: g for g in groups}
            wanted = [(self._split_id(i), by_dlq.get(self._split_id(i)[0])) for i in selection.ids]
            wanted = [(where, g) for where, g in wanted if g is not None]
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start:start + PAGE]

                def fetch(r: Any, chunk: list[Any] = chunk) -> list[Any]:
                    pipe = r.pipeline(transaction=False)
                    for (dlq, entry_id), _g in chunk:
                        pipe.xrange(dlq, min=entry_id, max=entry_id)
                    return pipe.execute()

                for ((dlq, _entry_id), g), found in zip(chunk, self.link.call(fetch, what="XRANGE (DLQ ids)"), strict=True):
                    if found:
                        entry = cv.parse_dead_entry(dlq, found[0][0], found[0][1])
                        if self._matches(entry, g, selection):
                            yield entry, g
            return
        # oldest first across the stages' DLQ streams, each read lazily page by page
        merged = heapq.merge(*[self._keyed(g, i, page_size) for i, g in enumerate(groups)])
        for _, entry, g in merged:
            if self._matches(entry, g, selection):
                yield entry, g

    def _keyed(self, g: Group, index: int, page_size: int) -> Iterator[tuple[tuple[int, int, int], cv.DeadEntry, Group]]:
        for entry in self._read_dlq(g, max(1, page_size)):
            yield (*_key(entry.id), index), entry, g

    def _get(self, dlq: str, entry_id: str) -> cv.DeadEntry | None:
        found = self.link.call(lambda r: r.xrange(dlq, min=entry_id, max=entry_id), what=f"XRANGE {dlq}")
        return cv.parse_dead_entry(dlq, found[0][0], found[0][1]) if found else None

    def _item(self, pipeline: str, entry: cv.DeadEntry, g: Group, preview: int | None) -> DLQItem:
        meta = entry.meta
        details: dict[str, Any] = {
            "dlq_stream": entry.dlq_stream,
            "dlq_id": entry.id,
            "stream": entry.stream,
            "group": entry.group,
            "consumer": meta.get("pipelinectl-dlq:consumer"),
            "original_id": entry.original_id,
            "idle_ms": int(meta.get("pipelinectl-dlq:idle-ms") or 0),
            "reason": meta.get("pipelinectl-dlq:reason"),
            "original": "present" if entry.present else "gone",
        }
        payload: Any = None
        message = meta.get("pipelinectl-dlq:reason") or f"delivered {entry.deliveries} times without an ack"
        if entry.present:
            payload, info = cv.fields_view(entry.fields, preview)
            details.update(info)
        else:
            message += f"; the original entry ({entry.stream} {entry.original_id}) was already deleted from its stream"
        return DLQItem(
            id=f"{entry.dlq_stream}/{entry.id}", pipeline=pipeline, stage=g.display, error_kind=entry.kind,
            message=message, attempts=entry.deliveries, first_seen=cv.id_time(entry.original_id),
            last_seen=cv.id_time(entry.id), key=entry.original_id, payload=payload, details=details,
        )

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        """The sweep runs first (entries due are moved), then the DLQ streams are read oldest first, page by page."""
        for entry, g in self._entries(selection, page_size, sweep=True):
            yield self._item(selection.pipeline, entry, g, PREVIEW_CHARS)

    def dlq_count(self, selection: DLQFilter) -> int:
        if selection.ids or selection.error_kind or selection.since or selection.until:
            return sum(1 for _ in self._entries(selection, PAGE, sweep=True))
        name = self._check_filter(selection)
        groups = self._dlq_groups(name, selection.stage)
        for g in groups:
            self._sweep_group(g, dry_run=False)
        lengths = self.link.call(lambda r: [r.xlen(g.settings.dlq_stream) for g in groups], what="XLEN")
        return sum(int(n) for n in lengths)

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        name = self._one(pipeline)
        dlq, entry_id = self._split_id(item_id)
        for g in self._dlq_groups(name):
            if g.settings.dlq_stream == dlq:
                entry = self._get(dlq, entry_id)
                if entry is not None and entry.stream == g.stream and entry.group == g.name:
                    return self._item(name, entry, g, None)
        raise NotFoundError(f"DLQ item {item_id} not found in pipeline '{name}'")

    # -- dead letters: redrive and purge ------------------------------------------------------------------------
    def _require_selection(self, selection: DLQFilter, action: str) -> None:
        if selection.is_empty():
            raise UsageError(f"dlq {action} needs ids or a filter (--all, --stage, --error-kind, --since, --until)")

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """XADD each original back to its stream and XDEL its DLQ entry, in one script: never lost, never twice.

        The copy carries `pipelinectl:redrive-of` (DLQ stream/id) and `pipelinectl:for-group`.
        A dry run changes nothing, so it does not sweep either.
        """
        self._require_selection(selection, "redrive")
        result = BulkResult(action="redrive", pipeline=selection.pipeline, dry_run=dry_run)
        batch: list[cv.DeadEntry] = []
        for entry, _g in self._entries(selection, self.bulk_page, sweep=not dry_run and not selection.ids):
            item_id = f"{entry.dlq_stream}/{entry.id}"
            result.matched.append(item_id)
            if not entry.present:
                result.failed[item_id] = (f"the original entry ({entry.stream} {entry.original_id}) was deleted from "
                                          "its stream before it was dead-lettered; nothing to redrive, entry kept")
            elif not dry_run:
                batch.append(entry)
                if len(batch) >= REDRIVE_BATCH:
                    self._redrive_batch(batch, result)
                    batch = []
        self._redrive_batch(batch, result)
        return result

    def _redrive_batch(self, batch: list[cv.DeadEntry], result: BulkResult) -> None:
        answers = self.link.run_scripts(
            "redrive", cv.REDRIVE,
            [([e.dlq_stream, e.stream, cv.redriven_key(e.dlq_stream)], [e.id]) for e in batch],
            what=f"redrive of {len(batch)} DLQ entries")
        for entry, answer in zip(batch, answers, strict=True):
            item_id = f"{entry.dlq_stream}/{entry.id}"
            outcome = text(answer[0])
            if outcome == "ok":
                result.succeeded.append(item_id)
            elif outcome == "missing":
                result.failed[item_id] = "not in the DLQ any more (purged meanwhile)"
            elif outcome == "nostream":
                result.failed[item_id] = f"the stream '{entry.stream}' does not exist any more; entry kept"
            else:
                result.failed[item_id] = f"not redriven ({outcome}); entry kept"

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        self._require_selection(selection, "purge")
        result = BulkResult(action="purge", pipeline=selection.pipeline, dry_run=dry_run)
        for entry, _g in self._entries(selection, self.bulk_page, sweep=False):
            item_id = f"{entry.dlq_stream}/{entry.id}"
            result.matched.append(item_id)
            if dry_run:
                continue
            deleted = self.link.call(lambda r, e=entry: r.xdel(e.dlq_stream, e.id), what=f"XDEL {item_id}")
            if int(deleted):
                result.succeeded.append(item_id)
            else:
                result.failed[item_id] = "not in the DLQ any more (redriven or purged meanwhile)"
        return result

    # -- the dead-letter convention -------------------------------------------------------------------------------
    def dlq_setup(self, pipeline: str | None, stages: list[str] | None = None, *,
                  max_deliveries: int = cv.DEFAULT_MAX_DELIVERIES, min_idle_ms: int = cv.DEFAULT_MIN_IDLE_MS,
                  dlq_stream: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """Write the DLQ convention into each stage's hash (DLQ stream, max deliveries, min idle)."""
        name = self._one(pipeline)
        if isinstance(max_deliveries, bool) or not isinstance(max_deliveries, int) or max_deliveries < 1:
            raise UsageError(f"--max-deliveries must be a whole number >= 1, got {max_deliveries!r}")
        if min_idle_ms < 0:
            raise UsageError("--min-idle must not be negative")
        streams = self._streams(name)
        all_groups = self._groups(streams)
        groups = [self._find(name, s) for s in stages] if stages else all_groups
        if not groups:
            raise NotFoundError(f"pipeline '{name}' has no stages (consumer groups) to set a DLQ up for")
        if dlq_stream and len(groups) > 1:
            raise UsageError("--dlq-stream names the DLQ of one stage; give one --stage with it")
        used = {g.settings.dlq_stream: g for g in all_groups if g.settings.dlq_stream}
        plan = []
        for g in groups:
            target = dlq_stream or g.settings.dlq_stream or cv.default_dlq_stream(g.stream, g.name)
            if target in streams:
                raise UsageError(f"'{target}' is a stream of pipeline '{name}'; a DLQ stream must be a stream of its own")
            owner = used.get(target)
            if owner is not None and (owner.stream, owner.name) != (g.stream, g.name):
                raise UsageError(f"'{target}' is already the DLQ stream of stage '{owner.display}'; each stage has its own")
            current = (g.settings.dlq_stream, g.settings.max_deliveries, g.settings.min_idle_ms)
            wanted = (target, max_deliveries, min_idle_ms)
            action = "unchanged" if current == wanted and g.settings.raw.get("dlq_stream") else (
                "updated" if g.settings.dlq_stream else "created")
            plan.append((g, target, action))
        if not dry_run:
            for g, target, action in plan:
                if action == "unchanged":
                    continue
                self._set_stage(g, {"dlq_stream": target, "max_deliveries": str(max_deliveries),
                                    "min_idle_ms": str(min_idle_ms)}, None)
                self.link.call(lambda r, t=target: r.sadd(cv.DLQ_STREAMS, t), what="SADD")
        return {
            "kind": "RedisDLQSetup", "pipeline": name, "dry_run": dry_run,
            "stages": [{"stage": g.display, "stream": g.stream, "group": g.name, "dlq_stream": target,
                        "max_deliveries": max_deliveries, "min_idle_ms": min_idle_ms, "action": action,
                        "stage_key": cv.stage_key(g.stream, g.name)} for g, target, action in plan],
        }
