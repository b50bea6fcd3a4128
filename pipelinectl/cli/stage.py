"""Stage control: pause, resume, drain, scale (alias resize), limit, disable, enable.

Runbook verbs: idempotent, so they never prompt (pausing a paused stage is a
no-op that says so), except on a protected context, where every mutation does.
Each checks the stage against the plane first (an unknown stage is refused,
naming the known ones), supports --dry-run (a plan with -o json|yaml), writes
one audit line, and prints one line saying what changed. `change_stage` is that
flow without the printing; the dashboard (pipelinectl.ui) and `apply` (through
`plan_stage`) call it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli import plans
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
from pipelinectl.errors import ConflictError, UnsupportedError, UsageError
from pipelinectl.timeparse import format_time

if TYPE_CHECKING:
    from pipelinectl.cli.session import Session
    from pipelinectl.model import RateLimit, Stage

STAGE_HELP = "The stage, as STAGE or stage=STAGE."
VERBS = ("pause", "resume", "drain", "scale", "limit", "disable", "enable")
MAX_REASON = 2000  # as the API takes it


@dataclass
class StageChange:
    """What a stage verb did (or, on a dry run, would do): the stage as read before and as the plane answered."""

    verb: str
    pipeline: str
    stage: str
    before: Stage | None  # None: the driver cannot read a stage
    after: Stage
    dry_run: bool
    summary: str  # "paused (was running)", "parallelism 4 (was 2)", "rate limit 50/s, burst 50 (was none)"

    @property
    def target(self) -> str:
        return f"{self.pipeline}/{self.stage}"


def change_stage(session: Session, verb: str, stage: str, *, pipeline: str | None = None,
                 until: str | None = None, parallelism: int | None = None, dry_run: bool = False,
                 expected_version: int | None = None, expect_current: int | None = None,
                 rate: str | None = None, burst: int | None = None, clear: bool = False,
                 reason: str | None = None) -> StageChange:
    """The one flow behind the stage verbs (pause ... enable), for the CLI and the dashboard alike.

    validate (the stage against the plane, --until, the parallelism range, --expect-current,
    the rate and burst, the reason) ->
    dry run on the plane | call -> audit. Nothing here prints: the caller shows the StageChange.
    A scale sends the stage version it reads, or `expected_version` when the caller read it
    earlier (the dashboard before its confirmation, a plan), so a change made meanwhile is a
    conflict; the other verbs send `expected_version` only when given (a plan, the dashboard).
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
    if expect_current is not None and verb != "scale":
        raise UsageError("--expect-current goes with scale")
    limit = _check_limit(rate, burst, clear) if verb == "limit" else None
    if verb == "disable":
        reason = (reason or "").strip()
        if not reason:
            raise UsageError("disable needs --reason TEXT: why the stage is bypassed (shown in status)",
                             hint="pipelinectl disable STAGE --reason 'vendor outage, INC-123'")
        if len(reason) > MAX_REASON:
            raise UsageError(f"--reason is longer than {MAX_REASON} characters")
    target_pipeline = session.pipeline(pipeline)
    before = check_stage(session, target_pipeline, name)
    if expect_current is not None:
        _check_current(session, name, before, expect_current)
    arguments: dict[str, Any] = {"stage": name, "pipeline": target_pipeline}
    plane = session.plane
    if verb == "pause":
        if resume_at is not None:
            arguments["until"] = resume_at.isoformat().replace("+00:00", "Z")

        def call(dry: bool) -> Stage:
            return plane.pause(target_pipeline, name, until=resume_at, dry_run=dry, expected_version=expected_version)
    elif verb == "resume":
        def call(dry: bool) -> Stage:
            return plane.resume(target_pipeline, name, dry_run=dry, expected_version=expected_version)
    elif verb == "drain":
        def call(dry: bool) -> Stage:
            return plane.drain(target_pipeline, name, dry_run=dry, expected_version=expected_version)
    elif verb == "limit":
        arguments.update({"clear": True} if limit is None else {"rate": limit.rate, "burst": limit.burst})

        def call(dry: bool) -> Stage:
            return plane.limit(target_pipeline, name, limit, dry_run=dry, expected_version=expected_version)
    elif verb == "disable":
        arguments["reason"] = reason

        def call(dry: bool) -> Stage:
            assert reason is not None
            return plane.disable(target_pipeline, name, reason, dry_run=dry, expected_version=expected_version)
    elif verb == "enable":
        def call(dry: bool) -> Stage:
            return plane.enable(target_pipeline, name, dry_run=dry, expected_version=expected_version)
    else:
        assert parallelism is not None
        if before is not None and not before.min_parallelism <= parallelism <= before.max_parallelism:
            raise UsageError(
                f"--parallelism {parallelism} is outside [{before.min_parallelism}, {before.max_parallelism}] "
                f"for stage '{name}'",
                hint=f"it runs {before.parallelism} now",
            )
        arguments["parallelism"] = parallelism
        if expect_current is not None:
            arguments["expect_current"] = expect_current
        version = expected_version
        if version is None and before is not None:
            version = before.version

        def call(dry: bool) -> Stage:
            return plane.scale(target_pipeline, name, parallelism, dry_run=dry, expected_version=version)

    changed = {"scale": _parallelism_change, "limit": _limit_change}.get(verb, _state_change)
    if dry_run:
        after = call(True)
    else:
        after = mutate(session, verb=verb, target=f"{target_pipeline}/{name}", arguments=arguments,
                       call=lambda: call(False),
                       summary=lambda s: f"{s.state} parallelism={s.parallelism} version={s.version}")
    return StageChange(verb=verb, pipeline=target_pipeline, stage=name, before=before, after=after,
                       dry_run=dry_run, summary=changed(before, after))


