"""Stage control: pause, resume, drain, scale (alias resize).

Runbook verbs: idempotent, so they never prompt (pausing a paused stage is a
no-op that says so). Each checks the stage against the plane first (an unknown
stage is refused, naming the known ones), supports --dry-run, writes one audit
line, and prints one line saying what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli.common import (
    check_stage,
    current,
    dry_run_note,
    dry_run_option,
    mutate,
    parse_time,
    pipeline_option,
    say,
    stage_name,
)
from pipelinectl.errors import UsageError
from pipelinectl.timeparse import format_time

if TYPE_CHECKING:
    from pipelinectl.cli.session import Session
    from pipelinectl.model import Stage

STAGE_HELP = "The stage, as STAGE or stage=STAGE."


def _describe(stage: Stage) -> str:
    text = stage.state
    if stage.state == "paused" and stage.paused_until is not None:
        text += f" until {format_time(stage.paused_until, timespec='seconds')}"
    return text


def _run(session: Session, verb: str, pipeline: str, before: Stage | None, arguments: dict[str, Any],
         dry_run: bool, call: Any, changed: Any) -> None:
    """dry run | call -> audit -> render, for one stage verb."""
    target = f"{pipeline}/{arguments['stage']}"
    if dry_run:
        after = call(True)
        dry_run_note(session, f"{verb} {target} would leave it {changed(before, after)}")
        _render(session, after)
        return
    after = mutate(session, verb=verb, target=target, arguments=arguments, call=lambda: call(False),
                   summary=lambda s: f"{s.state} parallelism={s.parallelism} version={s.version}")
    say(session, f"stage {target}: {changed(before, after)}")
    _render(session, after)


def _render(session: Session, stage: Stage) -> None:
    """Table mode said it in one line; wide adds the stage row; machine formats get the Stage."""
    if session.options.output != "table":
        session.emit(stage)


def _state_change(before: Stage | None, after: Stage) -> str:
    if before is None:
        return _describe(after)
    if before.state == after.state and before.paused_until == after.paused_until:
        return f"{_describe(after)} (no change)"
    return f"{_describe(after)} (was {_describe(before)})"


def pause(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    pipeline: str | None = pipeline_option(),
    until: str | None = typer.Option(
        None, "--until", metavar="TIME",
        help="Resume by itself at this time: RFC 3339, a date, or relative (30m, 2h)."),
    dry_run: bool = dry_run_option(),
) -> None:
    """Stop a stage taking new items; items already in flight finish.

    Pausing a paused stage is a no-op. With --until the plane resumes the stage by itself.

    Examples:

      pipelinectl pause validate -p orders

      pipelinectl pause stage=ship --until 30m
    """
    session = current()
    name = stage_name(stage)
    resume_at = parse_time(until, "--until", default="future")
    if resume_at is not None:
        from datetime import UTC, datetime

        if resume_at <= datetime.now(UTC):
            raise UsageError(f"--until ({until}) is in the past", hint="give a future time, e.g. --until 30m")
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    arguments: dict[str, Any] = {"stage": name, "pipeline": target_pipeline}
    if resume_at is not None:
        arguments["until"] = resume_at.isoformat().replace("+00:00", "Z")
    _run(session, "pause", target_pipeline, before, arguments, dry_run,
         lambda dry: session.plane.pause(target_pipeline, name, until=resume_at, dry_run=dry),
         _state_change)


def resume(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Let a paused or draining stage take items again.

    Resuming a running stage is a no-op.

    Examples:

      pipelinectl resume validate -p orders

      pipelinectl resume stage=ship
    """
    session = current()
    name = stage_name(stage)
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    _run(session, "resume", target_pipeline, before, {"stage": name, "pipeline": target_pipeline}, dry_run,
         lambda dry: session.plane.resume(target_pipeline, name, dry_run=dry), _state_change)


def drain(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Let a stage finish its queue without taking new input, then pause it.

    Follow it with 'pipelinectl wait' to block until the stage is paused.

    Examples:

      pipelinectl drain ship -p orders

      pipelinectl drain stage=ship --dry-run
    """
    session = current()
    name = stage_name(stage)
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    _run(session, "drain", target_pipeline, before, {"stage": name, "pipeline": target_pipeline}, dry_run,
         lambda dry: session.plane.drain(target_pipeline, name, dry_run=dry), _state_change)
    if not dry_run:
        # The stage stays paused after the drain: the stages before it back up until someone resumes it.
        session.info(f"drained, '{name}' stays paused and the stages before it back up; "
                     f"when done: pipelinectl resume {name}")


def scale(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    parallelism: int = typer.Option(..., "--parallelism", "--replicas", metavar="N",
                                    help="Workers for the stage, between its min and max parallelism."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Set a stage's parallelism, live (alias: resize).

    N must lie between the stage's min and max parallelism (see 'pipelinectl status -o wide'). The
    change carries the stage version that was read, so a concurrent change is a
    conflict (exit 4), never a lost update.

    Examples:

      pipelinectl scale ship --parallelism 8 -p orders

      pipelinectl resize stage=ship --parallelism 2 --dry-run
    """
    session = current()
    name = stage_name(stage)
    if parallelism < 0:
        raise UsageError(f"--parallelism must not be negative, got {parallelism}")
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    if before is not None and not before.min_parallelism <= parallelism <= before.max_parallelism:
        raise UsageError(
            f"--parallelism {parallelism} is outside [{before.min_parallelism}, {before.max_parallelism}] "
            f"for stage '{name}'",
            hint=f"it runs {before.parallelism} now",
        )
    version = before.version if before is not None else None

    def changed(old: Stage | None, new: Stage) -> str:
        if old is None:
            return f"parallelism {new.parallelism}"
        if old.parallelism == new.parallelism:
            return f"parallelism {new.parallelism} (no change)"
        return f"parallelism {new.parallelism} (was {old.parallelism})"

    _run(session, "scale", target_pipeline, before,
         {"stage": name, "pipeline": target_pipeline, "parallelism": parallelism}, dry_run,
         lambda dry: session.plane.scale(target_pipeline, name, parallelism, dry_run=dry,
                                         expected_version=version),
         changed)
