"""`pipelinectl status`: pipelines and stages at a glance, once, live (--watch), or across contexts.

What an on-call engineer needs first: per stage its state, parallelism,
in-flight work, queue depth, throughput, error rate and DLQ size, plus each
pipeline's DLQ and sagas in flight. Paused, draining and failing stages stand
out in colour on a terminal; piped output is plain text or a documented
machine shape (docs/output.md).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from pipelinectl.cli.session import current
from pipelinectl.errors import PipelinectlError, UsageError
from pipelinectl.model import FAILING_ERROR_RATE
from pipelinectl.model import stage_health as health

MAX_CONTEXT_WORKERS = 16  # I/O bound: each worker mostly waits on its plane


def status(
    pipeline: str | None = typer.Argument(None, help="Pipeline to show (default: the context's, else all)."),
    pipeline_opt: str | None = typer.Option(None, "--pipeline", "-p", metavar="PIPELINE",
                                                 help="Same as the PIPELINE argument."),
    all_pipelines: bool = typer.Option(False, "--all", "-A", help="Every pipeline, even when the context names one."),
    watch: bool = typer.Option(False, "--watch", "-w",
                               help="Keep watching (through outages): live view on a terminal, one line per "
                                    "change piped; Ctrl-C ends it (exit 130)."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, max=3600, help="Seconds between refreshes with --watch."),
    all_contexts: bool = typer.Option(False, "--all-contexts", help="One row per context, queried concurrently."),
) -> None:
    """Show pipelines and stages at a glance.

    With --watch piped, one line per stage change (-o jsonl: one Stage object a line);
    --all-contexts shows one row per context and exits non-zero if any could not be read.

    Examples:
      pipelinectl status orders -o wide
      pipelinectl status --watch
    """
    from pipelinectl.cli.targets import target

    session = current()
    pipeline = target(pipeline, "pipeline") if pipeline else None
    if pipeline and pipeline_opt and pipeline != pipeline_opt:
        raise UsageError(f"pipeline given twice: '{pipeline}' and -p '{pipeline_opt}'")
    wanted = pipeline or pipeline_opt
    if all_pipelines and wanted:
        raise UsageError("--all and a PIPELINE exclude each other")
    if all_contexts:
        if watch:
            raise UsageError("--watch and --all-contexts cannot be combined; watch one context at a time")
        _all_contexts(wanted)
        return
    only: list[str] = []
    if not wanted and not all_pipelines:
        only = context_pipelines(session.context)
        if len(only) == 1:
            wanted, only = only[0], []
    if watch:
        _watch(wanted, interval, only)
        return
    pipelines = _fetch(session.plane, wanted, only)
    _render_once(pipelines, single=bool(pipeline or pipeline_opt))  # a named pipeline: one object


def context_pipelines(ctx: Any) -> list[str]:
    """The pipelines a context names (`--pipeline A` or `--pipeline A,B`); empty: all of them."""
    return [n.strip() for n in (ctx.pipeline or "").split(",") if n.strip()]


def _fetch(plane: Any, wanted: str | None, only: list[str]) -> list[Any]:
    found = plane.status(wanted)
    return [p for p in found if p.name in only] if only else found


# -- one shot -------------------------------------------------------------------
def _render_once(pipelines: list[Any], *, single: bool) -> None:
    session = current()
    fmt = session.options.output
    renderer = session.renderer
    if fmt in ("json", "yaml") and single and len(pipelines) == 1:
        renderer.emit(pipelines[0])
    elif fmt in ("json", "yaml", "jsonl", "name"):
        renderer.emit(pipelines, kind="Pipeline")
    else:
        _print_tables(pipelines, wide=fmt == "wide")


def _print_tables(pipelines: list[Any], *, wide: bool) -> None:
    session = current()
    if not pipelines:
        typer.echo("No pipelines on this control plane.")
        return
    renderer = session.renderer
    if renderer.color:
        grids = stage_grids(pipelines, wide=wide, width=renderer.width)
        renderer.rich_print(rich_view(pipelines, wide=wide, context=session.context_name, grids=grids),
                            max(g.layout(renderer.width).total for g in grids))
        return
    typer.echo(plain_view(pipelines, wide=wide, context=session.context_name, width=renderer.width), nl=False)


def _summary(p: Any, context: str | None) -> str:
    parts = [f"PIPELINE {p.name}"]
    if context:
        parts.append(f"context {context}")
    parts.append(f"driver {p.driver}")
    if p.input_offset is not None:
        parts.append(f"input offset {p.input_offset}")
    parts.append(f"DLQ {p.dlq_size}")
    sagas = f"sagas in flight {p.sagas_in_flight}"
    busy = {k: v for k, v in sorted(p.sagas_by_status.items()) if v and k in ("running", "compensating", "stuck")}
    if busy:
        sagas += " (" + ", ".join(f"{k} {v}" for k, v in busy.items()) + ")"
    parts.append(sagas)
    return "  ".join(parts[:1]) + "   " + " · ".join(parts[1:])


def stage_grids(pipelines: list[Any], *, wide: bool, live: bool = False, width: int | None = None) -> list[Any]:
    """One stage table per pipeline, with the shared Stage columns (output.COLUMNS) but PIPELINE."""
    from pipelinectl.output import Grid, columns_for

    columns = [c for c in columns_for("Stage", "wide" if wide else "table") if c.header != "PIPELINE"]
    return [Grid(columns, p.stages, wide=wide, live=live, width=width) for p in pipelines]


def stage_notes(p: Any) -> list[str]:
    """A line for each stage an operator must not miss: disabled (and why), or with bypassed items to replay."""
    notes = []
    for s in p.stages:
        waiting = f"{s.bypassed} item{'s' if s.bypassed != 1 else ''} bypassed"
        if s.state == "disabled":
            notes.append(f"! {s.name} is disabled: {s.disabled_reason or 'no reason given'}; items flow past it "
                         f"unprocessed ({waiting} so far; after 'pipelinectl enable {s.name}': "
                         f"pipelinectl replay --skipped {s.name})")
        elif s.bypassed:
            notes.append(f"! {s.name}: {waiting} while it was disabled, not yet processed "
                         f"(pipelinectl replay --skipped {s.name})")
    return notes


def plain_view(pipelines: list[Any], *, wide: bool, context: str | None, width: int | None = None) -> str:
    blocks = []
    for p, grid in zip(pipelines, stage_grids(pipelines, wide=wide), strict=True):
        table = grid.plain(width) if p.stages else "(no stages)\n"
        notes = "".join(line + "\n" for line in stage_notes(p))
        blocks.append(_summary(p, context) + "\n" + table + notes)
    return "\n".join(blocks)


def rich_view(pipelines: list[Any], *, wide: bool, context: str | None, footer: str | None = None,
              live: bool = False, grids: list[Any] | None = None) -> Any:
    """One rich renderable for all pipelines (printed once, or refreshed in place by --watch)."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for p, grid in zip(pipelines, grids or stage_grids(pipelines, wide=wide, live=live), strict=True):
        parts.append(Text(_summary(p, context), style="bold"))  # wraps on a narrow terminal; never cut
        parts.append(grid if p.stages else Text("(no stages)"))
        parts.extend(Text(line, style="bold magenta") for line in stage_notes(p))
        parts.append(Text(""))
    if not pipelines:
        parts.append(Text("No pipelines on this control plane."))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


