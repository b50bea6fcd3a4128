"""Dead letters: list, inspect (alias show), redrive, purge.

Bulk actions are planned first: a dry run on the plane says exactly which items
match, unknown IDs are refused, and the operator confirms that count. The
action then runs on exactly those IDs (in chunks, with a progress bar on a
TTY), so items arriving between the prompt and the action are never touched.
An item leaves the DLQ only when the plane has accepted its redrive.
`plan_bulk` and `apply_bulk` are that flow without the printing; the dashboard
(pipelinectl.ui) calls them too, and `apply` through `plan_dlq`: a plan made
with --dry-run -o json|yaml names the exact items, and applying it acts on those.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli import plans, targets
from pipelinectl.cli.commands import CONTEXT_SETTINGS
from pipelinectl.cli.common import (
    TIME_FORMS,
    check_stage,
    context_label,
    current,
    dry_run_note,
    dry_run_option,
    emit_listing,
    listing_plan,
    mutate,
    parse_range,
    pipeline_option,
    plural,
    progress,
    say,
    watch_deadline,
    yes_option,
)
from pipelinectl.errors import ConflictError, NotFoundError, UnavailableError, UsageError
from pipelinectl.timeparse import format_time

if TYPE_CHECKING:
    from pipelinectl.cli.session import Session
    from pipelinectl.model import BulkResult, DLQFilter

app = typer.Typer(
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
)



@app.callback()
def _group() -> None:
    """List, inspect, redrive and purge dead-letter items.

    Examples:

      pipelinectl dlq list --stage ship --since -2h

      pipelinectl dlq redrive --error-kind transient --yes
    """


CHUNK = 100  # IDs per redrive/purge request: bounded bodies, and a progress bar that moves
TABLE_DEFAULT_LIMIT = 1000  # a table is for reading; -o jsonl streams everything
SAMPLE = 10  # IDs a bulk dry run shows in a table, after the count; -o json lists them all

# -- shared options ----------------------------------------------------------------------------------
_STAGE = typer.Option(None, "--stage", "-s", metavar="STAGE", help="Only items dead-lettered by this stage.")
_KIND = typer.Option(None, "--error-kind", "-k", metavar="KIND",
                     help="Only this error kind: validation, transient, persistent, fatal.")
_SINCE = typer.Option(None, "--since", metavar="TIME", help=f"Last seen at or after TIME: {TIME_FORMS}.")
_UNTIL = typer.Option(None, "--until", metavar="TIME", help=f"Last seen before TIME: {TIME_FORMS}.")


def build_selection(session: Session, pipeline: str, *, ids: list[str] | None = None, all_: bool = False,
                    stage: str | None, error_kind: str | None, since: str | None, until: str | None,
                    may_wait: bool = False) -> DLQFilter:
    """Build and check a selection locally (times, kinds), then the stage against the plane.

    `may_wait` (a watch): a plane that does not answer yet is no reason to refuse; the watch waits for it
    and the plane itself then refuses an unknown stage."""
    from pipelinectl.model import ERROR_KINDS, DLQFilter

    stage = targets.target(stage, "stage") if stage is not None else None  # stage/NAME as -o name prints it
    start, end = parse_range(since, until, "--since", "--until")
    if error_kind is not None and error_kind not in ERROR_KINDS:
        raise UsageError(f"invalid value for --error-kind: '{error_kind}'",
                         hint=f"choose from {', '.join(ERROR_KINDS)}")
    selection = DLQFilter(pipeline=pipeline, ids=list(ids or []), all=all_, stage=stage, error_kind=error_kind,
                          since=start, until=end)
    if stage is not None:
        try:
            check_stage(session, pipeline, stage)
        except UnavailableError:
            if not may_wait:
                raise
    return selection


def _describe(selection: DLQFilter) -> str:
    parts = []
    if selection.stage:
        parts.append(f"stage={selection.stage}")
    if selection.error_kind:
        parts.append(f"error-kind={selection.error_kind}")
    if selection.since:
        parts.append(f"since={format_time(selection.since, timespec='seconds')}")
    if selection.until:
        parts.append(f"until={format_time(selection.until, timespec='seconds')}")
    if not parts and selection.all:
        parts.append("all items")
    return ", ".join(parts)


# -- list ----------------------------------------------------------------------------------------------
@app.command("list")
def list_(
    pipeline: str | None = pipeline_option(),
    stage: str | None = _STAGE,
    error_kind: str | None = _KIND,
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    limit: int | None = typer.Option(None, "--limit", "-l", metavar="N", min=1,
                                     help=f"At most N items (tables default to {TABLE_DEFAULT_LIMIT})."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep listing: new items as they arrive (Ctrl-C stops)."),
    interval: float = typer.Option(2.0, "--interval", metavar="SECONDS", min=0.1,
                                   help="How often --watch looks again."),
) -> None:
    """List dead-letter items, oldest first.

    -o jsonl streams page by page and never holds the whole DLQ; --limit stops early.

    Examples:

      pipelinectl dlq list --stage validate --error-kind validation --since -2h

      pipelinectl dlq list -o jsonl --limit 5000 > dlq.jsonl
    """
    session = current()
    if watch:
        watch_deadline(session, interval)
    target = session.pipeline(pipeline)
    selection = build_selection(session, target, stage=stage, error_kind=error_kind, since=since, until=until,
                                may_wait=watch)
    cap, page_size = listing_plan(session, limit, TABLE_DEFAULT_LIMIT, 500)
    if watch:
        _watch(session, selection, limit, page_size, interval)
        return
    emit_listing(session, session.plane.dlq_list(selection, page_size=page_size), cap=cap, limit=limit,
                 kind="DLQItem", noun="items")


def _watch(session: Session, selection: DLQFilter, limit: int | None, page_size: int, interval: float) -> None:
    """On the shared watch engine: piped, each item once as it arrives; on a terminal, a live table of
    the newest items that fit the screen. It waits through outages; Ctrl-C ends it (130)."""
    from pipelinectl.watch import table_view, watch

    def fetch() -> list[Any]:
        items = session.plane.dlq_list(selection, page_size=page_size)
        try:
            return list(itertools.islice(items, limit) if limit is not None else items)
        finally:
            # Closed at once, not when collected: a driver may hold what it read until its listing
            # ends (RabbitMQ keeps peeked messages unacknowledged), and a watch lives long.
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def view(items: list[Any], footer: str) -> Any:
        import shutil

        room = max(shutil.get_terminal_size().lines - 5, 1)  # header, footer, a count line and a margin
        newest = items[-room:]
        note = f"{plural(len(items), 'item')} in the DLQ; the newest {len(newest)} shown" \
            if len(newest) < len(items) else ""
        return table_view(newest, footer + (f" · {note}" if note else ""), wide=session.options.output == "wide")

    code = watch(fetch, output=session.options.output, interval=interval, view=view, only_new=True,
                 redact=session.redact, color=session.color)
    raise typer.Exit(code)


# -- inspect -------------------------------------------------------------------------------------------
def _inspect(item_id: str, pipeline: str | None) -> None:
    session = current()
    item_id = targets.target(item_id, "dlqitem")
    target = session.pipeline(pipeline)
    item = session.plane.dlq_show(target, item_id)
    if session.options.output not in ("table", "wide"):
        session.emit(item)
        return
    import json

    r = session.renderer
    r.key_values([
        ("ID", item.id), ("Pipeline", item.pipeline), ("Stage", item.stage), ("Error kind", item.error_kind),
        ("Message", item.message), ("Attempts", item.attempts), ("First seen", item.first_seen),
        ("Last seen", item.last_seen), ("Key", item.key), ("Offset", item.offset),
        ("Headers", ", ".join(f"{k}={v}" for k, v in sorted(item.headers.items()))),
    ], title=f"DLQ item {item.id}")
    payload = item.payload if isinstance(item.payload, str) else json.dumps(item.payload, indent=2, default=str)
    r.stream.write("Payload:\n")
    for line in str(payload).splitlines() or ["-"]:
        r.stream.write(f"  {line}\n")
    if item.details:
        r.stream.write("Details:\n")
        for key, value in sorted(item.details.items()):
            r.stream.write(f"  {key}: {value}\n")


@app.command("inspect")
def inspect(
    item_id: str = typer.Argument(..., metavar="ID", help="The item's ID (from 'dlq list')."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Show one dead-letter item: error, attempts, times, headers and payload (alias: show).

    Examples:

      pipelinectl dlq inspect dlq-42

      pipelinectl dlq show dlq-42 -o json
    """
    _inspect(item_id, pipeline)


