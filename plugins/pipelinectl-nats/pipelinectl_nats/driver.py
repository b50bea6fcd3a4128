"""NatsControlPlane: the ControlPlane verbs on NATS JetStream.

Mapping (README.md has the operator's version):
- pipeline = stream; stage = durable consumer on it.
- pause/resume = the consumer pause API ($JS.API.CONSUMER.PAUSE, server >= 2.11).
- scale = the consumer's `max_ack_pending`, updated with its full existing config.
- replay = read a range through a temporary consumer, republish with Nats-Msg-Id.
- dead letters = the advisory stream of dlq.py.
Sagas and drain are not JetStream concepts: they stay unsupported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelinectl.plugin_api import (
    ERROR_KINDS,
    BulkResult,
    Capability,
    Connection,
    DLQFilter,
    DLQItem,
    NotFoundError,
    Pipeline,
    ReplayJob,
    ReplayRequest,
    Stage,
    StaleVersionError,
    UnavailableError,
    UnsupportedError,
    UnsupportedVerbs,
    UsageError,
    format_time,
    parse_time,
    payload_view,
)

from . import dlq
from .link import (
    CONSUMER_NOT_FOUND,
    NO_MESSAGE_FOUND,
    STREAM_NOT_FOUND,
    ApiError,
    Link,
    api_error,
    b64,
    decode_headers,
)

# A pause without --until is a pause this far ahead; anything beyond INDEFINITE
# is shown as "until resumed" (the API has no open-ended pause).
PAUSE_FOREVER = timedelta(days=365 * 100)
INDEFINITE = timedelta(days=365 * 50)
PREVIEW_CHARS = 512
REPLAY_BATCH = 256
NO_LIMIT = 1_000_000  # max_parallelism shown when neither stream nor account limits max_ack_pending

ProgressFn = Callable[[str, int, int], None]  # (what, done, total)


def _now() -> datetime:
    return datetime.now(UTC)


def config_version(config: dict[str, Any]) -> int:
    """A stable number for a consumer config (JetStream has no revision): the If-Match value."""
    visible = {k: v for k, v in config.items() if k != "metadata"}
    visible["metadata"] = {k: v for k, v in (config.get("metadata") or {}).items() if not k.startswith("_nats.")}
    return zlib.crc32(json.dumps(visible, sort_keys=True).encode()) & 0x7FFFFFFF


def republish_headers(headers: dict[str, str], msg_id: str, origin_header: str, origin: str) -> dict[str, str]:
    """The original's own headers, minus server-control ones (Nats-*), plus our dedupe id."""
    kept = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
    kept["Nats-Msg-Id"] = msg_id
    kept[origin_header] = origin
    return kept



def _default_progress(what: str, done: int, total: int) -> None:
    """A one-line counter on stderr, only when a person is watching."""
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{what} {done}/{total}{end}")
        sys.stderr.flush()


