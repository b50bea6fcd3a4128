"""What the operator verbs share: the common options, stage validation, and the mutate flow.

The flow every mutating command follows, in this order, so refused input never
reaches the plane: validate -> (dry run | confirm) -> guard -> call -> audit -> render.
Destructive verbs confirm through `Session.confirm` (a prompt on a TTY; off a TTY
or in machine output they need --yes); runbook verbs (pause, resume, drain,
scale) are idempotent and do not ask. `Session.guard`, called by `mutate` for
every verb, is what no mutation passes without: on a protected context the
typed context name, a --confirm-context that names the context in use, and an
applied plan's preconditions read once more (cli/plans.py).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from pipelinectl.cli.session import Session, current
from pipelinectl.errors import ConflictError, NotFoundError, PipelinectlError, UnsupportedError
from pipelinectl.timeparse import parse_range, parse_time  # re-exported: the verbs' time options

if TYPE_CHECKING:
    from pipelinectl.model import Stage

T = TypeVar("T")

# -- shared options -------------------------------------------------------------------------------------
PIPELINE_HELP = "Pipeline to act on (default: the context's, or the plane's only pipeline)."


def pipeline_option() -> Any:
    return typer.Option(None, "-p", "--pipeline", metavar="PIPELINE", help=PIPELINE_HELP)


def yes_option() -> Any:
    return typer.Option(False, "--yes", "-y", help="Do not ask; required off a terminal and with -o json/yaml/jsonl.")


def dry_run_option() -> Any:
    return typer.Option(False, "--dry-run", help="Ask the plane what would happen; change nothing.")


# -- names and time forms (pipelinectl.timeparse does the parsing; errors name the option) -----------------
TIME_FORMS = "RFC 3339, a date or today/yesterday (midnight UTC), now, or relative (-2h)"  # what timeparse reads


def stage_name(text: str) -> str:
    """`STAGE`, `stage/STAGE` (from -o name) or the runbook form `stage=STAGE`."""
    from pipelinectl.cli.targets import target

    return target(text, "stage")


# -- validation against the plane -----------------------------------------------------------------------
def known_stages(session: Session, pipeline: str) -> list[str]:
    try:
        pipelines = session.plane.status(pipeline)
    except PipelinectlError:
        return []
    return [s.name for p in pipelines if p.name == pipeline for s in p.stages]


def check_stage(session: Session, pipeline: str, stage: str) -> Stage | None:
    """The stage as the plane has it now; an unknown stage is refused naming the known ones.

    Returns None when the driver cannot read a stage (it validates the verb itself).
    """
    try:
        return session.plane.get_stage(pipeline, stage)
    except UnsupportedError:
        return None
    except NotFoundError as exc:
        names = known_stages(session, pipeline)
        if not names and "pipeline" in exc.message.lower() and "stage" not in exc.message.lower():
            raise  # the pipeline itself is unknown: the plane's own message says so
        raise NotFoundError(
            f"unknown stage '{stage}' in pipeline '{pipeline}'",
            hint=f"known stages: {', '.join(names)}" if names else "see 'pipelinectl status'",
            request_id=exc.request_id,
        ) from None


def read_before(session: Session, verb: str, read: Callable[[], T]) -> T:
    """The state a verb reads before it acts (an unknown ID is refused before any write).

    A driver that cannot read it cannot do the verb either: the error names the verb the
    operator ran (`saga force-fail`), not the read behind it (`saga inspect`).
    """
    try:
        return read()
    except UnsupportedError:
        raise UnsupportedError.verb(getattr(session.plane, "driver", session.connection.driver), verb) from None


def request_id(session: Session) -> str | None:
    rid = getattr(session.plane, "last_request_id", None)
    return rid if isinstance(rid, str) else None


# -- the mutate flow ------------------------------------------------------------------------------------
def mutate(
    session: Session,
    *,
    verb: str,
    target: str,
    arguments: dict[str, Any],
    call: Callable[[], Any],
    summary: Callable[[Any], str],
) -> Any:
    """Call a mutating verb, then write its one audit line (on failure too), and return the result.

    `summary(result)` is the audit's result text. Validation, dry runs and the verb's own
    confirmation happen before this; what every mutation must pass whatever its verb (a protected
    context, --confirm-context, an applied plan's preconditions) is `Session.guard`, called here.
    """
    session.guard(action_text(verb, target, arguments))
    try:
        result = call()
    except PipelinectlError as exc:
        session.audit(verb, target, arguments, f"error: {exc.code}: {exc.message}",
                      exc.request_id or request_id(session))
        raise
    except KeyboardInterrupt:
        session.audit(verb, target, arguments, "interrupted", request_id(session))
        raise
    if _answered_from_memory(session):
        session.audit(verb, target, arguments, "already applied: the plane answered with its first result",
                      request_id(session))
        raise ConflictError(f"this plan was already applied: the plane answered '{verb}' with the result it gave "
                            "the first time; nothing was changed now",
                            hint="make a new plan (--dry-run -o yaml) to act again")
    session.audit(verb, target, arguments, summary(result), request_id(session))
    return result


def _answered_from_memory(session: Session) -> bool:
    """Under `apply`, the plane answered the plan's Idempotency-Key with its stored answer: an earlier apply acted.

    (A retry of this very request answered so is not that: the http driver tells them apart.)
    """
    from pipelinectl.plane import current_plan

    return current_plan() is not None and getattr(session.plane, "last_replayed_earlier", False) is True


def action_text(verb: str, target: str, arguments: dict[str, Any]) -> str:
    """`scale orders/charge (parallelism=4)`: what a protected context's confirmation names."""
    shown = []
    for key, value in arguments.items():
        if key in ("pipeline", "stage") or value in (None, False, "", [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(map(str, value)) if len(value) <= 3 else f"{len(value)} items"
        shown.append(f"{key}={value}")
    return f"{verb} {target}" + (f" ({', '.join(shown)})" if shown else "")


def say(session: Session, line: str) -> None:
    """A human result line on stdout (table/wide only; machine formats get the object)."""
    if session.options.output in ("table", "wide"):
        sys.stdout.write(session.redact(line) + "\n")


def dry_run_note(session: Session, what: str) -> None:
    """Every dry run says so: on stdout in table mode, on stderr otherwise (stdout stays machine-clean)."""
    line = f"dry run: {what}; nothing was changed"
    if session.options.output in ("table", "wide"):
        sys.stdout.write(session.redact(line) + "\n")
    else:
        sys.stderr.write(session.redact(line) + "\n")


def context_label(session: Session) -> str:
    return session.options.context or session.config.current_context or "?"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- watches --------------------------------------------------------------------------------------------
def watch_deadline(session: Session, interval: float) -> None:
    """Cap each request of a watch (retries included) at max(10 s, two intervals), before the driver exists:
    a plane that does not answer shows as unreachable within that, not after the whole --timeout."""
    session.options.timeout = min(session.options.timeout, max(10.0, 2 * interval))


# -- progress -------------------------------------------------------------------------------------------
class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, *, completed: int | None = None, total: int | None = None, description: str | None = None) -> None:
        pass


class _RichProgress:
    def __init__(self, progress: Any, task: Any) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def update(self, *, completed: int | None = None, total: int | None = None, description: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._progress.update(self._task, **kwargs)


@contextlib.contextmanager
def progress(session: Session, description: str, total: int | None) -> Iterator[_NoProgress | _RichProgress]:
    """A rich progress bar on stderr when a person is watching; nothing when piped or in machine output."""
    if session.options.machine or not (sys.stderr.isatty() and sys.stdout.isatty()):
        yield _NoProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, no_color=not session.color)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        yield _RichProgress(bar, bar.add_task(description, total=total))


__all__ = [
    "MAX_PAGE", "TIME_FORMS", "action_text", "check_stage", "context_label", "current", "dry_run_note",
    "dry_run_option", "emit_listing", "listing_plan", "mutate",
    "parse_range", "parse_time", "pipeline_option", "plural", "progress", "read_before", "request_id", "say",
    "stage_name", "watch_deadline", "yes_option",
]


# -- listings ------------------------------------------------------------------------------------------
MAX_PAGE = 1000  # the largest page the APIs serve


def listing_plan(session: Session, limit: int | None, table_default: int, default_page: int) -> tuple[int | None, int]:
    """(cap, page size) of a list verb: tables stop at `table_default` unless --limit says otherwise;
    -o jsonl/name stream everything page by page; a capped list asks for one page when it can."""
    streaming = session.options.output in ("jsonl", "name")
    cap = limit if limit is not None or streaming else table_default
    return cap, (min(cap, MAX_PAGE) if cap is not None else default_page)


def emit_listing(session: Session, items: Iterator[Any], *, cap: int | None, limit: int | None, kind: str,
                 noun: str) -> None:
    """Render a (lazily paged) listing: streamed as it arrives in -o jsonl/name, else collected first;
    a table cut at its default cap says so."""
    import itertools

    if cap is not None:
        items = itertools.islice(items, cap)
    fmt = session.options.output
    if fmt in ("jsonl", "name"):
        session.renderer.emit(items, kind=kind)
        return
    listed = list(items)
    session.renderer.emit(listed, kind=kind)
    if limit is None and len(listed) == cap and fmt in ("table", "wide"):
        session.info(f"showing the first {cap} {noun}; use --limit N, or -o jsonl for all of them")
