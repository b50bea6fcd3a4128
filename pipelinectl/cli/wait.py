"""`pipelinectl wait`: block until a condition holds, so scripts wait for a state instead of sleeping.

One condition per run, parsed strictly (a typo is a usage error, exit 2, before
anything is sent). The target is read once up front: a stage, saga or replay
job that does not exist fails fast (exit 3). Then it polls with backoff until
the condition holds (exit 0) or `--for-timeout` passes (exit 8, "condition not
met"), printing the last observed value either way. A saga or replay job that
reaches a final status other than the one awaited ends the wait at once (8).

`--timeout` stays the global per-request deadline; how long to wait in total is
`--for-timeout` (alias `--max-wait`).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any

import typer

from pipelinectl.errors import (
    ConditionNotMetError,
    NotFoundError,
    PipelinectlError,
    UsageError,
)

from .session import current

# key -> (what it is read from, value type)
KEYS: dict[str, tuple[str, str]] = {
    "state": ("stage", "enum"),
    "queue_depth": ("stage", "int"),
    "in_flight": ("stage", "int"),
    "dlq": ("dlq", "int"),
    "saga": ("saga", "enum"),
    "replay": ("replay", "enum"),
}
NUMERIC_OPS = ("<=", ">=", "==", "!=", "<", ">", "=")
ENUM_OPS = ("==", "!=", "=")
# Statuses a saga / replay job never leaves: waiting for another one is hopeless.
FINAL = {
    "saga": ("completed", "compensated"),
    "replay": ("completed", "cancelled", "failed"),
}
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|==|!=|<|>|=)\s*(\S.*?)\s*$")
EXAMPLES = ("e.g. state=paused, 'queue_depth<=10', 'in_flight<=0', 'dlq>=1', saga=compensated, replay=completed"
            " (quote < and > in a shell)")


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: str | int
    text: str

    @property
    def subject(self) -> str:
        return KEYS[self.key][0]

    def holds(self, observed: Any) -> bool:
        if observed is None:
            return False
        ops = {
            "=": lambda a, b: a == b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        }
        return bool(ops[self.op](observed, self.value))


def parse_condition(text: str) -> Condition:
    """`key op value`, strictly: unknown keys, operators or values are usage errors naming the choices."""
    from pipelinectl.model import REPLAY_STATES, SAGA_STATUSES, STAGE_HEALTH

    match = _CONDITION.match(text or "")
    if not match:
        raise UsageError(f"--for: '{text}' is not a condition ({EXAMPLES})")
    key, op, raw = match.groups()
    if key not in KEYS:
        raise UsageError(f"--for: unknown condition '{key}' (choose from {', '.join(KEYS)})")
    kind = KEYS[key][1]
    if kind == "int":
        if op not in NUMERIC_OPS:
            raise UsageError(f"--for: '{op}' cannot compare {key}")
        if not re.fullmatch(r"\d+", raw):
            raise UsageError(f"--for: {key} compares to a whole number >= 0, got '{raw}'")
        return Condition(key, op, int(raw), f"{key}{op}{raw}")
    if op not in ENUM_OPS:
        raise UsageError(f"--for: {key} takes = or != (a status is not ordered), got '{op}'")
    allowed = {"state": STAGE_HEALTH, "saga": SAGA_STATUSES, "replay": REPLAY_STATES}[key]
    if raw not in allowed:
        raise UsageError(f"--for: '{raw}' is not a {key} (choose from {', '.join(allowed)})")
    return Condition(key, op, raw, f"{key}{op}{raw}")


def wait_target(text: str | None, subject: str) -> str | None:
    """`charge`, `stage/charge` or `stage=charge` (saga/ID, replayjob/ID likewise: pipelinectl.cli.targets)."""
    if text is None:
        return None
    from .targets import target

    return target(text, {"replay": "replayjob"}.get(subject, subject))


def wait(
    target: str | None = typer.Argument(None, metavar="[TARGET]",
                                        help="Stage name (state, queue_depth, in_flight), saga ID or replay job ID."),
    condition: str = typer.Option(..., "--for", metavar="CONDITION",
                                  help=f"What must hold: {EXAMPLES}."),
    pipeline: str | None = typer.Option(None, "-p", "--pipeline", metavar="PIPELINE",
                                        help="Pipeline (default: the context's, or the plane's only one)."),
    stage: str | None = typer.Option(None, "--stage", help="The stage (same as TARGET); dlq: count only its items."),
    error_kind: str | None = typer.Option(None, "--error-kind", help="dlq: count only this error kind."),
    for_timeout: str = typer.Option("60s", "--for-timeout", "--max-wait", metavar="DURATION",
                                    help="Give up after this long (exit 8): 30s, 5m, 1h. --timeout stays per request."),
    interval: float = typer.Option(0.5, "--interval", min=0.05, max=60, metavar="SECONDS",
                                   help="First pause between polls; it grows to 5 s (or this, if larger)."),
) -> None:
    """Wait until a condition holds; exit 0 when it does, 8 when --for-timeout passes first.

    The target must exist (exit 3 otherwise). The last observed value is printed either way.

    Examples:

      pipelinectl wait charge --for state=paused --for-timeout 2m

      pipelinectl wait --for 'dlq>=1' --stage validate -o json
    """
    from pipelinectl.timeparse import parse_duration

    cond = parse_condition(condition)
    if stage is not None:
        from .targets import target as parse_target

        stage = parse_target(stage, "stage")
    limit = parse_duration(for_timeout, option="--for-timeout").total_seconds()
    subject = cond.subject
    name = wait_target(target, subject)
    if subject == "dlq":
        if name is not None:
            raise UsageError("dlq conditions take no TARGET; use --stage and --error-kind")
    else:
        if subject == "stage" and stage is not None:  # `wait --for state=paused --stage charge` reads naturally
            if name is not None and name != stage:
                raise UsageError(f"stage given twice: TARGET '{name}' and --stage '{stage}'")
            name, stage = stage, None
        if name is None:
            raise UsageError(f"{cond.key} needs a TARGET: the {subject}" + (" name (or --stage)" if subject == "stage"
                                                                            else " ID"))
        if stage or error_kind:
            raise UsageError("--stage and --error-kind go with dlq conditions only" if subject != "stage"
                             else "--error-kind goes with dlq conditions only")
    if error_kind is not None:
        from pipelinectl.model import ERROR_KINDS

        if error_kind not in ERROR_KINDS:
            raise UsageError(f"--error-kind: '{error_kind}' is not an error kind (choose from {', '.join(ERROR_KINDS)})")

    session = current()
    # one request never outlasts the whole wait: --timeout is capped by --for-timeout
    session.options.timeout = min(session.options.timeout, max(limit, 1.0))
    pipe = session.pipeline(pipeline)
    observe = _observer(session, pipe, cond, name, stage, error_kind)
    label = _label(pipe, cond, name, stage, error_kind)

    started = time.monotonic()
    deadline = started + limit
    value = observe()  # NotFoundError here: the target does not exist -> exit 3 at once
    polls = 1
    pause = interval
    last_error: str | None = None
    last_kind: str | None = None
    while True:
        if cond.holds(value):
            _report(session, label, cond, value, True, time.monotonic() - started, polls)
            return
        if cond.subject in FINAL and value in FINAL[cond.subject] and cond.op != "!=":
            _report(session, label, cond, value, False, time.monotonic() - started, polls)
            raise ConditionNotMetError(f"{label} is {value}, a final status: {cond.text} can no longer hold")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _report(session, label, cond, value, False, time.monotonic() - started, polls)
            raise ConditionNotMetError(
                f"{cond.text} not met within {for_timeout} ({label}: last observed {_shown(cond, value)})"
                + (f"; last poll failed: {last_error}" if last_error else ""))
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, max(5.0, interval))
        try:
            value = observe()
            polls += 1
            last_error = last_kind = None
        except NotFoundError:
            raise
        except PipelinectlError as exc:  # a blip while waiting: keep the last value, say it once per kind
            message = session.redact(exc.one_line())
            if last_kind != f"{type(exc).__name__}:{exc.code}":
                sys.stderr.write(f"warning: poll failed, still waiting: {message}\n")
            last_kind = f"{type(exc).__name__}:{exc.code}"
            last_error = message


def _observer(session: Any, pipe: str, cond: Condition, name: str | None, stage: str | None,
              error_kind: str | None) -> Any:
    plane = session.plane
    if cond.key == "state":
        return lambda: observed_state(plane.get_stage(pipe, name), cond.value)
    if cond.subject == "stage":
        return lambda: getattr(plane.get_stage(pipe, name), cond.key)
    if cond.subject == "saga":
        return lambda: plane.saga_show(pipe, name).status
    if cond.subject == "replay":
        return lambda: plane.replay_show(pipe, name).state
    from pipelinectl.model import DLQFilter

    if stage is not None:
        try:
            plane.get_stage(pipe, stage)
        except NotFoundError:
            raise NotFoundError(f"unknown stage '{stage}' in pipeline '{pipe}'", hint="see 'pipelinectl status'") from None
    selection = DLQFilter(pipeline=pipe, stage=stage, error_kind=error_kind)
    return lambda: plane.dlq_count(selection)


def observed_state(stage: Any, awaited: Any) -> str:
    """The state a `state` condition compares: as status shows it when waiting for `failing`
    (a running stage over the error threshold), else the stage's own state (a failing stage is running)."""
    from pipelinectl.model import stage_health

    return stage_health(stage) if awaited == "failing" else str(stage.state)


