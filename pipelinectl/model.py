"""The domain, as every driver returns it and every renderer shows it. No I/O.

Each resource is a keyword-only dataclass with a `kind`. `to_dict()` gives the
stable machine-readable shape documented in docs/output.md (RFC 3339 UTC
times); `from_dict()` reads the same shape back, which is what the HTTP driver
does with the control-plane API's answers. The reference server uses these
same classes for its responses, so the API and `-o json` cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

T = TypeVar("T", bound="Resource")

StageState = Literal["running", "paused", "draining"]
ErrorKind = Literal["validation", "transient", "persistent", "fatal"]
ERROR_KINDS: tuple[str, ...] = ("validation", "transient", "persistent", "fatal")
STAGE_STATES: tuple[str, ...] = ("running", "paused", "draining")
ReplayState = Literal["planned", "pending", "running", "completed", "cancelled", "failed"]
REPLAY_STATES: tuple[str, ...] = ("planned", "pending", "running", "completed", "cancelled", "failed")
SagaStatus = Literal["running", "compensating", "completed", "compensated", "failed", "stuck"]
SAGA_STATUSES: tuple[str, ...] = ("running", "compensating", "completed", "compensated", "failed", "stuck")
StepStatus = Literal[
    "pending", "running", "completed", "failed", "timed_out",
    "compensating", "compensated", "compensation_failed", "skipped", "cancelled",
]


def format_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, the only time format machine output uses."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _dump(value: Any) -> Any:
    if isinstance(value, Resource):
        return value.to_dict()
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _load(tp: Any, value: Any) -> Any:
    """Convert a JSON value to the annotated type (nested resources, times)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _load(args[0], value) if len(args) == 1 else value
    if origin is list:
        (inner,) = typing.get_args(tp)
        return [_load(inner, v) for v in value]
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {k: _load(inner, v) for k, v in value.items()}
    if tp is datetime:
        return parse_time(value)
    if isinstance(tp, type) and issubclass(tp, Resource):
        return tp.from_dict(value)
    return value


@dataclass(kw_only=True)
class Resource:
    """Common behaviour: a `kind`, a stable dict shape, and reading it back."""

    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "kind"}
        return cls(**{k: _load(hints[k], v) for k, v in data.items() if k in known})


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
class ResourceList(Resource):
    """The list envelope of machine output: `{"kind": "StageList", "items": [...]}`."""

    items: list[Any] = field(default_factory=list)
    next_page_token: str | None = None
    total: int | None = None