def _check_limit(rate: str | None, burst: int | None, clear: bool) -> RateLimit | None:
    """`limit`'s options: --rate R [--burst N] or --clear; the RateLimit (None: clear), read by pipelinectl.rates."""
    from pipelinectl.rates import rate_limit

    if clear:
        if rate is not None or burst is not None:
            raise UsageError("--clear removes the rate limit; it takes no --rate or --burst")
        return None
    if rate is None:
        raise UsageError("limit needs --rate R (e.g. 50/s, 3000/m, 1/h) or --clear",
                         hint="pipelinectl limit STAGE --rate 50/s [--burst N]")
    return rate_limit(rate, burst)


def _check_current(session: Session, name: str, before: Stage | None, expected: int) -> None:
    """`scale --expect-current M` (kubectl's --current-replicas): the parallelism read must be M."""
    if before is None:
        raise UnsupportedError.verb(session.plane.driver, "scale --expect-current",
                                    "this driver cannot read a stage's parallelism")
    if before.parallelism != expected:
        raise ConflictError(f"stage '{name}' runs parallelism {before.parallelism}, not {expected} "
                            "(--expect-current); nothing was changed",
                            hint="someone changed it since; check 'pipelinectl status -o wide'")


@plans.builder(*VERBS)
def plan_stage(session: Session, verb: str, target: dict[str, Any], arguments: dict[str, Any]) -> plans.Draft:
    """A stage verb's plan: it relies on the stage's state, parallelism and version, which it sends as If-Match."""
    until = arguments.get("until")
    if until is not None:  # `--until 30m` becomes the time it means now: the plan resumes at that time
        until = format_time(parse_time(until, "--until", default="future"), timespec="seconds")
    parallelism, expect_current = arguments.get("parallelism"), arguments.get("expect_current")
    knobs = {k: arguments.get(k) for k in ("rate", "burst", "reason")}
    knobs["clear"] = bool(arguments.get("clear"))
    change = change_stage(session, verb, target.get("stage") or "", pipeline=target.get("pipeline"), until=until,
                          parallelism=parallelism, expect_current=expect_current, dry_run=True, **knobs)
    before = change.before
    preconditions = [] if before is None else [plans.Precondition(
        f"stage/{change.stage}", {"version": before.version, "state": before.state, "parallelism": before.parallelism})]

    def perform(yes: bool) -> None:
        done = change_stage(session, verb, change.stage, pipeline=change.pipeline, until=until, parallelism=parallelism,
                            expect_current=expect_current, expected_version=before.version if before else None,
                            **knobs)
        _report(session, done)
        _after(session, done)

    chosen = {"until": until, "parallelism": parallelism, "expect_current": expect_current}
    if verb == "limit":  # the rate and burst as the plane will apply them (a default burst made explicit)
        limit = change.after.rate_limit
        chosen.update({"clear": True} if limit is None else {"rate": limit.rate, "burst": limit.burst})
    elif verb == "disable":
        chosen["reason"] = knobs["reason"]
    return plans.Draft(target={"pipeline": change.pipeline, "stage": change.stage},
                       arguments={k: v for k, v in chosen.items() if v is not None}, preconditions=preconditions,
                       summary=f"{verb} {change.target} would leave it {change.summary}", result=change.after,
                       perform=perform)