# -- watch ----------------------------------------------------------------------
def _watch(wanted: str | None, interval: float, only: list[str]) -> None:
    """On the shared watch engine: a live view of every pipeline on a terminal, a line per stage change
    piped; it waits through outages (a plane down at the start too) and Ctrl-C ends it (130)."""
    from pipelinectl.cli.common import watch_deadline
    from pipelinectl.watch import watch

    session = current()
    watch_deadline(session, interval)
    fmt = session.options.output
    context = session.context_name

    def view(pipelines: list[Any], footer: str) -> Any:
        return rich_view(pipelines, wide=fmt == "wide", context=context, footer=footer, live=True)

    code = watch(lambda: _fetch(session.plane, wanted, only), output=fmt, interval=interval, view=view,
                 units=lambda pipelines: [s for p in pipelines for s in p.stages], signature=_change_key,
                 line=lambda s: _line(s.pipeline, s), redact=session.redact, color=session.renderer.color)
    raise typer.Exit(code)


def _change_key(s: Any) -> tuple[Any, ...]:
    """What counts as a change worth a line: not the sliding-window rates (throughput, error rate),
    which move on every poll; a stage crossing into or out of `failing` changes its health."""
    return (health(s), s.parallelism, s.in_flight, s.queue_depth, s.dlq_size, s.version)


