"""`pipelinectl drill run|validate FILE.yaml`: incident rehearsals as files, reported like tests.

The file is checked completely before anything runs (every error with its line
and field, exit 2). A run prints each step with its outcome and timing as it
ends (on stderr with -o json/yaml/jsonl, whose stdout is the whole journal),
writes a JUnit report with --junit, and exits 0 (passed), 8 (the hypothesis was
not met), 9 (a step or a rollback failed) or 130 (interrupted; rollbacks ran).
The format is docs/drills.md.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from pipelinectl.cli.commands import CONTEXT_SETTINGS
from pipelinectl.errors import UsageError

from .session import current

if TYPE_CHECKING:
    from pipelinectl.drill.loader import Drill
    from pipelinectl.drill.runner import StepResult

app = typer.Typer(
    no_args_is_help=True,
    context_settings=CONTEXT_SETTINGS,
)

_VARS = typer.Option(None, "--var", metavar="NAME=VALUE", help="Set a variable the drill declares (repeatable).")
_FILE = typer.Argument(..., metavar="FILE.yaml", help="The drill file.")


@app.callback()
def _group() -> None:
    """Run and validate drill files: inject a fault, act, check, roll back — reported like a test.

    Examples:

      pipelinectl drill validate docs/drills/pause-resume.yaml

      pipelinectl drill run docs/drills/pause-resume.yaml --junit report.xml
    """


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"--var: '{pair}' must look like NAME=VALUE")
        out[name.strip()] = value
    return out


def _load(path: str, pairs: list[str] | None) -> Drill:
    from pipelinectl.drill.loader import DrillFileError, load

    try:
        return load(path, _overrides(pairs))
    except DrillFileError as exc:
        session = current()
        for line in exc.errors:
            sys.stderr.write(f"error: {session.redact(line)}\n")
        raise typer.Exit(2) from None


@app.command("validate")
def validate(path: str = _FILE, var: list[str] | None = _VARS) -> None:
    """Check a drill file without running it: every error with its line and field (exit 2).

    Examples:

      pipelinectl drill validate docs/drills/poison-redrive.yaml
    """
    drill = _load(path, var)
    session = current()
    summary = {"kind": "DrillValidation", "file": path, "valid": True, "title": drill.title,
               "probes": len(drill.probes), "method": len(drill.method), "rollbacks": len(drill.rollbacks),
               "variables": drill.variables}
    if session.options.machine:
        session.renderer.emit_mapping(summary)
        return
    counts = ", ".join(_count(n, word) for n, word in ((len(drill.probes), "probe"), (len(drill.method), "method step"),
                                                        (len(drill.rollbacks), "rollback")))
    sys.stdout.write(f"{path}: valid — '{drill.title}': {counts}\n")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


PHASES = {"hypothesis-before": "hypothesis (before)", "method": "method", "hypothesis-after": "hypothesis (after)",
          "rollback": "rollback"}
MARKS = {"passed": "ok", "failed": "FAILED", "errored": "ERROR", "timed_out": "TIMEOUT", "interrupted": "INTERRUPTED",
         "skipped": "skipped"}
VERDICTS = {"passed": "PASSED", "hypothesis_not_met": "HYPOTHESIS NOT MET", "failed": "FAILED",
            "rollback_failed": "FAILED (a rollback did not pass)", "interrupted": "INTERRUPTED"}


def _check_writable(path: str, option: str) -> None:
    """A report that cannot be written is refused before the drill runs, not discovered after it."""
    from pathlib import Path

    target = Path(path)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"{option}: cannot write {path}: {exc.strerror or exc}") from None
    if not existed:
        target.unlink()


def _write(stream: Any, text: str) -> None:
    """Write progress; a closed pipe (`drill run ... | head`) silences it but never changes the drill's outcome."""
    import os

    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass


def _printer(stream: Any, total: int, redact: Any) -> tuple[Any, Any]:
    """(starting, report): one line per step; on a terminal a `running` line first, replaced when it ends."""
    width = len(str(total))
    live = _isatty(stream)

    def starting(record: StepResult, position: int) -> None:
        if live:
            _write(stream, redact(f"[{position + 1:>{width}}/{total}] {PHASES[record.phase]:<19} {'running':<11} "
                                  f"{'':>7}  {record.name}"))

    def report(record: StepResult, position: int) -> None:
        mark = MARKS[record.outcome] + (" (continued)" if record.tolerated else "")
        line = (f"[{position + 1:>{width}}/{total}] {PHASES[record.phase]:<19} {mark:<11} "
                f"{record.duration_seconds:>6.2f}s  {record.name}")
        if record.message and not record.ok:
            line += f"\n{'':>{2 * width + 4}}{record.message}"
        _write(stream, ("\r\x1b[2K" if live and record.started_at else "") + redact(line) + "\n")

    return starting, report


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@app.command("run")
def run(
    path: str = _FILE,
    junit: str | None = typer.Option(None, "--junit", metavar="FILE.xml", help="Write a JUnit XML report here."),
    var: list[str] | None = _VARS,
    journal_path: str | None = typer.Option(None, "--journal", metavar="FILE.json",
                                            help="Also write the whole journal (the -o json document) here."),
) -> None:
    """Run a drill: hypothesis, method, hypothesis again; rollbacks always run.

    Exit codes: 0 passed, 8 hypothesis not met, 9 a step or rollback failed,
    130 interrupted (after its rollbacks ran), 2 invalid file.

    Examples:

      pipelinectl drill run docs/drills/pause-resume.yaml --junit reports/drill.xml

      pipelinectl drill run drill.yaml --var stage=ship -o json > journal.json
    """
    from pipelinectl.drill.runner import Runner

    drill = _load(path, var)
    for report_path, option in ((junit, "--junit"), (journal_path, "--journal")):
        if report_path:
            _check_writable(report_path, option)
    session = current()
    context = session.context_name
    session.context  # noqa: B018 - an unknown context fails here, before any step runs
    machine = session.options.machine
    stream = sys.stderr if machine else sys.stdout
    total = 2 * len(drill.probes) + len(drill.method) + len(drill.rollbacks)
    _write(stream, f"drill '{drill.title}' ({path}) on context '{context}'\n")
    starting, report = _printer(stream, total, session.redact)
    runner = Runner(drill, context=context, config=session.options.config, request_timeout=session.options.timeout,
                    report=report, starting=starting, confirm_context=session.options.confirm_context)
    journal = runner.run()
    session.audit("drill run", drill.title, {"file": path, "steps": len(journal["steps"]),
                                             "interrupted_by": journal["interrupted_by"]},
                  f"{journal['status']} (exit {journal['exit_code']})")  # each verb step audits itself too
    if junit:
        from pipelinectl.drill.junit import write

        write(journal, junit)
    if journal_path:
        import json
        from pathlib import Path

        Path(journal_path).write_text(json.dumps(journal, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(journal["counts"].items()))
    _write(stream, f"drill {VERDICTS[journal['status']]} in {journal['duration_seconds']:.1f}s "
                   f"(exit {journal['exit_code']}; {counts})" + (f"; JUnit report: {junit}" if junit else "")
                   + (f"; journal: {journal_path}" if journal_path else "") + "\n")
    if machine:
        import io

        buffer = io.StringIO()
        session.renderer.stream = buffer
        session.renderer.emit_mapping(journal)
        _write(sys.stdout, buffer.getvalue())
    raise typer.Exit(journal["exit_code"])  # the drill's code, whatever happened to the output