def _label(pipe: str, cond: Condition, name: str | None, stage: str | None, error_kind: str | None) -> str:
    if cond.subject == "stage":
        return f"stage {pipe}/{name}"
    if cond.subject in ("saga", "replay"):
        return f"{'replay job' if cond.subject == 'replay' else 'saga'} {name}"
    where = ", ".join(f"{k}={v}" for k, v in (("stage", stage), ("error-kind", error_kind)) if v)
    return f"DLQ of {pipe}" + (f" ({where})" if where else "")


def _shown(cond: Condition, value: Any) -> str:
    return f"{cond.key}={value}"


def _report(session: Any, label: str, cond: Condition, value: Any, met: bool, elapsed: float, polls: int) -> None:
    """The last observed value: one line on stdout, or a WaitResult object in machine output."""
    fmt = session.options.output
    if fmt in ("json", "yaml", "jsonl"):
        session.renderer.emit_mapping({
            "kind": "WaitResult", "condition": cond.text, "target": label, "met": met,
            "observed": value, "elapsed_seconds": round(elapsed, 3), "polls": polls,
        })
    elif fmt == "name":
        sys.stdout.write(f"waitresult/{'met' if met else 'not-met'}\n")
    elif met:  # not met: the error line on stderr carries the last observed value (said once, not twice)
        sys.stdout.write(f"{label}: {_shown(cond, value)} ({cond.text} met after {elapsed:.1f}s)\n")
    sys.stdout.flush()