def _line(pipeline: str, s: Any) -> str:
    from pipelinectl.output import queue_text, rate_text

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (f"{stamp} {pipeline}/{s.name} state={health(s)} parallelism={s.parallelism} in_flight={s.in_flight} "
            f"queue={queue_text(s)} throughput={rate_text(s.throughput)} errors={s.error_rate * 100:.1f}% dlq={s.dlq_size}")


# -- all contexts -----------------------------------------------------------------
def _context_status(ctx: Any, wanted: str | None) -> dict[str, Any]:
    session = current()
    row: dict[str, Any] = {"kind": "ContextStatus", "context": ctx.name, "driver": ctx.driver, "url": ctx.url,
                           "ok": False, "error": None, "pipelines": []}
    started = time.perf_counter()
    plane = None
    try:
        plane = session.plane_for(ctx)
        only = [] if wanted else context_pipelines(ctx)
        if len(only) == 1:
            wanted, only = only[0], []
        row["pipelines"] = [p.to_dict() for p in _fetch(plane, wanted, only)]
        row["ok"] = True
    except PipelinectlError as exc:
        row["error"] = {"code": exc.code, "exit_code": int(exc.exit_code), "message": session.redact(exc.one_line())}
    except Exception as exc:  # one broken context never breaks the others
        row["error"] = {"code": "INTERNAL", "exit_code": 1,
                        "message": session.redact(f"{type(exc).__name__}: {exc}")}
    finally:
        if plane is not None:
            try:
                plane.close()
            except Exception:
                pass
    row["elapsed_ms"] = round((time.perf_counter() - started) * 1000)
    return row


def _all_contexts(wanted: str | None) -> None:
    session = current()
    config = session.config
    contexts = [ctx for _, ctx in sorted(config.contexts.items())]
    if not contexts:
        raise UsageError("no contexts configured", hint="create one with 'pipelinectl config set-context NAME --url URL'")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(MAX_CONTEXT_WORKERS, len(contexts))) as pool:
        rows = list(pool.map(lambda c: _context_status(c, wanted), contexts))
    fmt = session.options.output
    renderer = session.renderer
    if fmt in ("json", "yaml"):
        renderer.emit_mapping({"kind": "ContextStatusList", "items": rows})
    elif fmt == "jsonl":
        for row in rows:
            renderer.emit_mapping(row)
    elif fmt == "name":
        for row in rows:
            sys.stdout.write(f"context/{row['context']}\n")
    else:
        _contexts_table(rows, current_name=config.current_context, wide=fmt == "wide")
    failed = [row for row in rows if not row["ok"]]
    if failed:
        names = ", ".join(row["context"] for row in failed)
        sys.stderr.write(f"error: {len(failed)} of {len(rows)} contexts could not be read: {names}\n")
        raise typer.Exit(failed[0]["error"]["exit_code"])


def _contexts_table(rows: list[dict[str, Any]], *, current_name: str | None, wide: bool) -> None:
    headers = ["CURRENT", "CONTEXT", "DRIVER", "PIPELINES", "STAGES", "NOT RUNNING", "FAILING", "DLQ", "SAGAS IN FLIGHT",
               "STATUS"]
    if wide:
        headers += ["URL", "MS"]
    table = []
    for row in rows:
        stages = [s for p in row["pipelines"] for s in p["stages"]]
        cells: list[Any] = [
            "*" if row["context"] == current_name else "",
            row["context"],
            row["driver"],
            ",".join(p["name"] for p in row["pipelines"]) or "-",
            len(stages) if row["ok"] else "-",
            sum(1 for s in stages if s["state"] != "running") if row["ok"] else "-",
            sum(1 for s in stages if s["state"] == "running" and s["error_rate"] >= FAILING_ERROR_RATE)
            if row["ok"] else "-",
            sum(p["dlq_size"] for p in row["pipelines"]) if row["ok"] else "-",
            sum(p["sagas_in_flight"] for p in row["pipelines"]) if row["ok"] else "-",
            "ok" if row["ok"] else row["error"]["message"],
        ]
        if wide:
            cells += [row["url"], row["elapsed_ms"]]
        table.append(cells)
    current().renderer.plain_table(headers, table)
