"""Replay a range of a pipeline's input, or the items a disabled stage skipped; manage replay jobs.

`pipelinectl replay --from ... --to ...` runs the replay (the group's callback
does it when no subcommand is given); `replay --skipped STAGE` feeds the items
STAGE passed on unprocessed while it was disabled back into it, each once. The plane plans it first (a dry run
counts the items), the operator confirms that count, and with --wait the
command follows the job to its end with a progress bar on a TTY. With
--dry-run -o json|yaml the plan is printed for `apply` (`plan_replay`).
"""

from __future__ import annotations

import time
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
    mutate,
    parse_range,
    pipeline_option,
    plural,
    progress,
    read_before,
    say,
    stage_name,
    yes_option,
)
from pipelinectl.errors import ConditionNotMetError, UsageError
from pipelinectl.timeparse import format_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipelinectl.cli.session import Session
    from pipelinectl.model import ReplayJob, ReplayRequest

app = typer.Typer(
    invoke_without_command=True,
    context_settings=CONTEXT_SETTINGS,
)

TERMINAL = ("completed", "cancelled", "failed")


def _range_text(job: ReplayJob) -> str:
    from pipelinectl.output import replay_range

    return replay_range(job)


@app.callback()
def replay(
    ctx: typer.Context,
    from_: str | None = typer.Option(None, "--from", metavar="TIME",
                                     help=f"Start of a time range (inclusive): {TIME_FORMS}."),
    to: str | None = typer.Option(None, "--to", metavar="TIME", help=f"End of the time range (exclusive): {TIME_FORMS}."),
    from_offset: int | None = typer.Option(None, "--from-offset", metavar="A", help="First input offset (inclusive)."),
    to_offset: int | None = typer.Option(None, "--to-offset", metavar="B", help="End input offset (exclusive)."),
    stage: str | None = typer.Option(None, "--stage", "-s", metavar="STAGE",
                                     help="Replay into this stage (default: the pipeline's first)."),
    skipped: str | None = typer.Option(None, "--skipped", metavar="STAGE",
                                       help="Instead of a range: the items STAGE passed on unprocessed while it "
                                            "was disabled, each processed once."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
    wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends (progress bar on a terminal)."),
    poll: float = typer.Option(1.0, "--poll", metavar="SECONDS", min=0.05, help="How often --wait looks."),
    yes: bool = yes_option(),
) -> None:
    """Replay a range of the input through a stage; asks first (off a terminal it needs --yes).

    Give a time range (--from/--to) or an offset range (--from-offset/--to-offset),
    or --skipped STAGE for the items a disabled stage bypassed (once it is enabled:
    each is processed by STAGE once, then its record goes, so a second run replays
    nothing). Items already applied are skipped by key, so a replay never
    double-applies. Subcommands list, show and cancel manage replay jobs.

    Examples:

      pipelinectl replay --from=2026-05-01 --to=2026-05-02 --stage ship --wait

      pipelinectl replay --skipped enrich --yes --wait
    """
    if ctx.invoked_subcommand is not None:
        if any(v is not None for v in (from_, to, from_offset, to_offset, stage, skipped)) or dry_run or wait or yes:
            raise UsageError(f"replay options go with 'replay --from ... --to ...', not with "
                             f"'replay {ctx.invoked_subcommand}'")
        return
    session = current()
    by_time = from_ is not None or to is not None
    by_offset = from_offset is not None or to_offset is not None
    if skipped is not None:
        if by_time or by_offset or stage is not None:
            raise UsageError("--skipped STAGE replays what that stage skipped; it takes no range and no --stage")
        _replay_skipped(session, pipeline, skipped, dry_run=dry_run, yes=yes, wait=wait, poll=poll)
        return
    if by_time and by_offset:
        raise UsageError("give a time range (--from/--to) or an offset range (--from-offset/--to-offset), not both")
    if not by_time and not by_offset:
        raise UsageError("replay needs a range: --from TIME --to TIME, or --from-offset A --to-offset B",
                         hint="see 'pipelinectl replay --help'; 'replay list' shows jobs")
    if plans.wanted(session, dry_run):
        plans.emit(session, "replay", target={"pipeline": pipeline, "stage": stage},
                   arguments={"from_time": from_, "to_time": to, "from_offset": from_offset, "to_offset": to_offset})
        return
    request, plan, asked = _planned(session, pipeline, stage, from_, to, from_offset, to_offset)
    if dry_run:
        sent = plan.total - plan.skipped
        dry_run_note(session, f"replay would send {plural(sent, 'item')} and skip {plan.skipped} already processed "
                              f"({plan.total} in {_range_text(plan)}) {_where(plan)}")
        _emit(session, plan)
        return
    _run(session, lambda: session.plane.replay(request), plan, asked, yes=yes, wait=wait, poll=poll)


def _replay_skipped(session: Session, pipeline: str | None, stage: str, *, dry_run: bool, yes: bool, wait: bool,
                    poll: float) -> None:
    if plans.wanted(session, dry_run):
        plans.emit(session, "replay", target={"pipeline": pipeline, "stage": stage}, arguments={"skipped": True})
        return
    start, plan = _planned_skipped(session, pipeline, stage)
    if not plan.total:
        say(session, f"nothing to replay: stage '{plan.stage}' of pipeline '{plan.pipeline}' has no skipped items; "
                     "nothing was changed")
        if session.options.output not in ("table", "wide"):
            session.emit(plan)
        return
    if dry_run:
        dry_run_note(session, _skipped_summary(plan))
        _emit(session, plan)
        return
    _run(session, start, plan, {"stage": plan.stage, "skipped": True}, yes=yes, wait=wait, poll=poll)


def _planned_skipped(session: Session, pipeline: str | None, stage: str) -> tuple[Any, ReplayJob]:
    """validate -> the plane's plan of `replay --skipped` (how many items the stage bypassed); how to start it."""
    name = stage_name(stage)
    target = session.pipeline(pipeline)
    check_stage(session, target, name)
    plan = session.plane.replay_skipped(target, name, dry_run=True)
    return (lambda: session.plane.replay_skipped(target, name)), plan


def _skipped_summary(plan: ReplayJob) -> str:
    sent = plan.total - plan.skipped
    return (f"replay --skipped would send {plural(sent, 'item')} that stage '{plan.stage}' of pipeline "
            f"'{plan.pipeline}' passed on unprocessed, and skip {plan.skipped} it has processed since")


def _planned(session: Session, pipeline: str | None, stage: str | None, from_: str | None, to: str | None,
             from_offset: int | None, to_offset: int | None) -> tuple[ReplayRequest, ReplayJob, dict[str, Any]]:
    """validate -> the plane's plan (a dry run that counts the range). An empty range is refused."""
    from pipelinectl.model import ReplayRequest
    from pipelinectl.timeparse import parse_offset_range

    start = end = None
    if from_ is not None or to is not None:
        start, end = parse_range(from_, to, "--from", "--to", require_both=True)
    a, b = parse_offset_range(from_offset, to_offset)
    name = stage_name(stage) if stage is not None else None
    target = session.pipeline(pipeline)
    if name is not None:
        check_stage(session, target, name)
    request = ReplayRequest(pipeline=target, stage=name, from_offset=a, to_offset=b, from_time=start, to_time=end)
    plan = session.plane.replay(ReplayRequest(**{**_fields(request), "dry_run": True}))
    if not plan.total:  # the same answer with --dry-run as with --yes
        raise UsageError(f"nothing to replay: the range holds no input items of pipeline '{target}' "
                         f"({_asked(from_, to, a, b)}); nothing was changed",
                         hint="'pipelinectl status' shows the input log's current offset")
    asked = {"stage": name, "from": from_, "to": to, "from_time": format_time(start), "to_time": format_time(end),
             "from_offset": a, "to_offset": b}
    return request, plan, asked


def _where(plan: ReplayJob) -> str:
    return f"of pipeline '{plan.pipeline}' into stage '{plan.stage}'"


def _run(session: Session, start: Callable[[], ReplayJob], plan: ReplayJob, asked: dict[str, Any], *, yes: bool,
         wait: bool = False, poll: float = 1.0) -> None:
    """confirm the plane's count -> start the job -> audit -> (follow it) -> render."""
    sent = plan.total - plan.skipped
    what = (f"{_range_text(plan)} {_where(plan)}: {plural(plan.total, 'item')} ({sent} to send, {plan.skipped} "
            "already processed, skipped)")
    session.confirm(f"replay {what}", yes=yes)
    arguments = {**asked, "planned": plan.total}
    job = mutate(session, verb="replay", target=f"{plan.pipeline}/{plan.stage}", arguments=arguments,
                 call=start, summary=lambda j: f"job {j.id} {j.state}")
    say(session, f"replay job {job.id} {job.state}: {what} (context '{context_label(session)}')")
    if wait:
        job = _follow(session, job, poll)
        say(session, f"replay job {job.id} {job.state}: {job.replayed} replayed, {job.skipped} skipped"
                     f" (already processed) of {job.total}")
    elif session.options.output in ("table", "wide"):
        session.info(f"follow it with 'pipelinectl replay show {job.id}'")
    _emit(session, job)
    if wait and job.state != "completed":
        raise ConditionNotMetError(f"replay job {job.id} ended {job.state}" + (f": {job.error}" if job.error else ""))


@plans.builder("replay")
def plan_replay(session: Session, verb: str, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    """A replay plan: the range as absolute times or offsets, into a named stage; it relies on the range's count.

    A `--skipped` plan relies on the number of items the stage bypassed.
    """
    if arguments.get("skipped"):
        start, skipped = _planned_skipped(session, target.get("pipeline"), target.get("stage") or "")
        return plans.Draft(
            target={"pipeline": skipped.pipeline, "stage": skipped.stage}, arguments={"skipped": True},
            preconditions=[plans.Precondition(f"stage/{skipped.stage}", {"skipped_items": skipped.total})],
            summary=_skipped_summary(skipped), result=skipped,
            perform=lambda yes: _run(session, start, skipped, {"stage": skipped.stage, "skipped": True}, yes=yes))
    request, plan, asked = _planned(session, target.get("pipeline"), target.get("stage"), arguments.get("from_time"),
                                    arguments.get("to_time"), arguments.get("from_offset"), arguments.get("to_offset"))
    chosen = {k: asked[k] for k in ("from_time", "to_time", "from_offset", "to_offset")}
    request.stage = plan.stage  # the plane's choice when none was given: the plan names it
    sent = plan.total - plan.skipped
    return plans.Draft(
        target={"pipeline": request.pipeline, "stage": plan.stage},
        arguments={k: v for k, v in chosen.items() if v is not None},
        preconditions=[plans.Precondition(f"pipeline/{request.pipeline}", {"items_in_range": plan.total})],
        summary=f"replay would send {plural(sent, 'item')} and skip {plan.skipped} already processed "
                f"({plan.total} in {_range_text(plan)}) {_where(plan)}",
        result=plan, perform=lambda yes: _run(session, lambda: session.plane.replay(request), plan, asked, yes=yes))


def _asked(start: str | None, end: str | None, a: int | None, b: int | None) -> str:
    return f"--from {start} --to {end}" if start is not None or end is not None else f"offsets {a}..{b}"


def _fields(request: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name != "kind"}


def _emit(session: Session, job: ReplayJob) -> None:
    if session.options.output != "table":
        session.emit(job)


def _follow(session: Session, job: ReplayJob, poll: float) -> ReplayJob:
    """Poll the job until it ends; Ctrl-C stops watching, not the job (and says how to cancel it)."""
    try:
        with progress(session, f"replay {job.id}", job.total or None) as bar:
            while job.state not in TERMINAL:
                time.sleep(poll)
                job = session.plane.replay_show(job.pipeline, job.id)
                bar.update(completed=job.done, total=job.total or None)
    except KeyboardInterrupt:
        import sys

        sys.stderr.write(f"stopped waiting; replay job {job.id} continues "
                         f"(cancel it with 'pipelinectl replay cancel {job.id}')\n")
        raise
    return job


@app.command("list")
def list_(pipeline: str | None = pipeline_option()) -> None:
    """List the pipeline's replay jobs, newest first.

    Examples:

      pipelinectl replay list

      pipelinectl replay list -o json
    """
    session = current()
    jobs = session.plane.replay_list(session.pipeline(pipeline))
    session.renderer.emit(jobs, kind="ReplayJob")


@app.command("show")
def show(
    job_id: str = typer.Argument(..., metavar="ID", help="The replay job's ID."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Show one replay job: state, range and progress.

    Examples:

      pipelinectl replay show replay-3f2a9c1b

      pipelinectl replay show replay-3f2a9c1b -o json
    """
    session = current()
    job_id = targets.target(job_id, "replayjob")
    job = session.plane.replay_show(session.pipeline(pipeline), job_id)
    if session.options.output not in ("table", "wide"):
        session.emit(job)
        return
    session.renderer.key_values([
        ("ID", job.id), ("Pipeline", job.pipeline), ("Stage", job.stage), ("State", job.state),
        ("Range", _range_text(job)),
        ("Progress", f"{job.done}/{job.total} ({job.replayed} replayed, {job.skipped} skipped: already processed)"),
        ("Created", job.created_at), ("Finished", job.finished_at), ("Error", job.error),
    ], title=f"Replay job {job.id}")


@app.command("cancel")
def cancel(
    job_id: str = typer.Argument(..., metavar="ID", help="The replay job's ID."),
    pipeline: str | None = pipeline_option(),
) -> None:
    """Stop a pending or running replay job; items already replayed stay replayed.

    Examples:

      pipelinectl replay cancel replay-3f2a9c1b
    """
    session = current()
    job_id = targets.target(job_id, "replayjob")
    target = session.pipeline(pipeline)
    before = read_before(session, "replay cancel", lambda: session.plane.replay_show(target, job_id))
    job = mutate(session, verb="replay cancel", target=f"{target}/{job_id}", arguments={"id": job_id},
                 call=lambda: session.plane.replay_cancel(target, job_id), summary=lambda j: j.state)
    say(session, f"replay job {job.id}: {job.state} (was {before.state}; {job.done}/{job.total} done: "
                 f"{job.replayed} replayed, {job.skipped} skipped)")
    _emit(session, job)
