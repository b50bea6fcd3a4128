"""The domain, as every driver returns it and every renderer shows it. No I/O.

Each resource is a keyword-only dataclass with a `kind`. `to_dict()` gives the
stable machine-readable shape documented in docs/output.md (RFC 3339 UTC
times); `from_dict()` reads the same shape back, which is what the HTTP driver
does with the control-plane API's answers. The reference server uses these
same classes for its responses, so the API and `-o json` cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from .timeparse import format_time, parse_timestamp

T = TypeVar("T", bound="Resource")

StageState = Literal["running", "paused", "draining", "disabled"]
ErrorKind = Literal["validation", "transient", "persistent", "fatal"]
ERROR_KINDS: tuple[str, ...] = ("validation", "transient", "persistent", "fatal")
# `disabled`: the stage is bypassed (items flow on unprocessed, each recorded for `replay --skipped`).
STAGE_STATES: tuple[str, ...] = ("running", "paused", "draining", "disabled")
ReplayState = Literal["planned", "pending", "running", "completed", "cancelled", "failed"]
REPLAY_STATES: tuple[str, ...] = ("planned", "pending", "running", "completed", "cancelled", "failed")
# What status shows and `wait --for state=` accepts: a running stage whose error rate reaches
# FAILING_ERROR_RATE is `failing` (it still runs; its state stays `running`).
FAILING_ERROR_RATE = 0.05
STAGE_HEALTH: tuple[str, ...] = (*STAGE_STATES, "failing")


def stage_health(stage: Any) -> str:
    """The stage's state, or `failing` for a running stage in trouble."""
    if stage.state == "running" and stage.error_rate >= FAILING_ERROR_RATE:
        return "failing"
    return str(stage.state)


SagaStatus = Literal["running", "compensating", "completed", "compensated", "failed", "stuck", "cancelled"]
SAGA_STATUSES: tuple[str, ...] = ("running", "compensating", "completed", "compensated", "failed", "stuck",
                                  "cancelled")
StepStatus = Literal[
    "pending", "running", "completed", "failed", "timed_out",
    "compensating", "compensated", "compensation_failed", "skipped", "cancelled",
]


# The one time parser and formatter live in timeparse; `parse_time` is the name plugins import
# from here for machine timestamps (RFC 3339), kept as an alias of timeparse.parse_timestamp.
parse_time = parse_timestamp


_PLAIN = (str, int, float, type(None))  # bool is an int


def _dump(value: Any) -> Any:
    if isinstance(value, _PLAIN):  # first: nearly every value is one
        return value
    if isinstance(value, dict):
        return {k: v if isinstance(v, _PLAIN) else _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, _PLAIN) else _dump(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Resource):
        return value.to_dict()
    return value


def _reader(tp: Any) -> Callable[[Any], Any] | None:
    """How a JSON value becomes the annotated type (nested resources, times); None: taken as it is."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _reader(args[0]) if len(args) == 1 else None
    if origin is list:
        item = _reader(typing.get_args(tp)[0])
        return None if item is None else (lambda value: [None if v is None else item(v) for v in value])
    if origin is dict:
        entry = _reader(typing.get_args(tp)[1])
        return None if entry is None else (lambda value: {k: None if v is None else entry(v) for k, v in value.items()})
    if tp is datetime:
        return parse_timestamp
    if isinstance(tp, type) and issubclass(tp, Resource):
        return tp.from_dict
    return None


@functools.cache
def _field_names(cls: type[Resource]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _readers(cls: type[Resource]) -> dict[str, Callable[[Any], Any] | None]:
    """Per class, once: each field's reader (resolving type hints costs more than reading an item)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _reader(hints[f.name]) for f in dataclasses.fields(cls) if f.init and f.name != "kind"}


@dataclass(kw_only=True)
class Resource:
    """Common behaviour: a `kind`, a stable dict shape, and reading it back."""

    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            out[name] = value if isinstance(value, _PLAIN) else _dump(value)
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        readers = _readers(cls)
        values = {}
        for key, value in data.items():
            if key in readers:
                read = readers[key]
                values[key] = value if read is None or value is None else read(value)
        return cls(**values)


@dataclass(kw_only=True)
class RateLimit(Resource):
    """A stage's rate limit: a token bucket of `burst` items refilled at `per_second` (pipelinectl.rates)."""

    rate: str  # as the operator wrote it, canonical: "50/s", "3000/m", "1/h"
    per_second: float
    burst: int


@dataclass(kw_only=True)
class Stage(Resource):
    """One stage of a pipeline: a worker pool over a bounded queue (or an engine's equivalent)."""

    pipeline: str
    name: str
    state: str = "running"  # StageState
    parallelism: int = 1
    min_parallelism: int = 1
    max_parallelism: int = 64
    in_flight: int = 0
    queue_depth: int = 0
    queue_capacity: int | None = None
    processed: int = 0
    failed: int = 0
    throughput: float = 0.0  # items/s over the last minute
    error_rate: float = 0.0  # failed / (processed + failed) over the last minute, 0..1
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    dlq_size: int = 0
    paused_until: datetime | None = None
    rate_limit: RateLimit | None = None  # None: no limit
    disabled_reason: str | None = None  # why the stage is disabled (state `disabled`)
    bypassed: int = 0  # items passed on unprocessed while disabled, not yet replayed (`replay --skipped`)
    version: int = 0  # bumps on every settings change; sent back as If-Match
    details: dict[str, Any] = field(default_factory=dict)  # driver-specific extras


