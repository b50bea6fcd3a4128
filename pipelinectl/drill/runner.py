"""Run a drill: hypothesis, method, hypothesis again, and rollbacks on every path.

Order and outcome (docs/drills.md):
1. The hypothesis's probes run; if one does not pass, the method is skipped (exit 8).
2. The method's steps run in order; one that fails or errors (and does not
   `continue_on_failure`) stops the method (exit 9), and the hypothesis is not re-checked.
3. The probes run again; one that does not pass means exit 8.
4. The rollbacks ALWAYS run, all of them, whatever happened above — after a
   failure, after Ctrl-C or SIGTERM (further signals are noted and ignored while
   they run; each is still bounded by its own timeout). SIGHUP (a closed terminal) counts as an interrupt too. A rollback that does not
   pass makes the drill fail with exit 9, even if everything else passed.
An interrupted drill exits 130 once its rollbacks have run (9 if one of them failed).

Steps run as child processes in their own session, stdin closed: a verb is
`python -m pipelinectl` with the drill's context and config (never a prompt: a
verb that asks needs `yes: true`, which passes --yes); a shell step is `/bin/sh -c`.
A step's timeout kills its whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelinectl.errors import ExitCode, UsageError

from .loader import MAX_SLEEP, WAIT_GRACE, Drill, Step, split_args, substitute

TAIL = 4000  # characters of a step's stdout/stderr kept in the journal
KILL_GRACE = 3.0


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived while the hypothesis or method ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclass
class StepResult:
    phase: str  # hypothesis-before | method | hypothesis-after | rollback
    index: int
    name: str
    type: str
    line: int
    outcome: str = "skipped"  # passed | failed | errored | timed_out | interrupted | skipped
    tolerated: bool = False  # failed, but the step has continue_on_failure
    message: str = ""
    command: list[str] | None = None
    exit_code: int | None = None
    started_at: str | None = None
    duration_seconds: float = 0.0
    attempts: int = 0
    stdout: str = ""
    stderr: str = ""
    assertions: list[dict[str, Any]] = field(default_factory=list)
    captured: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "DrillStep", **asdict(self)}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tail(text: str) -> str:
    from pipelinectl.redact import redact

    text = redact(text or "")
    return text if len(text) <= TAIL else "…" + text[-TAIL:]


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class Runner:
    def __init__(self, drill: Drill, *, context: str | None = None, config: str | None = None,
                 request_timeout: float | None = None, report: Callable[[StepResult, int], None] | None = None,
                 pipelinectl: list[str] | None = None,
                 starting: Callable[[StepResult, int], None] | None = None,
                 confirm_context: str | None = None) -> None:
        self.drill = drill
        self.context = context
        self.config = config
        self.report = report or (lambda result, position: None)
        self.starting = starting or (lambda result, position: None)
        self.base = list(pipelinectl or [sys.executable, "-m", "pipelinectl"])
        self.globals: list[str] = []
        if context:
            self.globals += ["--context", context]
        if config:
            self.globals += ["--config", config]
        if request_timeout is not None:
            self.globals += ["--timeout", f"{request_timeout:g}"]
        if confirm_context:  # `drill run --confirm-context NAME` on a protected context: every step's confirmation
            self.globals += ["--confirm-context", confirm_context]
        self.variables = dict(drill.variables)
        self.shielded = False
        self.signals_during_rollback: list[int] = []
        self.results: list[StepResult] = []
        self.output = ""  # the last child's whole stdout

    # -- signals -----------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        """The first signal stops the hypothesis/method; from then on signals are noted, never obeyed."""
        if self.shielded:
            self.signals_during_rollback.append(signum)
            try:
                sys.stderr.write(f"drill: {signal.Signals(signum).name} received: the rollbacks run to the end first\n")
            except (OSError, ValueError):
                pass
            return
        self.shielded = True  # set before raising: no second signal can cut the way to the rollbacks
        raise Interrupted(signum)

    def _report(self, record: StepResult, position: int, *, start: bool = False) -> None:
        """Progress output never stops a drill (a closed pipe must not skip the rollbacks)."""
        try:
            (self.starting if start else self.report)(record, position)
        except (OSError, ValueError):
            pass

    # -- the drill ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        drill = self.drill
        started = time.monotonic()
        started_at = _now()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, self._on_signal)
        plan = ([("hypothesis-before", s) for s in drill.probes] + [("method", s) for s in drill.method]
                + [("hypothesis-after", s) for s in drill.probes] + [("rollback", s) for s in drill.rollbacks])
        records = [StepResult(phase=phase, index=s.index, name=s.name, type=s.type, line=s.line) for phase, s in plan]
        self.results = records
        status = "passed"
        interrupted: int | None = None
        running: int | None = None  # the position of the step under way
        try:
            try:
                stop_phase: str | None = None
                for position, ((phase, step), record) in enumerate(zip(plan, records, strict=True)):
                    if phase == "rollback":
                        break
                    if stop_phase is not None:
                        record.message = stop_phase
                        self._name(step, record)
                        self._report(record, position)
                        continue
                    self._name(step, record)
                    running = position
                    self._report(record, position, start=True)
                    self._run_step(step, record)
                    running = None
                    self._report(record, position)
                    if record.ok or record.tolerated:
                        continue
                    if phase.startswith("hypothesis"):
                        status = "hypothesis_not_met"
                        stop_phase = "skipped: the hypothesis was not met"
                    else:
                        status = "failed"
                        stop_phase = f"skipped: method step {step.index + 1} ({record.name}) did not pass"
                self.shielded = True  # the last statement that may be interrupted: rollbacks come next
            except Interrupted as exc:
                interrupted = exc.signum
                status = "interrupted"
                if running is not None:  # the step whose `running` line is shown ends it, even if it had not begun
                    record = records[running]
                    record.outcome, record.message = "interrupted", record.message or "interrupted"
                    record.started_at = record.started_at or _now()
                    self._report(record, running)
                try:
                    sys.stderr.write(f"drill: {signal.Signals(exc.signum).name}: stopping; running the rollbacks\n")
                except (OSError, ValueError):
                    pass
                for position, ((phase, step), record) in enumerate(zip(plan, records, strict=True)):
                    if phase != "rollback" and record.outcome == "skipped" and record.started_at is None:
                        record.message = record.message or "skipped: the drill was interrupted"
                        self._name(step, record)
                        self._report(record, position)
            # -- rollbacks: always, all of them, shielded from further signals --------------------------
            rollback_failed = False
            for position, ((phase, step), record) in enumerate(zip(plan, records, strict=True)):
                if phase != "rollback":
                    continue
                self._name(step, record)
                self._report(record, position, start=True)
                self._run_step(step, record)
                self._report(record, position)
                if not record.ok:
                    rollback_failed = True
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if rollback_failed:
            status = "rollback_failed"
        code = {
            "passed": ExitCode.OK, "hypothesis_not_met": ExitCode.CONDITION_NOT_MET,
            "failed": ExitCode.DRILL_FAILED, "rollback_failed": ExitCode.DRILL_FAILED,
            "interrupted": ExitCode.INTERRUPTED,
        }[status]
        counts: dict[str, int] = {}
        for record in records:
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        return {
            "kind": "DrillJournal",
            "title": drill.title,
            "description": drill.description,
            "file": drill.path,
            "context": self.context,
            "variables": self.variables,
            "started_at": started_at,
            "finished_at": _now(),
            "duration_seconds": round(time.monotonic() - started, 3),
            "status": status,
            "exit_code": int(code),
            "interrupted_by": signal.Signals(interrupted).name if interrupted else None,
            "signals_during_rollbacks": [signal.Signals(s).name for s in self.signals_during_rollback],
            "counts": counts,
            "steps": [r.to_dict() for r in records],
        }

    # -- one step ----------------------------------------------------------------------------------------
    def _name(self, step: Step, record: StepResult) -> None:
        """The step's name with the variables known now (a default name shows the real target)."""
        try:
            record.name = substitute(step.name, self.variables, shell=True)
        except UsageError:
            record.name = step.name

    def _run_step(self, step: Step, record: StepResult) -> None:
        self._name(step, record)
        record.started_at = _now()
        clock = time.monotonic()
        try:
            getattr(self, f"_do_{step.type}")(step, record)
        except Interrupted:
            record.outcome = "interrupted"
            record.message = record.message or "interrupted"
            raise
        except UsageError as exc:  # e.g. a variable whose capture step did not run
            record.outcome = "errored"
            record.message = exc.message
        except Exception as exc:  # e.g. the program could not start: this step errs, the drill goes on to rollbacks
            record.outcome = "errored"
            record.message = f"{type(exc).__name__}: {exc}"
        finally:
            record.duration_seconds = round(time.monotonic() - clock, 3)
            if step.continue_on_failure and record.outcome in ("failed", "errored", "timed_out"):
                record.tolerated = True

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["NO_COLOR"] = "1"
        env["PIPELINECTL"] = " ".join(_shell_quote(a) for a in self.base + self.globals)
        if self.context:
            env["PIPELINECTL_CONTEXT"] = self.context
        if self.config:
            env["PIPELINECTL_CONFIG"] = self.config
        for name, value in self.variables.items():
            env[f"DRILL_{name.upper()}"] = value
        return env

    def _exec(self, record: StepResult, argv: list[str], timeout: float) -> int | None:
        """Run a child in its own session with stdin closed; None when it was killed at its timeout."""
        record.command = _shown(argv)
        record.attempts += 1
        self.output = ""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self._env(), start_new_session=True, text=True, errors="replace")
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            record.stdout, record.stderr = _tail(out), _tail(err)
            record.outcome = "timed_out"
            record.message = f"timed out after {timeout:g}s (its process group was killed)"
            return None
        except BaseException:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=KILL_GRACE)
                record.stdout, record.stderr = _tail(out), _tail(err)
            except Exception:
                pass
            raise
        record.stdout, record.stderr = _tail(out), _tail(err)
        record.exit_code = proc.returncode
        self.output = out  # whole, for JSON; the journal keeps a tail
        return proc.returncode

    def _verb(self, step: Step, args: list[str], *, json_output: bool) -> list[str]:
        argv = self.base + self.globals + args
        if json_output:
            argv += ["-o", "json"]
        if step.yes:
            argv.append("--yes")
        return argv

    def _args(self, value: Any) -> list[str]:
        return [substitute(a, self.variables) for a in split_args(value)]

    def _expected(self, step: Step, record: StepResult, code: int | None) -> bool:
        if code is None:
            return False
        if code in step.expect_exit:
            return True
        record.outcome = "errored"
        why = _last_line(record.stderr) or _last_line(record.stdout) or "no output"
        record.message = f"exit {code} (expected {' or '.join(map(str, step.expect_exit))}): {why}"
        return False

    def _capture(self, step: Step, record: StepResult, document: Any) -> bool:
        from .expr import MISSING, parse_path, resolve

        for name, path in step.capture.items():
            value = resolve(parse_path(path), document)
            if value is MISSING or isinstance(value, (dict, list)) or value is None:
                record.outcome = "errored"
                record.message = f"capture {name}: '{path}' is {'missing' if value is MISSING else 'not a single value'}"
                return False
            text = str(value).lower() if isinstance(value, bool) else str(value)
            record.captured[name] = text
            self.variables[name] = text
        return True

    # -- step types ----------------------------------------------------------------------------------------
    def _do_run(self, step: Step, record: StepResult) -> None:
        argv = self._verb(step, self._args(step.spec), json_output=bool(step.capture))
        code = self._exec(record, argv, step.timeout)
        if not self._expected(step, record, code):
            return
        if step.capture:
            document = _json(record, self.output)
            if document is None or not self._capture(step, record, document):
                return
        record.outcome = "passed"
        record.message = _last_line(record.stdout)[:200]

    def _do_assert(self, step: Step, record: StepResult) -> None:
        from pipelinectl.timeparse import parse_duration

        from .expr import parse

        spec = step.spec
        that = spec["that"] if isinstance(spec["that"], list) else [spec["that"]]
        within = _seconds(substitute(spec.get("within"), self.variables), parse_duration)
        interval = _seconds(substitute(spec.get("interval"), self.variables), parse_duration) or 1.0
        deadline = time.monotonic() + (within or 0)
        args = self._args(spec["run"])
        while True:
            record.assertions = []
            record.outcome = "failed"
            code = self._exec(record, self._verb(step, args, json_output=True), step.timeout)
            if code is None:
                return
            if code in step.expect_exit:
                document = _json(record, self.output)
                if document is not None:
                    holds = True
                    for text in that:
                        expr = parse(substitute(text, self.variables))
                        ok, actual = expr.evaluate(document)
                        record.assertions.append({"that": expr.text, "ok": ok, "actual": _jsonable(actual)})
                        holds = holds and ok
                    if holds:
                        if not step.capture or self._capture(step, record, document):
                            record.outcome = "passed"
                            record.message = "; ".join(a["that"] for a in record.assertions)
                        return
                    bad = [a for a in record.assertions if not a["ok"]]
                    record.outcome = "failed"
                    record.message = "; ".join(f"{a['that']} (actual: {_short(a['actual'])})" for a in bad)
            else:
                self._expected(step, record, code)
            if time.monotonic() + interval > deadline:
                if within:
                    record.message = f"not within {within:g}s: {record.message}"
                return
            time.sleep(interval)

    def _do_wait(self, step: Step, record: StepResult) -> None:
        spec = substitute(step.spec, self.variables)
        args = ["wait"]
        if spec.get("target"):
            args.append(str(spec["target"]))
        args += ["--for", str(spec["for"])]
        if spec.get("stage"):
            args += ["--stage", str(spec["stage"])]
        if spec.get("error_kind"):
            args += ["--error-kind", str(spec["error_kind"])]
        limit = step.timeout
        if spec.get("timeout") is not None:
            timeout = spec["timeout"]
            args += ["--for-timeout", f"{timeout}s" if isinstance(timeout, (int, float)) else str(timeout)]
            if "${" in str(step.spec.get("timeout")):  # known only now: the process gets the wait's time and more
                from pipelinectl.timeparse import parse_duration

                limit = max(limit, (_seconds(timeout, parse_duration) or 0) + WAIT_GRACE)
        code = self._exec(record, self._verb(step, args, json_output=False), limit)
        if code is None:
            return
        if code == 0:
            record.outcome = "passed"
            record.message = _last_line(record.stdout)
        elif code == ExitCode.CONDITION_NOT_MET:
            record.outcome = "failed"
            record.message = _last_line(record.stderr).removeprefix("error: ") or _last_line(record.stdout)
        else:
            record.outcome = "errored"
            record.message = f"exit {code}: " + (_last_line(record.stderr) or "no output")

    def _do_sleep(self, step: Step, record: StepResult) -> None:
        from pipelinectl.timeparse import parse_duration

        seconds = _seconds(substitute(step.spec, self.variables), parse_duration) or 0.0
        if not 0 < seconds <= MAX_SLEEP:
            raise UsageError(f"sleep: must be more than 0 and at most {MAX_SLEEP:g} seconds, got {seconds:g}")
        record.command = ["sleep", f"{seconds:g}"]
        time.sleep(seconds)
        record.outcome = "passed"

    def _do_shell(self, step: Step, record: StepResult) -> None:
        command = substitute(step.spec, self.variables, shell=True)
        code = self._exec(record, ["/bin/sh", "-c", command], step.timeout)
        if self._expected(step, record, code):
            record.outcome = "passed"
            record.message = _last_line(record.stdout)[:200]


def _seconds(value: Any, parse_duration: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return parse_duration(str(value), option="duration").total_seconds()


def _json(record: StepResult, output: str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        record.outcome = "errored"
        record.message = "the verb's output is not JSON: " + (_last_line(record.stdout)[:120] or "empty")
        return None


def _jsonable(value: Any) -> Any:
    from .expr import MISSING

    return "missing" if value is MISSING else value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def _shell_quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _shown(argv: list[str]) -> list[str]:
    """The command as the journal shows it: `pipelinectl ...` instead of the interpreter path."""
    if len(argv) >= 3 and argv[1:3] == ["-m", "pipelinectl"]:
        return ["pipelinectl", *argv[3:]]
    return list(argv)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """TERM the child's whole process group, then KILL what is left after a grace period."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
