"""Sagas: list, inspect (alias show), force-fail, retry, force-complete, cancel, advance.

A saga is read first (an unknown ID is refused before anything is sent), the
plane is asked for a dry run (a saga in the wrong status is refused before the
prompt, not after), then force-fail and force-complete confirm, naming the
saga, its status and the context; so do cancel and advance. `--query` acts on
many sagas at once through the engine's batch operation (advance: one saga after
another, each at the named step); it confirms too. `force_fail_saga`,
`retry_saga`, `force_complete_saga`, `cancel_saga` and `advance_saga` are the
one-saga flows without the printing; the dashboard (pipelinectl.ui) calls them
too, and `apply` through `plan_saga`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli import plans, targets
from pipelinectl.cli.commands import CONTEXT_SETTINGS
from pipelinectl.cli.common import (
    MAX_PAGE,
    context_label,
    current,
    dry_run_note,
    dry_run_option,
    emit_listing,
    listing_plan,
    mutate,
    pipeline_option,
    plural,
    progress,
    read_before,
    say,
    watch_deadline,
    yes_option,
)
from pipelinectl.errors import ConflictError, UsageError

if TYPE_CHECKING:
    from pipelinectl.cli.session import Session
    from pipelinectl.model import BatchJob, Saga

app = typer.Typer(
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
)


@app.callback()
def _group() -> None:
    """List and inspect sagas; force-fail, retry, force-complete, cancel or advance one (or many with --query).

    Examples:

      pipelinectl saga list --status stuck

      pipelinectl saga inspect saga-order-000042
    """


TABLE_DEFAULT_LIMIT = 1000
_QUERY_HELP = "Select sagas with the engine's own query (e.g. a Temporal visibility query)."


# -- list ----------------------------------------------------------------------------------------------
@app.command("list")
def list_(
    pipeline: str | None = pipeline_option(),
    status: str | None = typer.Option(None, "--status", metavar="STATUS",
                                      help="running, stuck, compensating, completed, compensated or failed."),
    definition: str | None = typer.Option(None, "--definition", "-d", metavar="NAME",
                                          help="Only sagas of this definition."),
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help=_QUERY_HELP),
    limit: int | None = typer.Option(None, "--limit", "-l", metavar="N", min=1,
                                     help=f"At most N sagas (tables default to {TABLE_DEFAULT_LIMIT})."),
    watch: bool = typer.Option(False, "--watch", "-w",
                               help="Keep watching (through outages): live on a terminal, a line per change "
                                    "piped; Ctrl-C ends it (exit 130)."),
    interval: float = typer.Option(2.0, "--interval", metavar="SECONDS", min=0.1,
                                   help="How often --watch looks again."),
) -> None:
    """List sagas, without their steps and events (see 'saga inspect').

    -o jsonl streams page by page; --limit stops early.

    Examples:

      pipelinectl saga list --status stuck --definition order

      pipelinectl saga list -o jsonl --limit 100
    """
    from pipelinectl.model import SAGA_STATUSES, SagaFilter

    session = current()
    if watch:
        watch_deadline(session, interval)
    if status is not None and status not in SAGA_STATUSES:
        raise UsageError(f"invalid value for --status: '{status}'", hint=f"choose from {', '.join(SAGA_STATUSES)}")
    target = session.pipeline(pipeline)
    selection = SagaFilter(pipeline=target, status=status, definition=definition, query=query)
    if watch:
        from pipelinectl.watch import watch as run_watch

        def fetch() -> list:
            return list(itertools.islice(session.plane.saga_list(selection, page_size=200),
                                         limit or TABLE_DEFAULT_LIMIT))

        raise typer.Exit(run_watch(fetch, output=session.options.output, interval=interval,
                                   redact=session.redact, color=session.color))
    cap, page_size = listing_plan(session, limit, TABLE_DEFAULT_LIMIT, 200)
    emit_listing(session, session.plane.saga_list(selection, page_size=page_size), cap=cap, limit=limit,
                 kind="Saga", noun="sagas")


# -- inspect -------------------------------------------------------------------------------------------
def _inspect(saga_id: str, pipeline: str | None) -> None:
    session = current()
    saga_id = targets.target(saga_id, "saga")
    saga = session.plane.saga_show(session.pipeline(pipeline), saga_id)
    if session.options.output not in ("table", "wide"):
        session.emit(saga)
        return
    r = session.renderer
    r.key_values([
        ("ID", saga.id), ("Pipeline", saga.pipeline), ("Definition", saga.definition), ("Status", saga.status),
        ("Current step", saga.current_step), ("Completed steps", ", ".join(saga.completed_steps or [])),
        ("Last error", saga.last_error), ("Started", saga.started_at), ("Updated", saga.updated_at),
        ("Closed", saga.closed_at),
    ], title=f"Saga {saga.id}")
    details = dict(saga.details or {})
    pending = details.pop("pending_activities", None)
    points = details.pop("reset_points", None)
    if pending:
        r.stream.write("\n")
        r.plain_table(["ACTIVITY", "TYPE", "STATE", "ATTEMPT", "LAST FAILURE", "NEXT RETRY"],
                      [_pending_row(p) for p in pending if isinstance(p, dict)], title="Pending activities")
    r.stream.write("\n")
    r.table(saga.steps, "SagaStep", title="Steps")
    r.stream.write("\n")
    r.table(saga.events, "SagaEvent", title="Events")
    if points and isinstance(points, dict):
        r.stream.write("\n")
        r.plain_table(["RESET POINT", "EVENT ID"], [[k.replace("_", " "), v] for k, v in points.items()],
                      title="Reset points")
        # Suggest the least drastic point: just before the failure, else the latest one.
        key = next((k for k in ("before_failed_step", "last_workflow_task") if k in points), next(iter(points)))
        r.stream.write(f"(retry from one: pipelinectl saga retry {saga.id} --event-id {points[key]})\n")
    if details:
        r.stream.write("\nDetails:\n")
        for key, value in sorted(details.items()):
            r.stream.write(f"  {key}: {_compact(value)}\n")


def _pending_row(p: dict[str, Any]) -> list[Any]:
    """One pending activity (Temporal's PendingActivityInfo as the driver maps it) as a table row."""
    from pipelinectl.output import clip_text

    state = p.get("state") or "-"
    if p.get("paused") and state != "paused":
        state = f"{state} (paused)"
    attempt = p.get("attempt")
    return [p.get("activity_id") or "-", p.get("type") or "-", state, "-" if attempt is None else attempt,
            clip_text(p.get("last_failure"), 50), _when(p.get("next_retry"))]


def _when(value: Any) -> str:
    """An RFC 3339 time as 'in 12s (02:53:10Z)' or '3s ago (...)'; anything else as it is."""
    from datetime import UTC, datetime

    if value in (None, ""):
        return "-"
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = int((at - datetime.now(UTC)).total_seconds())
    span = abs(seconds)
    text = f"{span // 3600}h{span % 3600 // 60}m" if span >= 3600 else f"{span // 60}m{span % 60}s" if span >= 60 \
        else f"{span}s"
    clock = at.astimezone(UTC).strftime("%H:%M:%SZ")
    return f"in {text} ({clock})" if seconds >= 0 else f"{text} ago ({clock})"


def _compact(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


@app.command("inspect")
def inspect(
    saga_id: str = typer.Argument(..., metavar="ID", help="The saga's ID (from 'saga list')."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Show one saga: its state, the step timeline and its events (alias: show).

    Tables also show what the engine reports beyond that: pending activities
    (attempt, last failure, next retry), reset points for 'saga retry --event-id', other details.

    Examples:

      pipelinectl saga inspect saga-order-000042

      pipelinectl saga show saga-order-000042 -o json
    """
    _inspect(saga_id, pipeline)


@app.command("show", hidden=True)
def show(
    saga_id: str = typer.Argument(..., metavar="ID", help="The saga's ID (from 'saga list')."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Alias of 'saga inspect'.

    Examples:

      pipelinectl saga show saga-order-000042
    """
    _inspect(saga_id, pipeline)


# -- the mutating verbs ----------------------------------------------------------------------------------
def describe_saga(saga: Saga) -> str:
    """How a confirmation names a saga: its ID, definition, status and step."""
    at = f" at step {saga.current_step}" if saga.current_step else ""
    return f"saga '{saga.id}' ({saga.definition}, {saga.status}{at})"


@dataclass
class SagaChange:
    """What a saga verb did (or, on a dry run, would do): the saga as read before and as the plane answered."""

    verb: str  # "force-fail" | "retry" | "force-complete" | "cancel" | "advance"
    pipeline: str
    before: Saga
    after: Saga  # the plane's plan on a dry run
    dry_run: bool


def _one(session: Session, verb: str, saga_id: str, pipeline: str, arguments: dict[str, Any], *,
         confirm: bool, yes: bool, dry_run: bool, call: Any) -> SagaChange:
    """read -> dry run on the plane -> (stop | confirm) -> act -> audit. Nothing here prints."""
    before = read_before(session, f"saga {verb}", lambda: session.plane.saga_show(pipeline, saga_id))
    planned: Saga = call(True)
    if dry_run:
        return SagaChange(verb=verb, pipeline=pipeline, before=before, after=planned, dry_run=True)
    if confirm:
        session.confirm(f"{verb} {describe_saga(before)} in pipeline '{pipeline}'", yes=yes)
    after = mutate(session, verb=f"saga {verb}", target=f"{pipeline}/{saga_id}", arguments=arguments,
                   call=lambda: call(False), summary=lambda s: s.status)
    return SagaChange(verb=verb, pipeline=pipeline, before=before, after=after, dry_run=False)


def force_fail_saga(session: Session, saga_id: str, reason: str | None, *, terminate: bool = False,
                    pipeline: str | None = None, dry_run: bool = False, yes: bool = False) -> SagaChange:
    """The flow behind `saga force-fail ID`, for the CLI and the dashboard: a reason is required; confirms."""
    saga_id = targets.target(saga_id, "saga")
    why = _reason(reason, "force-fail")
    target = session.pipeline(pipeline)
    return _one(session, "force-fail", saga_id, target, {"reason": why, "terminate": terminate},
                confirm=True, yes=yes, dry_run=dry_run,
                call=lambda dry: session.plane.saga_force_fail(target, saga_id, why, terminate=terminate,
                                                               dry_run=dry))


def retry_saga(session: Session, saga_id: str, reason: str | None = None, *, event_id: int | None = None,
               pipeline: str | None = None, dry_run: bool = False) -> SagaChange:
    """The flow behind `saga retry ID`, for the CLI and the dashboard: one saga does not confirm."""
    saga_id = targets.target(saga_id, "saga")
    target = session.pipeline(pipeline)
    why = reason.strip() if reason and reason.strip() else None
    options = {"event_id": event_id} if event_id is not None else None
    arguments: dict[str, Any] = {"reason": why}
    if event_id is not None:
        arguments["event_id"] = event_id
    return _one(session, "retry", saga_id, target, arguments, confirm=False, yes=False, dry_run=dry_run,
                call=lambda dry: session.plane.saga_retry(target, saga_id, why, dry_run=dry, options=options))


def force_complete_saga(session: Session, saga_id: str, reason: str | None, *, pipeline: str | None = None,
                        dry_run: bool = False, yes: bool = False) -> SagaChange:
    """The flow behind `saga force-complete ID`: a reason is required; confirms."""
    saga_id = targets.target(saga_id, "saga")
    why = _reason(reason, "force-complete")
    target = session.pipeline(pipeline)
    return _one(session, "force-complete", saga_id, target, {"reason": why}, confirm=True, yes=yes,
                dry_run=dry_run, call=lambda dry: session.plane.saga_force_complete(target, saga_id, why, dry_run=dry))


def cancel_saga(session: Session, saga_id: str, reason: str | None, *, pipeline: str | None = None,
                dry_run: bool = False, yes: bool = False) -> SagaChange:
    """The flow behind `saga cancel ID`: a reason is required; confirms."""
    saga_id = targets.target(saga_id, "saga")
    why = _reason(reason, "cancel")
    target = session.pipeline(pipeline)
    return _one(session, "cancel", saga_id, target, {"reason": why}, confirm=True, yes=yes, dry_run=dry_run,
                call=lambda dry: session.plane.saga_cancel(target, saga_id, why, dry_run=dry))


_NO_RESULT = object()  # `--result` not given (null is a result an operator may mean)


def advance_saga(session: Session, saga_id: str, step: str | None, reason: str | None, *, result: Any = _NO_RESULT,
                 pipeline: str | None = None, dry_run: bool = False, yes: bool = False) -> SagaChange:
    """The flow behind `saga advance ID --step NAME`: step and reason required; confirms."""
    saga_id = targets.target(saga_id, "saga")
    step = _step(step)
    why = _reason(reason, "advance")
    target = session.pipeline(pipeline)
    given = None if result is _NO_RESULT else result
    arguments: dict[str, Any] = {"step": step, "reason": why}
    if result is not _NO_RESULT:
        arguments["result"] = result
    return _one(session, "advance", saga_id, target, arguments, confirm=True, yes=yes, dry_run=dry_run,
                call=lambda dry: session.plane.saga_advance(target, saga_id, step, why, result=given, dry_run=dry))


def _step(step: str | None) -> str:
    if step is None or not step.strip():
        raise UsageError("saga advance needs --step NAME (the saga's current step, done by hand)",
                         hint="see the current step with 'pipelinectl saga inspect ID'")
    return step.strip()


def parse_result(text: str | None) -> Any:
    """--result as JSON, refused in one line when it is not (nothing is read or sent before)."""
    if text is None:
        return _NO_RESULT
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"invalid --result: not JSON ({str(exc).split(':')[0]})",
                         hint='give a JSON value, e.g. --result \'{"payment": "manual-17"}\'') from None


def would_happen(before: Saga, planned: Saga) -> str:
    """What the plane's dry-run answer says would happen (docs/api.md): `details.would`, and the
    status it would leave the saga in; never the current status passed off as the outcome."""
    would = planned.details.get("would")
    now = planned.details.get("status_before") or before.status
    if isinstance(would, str) and would:
        text = f"would {would}"
        return text + (f"; it would be {planned.status} (now {now})" if planned.status != now else f" (now {now})")
    if planned.status != now:
        return f"would leave it {planned.status} (now {now})"
    return f"is accepted by the plane, which did not say what would follow (now {now})"


def _report(session: Session, change: SagaChange) -> None:
    saga_id = change.before.id
    if change.dry_run:
        dry_run_note(session, f"{change.verb} {describe_saga(change.before)} {would_happen(change.before, change.after)}")
    else:
        say(session, f"saga {saga_id}: {change.after.status} (was {change.before.status}; "
                     f"context '{context_label(session)}')")
    if session.options.output != "table":
        session.emit(change.after)


def _run_flow(session: Session, action: str, saga_id: str, pipeline: str | None, arguments: dict[str, Any], *,
              dry_run: bool, yes: bool = False) -> SagaChange:
    """`saga ACTION` on one saga with a plan's arguments: how a plan dry-runs and performs it."""
    reason = arguments.get("reason")
    if action == "force-fail":
        return force_fail_saga(session, saga_id, reason, terminate=bool(arguments.get("terminate")),
                               pipeline=pipeline, dry_run=dry_run, yes=yes)
    if action == "retry":
        return retry_saga(session, saga_id, reason, event_id=arguments.get("event_id"), pipeline=pipeline,
                          dry_run=dry_run)
    if action == "cancel":
        return cancel_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=yes)
    if action == "advance":
        return advance_saga(session, saga_id, arguments.get("step"), reason, pipeline=pipeline, dry_run=dry_run,
                            yes=yes, result=arguments["result"] if "result" in arguments else _NO_RESULT)
    return force_complete_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=yes)


@plans.builder("saga force-fail", "saga retry", "saga force-complete", "saga cancel", "saga advance")
def plan_saga(session: Session, verb: str, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    """A saga verb's plan relies on the saga's status and current step; with --query, on the count matched."""
    action = verb.split(" ", 1)[1]
    if isinstance(arguments.get("reason"), str):
        arguments = {**arguments, "reason": arguments["reason"].strip() or None}
    kept = {k: v for k, v in arguments.items() if v is not None and v is not False and v is not _NO_RESULT}
    if arguments.get("result", _NO_RESULT) is not _NO_RESULT:  # advance's result: any JSON value, null and false too
        kept["result"] = arguments["result"]
    arguments = kept
    if target.get("query") and action == "advance":
        return _plan_advance_many(session, target, arguments)
    if target.get("query"):
        return _plan_batch(session, action, target, arguments)
    change = _run_flow(session, action, target.get("saga") or "", target.get("pipeline"), arguments, dry_run=True)
    before = change.before
    return plans.Draft(
        target={"pipeline": change.pipeline, "saga": before.id},
        arguments=arguments,
        preconditions=[plans.Precondition(f"saga/{before.id}",
                                          {"status": before.status, "current_step": before.current_step})],
        summary=f"{action} {describe_saga(before)} {would_happen(before, change.after)}", result=change.after,
        perform=lambda yes: _report(session, _run_flow(session, action, before.id, change.pipeline, arguments,
                                                       dry_run=False, yes=yes)))


def _plan_batch(session: Session, action: str, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    from pipelinectl.model import SagaFilter

    query, pipeline = target["query"], session.pipeline(target.get("pipeline"))
    batch = "terminate" if action == "force-fail" and arguments.get("terminate") else action
    reason = arguments.get("reason") or ""
    if action != "retry":
        reason = _reason(reason, action)
    planned = session.plane.saga_batch(batch, SagaFilter(pipeline=pipeline, query=query), reason, dry_run=True)
    return plans.Draft(
        target={"pipeline": pipeline, "query": query}, arguments=arguments,
        preconditions=[plans.Precondition(f"pipeline/{pipeline}", {"sagas_matching_query": planned.total})],
        summary=f"{batch} would act on {plural(planned.total, 'saga')} matching {query!r}", result=planned,
        perform=lambda yes: _batch(session, batch, query, reason, pipeline, yes=yes, dry_run=False))


def _at_step(session: Session, pipeline: str, query: str, step: str) -> list[Saga]:
    """The sagas `query` selects that are at `step` now: what `saga advance --query` acts on."""
    from pipelinectl.model import SagaFilter

    found = session.plane.saga_list(SagaFilter(pipeline=pipeline, query=query), page_size=MAX_PAGE)
    return [s for s in found if s.current_step == step]


def _plan_advance_many(session: Session, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    query, pipeline = target["query"], session.pipeline(target.get("pipeline"))
    step, why = _step(arguments.get("step")), _reason(arguments.get("reason"), "advance")
    result = arguments.get("result", _NO_RESULT)
    ids = [s.id for s in _at_step(session, pipeline, query, step)]
    return plans.Draft(
        target={"pipeline": pipeline, "query": query}, arguments=arguments,
        preconditions=[plans.Precondition(f"pipeline/{pipeline}", {"sagas_at_step": ids})],
        summary=f"advance would record step {step} done by hand on {plural(len(ids), 'saga')} matching {query!r}",
        result=None,
        perform=lambda yes: _advance_many(session, query, step, why, result, pipeline, yes=yes, dry_run=False))


def _advance_many(session: Session, query: str, step: str, reason: str, result: Any, pipeline: str, *, yes: bool,
                  dry_run: bool) -> None:
    """`saga advance --query Q --step S`: each matching saga at step S, one after another; confirms once."""
    sagas = _at_step(session, pipeline, query, step)
    what = f"advance step {step} of {plural(len(sagas), 'saga')} matching {query!r} in pipeline '{pipeline}'"
    if dry_run:
        dry_run_note(session, f"{what} would record the step done by hand on each")
        return
    if not sagas:
        say(session, f"no saga matching {query!r} is at step {step}; nothing was changed")
        return
    session.confirm(what, yes=yes)
    failed = 0
    for saga in sagas:
        try:
            _report(session, advance_saga(session, saga.id, step, reason, result=result, pipeline=pipeline,
                                          yes=True))
        except ConflictError as exc:  # it moved on meanwhile: the others still go ahead
            failed += 1
            session.info(f"saga {saga.id}: {exc.message}")
    if failed:
        raise ConflictError(f"{plural(failed, 'saga')} of {len(sagas)} could not be advanced (see above)")


def _batch(session: Session, action: str, query: str, reason: str, pipeline: str, *, yes: bool,
           dry_run: bool) -> None:
    """Many sagas by the engine's query: planned by the plane, confirmed, run as one batch job, followed to its end."""
    from pipelinectl.model import SagaFilter

    selection = SagaFilter(pipeline=pipeline, query=query)
    plan = session.plane.saga_batch(action, selection, reason, dry_run=True)
    if dry_run:
        dry_run_note(session, f"{action} would act on {plural(plan.total, 'saga')} matching {query!r}")
        if session.options.output != "table":
            session.emit(plan)
        return
    session.confirm(f"{action} {plural(plan.total, 'saga')} matching {query!r} in pipeline '{pipeline}'", yes=yes)
    job = mutate(session, verb=f"saga {action}", target=f"{pipeline}/query",
                 arguments={"query": query, "reason": reason, "matched": plan.total},
                 call=lambda: session.plane.saga_batch(action, selection, reason, dry_run=False),
                 summary=lambda j: f"batch {j.id} {j.state}")
    job = _follow_batch(session, pipeline, job)
    say(session, f"batch job {job.id}: {action} {job.state}, {job.completed} done, {job.failed} failed "
                 f"of {job.total} (context '{context_label(session)}')")
    if session.options.output != "table":
        session.emit(job)
    if job.failed:
        raise ConflictError(f"{plural(job.failed, 'saga')} of batch {job.id} could not be changed",
                            hint=f"see 'pipelinectl saga list'; the batch job id is {job.id}")


def _follow_batch(session: Session, pipeline: str, job: BatchJob) -> BatchJob:
    """Poll a running batch within --timeout, with a progress bar on a TTY; Ctrl-C stops watching only."""
    import time

    deadline = time.monotonic() + session.options.timeout
    with progress(session, f"batch {job.id}", job.total or None) as bar:
        while job.state in ("running", "pending") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = session.plane.saga_batch_show(pipeline, job.id)
            bar.update(completed=job.completed + job.failed, total=job.total or None)
    if job.state in ("running", "pending"):
        session.info(f"batch job {job.id} still {job.state} after {session.options.timeout:g}s; it continues")
    return job


def _target(saga_id: str | None, query: str | None, verb: str) -> None:
    if saga_id and query:
        raise UsageError(f"give a saga ID or --query, not both (saga {verb} ID | --query Q)")
    if not saga_id and not query:
        raise UsageError(f"saga {verb} needs a saga ID or --query")


def _reason(reason: str | None, verb: str) -> str:
    if reason is None or not reason.strip():
        raise UsageError(f"saga {verb} needs --reason (it is recorded in the saga's history and the audit log)")
    return reason.strip()


_ID = typer.Argument(None, metavar="[ID]", help="The saga's ID; or select many with --query.", show_default=False)


@app.command("force-fail")
def force_fail(
    saga_id: str | None = _ID,
    reason: str | None = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (required; recorded)."),
    terminate: bool = typer.Option(False, "--terminate",
                                   help="End it at once, without running compensations."),
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help=_QUERY_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Fail a running or stuck saga now: its completed steps are compensated in reverse.

    Asks first (off a terminal it needs --yes). A saga already completed,
    compensated or failed is refused (exit 4).

    Examples:

      pipelinectl saga force-fail saga-order-000042 --reason "card processor outage"

      pipelinectl saga force-fail --query "status = 'stuck'" --reason drill --yes
    """
    session = current()
    _target(saga_id, query, "force-fail")
    if plans.wanted(session, dry_run):
        plans.emit(session, "saga force-fail", target={"pipeline": pipeline, "saga": saga_id, "query": query},
                   arguments={"reason": reason, "terminate": terminate})
        return
    if query:
        why = _reason(reason, "force-fail")
        _batch(session, "terminate" if terminate else "force-fail", query, why, session.pipeline(pipeline), yes=yes,
               dry_run=dry_run)
        return
    assert saga_id is not None
    _report(session, force_fail_saga(session, saga_id, reason, terminate=terminate, pipeline=pipeline,
                                     dry_run=dry_run, yes=yes))


@app.command("retry")
def retry(
    saga_id: str | None = _ID,
    event_id: int | None = typer.Option(None, "--event-id", metavar="N", min=1,
                                        help="Resume from this history event (engines that can reset)."),
    reason: str | None = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (recorded)."),
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help=_QUERY_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Retry a stuck or failed saga from its failing step.

    One saga runs at once; --query (many sagas) asks first.

    Examples:

      pipelinectl saga retry saga-order-000042

      pipelinectl saga retry --query "status = 'stuck'" --yes
    """
    session = current()
    _target(saga_id, query, "retry")
    if query and event_id is not None:
        raise UsageError("--event-id applies to one saga, not to --query")
    if plans.wanted(session, dry_run):
        plans.emit(session, "saga retry", target={"pipeline": pipeline, "saga": saga_id, "query": query},
                   arguments={"reason": reason, "event_id": event_id})
        return
    if query:
        why = reason.strip() if reason and reason.strip() else None
        _batch(session, "retry", query, why or "", session.pipeline(pipeline), yes=yes, dry_run=dry_run)
        return
    assert saga_id is not None
    _report(session, retry_saga(session, saga_id, reason, event_id=event_id, pipeline=pipeline, dry_run=dry_run))


@app.command("force-complete")
def force_complete(
    saga_id: str = typer.Argument(..., metavar="ID", help="The saga's ID."),
    reason: str | None = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (required; recorded)."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Mark a saga completed without running its remaining steps (the work was done by hand).

    Asks first (off a terminal it needs --yes).

    Examples:

      pipelinectl saga force-complete saga-order-000042 --reason "shipped manually, ticket OPS-7"
    """
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, "saga force-complete", target={"pipeline": pipeline, "saga": saga_id},
                   arguments={"reason": reason})
        return
    _report(session, force_complete_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=yes))


@app.command("cancel")
def cancel(
    saga_id: str | None = _ID,
    reason: str | None = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (required; recorded)."),
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help=_QUERY_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Cancel a running or stuck saga gracefully: no further step runs, the completed ones are compensated.

    Compensations run in reverse order and the saga ends cancelled (on Temporal: the workflow
    is asked to cancel; its own cancellation handling compensates). Asks first (off a terminal
    it needs --yes). A finished saga is refused (exit 4). Unlike force-fail, it is not a
    failure: nothing went wrong, the saga is no longer wanted.

    Examples:

      pipelinectl saga cancel saga-order-000042 --reason "customer cancelled, ticket OPS-9"

      pipelinectl saga cancel --query "WorkflowType = 'order'" --reason "bad batch" --yes
    """
    session = current()
    _target(saga_id, query, "cancel")
    if plans.wanted(session, dry_run):
        plans.emit(session, "saga cancel", target={"pipeline": pipeline, "saga": saga_id, "query": query},
                   arguments={"reason": reason})
        return
    if query:
        _batch(session, "cancel", query, _reason(reason, "cancel"), session.pipeline(pipeline), yes=yes,
               dry_run=dry_run)
        return
    assert saga_id is not None
    _report(session, cancel_saga(session, saga_id, reason, pipeline=pipeline, dry_run=dry_run, yes=yes))


@app.command("advance")
def advance(
    saga_id: str | None = _ID,
    step: str | None = typer.Option(None, "--step", "-s", metavar="NAME",
                                    help="The saga's current step, done by hand (required)."),
    result: str | None = typer.Option(None, "--result", metavar="JSON",
                                      help="What the step would have returned (JSON; an object joins the "
                                           "saga's data)."),
    reason: str | None = typer.Option(None, "--reason", "-r", metavar="TEXT", help="Why (required; recorded)."),
    query: str | None = typer.Option(None, "--query", "-q", metavar="QUERY", help=_QUERY_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Record the saga's current step as done by hand, and let the saga go on with the next one.

    --step must name the current step (else exit 4, nothing changed); the saga must be
    running or stuck. The step is marked advanced by an operator in the saga's events.
    With --query, every matching saga at that step is advanced, one after another.
    On Temporal the workflow must implement the 'pipelinectl.advance' update
    (docs/plugins.md); one that does not is refused as unsupported (exit 7).

    Examples:

      pipelinectl saga advance saga-order-000042 --step charge --result '{"payment": "manual-17"}' --reason "charged by phone, OPS-7"

      pipelinectl saga advance saga-order-000042 --step charge --reason OPS-7 --dry-run -o yaml > advance.yaml
    """
    session = current()
    parsed = parse_result(result)  # first: bad JSON changes nothing and reads nothing
    _target(saga_id, query, "advance")
    arguments = {"step": step, "reason": reason, "result": parsed}
    if plans.wanted(session, dry_run):
        plans.emit(session, "saga advance", target={"pipeline": pipeline, "saga": saga_id, "query": query},
                   arguments=arguments)
        return
    if query:
        _advance_many(session, query, _step(step), _reason(reason, "advance"), parsed, session.pipeline(pipeline),
                      yes=yes, dry_run=dry_run)
        return
    assert saga_id is not None
    _report(session, advance_saga(session, saga_id, step, reason, result=parsed, pipeline=pipeline,
                                  dry_run=dry_run, yes=yes))