@dataclass(kw_only=True)
class Pipeline(Resource):
    name: str
    stages: list[Stage] = field(default_factory=list)
    input_offset: int | None = None  # next offset the input log will assign
    dlq_size: int = 0
    sagas_in_flight: int = 0
    sagas_by_status: dict[str, int] = field(default_factory=dict)
    driver: str = "http"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class ReplayRequest(Resource):
    """What to replay: an offset range or a time range (inclusive start, exclusive end)."""

    pipeline: str
    stage: str | None = None  # None: the pipeline's first stage
    from_offset: int | None = None
    to_offset: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    dry_run: bool = False


@dataclass(kw_only=True)
class ReplayJob(Resource):
    id: str
    pipeline: str
    stage: str
    state: str  # ReplayState; "planned" for a dry run
    from_offset: int | None = None
    to_offset: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    total: int = 0
    replayed: int = 0
    skipped: int = 0  # already applied (idempotent by key), not processed twice
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    source: str = "range"  # "range": a range of the input; "skipped": the items the stage bypassed while disabled

    @property
    def done(self) -> int:
        """Items of the range the job is through, replayed or skipped: what its progress counts."""
        return self.replayed + self.skipped


@dataclass(kw_only=True)
class DLQItem(Resource):
    id: str
    pipeline: str
    stage: str
    error_kind: str
    message: str
    attempts: int = 1
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    key: str | None = None
    offset: int | None = None
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def payload_view(data: bytes, limit: int | None = None, content_type: str | None = None) -> tuple[Any, dict[str, Any]]:
    """A message body as a DLQItem shows it: JSON as an object, UTF-8 as text, anything else base64.

    The second value goes into the item's `details`: `payload_size` (bytes), `payload_encoding`
    (json, utf-8 or base64) and `payload_truncated` when only the first `limit` characters are kept.
    """
    info: dict[str, Any] = {"payload_size": len(data)}
    try:
        text = data.decode("utf-8")
        info["payload_encoding"] = "utf-8"
    except UnicodeDecodeError:
        import base64

        text = base64.b64encode(data).decode()
        info["payload_encoding"] = "base64"
    if limit is not None and len(text) > limit:
        info["payload_truncated"] = True
        return text[:limit], info
    if info["payload_encoding"] == "utf-8" and (text.startswith(("{", "[")) or content_type == "application/json"):
        import json

        try:
            parsed = json.loads(text)
        except ValueError:
            return text, info
        info["payload_encoding"] = "json"
        return parsed, info
    return text, info


@dataclass(kw_only=True)
class DLQFilter(Resource):
    """Which DLQ items: explicit ids, or every item matching the filters."""

    pipeline: str
    ids: list[str] = field(default_factory=list)
    all: bool = False
    stage: str | None = None
    error_kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def is_empty(self) -> bool:
        return not (self.ids or self.all or self.stage or self.error_kind or self.since or self.until)


@dataclass(kw_only=True)
class BulkResult(Resource):
    """Outcome of a bulk DLQ action. With dry_run nothing changed: `matched` is what would."""

    action: str  # "redrive" | "purge"
    pipeline: str
    dry_run: bool = False
    matched: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id -> reason


@dataclass(kw_only=True)
class SagaStep(Resource):
    name: str
    status: str = "pending"  # StepStatus
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    compensation: str | None = None  # status of its compensation, if one ran
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class SagaEvent(Resource):
    seq: int
    time: datetime
    type: str
    step: str | None = None
    message: str | None = None


@dataclass(kw_only=True)
class Saga(Resource):
    id: str
    pipeline: str
    definition: str
    status: str  # SagaStatus
    current_step: str | None = None
    completed_steps: list[str] | None = field(default_factory=list)  # None: this view cannot tell
    last_error: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    steps: list[SagaStep] = field(default_factory=list)  # empty in list views
    events: list[SagaEvent] = field(default_factory=list)  # empty in list views
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class SagaFilter(Resource):
    pipeline: str
    status: str | None = None
    definition: str | None = None
    query: str | None = None  # engine-native query (e.g. Temporal visibility); drivers may refuse it


@dataclass(kw_only=True)
class BatchJob(Resource):
    """A many-targets operation an engine runs server-side (e.g. a Temporal batch)."""

    id: str
    action: str
    query: str
    state: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(kw_only=True)
class AuditEntry(Resource):
    """One state change in a plane's audit trail: who (a token's name, or `system`) did what to what."""

    id: str
    time: datetime
    actor: str
    verb: str
    target: str
    pipeline: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    result: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    plan: str | None = None  # the hash of the plan `pipelinectl apply` performed
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries to list; every given condition holds."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    target: str | None = None
    verb: str | None = None
    pipeline: str | None = None
    newest_first: bool = False  # the dashboard's order; the CLI lists oldest first


@dataclass(kw_only=True)
class ResourceList(Resource):
    """The list envelope of machine output: `{"kind": "StageList", "items": [...]}`."""

    items: list[Any] = field(default_factory=list)
    next_page_token: str | None = None
    total: int | None = None
