"""The ControlPlane protocol: the verbs every driver implements, and what it can do.

A driver is built from a `Connection` (the resolved context) by a factory that
a plugin registers. Commands call these verbs and nothing else; a verb outside
`capabilities` raises `UnsupportedError.verb(driver, verb)` (exit code 7).
Mutating verbs take `dry_run` (ask the plane, change nothing) and, where a
lost update is possible, `expected_version` (If-Match).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .model import (
        AuditEntry,
        AuditFilter,
        BatchJob,
        BulkResult,
        DLQFilter,
        DLQItem,
        Pipeline,
        RateLimit,
        ReplayJob,
        ReplayRequest,
        Saga,
        SagaFilter,
        Stage,
    )


class Capability(StrEnum):
    """One verb (or verb option) a driver may support; shown by `plugin list`."""

    STATUS = "status"
    PAUSE = "pause"
    PAUSE_UNTIL = "pause-until"
    RESUME = "resume"
    DRAIN = "drain"
    SCALE = "scale"
    LIMIT = "limit"
    DISABLE = "disable"  # disable and enable
    REPLAY = "replay"
    REPLAY_BY_TIME = "replay-by-time"
    REPLAY_JOBS = "replay-jobs"
    REPLAY_SKIPPED = "replay-skipped"
    DLQ_LIST = "dlq-list"
    DLQ_SHOW = "dlq-show"
    DLQ_REDRIVE = "dlq-redrive"
    DLQ_PURGE = "dlq-purge"
    SAGA_LIST = "saga-list"
    SAGA_SHOW = "saga-show"
    SAGA_FORCE_FAIL = "saga-force-fail"
    SAGA_TERMINATE = "saga-terminate"
    SAGA_RETRY = "saga-retry"
    SAGA_FORCE_COMPLETE = "saga-force-complete"
    SAGA_CANCEL = "saga-cancel"
    SAGA_ADVANCE = "saga-advance"
    SAGA_QUERY = "saga-query"
    SAGA_BATCH = "saga-batch"
    AUDIT = "audit"


@dataclass
class Connection:
    """A context resolved for one run: where the plane is and how to reach it.

    `token` is a callable so a credential is read (env, file, exec) only when a
    request needs it, and never stored on an object that might be printed.
    """

    context: str
    driver: str
    url: str
    pipeline: str | None = None
    namespace: str | None = None
    token: Callable[[], str | None] = field(default=lambda: None, repr=False)
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)  # driver-specific, from the context
    timeout: float = 30.0  # overall deadline for one verb, retries included
    trace: Callable[[str], None] | None = None  # -v: one line per request/response, secrets redacted


@runtime_checkable
class ControlPlane(Protocol):
    """What a command can ask of a control plane. Pipelines and stages are named."""

    driver: str
    capabilities: frozenset[Capability]
    url_schemes: tuple[str, ...]  # the schemes a context's url may use (`config set-context` checks)

    # -- status -----------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]: ...
    def get_stage(self, pipeline: str, stage: str) -> Stage: ...

    # -- stage control ----------------------------------------------------
    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None,
              dry_run: bool = False, expected_version: int | None = None) -> Stage: ...
    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage: ...
    def drain(self, pipeline: str, stage: str, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage: ...
    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage: ...
    def limit(self, pipeline: str, stage: str, rate: RateLimit | None, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        """Set (None: clear) the stage's rate limit, live."""
        ...
    def disable(self, pipeline: str, stage: str, reason: str, *, dry_run: bool = False,
                expected_version: int | None = None) -> Stage:
        """Bypass the stage: items flow on unprocessed, each recorded for `replay_skipped`."""
        ...
    def enable(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage: ...

    # -- replay -----------------------------------------------------------
    def replay(self, request: ReplayRequest) -> ReplayJob: ...
    def replay_list(self, pipeline: str) -> list[ReplayJob]: ...
    def replay_show(self, pipeline: str, job_id: str) -> ReplayJob: ...
    def replay_cancel(self, pipeline: str, job_id: str) -> ReplayJob: ...
    def replay_skipped(self, pipeline: str, stage: str, *, dry_run: bool = False) -> ReplayJob:
        """Process, once, exactly the items `stage` passed on unprocessed while it was disabled."""
        ...

    # -- dead letters -----------------------------------------------------
    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        """Yield matching items page by page; never holds the whole DLQ."""
        ...
    def dlq_count(self, selection: DLQFilter) -> int: ...
    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem: ...
    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """Put items back into their stage; each leaves the DLQ only once accepted."""
        ...
    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult: ...

    # -- sagas ------------------------------------------------------------
    def saga_list(self, selection: SagaFilter, *, page_size: int = 200) -> Iterator[Saga]: ...
    def saga_show(self, pipeline: str, saga_id: str) -> Saga: ...
    def saga_force_fail(self, pipeline: str, saga_id: str, reason: str, *,
                        terminate: bool = False, dry_run: bool = False) -> Saga: ...
    def saga_retry(self, pipeline: str, saga_id: str, reason: str | None = None, *,
                   dry_run: bool = False, options: dict[str, Any] | None = None) -> Saga: ...
    def saga_force_complete(self, pipeline: str, saga_id: str, reason: str, *,
                            dry_run: bool = False) -> Saga: ...
    def saga_cancel(self, pipeline: str, saga_id: str, reason: str, *, dry_run: bool = False) -> Saga:
        """Graceful: no further forward steps; the completed ones are compensated in reverse; ends cancelled."""
        ...
    def saga_advance(self, pipeline: str, saga_id: str, step: str, reason: str, *,
                     result: Any = None, dry_run: bool = False) -> Saga:
        """An operator did `step` (the current one) by hand: record it done with `result`; the saga goes on."""
        ...
    def saga_batch(self, action: str, selection: SagaFilter, reason: str, *,
                   dry_run: bool = False) -> BatchJob: ...
    def saga_batch_show(self, pipeline: str, job_id: str) -> BatchJob: ...

    # -- audit trail ------------------------------------------------------
    def audit_list(self, selection: AuditFilter, *, page_size: int = 500) -> Iterator[AuditEntry]:
        """The plane's own record of state changes (who did what), oldest first (newest first when
        `selection.newest_first`), page by page."""
        ...

    def close(self) -> None: ...


# The command an operator runs for each ControlPlane method: what an "unsupported" error names.
VERB_NAMES: dict[str, str] = {
    "status": "status",
    "get_stage": "status",
    "pause": "pause",
    "resume": "resume",
    "drain": "drain",
    "scale": "scale",
    "limit": "limit",
    "disable": "disable",
    "enable": "enable",
    "replay": "replay",
    "replay_skipped": "replay --skipped",
    "replay_list": "replay list",
    "replay_show": "replay show",
    "replay_cancel": "replay cancel",
    "dlq_list": "dlq list",
    "dlq_count": "dlq list",
    "dlq_show": "dlq inspect",
    "dlq_redrive": "dlq redrive",
    "dlq_purge": "dlq purge",
    "saga_list": "saga list",
    "saga_show": "saga inspect",
    "saga_force_fail": "saga force-fail",
    "saga_retry": "saga retry",
    "saga_force_complete": "saga force-complete",
    "saga_cancel": "saga cancel",
    "saga_advance": "saga advance",
    "audit_list": "audit",
    "saga_batch_show": "saga batch",
    "saga_batch": "saga {action} --query",
}


class UnsupportedVerbs:
    """Mixin: every verb raises 'unsupported' (named as in VERB_NAMES); a driver overrides what it can do."""

    driver: str = "?"
    capabilities: frozenset[Capability] = frozenset()
    url_schemes: tuple[str, ...] = ()  # empty: any scheme

    def _unsupported(self, method: str, **names: str) -> Any:
        from .errors import UnsupportedError

        raise UnsupportedError.verb(self.driver, VERB_NAMES[method].format(**names))

    def status(self, pipeline=None):  # type: ignore[no-untyped-def]
        return self._unsupported("status")

    def get_stage(self, pipeline, stage):  # type: ignore[no-untyped-def]
        return self._unsupported("get_stage")

    def pause(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("pause")

    def resume(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("resume")

    def drain(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("drain")

    def scale(self, pipeline, stage, parallelism, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("scale")

    def limit(self, pipeline, stage, rate, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("limit")

    def disable(self, pipeline, stage, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("disable")

    def enable(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("enable")

    def replay(self, request):  # type: ignore[no-untyped-def]
        return self._unsupported("replay")

    def replay_list(self, pipeline):  # type: ignore[no-untyped-def]
        return self._unsupported("replay_list")

    def replay_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._unsupported("replay_show")

    def replay_cancel(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._unsupported("replay_cancel")

    def replay_skipped(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("replay_skipped")

    def dlq_list(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("dlq_list")

    def dlq_count(self, selection):  # type: ignore[no-untyped-def]
        return self._unsupported("dlq_count")

    def dlq_show(self, pipeline, item_id):  # type: ignore[no-untyped-def]
        return self._unsupported("dlq_show")

    def dlq_redrive(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("dlq_redrive")

    def dlq_purge(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("dlq_purge")

    def saga_list(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_list")

    def saga_show(self, pipeline, saga_id):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_show")

    def saga_force_fail(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_force_fail")

    def saga_retry(self, pipeline, saga_id, reason=None, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_retry")

    def saga_force_complete(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_force_complete")

    def saga_cancel(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_cancel")

    def saga_advance(self, pipeline, saga_id, step, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_advance")

    def saga_batch(self, action, selection, reason, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_batch", action=action)

    def saga_batch_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._unsupported("saga_batch_show")

    def audit_list(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._unsupported("audit_list")

    def close(self) -> None:
        pass


DriverFactory = Callable[[Connection], ControlPlane]


# -- the plan being applied -------------------------------------------------------------------------------
# `pipelinectl apply` runs a verb inside `applying_plan(hash)`. A driver whose engine takes request
# metadata sends the hash with each write (the http driver: the `Pipelinectl-Plan` header, and
# Idempotency-Keys derived from it, so applying one plan twice cannot act twice); others ignore it.
_PLAN: ContextVar[str | None] = ContextVar("pipelinectl_plan", default=None)


def current_plan() -> str | None:
    """The hash (`sha256:...`) of the plan being applied, or None outside `pipelinectl apply`."""
    return _PLAN.get()


@contextmanager
def applying_plan(plan_hash: str) -> Iterator[None]:
    token = _PLAN.set(plan_hash)
    try:
        yield
    finally:
        _PLAN.reset(token)
