"""Stage control: pause, resume, drain, scale (alias resize).

Runbook verbs: idempotent, so they never prompt (pausing a paused stage is a
no-op that says so). Each checks the stage against the plane first (an unknown
stage is refused, naming the known ones), supports --dry-run, writes one audit
line, and prints one line saying what changed. `change_stage` is that flow
without the printing; the dashboard (pipelinectl.ui) calls it too.
"""

from __future__ import annotations

from dataclasses import dataclass
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
VERBS = ("pause", "resume", "drain", "scale")


@dataclass
class StageChange:
    """What a stage verb did (or, on a dry run, would do): the stage as read before and as the plane answered."""

    verb: str
    pipeline: str
    stage: str
    before: Stage | None  # None: the driver cannot read a stage
    after: Stage
    dry_run: bool
    summary: str  # "paused (was running)", "parallelism 4 (was 2)"

    @property
    def target(self) -> str:
        return f"{self.pipeline}/{self.stage}"


def change_stage(session: Session, verb: str, stage: str, *, pipeline: str | None = None,
                 until: str | None = None, parallelism: int | None = None, dry_run: bool = False,
                 expected_version: int | None = None) -> StageChange:
    """The one flow behind pause, resume, drain and scale, for the CLI and the dashboard alike.

    validate (the stage against the plane, --until, the parallelism range) -> dry run on the
    plane | call -> audit. Nothing here prints: the caller shows the StageChange. A scale sends
    the stage version it reads, or `expected_version` when the caller read it earlier (the
    dashboard, before its confirmation), so a change made meanwhile is a conflict.
    """
    if verb not in VERBS:
        raise UsageError(f"unknown stage verb '{verb}'", hint=f"choose from {', '.join(VERBS)}")
    name = stage_name(stage)
    resume_at = None
    if verb == "pause":
        resume_at = parse_time(until, "--until", default="future")
        if resume_at is not None:
            from datetime import UTC, datetime

            if resume_at <= datetime.now(UTC):
                raise UsageError(f"--until ({until}) is in the past", hint="give a future time, e.g. --until 30m")
    if verb == "scale":
        if parallelism is None:
            raise UsageError("scale needs --parallelism N")
        if parallelism < 0:
            raise UsageError(f"--parallelism must not be negative, got {parallelism}")
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    arguments: dict[str, Any] = {"stage": name, "pipeline": target_pipeline}
    plane = session.plane
    if verb == "pause":
        if resume_at is not None:
            arguments["until"] = resume_at.isoformat().replace("+00:00", "Z")

        def call(dry: bool) -> Stage:
            return plane.pause(target_pipeline, name, until=resume_at, dry_run=dry)
    elif verb == "resume":
        def call(dry: bool) -> Stage:
            return plane.resume(target_pipeline, name, dry_run=dry)
    elif verb == "drain":
        def call(dry: bool) -> Stage:
            return plane.drain(target_pipeline, name, dry_run=dry)
    else:
        assert parallelism is not None
        if before is not None and not before.min_parallelism <= parallelism <= before.max_parallelism:
            raise UsageError(
                f"--parallelism {parallelism} is outside [{before.min_parallelism}, {before.max_parallelism}] "
                f"for stage '{name}'",
                hint=f"it runs {before.parallelism} now",
            )
        arguments["parallelism"] = parallelism
        version = expected_version
        if version is None and before is not None:
            version = before.version

        def call(dry: bool) -> Stage:
            return plane.scale(target_pipeline, name, parallelism, dry_run=dry, expected_version=version)

    changed = _parallelism_change if verb == "scale" else _state_change
    if dry_run:
        after = call(True)
    else:
        after = mutate(session, verb=verb, target=f"{target_pipeline}/{name}", arguments=arguments,
                       call=lambda: call(False),
                       summary=lambda s: f"{s.state} parallelism={s.parallelism} version={s.version}")
    return StageChange(verb=verb, pipeline=target_pipeline, stage=name, before=before, after=after,
                       dry_run=dry_run, summary=changed(before, after))


def _describe(stage: Stage) -> str:
    text = stage.state
    if stage.state == "paused" and stage.paused_until is not None:
        text += f" until {format_time(stage.paused_until, timespec='seconds')}"
    return text


def _state_change(before: Stage | None, after: Stage) -> str:
    if before is None:
        return _describe(after)
    if before.state == after.state and before.paused_until == after.paused_until:
        return f"{_describe(after)} (no change)"
    return f"{_describe(after)} (was {_describe(before)})"


def _parallelism_change(before: Stage | None, after: Stage) -> str:
    if before is None:
        return f"parallelism {after.parallelism}"
    if before.parallelism == after.parallelism:
        return f"parallelism {after.parallelism} (no change)"
    return f"parallelism {after.parallelism} (was {before.parallelism})"


def _report(session: Session, change: StageChange) -> None:
    """One line saying what changed (or would); wide adds the stage row; machine formats get the Stage."""
    if change.dry_run:
        dry_run_note(session, f"{change.verb} {change.target} would leave it {change.summary}")
    else:
        say(session, f"stage {change.target}: {change.summary}")
    if session.options.output != "table":
        session.emit(change.after)


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
    _report(session, change_stage(session, "pause", stage, pipeline=pipeline, until=until, dry_run=dry_run))


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
    _report(session, change_stage(session, "resume", stage, pipeline=pipeline, dry_run=dry_run))


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
    change = change_stage(session, "drain", stage, pipeline=pipeline, dry_run=dry_run)
    _report(session, change)
    if not dry_run:
        # The stage stays paused after the drain: the stages before it back up until someone resumes it.
        session.info(f"drained, '{change.stage}' stays paused and the stages before it back up; "
                     f"when done: pipelinectl resume {change.stage}")


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
    _report(session, change_stage(session, "scale", stage, pipeline=pipeline, parallelism=parallelism,
                                  dry_run=dry_run))
