"""The public API for plugins: the one module a driver or command group imports from pipelinectl.

Everything a plugin needs is named here; everything else in pipelinectl may change
without notice. docs/plugins.md describes each part; a test checks that the
first-party plugins import nothing else.

- Drivers: `ControlPlane` (the verbs), `UnsupportedVerbs` (a base whose every verb says
  "not supported", exit 7), `Capability`, `Connection` (the resolved context). A driver
  class declares `driver` (its name), `capabilities`, and `url_schemes` (the URL schemes
  a context of this driver may use: `config set-context` checks them).
- The domain: `Pipeline`, `Stage`, `DLQItem`, `Saga`... (`-o json` is the same whichever
  driver built them) and the error kinds with their exit codes.
- Reaching the engine: `retry`/`aretry` (the retry policy every driver shares),
  `HttpApi` (a JSON-over-HTTP client with TLS, auth, tracing and error mapping),
  `connect_timeout`, `ssl_context`, `register_secret` (a credential the driver read
  itself is then redacted everywhere), `display_url` (a URL without its credentials).
- Command groups: `current_session()` and `plane_for(driver)` (the session of this run
  and its driver), `mutate` (call + audit line), `dry_run_note`, `say`, the shared
  options (`yes_option`, `dry_run_option`, `pipeline_option`), `parse_duration`.
  These load the command-line layer only when first used, so a driver module that
  imports this one stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AbortedError,
    AlreadyExistsError,
    ConditionNotMetError,
    ConflictError,
    DeadlineExceededError,
    ExitCode,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    PipelinectlError,
    StaleVersionError,
    ThrottledError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UnsupportedError,
    UsageError,
    error_class_for_status,
    from_canonical,
)
from .model import (
    ERROR_KINDS,
    SAGA_STATUSES,
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
    Resource,
    Saga,
    SagaEvent,
    SagaFilter,
    SagaStep,
    Stage,
    format_time,
    parse_time,
    payload_view,
)
from .plane import Capability, Connection, ControlPlane, DriverFactory, UnsupportedVerbs
from .rates import default_burst, rate_limit
from .redact import display_url, redact, register_secret
from .transport import UNREACHABLE_WITHIN, Backoff, HttpApi, aretry, connect_timeout, retry, ssl_context

if TYPE_CHECKING:
    from .cli.session import Session

# Names served from the command-line layer, imported on first use (PEP 562).
_LAZY: dict[str, str] = {
    "mutate": "pipelinectl.cli.common:mutate",
    "dry_run_note": "pipelinectl.cli.common:dry_run_note",
    "say": "pipelinectl.cli.common:say",
    "plural": "pipelinectl.cli.common:plural",
    "progress": "pipelinectl.cli.common:progress",
    "yes_option": "pipelinectl.cli.common:yes_option",
    "dry_run_option": "pipelinectl.cli.common:dry_run_option",
    "pipeline_option": "pipelinectl.cli.common:pipeline_option",
    "parse_duration": "pipelinectl.timeparse:parse_duration",
    "Renderer": "pipelinectl.output:Renderer",
    "PluginEntry": "pipelinectl.plugins:PluginEntry",
    "register": "pipelinectl.plugins:register",
    "unregister": "pipelinectl.plugins:unregister",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'pipelinectl.plugin_api' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def current_session() -> Session:
    """The Session of this invocation: options, config, context, renderer, confirm, audit."""
    from .cli.session import current

    return current()


def plane_for(driver: str) -> tuple[Session, Any]:
    """The session and its driver for a plugin's command group, refusing a context of another driver."""
    session = current_session()
    plane = session.plane
    if getattr(plane, "driver", None) != driver:
        raise UsageError(f"context '{session.context_name}' uses driver '{plane.driver}', not {driver}",
                         hint=f"pass --context NAME of a {driver} context")
    return session, plane


__all__ = [
    "ERROR_KINDS", "SAGA_STATUSES", "UNREACHABLE_WITHIN", "AbortedError", "AlreadyExistsError", "AuditEntry",
    "AuditFilter", "Backoff", "BatchJob", "BulkResult", "Capability",
    "ConditionNotMetError", "ConflictError", "Connection", "ControlPlane", "DLQFilter", "DLQItem",
    "DeadlineExceededError", "DriverFactory", "ExitCode", "HttpApi", "InternalError", "NotFoundError",
    "PermissionDeniedError", "Pipeline", "PipelinectlError", "RateLimit", "ReplayJob", "ReplayRequest", "Resource", "Saga",
    "SagaEvent", "SagaFilter", "SagaStep", "Stage", "StaleVersionError", "ThrottledError",
    "UnauthenticatedError", "UnavailableError", "UnreachableError", "UnsupportedError", "UnsupportedVerbs",
    "UsageError", "aretry", "connect_timeout", "current_session", "default_burst", "display_url",
    "error_class_for_status", "format_time", "from_canonical", "parse_time", "payload_view", "plane_for",
    "rate_limit", "redact", "register_secret", "retry", "ssl_context",
    *_LAZY,
]