@app.command("show", hidden=True)
def show(
    item_id: str = typer.Argument(..., metavar="ID", help="The item's ID (from 'dlq list')."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Alias of 'dlq inspect'.

    Examples:

      pipelinectl dlq show dlq-42
    """
    _inspect(item_id, pipeline)


# -- redrive / purge -----------------------------------------------------------------------------------
@dataclass
class BulkPlan:
    """A redrive or purge as the plane planned it (a dry run): exactly the items the action will touch."""

    action: str  # "redrive" | "purge"
    pipeline: str
    selection: DLQFilter
    plan: BulkResult
    what: str  # the selection in words, for the confirmation and the report
    bulk: bool  # several IDs, --all or filters: the operator confirms the count
    arguments: dict[str, Any]  # what the audit line records

    @property
    def count(self) -> int:
        return len(self.plan.matched)


@dataclass
class BulkOutcome:
    result: BulkResult
    interrupted: bool = False  # Ctrl-C between chunks: the rest stays in the DLQ


def plan_bulk(session: Session, action: str, ids: list[str], *, all_: bool = False, pipeline: str | None = None,
              stage: str | None = None, error_kind: str | None = None, since: str | None = None,
              until: str | None = None) -> BulkPlan:
    """validate -> plan (a dry run on the plane); unknown IDs are refused. Changes nothing.

    The first half of the flow behind `dlq redrive` and `dlq purge`, for the CLI and the dashboard.
    """
    if action not in ("redrive", "purge"):
        raise UsageError(f"unknown DLQ action '{action}'", hint="choose from redrive, purge")
    ids = targets.targets(ids, "dlqitem")
    has_filters = any(v is not None for v in (stage, error_kind, since, until))
    if ids and (all_ or has_filters):
        raise UsageError(f"give item IDs, or --all / filters, not both (dlq {action} ID... | --all | filters)")
    if not ids and not all_ and not has_filters:
        raise UsageError(f"nothing selected: dlq {action} needs item IDs, --all, or a filter "
                         "(--stage, --error-kind, --since, --until)")
    target = session.pipeline(pipeline)
    selection = build_selection(session, target, ids=list(dict.fromkeys(ids)), all_=all_, stage=stage,
                                error_kind=error_kind, since=since, until=until)
    plan: BulkResult = _verb(session, action)(selection, dry_run=True)
    missing = [i for i in selection.ids if i not in set(plan.matched)]
    if missing:
        raise NotFoundError(f"DLQ item{'s' if len(missing) > 1 else ''} not found in pipeline '{target}': "
                            f"{', '.join(missing)}", hint="nothing was changed; see 'pipelinectl dlq list'")
    return BulkPlan(action=action, pipeline=target, selection=selection, plan=plan,
                    what=_describe(selection) or ", ".join(selection.ids),
                    bulk=all_ or has_filters or len(selection.ids) > 1,
                    arguments={"ids": selection.ids, "all": all_, "stage": stage, "error_kind": error_kind,
                               "since": since, "until": until, "matched": len(plan.matched)})


def apply_bulk(session: Session, bulk: BulkPlan, *, yes: bool, always_confirm: bool) -> BulkOutcome:
    """confirm (a bulk selection; purge always) -> act on exactly the planned IDs, in chunks -> audit.

    Items that arrived after the plan are never touched. Ctrl-C stops between chunks;
    the partial result is still returned and audited.
    """
    from pipelinectl.model import BulkResult, DLQFilter

    count = bulk.count
    target = bulk.pipeline
    if count == 0:
        return BulkOutcome(BulkResult(action=bulk.action, pipeline=target))
    if always_confirm or bulk.bulk:
        session.confirm(f"{bulk.action} {plural(count, 'DLQ item')} of pipeline '{target}' ({bulk.what})", yes=yes)
    verb = _verb(session, bulk.action)
    interrupted: list[bool] = []

    def act() -> BulkResult:
        total = BulkResult(action=bulk.action, pipeline=target, matched=list(bulk.plan.matched))
        with progress(session, f"{bulk.action} {target}", count) as bar:
            for start in range(0, count, CHUNK):
                chunk = bulk.plan.matched[start:start + CHUNK]
                try:
                    done = verb(DLQFilter(pipeline=target, ids=chunk), dry_run=False)
                except KeyboardInterrupt:
                    interrupted.append(True)
                    break
                total.succeeded.extend(done.succeeded)
                total.failed.update(done.failed)
                bar.advance(len(chunk))
        return total

    result = mutate(session, verb=f"dlq {bulk.action}", target=f"{target}/dlq", arguments=bulk.arguments, call=act,
                    summary=lambda r: f"succeeded={len(r.succeeded)} failed={len(r.failed)}"
                                      + (" interrupted" if interrupted else ""))
    return BulkOutcome(result, interrupted=bool(interrupted))


def _verb(session: Session, action: str) -> Any:
    return session.plane.dlq_redrive if action == "redrive" else session.plane.dlq_purge


def _bulk(action: str, ids: list[str], all_: bool, pipeline: str | None, stage: str | None,
          error_kind: str | None, since: str | None, until: str | None, dry_run: bool, yes: bool,
          always_confirm: bool) -> None:
    """plan -> (report | confirm and act) -> render; the CLI's face of plan_bulk and apply_bulk."""
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, f"dlq {action}", target={"pipeline": pipeline},
                   arguments={"ids": ids, "all": all_, "stage": stage, "error_kind": error_kind, "since": since,
                              "until": until})
        return
    bulk = plan_bulk(session, action, ids, all_=all_, pipeline=pipeline, stage=stage, error_kind=error_kind,
                     since=since, until=until)
    target, count = bulk.pipeline, bulk.count
    if count == 0:
        if dry_run:
            dry_run_note(session, f"no DLQ items match ({bulk.what})")
        else:
            session.info(f"no DLQ items match ({bulk.what}); nothing to {action}")
        _render(session, bulk.plan, show_ids=False)
        return
    if dry_run:
        dry_run_note(session, f"{action} would act on {plural(count, 'item')} of pipeline '{target}' ({bulk.what})")
        _render(session, bulk.plan, show_ids=True)
        return
    _act(session, bulk, yes=yes, always_confirm=always_confirm)


def _act(session: Session, bulk: BulkPlan, *, yes: bool, always_confirm: bool) -> None:
    """confirm and act on the planned items -> report, for the command and for an applied plan."""
    action, target, count = bulk.action, bulk.pipeline, bulk.count
    outcome = apply_bulk(session, bulk, yes=yes, always_confirm=always_confirm)
    result = outcome.result
    past = "redriven" if action == "redrive" else "purged"
    say(session, f"{plural(len(result.succeeded), 'item')} {past} from pipeline '{target}' "
                 f"(context '{context_label(session)}')")
    _render(session, result, show_ids=False)
    if outcome.interrupted:
        left = count - len(result.succeeded) - len(result.failed)
        sys.stderr.write(f"interrupted: {plural(left, 'item')} not {past}; they stay in the DLQ\n")
        raise KeyboardInterrupt
    if result.failed:
        for item_id, reason in sorted(result.failed.items()):
            sys.stderr.write(f"  {item_id}: {session.redact(reason)}\n")
        raise ConflictError(f"{plural(len(result.failed), 'item')} could not be {past}; they stay in the DLQ",
                            hint="see the reasons above; retry with their IDs")
    if not bulk.selection.ids:
        _still_matching(session, bulk.selection, action)


@plans.builder("dlq redrive", "dlq purge")
def plan_dlq(session: Session, verb: str, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    """A redrive or purge plan names the exact items (`target.items`) and relies on each still being in the DLQ.

    From the command line the items are what the selection matches now; from a plan, its items.
    """
    action = verb.split()[-1]
    if "items" in target:
        items = list(target["items"])
        if not items:  # an empty selection's plan: there is nothing to do, now or later
            return _nothing_planned(session, action, target)
        bulk = plan_bulk(session, action, items, pipeline=target.get("pipeline"))
        what = target.get("selection") or bulk.what
        bulk.bulk = bulk.bulk or what != bulk.what  # planned by --all or filters: confirmed as such
        bulk.what = what
    else:
        bulk = plan_bulk(session, action, list(arguments.get("ids") or []), all_=bool(arguments.get("all")),
                         pipeline=target.get("pipeline"), stage=arguments.get("stage"),
                         error_kind=arguments.get("error_kind"), since=arguments.get("since"),
                         until=arguments.get("until"))
        what = bulk.what
    if bulk.count == 0:
        return _nothing_planned(session, action, {"pipeline": bulk.pipeline, "selection": what}, bulk.plan)
    return plans.Draft(
        target={"pipeline": bulk.pipeline, "items": list(bulk.plan.matched), "selection": what},
        arguments={}, preconditions=[plans.Precondition(f"dlq/{bulk.pipeline}", {"items": bulk.count})],
        summary=f"{action} would act on {plural(bulk.count, 'item')} of pipeline '{bulk.pipeline}' ({what})",
        result=bulk.plan, perform=lambda yes: _act(session, bulk, yes=yes, always_confirm=action == "purge"))


def _nothing_planned(session: Session, action: str, target: dict[str, Any], answer: Any = None) -> plans.Draft:
    pipeline = target.get("pipeline") or session.pipeline(None)
    what = target.get("selection") or "the plan's selection"
    return plans.Draft(
        target={"pipeline": pipeline, "items": [], "selection": what}, arguments={},
        preconditions=[], summary=f"no DLQ items match ({what}); nothing to {action}", result=answer,
        perform=lambda yes: session.info(f"the plan holds no DLQ items ({what}); nothing to {action}"))


def _still_matching(session: Session, selection: DLQFilter, action: str) -> None:
    """Items that match the filters now were not in the confirmed plan (they arrived since): say so."""
    from pipelinectl.errors import UnsupportedError

    try:
        remaining = session.plane.dlq_count(selection)
    except UnsupportedError:
        return
    if remaining:
        session.info(f"{plural(remaining, 'more item')} match{'es' if remaining == 1 else ''} now "
                     f"(not in the confirmed plan); run the command again to {action} them")


def _render(session: Session, result: BulkResult, *, show_ids: bool) -> None:
    """Machine formats get the BulkResult; -o name the affected items; tables show a sample of the IDs
    (the first SAMPLE) on a dry run or with -o wide."""
    fmt = session.options.output
    if fmt == "name":
        for item_id in result.matched if result.dry_run else result.succeeded:
            sys.stdout.write(f"dlqitem/{item_id}\n")
        return
    if fmt not in ("table", "wide"):
        session.emit(result)
        return
    if fmt == "wide" or show_ids:  # the count was said; a sample of the IDs, never thousands of lines
        for item_id in result.matched[:SAMPLE]:
            sys.stdout.write(f"  {item_id}\n")
        if len(result.matched) > SAMPLE:
            sys.stdout.write(f"  ... and {len(result.matched) - SAMPLE} more (-o json lists them all)\n")


_IDS = typer.Argument(None, metavar="ID", help="Item IDs; or select with --all or filters.", show_default=False)
_ALL = typer.Option(False, "--all", help="Every item (narrowed by any filters given).")


@app.command("redrive")
def redrive(
    ids: list[str] | None = _IDS,
    all_: bool = _ALL,
    pipeline: str | None = pipeline_option(),
    stage: str | None = _STAGE,
    error_kind: str | None = _KIND,
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Put dead-letter items back into their stage; each leaves the DLQ once the stage accepts it.

    One ID runs at once; more IDs, --all or filters show the count and ask first
    (off a terminal they need --yes).

    Examples:

      pipelinectl dlq redrive dlq-42

      pipelinectl dlq redrive --stage charge --error-kind transient --yes
    """
    _bulk("redrive", list(ids or []), all_, pipeline, stage, error_kind, since, until, dry_run, yes,
          always_confirm=False)


@app.command("purge")
def purge(
    ids: list[str] | None = _IDS,
    all_: bool = _ALL,
    pipeline: str | None = pipeline_option(),
    stage: str | None = _STAGE,
    error_kind: str | None = _KIND,
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    dry_run: bool = dry_run_option(),
    yes: bool = yes_option(),
) -> None:
    """Delete dead-letter items for good; always asks first (off a terminal it needs --yes).

    Examples:

      pipelinectl dlq purge --error-kind validation --until -7d --dry-run

      pipelinectl dlq purge dlq-42 dlq-43 --yes
    """
    _bulk("purge", list(ids or []), all_, pipeline, stage, error_kind, since, until, dry_run, yes,
          always_confirm=True)