def _describe(stage: Stage) -> str:
    text = stage.state
    if stage.state == "paused" and stage.paused_until is not None:
        text += f" until {format_time(stage.paused_until, timespec='seconds')}"
    if stage.state == "disabled" and stage.disabled_reason:
        text += f" ({stage.disabled_reason})"
    return text


def describe_limit(stage: Stage) -> str:
    limit = stage.rate_limit
    return "no rate limit" if limit is None else f"rate limit {limit.rate}, burst {limit.burst}"


def _limit_change(before: Stage | None, after: Stage) -> str:
    if before is None:
        return describe_limit(after)
    if before.rate_limit == after.rate_limit:
        return f"{describe_limit(after)} (no change)"
    was = "none" if before.rate_limit is None else describe_limit(before).removeprefix("rate limit ")
    return f"{describe_limit(after)} (was {was})"


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
    if plans.wanted(session, dry_run):
        plans.emit(session, "pause", target={"pipeline": pipeline, "stage": stage}, arguments={"until": until})
        return
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
    if plans.wanted(session, dry_run):
        plans.emit(session, "resume", target={"pipeline": pipeline, "stage": stage}, arguments={})
        return
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
    if plans.wanted(session, dry_run):
        plans.emit(session, "drain", target={"pipeline": pipeline, "stage": stage}, arguments={})
        return
    change = change_stage(session, "drain", stage, pipeline=pipeline, dry_run=dry_run)
    _report(session, change)
    _after(session, change)


def _after(session: Session, change: StageChange) -> None:
    """What the operator should know next, on stderr: a drained stage stays paused; an enabled one has items to replay."""
    if change.dry_run:
        return
    if change.verb == "drain":  # the stages before it back up until someone resumes it
        session.info(f"drained, '{change.stage}' stays paused and the stages before it back up; "
                     f"when done: pipelinectl resume {change.stage}")
    elif change.verb == "disable":
        session.info(f"items now flow past '{change.stage}' unprocessed, each recorded; after "
                     f"'pipelinectl enable {change.stage}', process them with "
                     f"'pipelinectl replay --skipped {change.stage}'")
    elif change.verb == "enable" and change.after.bypassed:
        from pipelinectl.cli.common import plural

        session.info(f"{plural(change.after.bypassed, 'item')} went past '{change.stage}' unprocessed while it was "
                     f"disabled; process them with 'pipelinectl replay --skipped {change.stage}'")


