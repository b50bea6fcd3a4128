"""`pipelinectl audit`: who changed what, from the plane's own trail (or, with --local, this machine's log).

The plane's trail (GET /v1/audit on the reference plane; workflow history on Temporal) records
every state change with the token's name or `system`; the local log (pipelinectl/audit.py) records
what this client sent, with the OS user. Both print as AuditEntry, listed and streamed as `dlq list`
lists (common.listing_plan / emit_listing), oldest first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli.common import TIME_FORMS, current, emit_listing, listing_plan, parse_range

if TYPE_CHECKING:
    from pipelinectl.model import AuditEntry, AuditFilter

TABLE_DEFAULT_LIMIT = 1000


def audit(
    since: str | None = typer.Option(None, "--since", metavar="TIME", help=f"At or after TIME: {TIME_FORMS}."),
    until: str | None = typer.Option(None, "--until", metavar="TIME", help=f"Before TIME: {TIME_FORMS}."),
    actor: str | None = typer.Option(None, "--actor", "-a", metavar="NAME",
                                     help="Only changes by this actor: a token's name, or system."),
    target: str | None = typer.Option(None, "--target", "-t", metavar="STAGE|SAGA",
                                      help="Only changes to this stage, saga or job."),
    verb: str | None = typer.Option(None, "--verb", metavar="VERB",
                                    help="Only this verb, e.g. pause, 'saga cancel', dead-letter."),
    pipeline: str | None = typer.Option(None, "--pipeline", "-p", metavar="NAME",
                                        help="Only changes in this pipeline (default: all of the plane's)."),
    local: bool = typer.Option(False, "--local",
                               help="Read this machine's own audit log (what this client sent) instead."),
    limit: int | None = typer.Option(None, "--limit", "-l", metavar="N", min=1,
                                     help=f"At most N entries (tables default to {TABLE_DEFAULT_LIMIT})."),
) -> None:
    """Show the audit trail: every state change, who made it (token name or system), oldest first.

    The plane records each change with the change itself: stage verbs, replays, DLQ
    redrives and purges, saga admin, and its own transitions (an item dead-lettered when
    its retries ran out, a saga recovered after a crash), with the reason, result,
    request id, Idempotency-Key and the hash of an applied plan. Viewers may read it.
    -o jsonl streams page by page; --limit stops early. A driver whose engine keeps no
    such trail says so (exit 7); --local still reads this machine's log.

    Examples:

      pipelinectl audit --since -2h

      pipelinectl audit --local --since -1d
    """
    from pipelinectl.model import AuditFilter

    session = current()
    start, end = parse_range(since, until, "--since", "--until")
    if target is not None:  # stage/charge or saga/ID as -o name prints them, or the bare name
        kind, slash, name = target.strip().partition("/")
        target = name if slash and kind.lower() in ("stage", "saga", "replayjob") and name else target.strip()
    selection = AuditFilter(since=start, until=end, actor=actor, target=target, verb=verb, pipeline=pipeline)
    cap, page_size = listing_plan(session, limit, TABLE_DEFAULT_LIMIT, 500)
    if local:
        entries: Iterator[AuditEntry] = local_entries(selection)
    else:
        entries = session.plane.audit_list(selection, page_size=page_size)
    emit_listing(session, entries, cap=cap, limit=limit, kind="AuditEntry", noun="entries")


def local_entries(selection: AuditFilter) -> Iterator[AuditEntry]:
    """This machine's audit log (pipelinectl.audit) as AuditEntry, filtered as the plane filters."""
    import json

    from pipelinectl.audit import audit_path
    from pipelinectl.model import AuditEntry, parse_time

    try:
        handle = audit_path().open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                raw: Any = json.loads(line)
                when = parse_time(raw["time"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: the log is append-only, not ours to fail on
            if not isinstance(raw, dict):
                continue
            pipeline, _, name = str(raw.get("target") or "").rpartition("/")
            entry = AuditEntry(
                id=f"local-{number}", time=when, actor=str(raw.get("user") or "?"), verb=str(raw.get("verb") or "?"),
                target=name, pipeline=pipeline or None, arguments=raw.get("arguments") or {},
                reason=(raw.get("arguments") or {}).get("reason") if isinstance(raw.get("arguments"), dict) else None,
                result=raw.get("result"), request_id=raw.get("request_id"), plan=raw.get("plan"),
                details={"context": raw.get("context")})
            if _matches(entry, selection):
                yield entry


def _matches(e: AuditEntry, f: AuditFilter) -> bool:
    return ((f.since is None or e.time >= f.since) and (f.until is None or e.time < f.until)
            and f.actor in (None, e.actor) and f.verb in (None, e.verb) and f.target in (None, e.target)
            and f.pipeline in (None, e.pipeline))