def _stage_subjects(value: Any) -> dict[str, str]:
    """`stage_subjects` as a mapping, or as `--set stage_subjects=parse=orders.parse,enrich=orders.enrich`."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    pairs = [p.partition("=") for p in str(value).split(",") if p.strip()]
    if any(not sep or not k.strip() or not v.strip() for k, sep, v in pairs):
        raise UsageError(f"setting stage_subjects='{value}' is not STAGE=SUBJECT[,STAGE=SUBJECT...]")
    return {k.strip(): v.strip() for k, _, v in pairs}


class NatsControlPlane(UnsupportedVerbs):
    """A ControlPlane over one NATS account's JetStream."""

    driver = "nats"
    url_schemes = ("nats", "tls", "ws", "wss")
    capabilities = frozenset({
        Capability.STATUS, Capability.PAUSE, Capability.PAUSE_UNTIL, Capability.RESUME, Capability.SCALE,
        Capability.REPLAY, Capability.REPLAY_BY_TIME, Capability.DLQ_LIST, Capability.DLQ_SHOW,
        Capability.DLQ_REDRIVE, Capability.DLQ_PURGE,
    })

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.link = Link(connection)
        settings = connection.settings
        self.dlq_stream: str = settings.get("dlq_stream") or dlq.DEFAULT_STREAM
        self.streams: list[str] = [s.strip() for s in (connection.pipeline or "").split(",") if s.strip()]
        # stage -> subject to republish replays/redrives to (default: the message's own subject)
        self.stage_subjects: dict[str, str] = _stage_subjects(settings.get("stage_subjects"))
        self.progress: ProgressFn | None = _default_progress  # replay and redrive report here
        self.bulk_page = 200  # DLQ entries read per page by redrive and purge

    def close(self) -> None:
        self.link.close()

    def server_version(self) -> str:
        """Shown by `pipelinectl version`: the connected server and whether JetStream answers."""

        async def go() -> str:
            nc = await self.link.nc()
            v = nc.connected_server_version
            version = f"{v.major}.{v.minor}.{v.patch}"
            try:
                info = await self.link.api("INFO")
            except ApiError as exc:
                return f"nats-server {version} (JetStream: {exc.description})"
            domain = info.get("domain")
            return f"nats-server {version} (JetStream{f', domain {domain}' if domain else ''})"

        return self.link.run(go())

    # -- JetStream reads ------------------------------------------------------------
    async def _stream_info(self, stream: str, subjects_filter: str | None = None) -> dict[str, Any]:
        body = {"subjects_filter": subjects_filter} if subjects_filter else None
        try:
            return await self.link.api(f"STREAM.INFO.{stream}", body)
        except ApiError as exc:
            if exc.err_code == STREAM_NOT_FOUND or exc.code == 404:
                raise NotFoundError(f"pipeline '{stream}' not found: no stream of that name at {self.link.url}") from exc
            raise api_error(exc, f"stream '{stream}'") from exc

    async def _consumer_info(self, stream: str, consumer: str) -> dict[str, Any]:
        try:
            return await self.link.api(f"CONSUMER.INFO.{stream}.{consumer}")
        except ApiError as exc:
            if exc.err_code == STREAM_NOT_FOUND:
                raise NotFoundError(f"pipeline '{stream}' not found: no stream of that name at {self.link.url}") from exc
            if exc.err_code == CONSUMER_NOT_FOUND or exc.code == 404:
                raise NotFoundError(f"stage '{consumer}' not found in pipeline '{stream}' (no durable consumer of that name)") from exc
            raise api_error(exc, f"stage '{consumer}'") from exc

    async def _durables(self, stream: str) -> list[dict[str, Any]]:
        """Durable consumers of a stream, oldest first (ephemerals, like our replay readers, are not stages)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            try:
                page = await self.link.api(f"CONSUMER.LIST.{stream}", {"offset": offset})
            except ApiError as exc:
                if exc.code == 404:
                    raise NotFoundError(f"pipeline '{stream}' not found: no stream of that name at {self.link.url}") from exc
                raise api_error(exc, f"stream '{stream}'") from exc
            consumers = page.get("consumers") or []
            found.extend(c for c in consumers if c.get("config", {}).get("durable_name"))
            offset += len(consumers)
            if not consumers or offset >= int(page.get("total", 0)):
                break
        return sorted(found, key=lambda c: (c.get("created", ""), c.get("name", "")))

    async def _dlq_counts(self, stream: str) -> dict[str, dict[str, int]] | None:
        """consumer -> {error kind: entries} from the DLQ stream's subject counts; None if no DLQ."""
        try:
            info = await self.link.api(f"STREAM.INFO.{self.dlq_stream}", {"subjects_filter": dlq.subject(stream)})
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        if not self._covers(info, stream):
            return None
        counts: dict[str, dict[str, int]] = {}
        for subj, n in (info.get("state", {}).get("subjects") or {}).items():
            entry = dlq.parse_entry(0, subj, b"", None)
            kinds = counts.setdefault(entry.consumer, {})
            kinds[entry.error_kind] = kinds.get(entry.error_kind, 0) + int(n)
        return counts

    @staticmethod
    def _covers(dlq_info: dict[str, Any], stream: str) -> bool:
        """Does the DLQ stream record both advisories of this stream?"""
        have = set(dlq_info.get("config", {}).get("subjects") or [])
        return all(s in have for s in dlq.stream_subjects([stream])) or f"{dlq.PREFIX}.>" in have

    async def _require_dlq(self, stream: str) -> None:
        """A DLQ that does not record this stream would list nothing: say so instead."""
        hint = f"run 'pipelinectl nats dlq setup -p {stream}'"
        try:
            info = await self.link.api(f"STREAM.INFO.{self.dlq_stream}")
        except ApiError as exc:
            if exc.code == 404:
                raise NotFoundError(f"no dead-letter stream '{self.dlq_stream}' at {self.link.url}", hint=hint) from exc
            raise api_error(exc, "dead-letter stream") from exc
        if not self._covers(info, stream):
            raise NotFoundError(f"the dead-letter stream '{self.dlq_stream}' does not record pipeline '{stream}'",
                                hint=hint)

    async def _limits(self, stream_info: dict[str, Any]) -> int | None:
        limit = (stream_info.get("config", {}).get("consumer_limits") or {}).get("max_ack_pending")
        return int(limit) if limit and int(limit) > 0 else None

    # -- building models ---------------------------------------------------------
    def _stage(self, stream: str, info: dict[str, Any], dlq_counts: dict[str, dict[str, int]] | None,
               limit: int | None) -> Stage:
        cfg = info.get("config", {})
        name = info.get("name") or cfg.get("durable_name")
        paused = bool(info.get("paused"))
        until = parse_time(cfg.get("pause_until")) if paused and cfg.get("pause_until") else None
        indefinite = bool(until and until - _now() > INDEFINITE)
        kinds = (dlq_counts or {}).get(name, {})
        dead = sum(kinds.values())
        max_ack = int(cfg.get("max_ack_pending", 1000))
        remaining_ns = info.get("pause_remaining")
        details: dict[str, Any] = {
            "stream": stream,
            "consumer": name,
            "filter_subjects": cfg.get("filter_subjects") or ([cfg["filter_subject"]] if cfg.get("filter_subject") else []),
            "consumer_type": "push" if cfg.get("deliver_subject") else "pull",
            "max_ack_pending": max_ack,
            "max_deliver": cfg.get("max_deliver", -1),
            "ack_wait_seconds": (cfg.get("ack_wait") or 0) / 1e9,
            "pending": info.get("num_pending", 0),
            "ack_pending": info.get("num_ack_pending", 0),
            "redelivered": info.get("num_redelivered", 0),
            "waiting": info.get("num_waiting", 0),
            "delivered_stream_seq": (info.get("delivered") or {}).get("stream_seq", 0),
            "ack_floor_stream_seq": (info.get("ack_floor") or {}).get("stream_seq", 0),
            "paused": paused,
            "pause_indefinite": indefinite,
            "pause_remaining_seconds": round(remaining_ns / 1e9, 3) if paused and remaining_ns and not indefinite else None,
            "max_ack_pending_limit": limit,
            "dlq": f"not set up (pipelinectl nats dlq setup -p {stream})" if dlq_counts is None else self.dlq_stream,
        }
        return Stage(
            pipeline=stream,
            name=name,
            state="paused" if paused else "running",
            parallelism=max_ack,
            min_parallelism=1,
            max_parallelism=limit or NO_LIMIT,
            in_flight=int(info.get("num_ack_pending", 0)),
            queue_depth=int(info.get("num_pending", 0)),
            failed=dead,
            errors_by_kind=dict(kinds),
            dlq_size=dead,
            paused_until=None if indefinite else until,
            version=config_version(cfg),
            details=details,
        )

    async def _pipeline(self, stream: str) -> Pipeline:
        info = await self._stream_info(stream)
        consumers = await self._durables(stream)
        counts = await self._dlq_counts(stream)
        limit = await self._limits(info)
        stages = [self._stage(stream, c, counts, limit) for c in consumers]
        state = info.get("state", {})
        cfg = info.get("config", {})
        return Pipeline(
            name=stream,
            stages=stages,
            input_offset=int(state.get("last_seq", 0)) + 1,
            dlq_size=sum(sum(k.values()) for k in (counts or {}).values()),
            driver=self.driver,
            details={
                "subjects": cfg.get("subjects") or [],
                "retention": cfg.get("retention"),
                "messages": state.get("messages", 0),
                "bytes": state.get("bytes", 0),
                "first_seq": state.get("first_seq", 0),
                "last_seq": state.get("last_seq", 0),
                "duplicate_window_seconds": (cfg.get("duplicate_window") or 0) / 1e9,
                "dlq_stream": self.dlq_stream if counts is not None else None,
            },
        )

    async def _all_streams(self) -> list[str]:
        names: list[str] = []
        offset = 0
        while True:
            page = await self.link.api("STREAM.NAMES", {"offset": offset})
            batch = page.get("streams") or []
            names.extend(batch)
            offset += len(batch)
            if not batch or offset >= int(page.get("total", 0)):
                break
        internal = (self.dlq_stream,)
        return sorted(n for n in names if n not in internal and not n.startswith(("KV_", "OBJ_")))

    # -- status -----------------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        async def go() -> list[Pipeline]:
            names = self._names(pipeline) or await self._all_streams()
            return [await self._pipeline(n) for n in names]

        return self.link.run(go())

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        return self.link.run(self._get_stage(self._one(pipeline), stage))

    async def _get_stage(self, stream: str, stage: str) -> Stage:
        info = await self._consumer_info(stream, stage)
        stream_info = await self._stream_info(stream)
        return self._stage(stream, info, await self._dlq_counts(stream), await self._limits(stream_info))

    def _names(self, pipeline: str | None) -> list[str]:
        if pipeline:
            return [p.strip() for p in pipeline.split(",") if p.strip()]
        return list(self.streams)

    def _one(self, pipeline: str | None) -> str:
        names = self._names(pipeline)
        if len(names) != 1:
            shown = ", ".join(names) or "none"
            raise UsageError(f"choose one pipeline (stream) with -p/--pipeline; this context names: {shown}")
        name = names[0]
        if any(c in name for c in " .*>"):
            raise UsageError(f"'{name}' is not a valid stream name (no spaces, '.', '*' or '>')")
        return name

    @staticmethod
    def _check_stage_name(stage: str) -> None:
        if not stage or any(c in stage for c in " .*>"):
            raise UsageError(f"'{stage}' is not a valid consumer name (no spaces, '.', '*' or '>')")

    def _check_version(self, stage: Stage, expected: int | None) -> None:
        if expected is not None and expected != stage.version:
            raise StaleVersionError(
                f"stage '{stage.name}' changed since version {expected} was read (now {stage.version}); nothing was changed",
                hint="read it again with 'status' and retry",
            )

    # -- stage control ------------------------------------------------------------
    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        stream = self._one(pipeline)
        self._check_stage_name(stage)
        if until is not None:
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            if until <= _now():
                raise UsageError(f"--until {format_time(until)} is in the past; nothing was changed")

        async def go() -> Stage:
            current = await self._get_stage(stream, stage)
            self._check_version(current, expected_version)
            target = until or (_now() + PAUSE_FOREVER)
            if dry_run:
                current.state = "paused"
                current.paused_until = until
                return current
            await self._pause_api(stream, stage, format_time(target) or "")
            return await self._get_stage(stream, stage)

        return self.link.run(go())

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        stream = self._one(pipeline)
        self._check_stage_name(stage)

        async def go() -> Stage:
            current = await self._get_stage(stream, stage)
            self._check_version(current, expected_version)
            if dry_run or current.state != "paused":
                current.state = "running"
                current.paused_until = None
                return current
            await self._pause_api(stream, stage, "1970-01-01T00:00:00Z")
            return await self._get_stage(stream, stage)

        return self.link.run(go())

    async def _pause_api(self, stream: str, stage: str, until: str) -> dict[str, Any]:
        try:
            return await self.link.api(f"CONSUMER.PAUSE.{stream}.{stage}", {"pause_until": until})
        except ApiError as exc:
            raise api_error(exc, f"pause of stage '{stage}'") from exc

    def limit(self, pipeline, stage, rate, **kw):  # type: ignore[no-untyped-def]
        raise UnsupportedError.verb(self.driver, "limit", "JetStream's consumer rate limit (rate_limit_bps) is in "
                                    "bits per second of push deliveries, not items per second")

    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        stream = self._one(pipeline)
        self._check_stage_name(stage)
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise UsageError(
                f"--parallelism must be a whole number >= 1 (max_ack_pending), got {parallelism!r}; nothing was changed",
                hint="JetStream reads 0 as 'server default' and -1 as 'unlimited', so neither is accepted here",
            )

        async def go() -> Stage:
            info = await self._consumer_info(stream, stage)
            stream_info = await self._stream_info(stream)
            limit = await self._limits(stream_info)
            current = self._stage(stream, info, await self._dlq_counts(stream), limit)
            self._check_version(current, expected_version)
            if limit is not None and parallelism > limit:
                raise UsageError(
                    f"--parallelism {parallelism} exceeds the stream's consumer limit max_ack_pending={limit}; nothing was changed")
            if dry_run:
                current.parallelism = parallelism
                current.details["max_ack_pending"] = parallelism
                return current
            config = dict(info["config"])  # everything the server has, unchanged ...
            config["max_ack_pending"] = parallelism  # ... but this one field
            try:
                await self.link.api(f"CONSUMER.CREATE.{stream}.{stage}",
                                    {"stream_name": stream, "config": config, "action": "update"})
            except ApiError as exc:
                if exc.code == 400:
                    raise UsageError(
                        f"the server refused max_ack_pending={parallelism} for stage '{stage}': {exc.description}; nothing was changed"
                    ) from exc
                raise api_error(exc, f"scale of stage '{stage}'") from exc
            return await self._get_stage(stream, stage)

        return self.link.run(go())

    # -- replay -------------------------------------------------------------
    def replay(self, request: ReplayRequest) -> ReplayJob:
        stream = self._one(request.pipeline)
        by_seq = request.from_offset is not None or request.to_offset is not None
        by_time = request.from_time is not None or request.to_time is not None
        if by_seq == by_time:
            raise UsageError("replay needs a sequence range (--from/--to offsets) or a time range, not both or neither")
        if by_seq:
            if request.from_offset is None or request.from_offset < 1:
                raise UsageError("replay --from must be a stream sequence >= 1")
            if request.to_offset is not None and request.to_offset <= request.from_offset:
                raise UsageError(f"replay range is empty: --to {request.to_offset} must be after --from {request.from_offset} (end is exclusive)")
        else:
            if request.from_time is None:
                raise UsageError("replay by time needs a start time")
            if request.to_time is not None and request.to_time <= request.from_time:
                raise UsageError("replay time range is empty: the end must be after the start (end is exclusive)")
        return self.link.run(self._replay(stream, request))

    async def _replay(self, stream: str, request: ReplayRequest) -> ReplayJob:
        stage = request.stage
        if stage is None:
            durables = await self._durables(stream)
            if not durables:
                raise NotFoundError(f"pipeline '{stream}' has no stages (durable consumers) to replay into")
            stage = durables[0]["name"]
        self._check_stage_name(stage)
        info = await self._consumer_info(stream, stage)
        cfg = info["config"]
        stream_info = await self._stream_info(stream)
        last_seq = int(stream_info.get("state", {}).get("last_seq", 0))  # never read our own republished copies
        job = ReplayJob(
            id=f"replay-{uuid.uuid4().hex[:12]}", pipeline=stream, stage=stage,
            state="planned" if request.dry_run else "running",
            from_offset=request.from_offset, to_offset=request.to_offset,
            from_time=request.from_time, to_time=request.to_time, created_at=_now(),
        )
        filters = cfg.get("filter_subjects") or ([cfg["filter_subject"]] if cfg.get("filter_subject") else [])
        reader: dict[str, Any] = {
            "name": f"pipelinectl-replay-{uuid.uuid4().hex[:12]}",
            "ack_policy": "none",
            "replay_policy": "instant",
            "inactive_threshold": int(60e9),  # the server removes it even if we die mid-way
            "mem_storage": True,
            "num_replicas": 1,
            "headers_only": bool(request.dry_run),
        }
        if filters:
            reader["filter_subjects"] = filters
        if request.from_offset is not None:
            reader.update(deliver_policy="by_start_sequence", opt_start_seq=request.from_offset)
        else:
            reader.update(deliver_policy="by_start_time", opt_start_time=format_time(request.from_time))
        stop_seq = min(request.to_offset or last_seq + 1, last_seq + 1)

        def in_range(seq: int, when: datetime) -> bool:
            if seq >= stop_seq:
                return False
            return not (request.to_time is not None and when >= request.to_time)

        first = last = None
        try:
            created = await self.link.api(f"CONSUMER.CREATE.{stream}.{reader['name']}",
                                          {"stream_name": stream, "config": reader, "action": "create"})
            pending = int(created.get("num_pending", 0))
            total_hint = pending
            done = 0
            js = await self.link.jetstream()
            sub = await js.pull_subscribe_bind(consumer=reader["name"], stream=stream)
            try:
                while pending > 0:
                    msgs = await sub.fetch(REPLAY_BATCH, timeout=self.link.request_timeout)
                    finished = False
                    for msg in msgs:
                        meta = msg.metadata
                        seq = meta.sequence.stream
                        pending = meta.num_pending
                        if not in_range(seq, meta.timestamp):
                            finished = True
                            break
                        first = seq if first is None else first
                        last = seq
                        job.total += 1
                        if not request.dry_run:
                            target = self.stage_subjects.get(stage) or msg.subject
                            headers = republish_headers(dict(msg.headers or {}), f"pipelinectl-replay:{stream}:{seq}",
                                                        "Pipelinectl-Replay-Of", f"{stream}:{seq}")
                            ack = await self.link.publish(target, msg.data or b"", headers)
                            if ack.get("duplicate"):
                                job.skipped += 1
                            else:
                                job.replayed += 1
                            done += 1
                            if self.progress:
                                self.progress("replaying", done, max(done, min(total_hint, stop_seq - (request.from_offset or 0))))
                    if finished or not msgs:
                        break
            finally:
                try:
                    await sub.unsubscribe()
                except Exception:  # the subscription dies with the connection anyway
                    pass
        finally:
            await self._delete_consumer(stream, reader["name"])
        job.state = "planned" if request.dry_run else "completed"
        job.finished_at = None if request.dry_run else _now()
        if first is not None:  # the sequence range actually found (end exclusive)
            job.from_offset, job.to_offset = first, last + 1  # type: ignore[operator]
        return job

    async def _delete_consumer(self, stream: str, name: str) -> None:
        """Remove a temporary consumer; 'already gone' is success."""
        try:
            await self.link.api(f"CONSUMER.DELETE.{stream}.{name}")
        except ApiError as exc:
            if exc.code != 404:
                raise api_error(exc, f"cleanup of temporary consumer '{name}'") from exc

    # -- dead letters ---------------------------------------------------------
    def _check_filter(self, selection: DLQFilter) -> str:
        stream = self._one(selection.pipeline)
        if selection.error_kind is not None and selection.error_kind not in ERROR_KINDS:
            raise UsageError(f"unknown error kind '{selection.error_kind}'; one of: {', '.join(ERROR_KINDS)}")
        if selection.stage is not None:
            self._check_stage_name(selection.stage)
        for item_id in selection.ids:
            if not item_id.isdigit():
                raise UsageError(f"'{item_id}' is not a DLQ entry id of the nats driver (a DLQ stream sequence number)")
        return stream

    def _filter_subject(self, stream: str, selection: DLQFilter) -> str | None:
        """The advisory subject matching the filter, or None if the kind cannot be in this DLQ."""
        event = "*"
        if selection.error_kind is not None:
            if selection.error_kind not in dlq.EVENT_OF_KIND:
                return None
            event = dlq.EVENT_OF_KIND[selection.error_kind]
        return dlq.subject(stream, selection.stage or "*", event)

    async def _dlq_get(self, seq: int, next_subject: str | None = None) -> dlq.Entry | None:
        body: dict[str, Any] = {"seq": seq}
        if next_subject:
            body["next_by_subj"] = next_subject
        try:
            answer = await self.link.api(f"STREAM.MSG.GET.{self.dlq_stream}", body)
        except ApiError as exc:
            if exc.err_code == NO_MESSAGE_FOUND:
                return None
            if exc.err_code == STREAM_NOT_FOUND or exc.code == 404:
                raise NotFoundError(f"no dead-letter stream '{self.dlq_stream}' at {self.link.url}",
                                    hint="create it with 'pipelinectl nats dlq setup'") from exc
            raise api_error(exc, "dead-letter read") from exc
        msg = answer["message"]
        return dlq.parse_entry(int(msg["seq"]), msg["subject"], b64(msg.get("data")), parse_time(msg.get("time")))

    async def _original(self, entry: dlq.Entry) -> dict[str, Any] | None:
        """The message the advisory points at, or None when the source stream no longer has it."""
        if entry.stream_seq is None:
            return None
        try:
            answer = await self.link.api(f"STREAM.MSG.GET.{entry.stream}", {"seq": entry.stream_seq})
        except ApiError as exc:
            if exc.code == 404:  # no such message, or no such stream any more
                return None
            raise api_error(exc, f"original of DLQ entry {entry.id}") from exc
        msg = answer["message"]
        return {
            "subject": msg["subject"],
            "data": b64(msg.get("data")),
            "headers": decode_headers(b64(msg.get("hdrs"))),
            "time": parse_time(msg.get("time")),
        }

    def _matches(self, entry: dlq.Entry, stream: str, selection: DLQFilter) -> bool:
        if entry.stream != stream:
            return False
        if selection.stage and entry.consumer != selection.stage:
            return False
        if selection.error_kind and entry.error_kind != selection.error_kind:
            return False
        if selection.since and (entry.time is None or entry.time < selection.since):
            return False
        return not (selection.until and (entry.time is None or entry.time >= selection.until))

    def _item(self, entry: dlq.Entry, original: dict[str, Any] | None, preview: int | None) -> DLQItem:
        details: dict[str, Any] = {
            "dlq_stream": self.dlq_stream,
            "dlq_seq": entry.seq,
            "event": entry.event,
            "reason": entry.reason,
            "advisory_id": entry.advisory.get("id"),
            "consumer_seq": entry.advisory.get("consumer_seq"),
        }
        message = entry.describe()
        payload: Any = None
        headers: dict[str, str] = {}
        if original is None:
            details["original"] = "gone"
            message += f"; the original message (stream {entry.stream} seq {entry.stream_seq}) is gone"
        else:
            details["original"] = "present"
            details["subject"] = original["subject"]
            details["original_time"] = format_time(original["time"])
            payload, info = payload_view(original["data"], preview)
            details.update(info)
            headers = original["headers"]
        return DLQItem(
            id=entry.id, pipeline=entry.stream, stage=entry.consumer, error_kind=entry.error_kind,
            message=message, attempts=entry.deliveries, first_seen=entry.time, last_seen=entry.time,
            key=headers.get("Nats-Msg-Id"), offset=entry.stream_seq, payload=payload, headers=headers,
            details=details,
        )

    async def _page(self, stream: str, selection: DLQFilter, cursor: int, size: int
                    ) -> tuple[list[tuple[dlq.Entry, dict[str, Any] | None]], int | None]:
        """Up to `size` matching entries from DLQ sequence `cursor`, originals resolved; next cursor or None."""
        if selection.ids:
            wanted = sorted({int(i) for i in selection.ids if int(i) >= cursor})
            found = await asyncio.gather(*(self._dlq_get(seq) for seq in wanted[:size]))
            entries = [e for e in found if e is not None and self._matches(e, stream, selection)]
            nxt = wanted[size] if len(wanted) > size else None
        else:
            subject = self._filter_subject(stream, selection)
            if subject is None:
                return [], None
            # a scan only reads: safe to redo whole when the server goes away mid-page
            scanned, nxt = await self.link.retrying(lambda: self._scan(subject, cursor, size), what="dead-letter read")
            entries = [e for e in scanned if self._matches(e, stream, selection)]
        originals = await asyncio.gather(*(self._original(e) for e in entries))
        return list(zip(entries, originals, strict=True)), nxt

    async def _scan(self, subject: str, cursor: int, size: int) -> tuple[list[dlq.Entry], int | None]:
        """Read up to `size` DLQ entries on `subject` from `cursor` through a temporary consumer.

        One pull instead of a request per entry; the consumer is deleted before returning
        (and expires on its own if we die first).
        """
        name = f"pipelinectl-dlq-{uuid.uuid4().hex[:12]}"
        config = {
            "name": name, "ack_policy": "none", "deliver_policy": "by_start_sequence", "opt_start_seq": cursor,
            "filter_subject": subject, "mem_storage": True, "num_replicas": 1, "inactive_threshold": int(30e9),
        }
        try:
            created = await self.link.api(f"CONSUMER.CREATE.{self.dlq_stream}.{name}",
                                          {"stream_name": self.dlq_stream, "config": config, "action": "create"})
        except ApiError as exc:
            raise api_error(exc, "dead-letter read") from exc
        entries: list[dlq.Entry] = []
        pending = int(created.get("num_pending", 0))
        try:
            if pending:
                js = await self.link.jetstream()
                sub = await js.pull_subscribe_bind(consumer=name, stream=self.dlq_stream)
                try:
                    while pending and len(entries) < size:
                        msgs = await sub.fetch(min(size - len(entries), pending), timeout=self.link.request_timeout)
                        if not msgs:
                            break
                        for msg in msgs:
                            meta = msg.metadata
                            entries.append(dlq.parse_entry(meta.sequence.stream, msg.subject, msg.data or b"",
                                                           meta.timestamp))
                            pending = meta.num_pending
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
        finally:
            await self._delete_consumer(self.dlq_stream, name)
        nxt = entries[-1].seq + 1 if entries and pending else None
        return entries, nxt

    def _entries(self, selection: DLQFilter, page_size: int) -> Iterator[tuple[dlq.Entry, dict[str, Any] | None]]:
        stream = self._check_filter(selection)
        self.link.run(self._require_dlq(stream))
        cursor: int | None = 1
        while cursor is not None:
            page, cursor = self.link.run(self._page(stream, selection, cursor, max(1, page_size)))
            yield from page

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        for entry, original in self._entries(selection, page_size):
            yield self._item(entry, original, PREVIEW_CHARS)

    def dlq_count(self, selection: DLQFilter) -> int:
        stream = self._check_filter(selection)
        if selection.ids or selection.since or selection.until:
            return sum(1 for _ in self._entries(selection, 500))
        subject = self._filter_subject(stream, selection)
        if subject is None:
            return 0

        async def go() -> int:
            await self._require_dlq(stream)
            try:
                info = await self.link.api(f"STREAM.INFO.{self.dlq_stream}", {"subjects_filter": subject})
            except ApiError as exc:
                raise api_error(exc, "dead-letter count") from exc
            return sum(int(n) for n in (info.get("state", {}).get("subjects") or {}).values())

        return self.link.run(go())

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        stream = self._one(pipeline)
        if not str(item_id).isdigit():
            raise UsageError(f"'{item_id}' is not a DLQ entry id of the nats driver (a DLQ stream sequence number)")

        async def go() -> DLQItem:
            entry = await self._dlq_get(int(item_id))
            if entry is None:
                await self._require_dlq(stream)  # a missing DLQ says so, not "entry not found"
            if entry is None or entry.stream != stream:
                raise NotFoundError(f"DLQ entry {item_id} not found for pipeline '{stream}'")
            return self._item(entry, await self._original(entry), None)

        return self.link.run(go())

    def _require_selection(self, selection: DLQFilter, action: str) -> None:
        if selection.is_empty():
            raise UsageError(f"dlq {action} needs ids or a filter (--all, --stage, --error-kind, --since, --until)")

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """Republish each original, then delete its entry: an entry leaves only after the publish ack.

        The publish carries Nats-Msg-Id `pipelinectl-redrive:<dlq>:<seq>`, so redriving an entry again
        (after a crash between ack and delete) inside the duplicate window does not duplicate it.
        """
        self._require_selection(selection, "redrive")
        result = BulkResult(action="redrive", pipeline=selection.pipeline, dry_run=dry_run)
        try:
            self._redrive(selection, dry_run, result)
        except UnavailableError as exc:  # reading the next page failed past the deadline
            raise type(exc)(f"{exc.message}; {len(result.succeeded)} entries were redriven before this, "
                            "the others are still in the DLQ") from exc
        return result

    def _redrive(self, selection: DLQFilter, dry_run: bool, result: BulkResult) -> None:
        for entry, original in self._entries(selection, self.bulk_page):
            result.matched.append(entry.id)
            if dry_run:
                if original is None:
                    result.failed[entry.id] = f"original message (stream {entry.stream} seq {entry.stream_seq}) is gone"
                continue
            if original is None:
                result.failed[entry.id] = f"original message (stream {entry.stream} seq {entry.stream_seq}) is gone; entry kept"
                continue
            try:
                self.link.run(self._redrive_one(entry, original))
            except UnavailableError as exc:  # the server stayed away past the deadline: stop, report
                result.failed[entry.id] = f"not redriven: {exc.message}; entry kept"
                break
            except Exception as exc:
                result.failed[entry.id] = f"not redriven: {getattr(exc, 'message', exc)}; entry kept"
                continue
            result.succeeded.append(entry.id)
            if self.progress:
                self.progress("redriving", len(result.succeeded), len(result.matched))

    async def _redrive_one(self, entry: dlq.Entry, original: dict[str, Any]) -> None:
        target = self.stage_subjects.get(entry.consumer) or original["subject"]
        headers = republish_headers(original["headers"], f"pipelinectl-redrive:{self.dlq_stream}:{entry.seq}",
                                    "Pipelinectl-Redrive-Of", f"{entry.stream}:{entry.stream_seq}")
        try:
            await self.link.publish(target, original["data"], headers)
        except ApiError as exc:
            raise api_error(exc, f"redrive of DLQ entry {entry.id}") from exc
        await self._delete_entry(entry.seq)

    async def _delete_entry(self, seq: int) -> None:
        try:
            await self.link.api(f"STREAM.MSG.DELETE.{self.dlq_stream}", {"seq": seq, "no_erase": True})
        except ApiError as exc:
            if exc.code == 404 or exc.err_code == NO_MESSAGE_FOUND:
                return  # deleted by an earlier attempt whose answer was lost
            raise api_error(exc, f"delete of DLQ entry {seq}") from exc

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        self._require_selection(selection, "purge")
        result = BulkResult(action="purge", pipeline=selection.pipeline, dry_run=dry_run)
        for entry, _original in self._entries(selection, self.bulk_page):
            result.matched.append(entry.id)
            if dry_run:
                continue
            try:
                self.link.run(self._delete_entry(entry.seq))
            except Exception as exc:
                result.failed[entry.id] = getattr(exc, "message", str(exc))
                continue
            result.succeeded.append(entry.id)
        return result

    # -- the dead-letter convention -------------------------------------------------
    def dlq_setup(self, streams: list[str] | None = None, *, max_age: timedelta = dlq.DEFAULT_MAX_AGE,
                  replicas: int = 1, dry_run: bool = False) -> dict[str, Any]:
        """Create (or extend) the DLQ stream so it records the advisories of these streams."""
        names = streams or self.streams
        if not names:
            raise UsageError("name the pipeline stream(s) to cover: -p STREAM, or a context with a pipeline")
        for name in names:
            self._one(name)
            if name == self.dlq_stream:
                raise UsageError(f"'{name}' is the dead-letter stream itself; name the pipeline streams it should record")

        async def go() -> dict[str, Any]:
            for name in names:
                await self._stream_info(name)  # each source stream must exist
            try:
                existing = await self.link.api(f"STREAM.INFO.{self.dlq_stream}")
            except ApiError as exc:
                if exc.code != 404:
                    raise api_error(exc, f"stream '{self.dlq_stream}'") from exc
                existing = None
            wanted = dlq.stream_subjects(names)
            if existing is None:
                action, config = "created", dlq.stream_config(self.dlq_stream, wanted, max_age=max_age, replicas=replicas)
                subject = f"STREAM.CREATE.{self.dlq_stream}"
            else:
                config = dict(existing["config"])
                have = list(config.get("subjects") or [])
                added = [s for s in wanted if s not in have]
                action = "updated" if added else "unchanged"
                config["subjects"] = have + added
                subject = f"STREAM.UPDATE.{self.dlq_stream}"
            if not dry_run and action != "unchanged":
                try:
                    await self.link.api(subject, config, retry=False)
                except ApiError as exc:
                    raise api_error(exc, f"dead-letter stream '{self.dlq_stream}'") from exc
            return {"kind": "NatsDLQSetup", "stream": self.dlq_stream, "action": action, "dry_run": dry_run,
                    "subjects": config["subjects"], "pipelines": names}

        return self.link.run(go())