def scale(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    count: int | None = typer.Argument(None, metavar="[N]", help="The parallelism, as `scale STAGE N` (or --parallelism N)."),
    parallelism: int | None = typer.Option(None, "--parallelism", "--replicas", metavar="N",
                                           help="Workers for the stage, between its min and max parallelism."),
    expect_current: int | None = typer.Option(
        None, "--expect-current", "--current-replicas", metavar="M",
        help="Refuse (exit 4) unless the stage runs parallelism M now."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Set a stage's parallelism, live (alias: resize).

    N must lie between the stage's min and max parallelism (see 'pipelinectl status -o wide'). The
    change carries the stage version that was read, so a concurrent change is a
    conflict (exit 4), never a lost update; --expect-current M also refuses unless
    the stage runs M now (as kubectl's --current-replicas).

    Examples:

      pipelinectl scale ship 8 --expect-current 4 -p orders

      pipelinectl resize stage=ship --parallelism 2 --dry-run -o yaml > plan.yaml
    """
    if count is not None and parallelism is not None and count != parallelism:
        raise UsageError(f"scale: N is {count} but --parallelism is {parallelism}; give one of them")
    parallelism = count if count is not None else parallelism
    if parallelism is None:
        raise UsageError("scale: the parallelism is missing", hint="pipelinectl scale STAGE N (or --parallelism N)")
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, "scale", target={"pipeline": pipeline, "stage": stage},
                   arguments={"parallelism": parallelism, "expect_current": expect_current})
        return
    _report(session, change_stage(session, "scale", stage, pipeline=pipeline, parallelism=parallelism,
                                  dry_run=dry_run, expect_current=expect_current))


def limit(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    rate: str | None = typer.Option(None, "--rate", metavar="RATE",
                                    help="Items per second, minute or hour: 50/s, 3000/m, 1/h (more than zero)."),
    burst: int | None = typer.Option(None, "--burst", metavar="N",
                                     help="Items that may start back to back after a quiet spell "
                                          "(default: one second's worth of the rate, at least 1)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the stage's rate limit."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Set or clear a stage's rate limit, live (a token bucket on the items it takes).

    The plane applies it at once, without a restart, and keeps it across restarts;
    'pipelinectl status' shows it. Setting the limit a stage already has is a no-op.

    Examples:

      pipelinectl limit charge --rate 3000/m --burst 20 -p orders

      pipelinectl limit stage=charge --clear --dry-run -o yaml > plan.yaml
    """
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, "limit", target={"pipeline": pipeline, "stage": stage},
                   arguments={"rate": rate, "burst": burst, "clear": clear or None})
        return
    _report(session, change_stage(session, "limit", stage, pipeline=pipeline, rate=rate, burst=burst, clear=clear,
                                  dry_run=dry_run))


def disable(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    reason: str | None = typer.Option(None, "--reason", metavar="TEXT",
                                      help="Why (required; shown in status beside the state)."),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Bypass a stage: items flow on to the next stage unprocessed, each one recorded.

    Unlike pause, which holds items (and backs up the stages before it), a disabled
    stage lets the pipeline flow without it. 'pipelinectl enable' turns it back on;
    'pipelinectl replay --skipped STAGE' then processes exactly the bypassed items,
    once. A disabled stage refuses pause, resume and drain until it is enabled.

    Examples:

      pipelinectl disable enrich --reason "geo API down, INC-4411" -p orders

      pipelinectl disable stage=enrich --reason "bad deploy" --dry-run
    """
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, "disable", target={"pipeline": pipeline, "stage": stage}, arguments={"reason": reason})
        return
    change = change_stage(session, "disable", stage, pipeline=pipeline, reason=reason, dry_run=dry_run)
    _report(session, change)
    _after(session, change)


def enable(
    stage: str = typer.Argument(..., metavar="STAGE", help=STAGE_HELP),
    pipeline: str | None = pipeline_option(),
    dry_run: bool = dry_run_option(),
) -> None:
    """Turn a disabled stage back on: it processes new items again.

    Items it bypassed while disabled stay recorded until 'pipelinectl replay
    --skipped STAGE' processes them. Enabling a stage that is not disabled is a no-op.

    Examples:

      pipelinectl enable enrich -p orders

      pipelinectl enable enrich && pipelinectl replay --skipped enrich --yes
    """
    session = current()
    if plans.wanted(session, dry_run):
        plans.emit(session, "enable", target={"pipeline": pipeline, "stage": stage}, arguments={})
        return
    change = change_stage(session, "enable", stage, pipeline=pipeline, dry_run=dry_run)
    _report(session, change)
    _after(session, change)
