"""The plane's audit trail: every state change, who made it, committed with the change itself.

The one call a verb makes, inside the transaction that makes its change:

    with store.tx():
        ...the change...
        audit.record(store, "pause", pipeline="orders", target="charge", arguments={...}, reason=..., result="paused")

The entry joins that transaction, so the change and its entry commit together or not at all (a
SIGKILL cannot leave one without the other). Who acted comes from the request being served: the
API sets it with `acting(...)` around each mutation (the token's name, request id, Idempotency-Key,
and the `Pipelinectl-Plan` hash that `pipelinectl apply` sends). The plane's own transitions (an item
dead-lettered when its retries run out, a saga adopted after a crash) pass `system=True`: tasks
started while serving a request inherit its context, and must not be attributed to its caller.
Outside any request (an embedding program calling the runtime) the actor is `system` too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pipelinectl import model as m

from .rows import decode_token, encode_token, to_dt, to_ts
from .store import AuditQuery, Store, dumps, loads, now

SYSTEM = "system"


@dataclass(frozen=True)
class Caller:
    """Who asks for the change being served, as the audit trail records it (never the token itself)."""

    actor: str
    request_id: str | None = None
    idempotency_key: str | None = None
    plan: str | None = None


_CALLER: ContextVar[Caller | None] = ContextVar("pipelinectl_audit_caller", default=None)


@contextmanager
def acting(caller: Caller) -> Iterator[None]:
    """Attribute what `record` writes within this block to `caller`."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def record(store: Store, verb: str, *, target: str, pipeline: str | None = None,
           arguments: dict[str, Any] | None = None, reason: str | None = None, result: str | None = None,
           system: bool = False) -> int:
    """Append one entry to the trail, in the caller's open transaction; returns its sequence number.

    `verb` is the operator's verb as the CLI names it (`pause`, `saga cancel`, `dlq purge`), or the
    system transition (`dead-letter`, `saga recover`); `target` a stage, saga or job name.
    """
    caller = None if system else _CALLER.get()
    return store.add_audit({
        "time": now(), "actor": caller.actor if caller else SYSTEM, "verb": verb, "pipeline": pipeline,
        "target": target, "arguments": dumps(arguments or {}), "reason": reason, "result": result,
        "request_id": caller.request_id if caller else None,
        "idempotency_key": caller.idempotency_key if caller else None,
        "plan": caller.plan if caller else None,
    })


def listing(store: Store, f: m.AuditFilter, page_size: int,
            page_token: str | None) -> tuple[list[m.AuditEntry], str | None, int]:
    """One page of the trail, oldest first (or newest first: `f.newest_first`), as the DLQ list pages
    (a token is the last sequence number)."""
    q = AuditQuery(since=to_ts(f.since), until=to_ts(f.until), actor=f.actor or None, verb=f.verb or None,
                   target=f.target or None, pipeline=f.pipeline or None)
    total = store.audit_total(q)
    rows = store.audit_rows(q, after=decode_token(page_token), limit=page_size + 1, newest_first=f.newest_first)
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = encode_token(rows[-1]["seq"]) if more and rows else None
    return [entry(r) for r in rows], token, total


def entry(r: Any) -> m.AuditEntry:
    return m.AuditEntry(id=f"audit-{r['seq']}", time=to_dt(r["time"]), actor=r["actor"], verb=r["verb"],
                        pipeline=r["pipeline"], target=r["target"], arguments=loads(r["arguments"]) or {},
                        reason=r["reason"], result=r["result"], request_id=r["request_id"],
                        idempotency_key=r["idempotency_key"], plan=r["plan"])


def current_actor() -> str:
    """The name the entry being written gets as its actor (for a saga's own timeline)."""
    caller = _CALLER.get()
    return caller.actor if caller else SYSTEM
