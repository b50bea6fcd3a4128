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
from pipelinectl.timeparse import format_time

# A running stage whose error rate reaches this is shown as failing.
FAILING_ERROR_RATE = 0.05
MAX_CONTEXT_WORKERS = 16  # I/O bound: each worker mostly waits on its plane


def status(
    pipeline: str | None = typer.Argument(None, help="Pipeline to show (default: the context's, else all)."),
    pipeline_opt: str | None = typer.Option(None, "--pipeline", "-p", metavar="PIPELINE",
                                                 help="Same as the PIPELINE argument."),
    all_pipelines: bool = typer.Option(False, "--all", "-A", help="Every pipeline, even when the context names one."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep watching: live view on a terminal, one line per change when piped."),
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
    session = current()
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
    if session.renderer.color:
        from rich.console import Console

        Console(file=sys.stdout, force_terminal=True, soft_wrap=False).print(
            rich_view(pipelines, wide=wide, context=session.context_name)
        )
        return
    typer.echo(plain_view(pipelines, wide=wide, context=session.context_name), nl=False)


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


def health(stage: Any) -> str:
    """What the STATE column shows: the stage's state, or `failing` for a running stage in trouble."""
    if stage.state == "running" and stage.error_rate >= FAILING_ERROR_RATE:
        return "failing"
    return stage.state


def _stage_row(s: Any, wide: bool) -> list[Any]:
    queue = str(s.queue_depth) if s.queue_capacity is None else f"{s.queue_depth}/{s.queue_capacity}"
    row: list[Any] = [
        s.name,
        health(s),
        f"{s.parallelism}" + (f" ({s.min_parallelism}-{s.max_parallelism})" if wide else ""),
        s.in_flight,
        queue,
        _rate(s.throughput),
        f"{s.error_rate * 100:.1f}%",
        s.dlq_size,
    ]
    if wide:
        row += [s.processed, s.failed, _kinds(s.errors_by_kind), s.version,
                format_time(s.paused_until, timespec="seconds") or "-"]
    return row


HEADERS = ["STAGE", "STATE", "PARALLELISM", "IN-FLIGHT", "QUEUE", "THROUGHPUT", "ERRORS", "DLQ"]
WIDE_HEADERS = ["PROCESSED", "FAILED", "ERRORS BY KIND", "VERSION", "PAUSED UNTIL"]


def _rate(value: float) -> str:
    return f"{value:.1f}/s" if value < 100 else f"{value:,.0f}/s"


def _kinds(counts: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "-"


def plain_view(pipelines: list[Any], *, wide: bool, context: str | None) -> str:
    from tabulate import tabulate

    blocks = []
    for p in pipelines:
        headers = HEADERS + (WIDE_HEADERS if wide else [])
        rows = [_stage_row(s, wide) for s in p.stages]
        table = tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True) if rows else "(no stages)"
        blocks.append(_summary(p, context) + "\n" + table + "\n")
    return "\n".join(blocks)


STYLES = {"running": "green", "paused": "bold yellow", "draining": "bold cyan", "failing": "bold red"}


def rich_view(pipelines: list[Any], *, wide: bool, context: str | None, footer: str | None = None) -> Any:
    """One rich renderable for all pipelines (printed once, or refreshed in place by --watch)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for p in pipelines:
        parts.append(Text(_summary(p, context), style="bold", no_wrap=True, overflow="ellipsis"))
        table = Table(box=None, header_style="bold", pad_edge=False)
        headers = HEADERS + (WIDE_HEADERS if wide else [])
        for header in headers:
            numeric = header in ("IN-FLIGHT", "QUEUE", "THROUGHPUT", "ERRORS", "DLQ", "PROCESSED", "FAILED")
            table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
        for s in p.stages:
            row = _stage_row(s, wide)
            styles = [""] * len(row)
            styles[1] = STYLES.get(row[1], "")
            if s.error_rate >= FAILING_ERROR_RATE:
                styles[6] = "bold red"
            elif s.error_rate > 0:
                styles[6] = "yellow"
            if s.dlq_size:
                styles[7] = "yellow"
            if s.queue_capacity and s.queue_depth >= 0.8 * s.queue_capacity:
                styles[4] = "bold yellow"
            table.add_row(*(Text(str(v), style=st) for v, st in zip(row, styles, strict=True)))
        parts.append(table)
        parts.append(Text(""))
    if not pipelines:
        parts.append(Text("No pipelines on this control plane."))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


# -- watch ----------------------------------------------------------------------
def _watch(wanted: str | None, interval: float, only: list[str]) -> None:
    session = current()
    plane = session.plane
    pipelines = _fetch(plane, wanted, only)  # the first read fails loudly: wrong context, plane down
    fmt = session.options.output
    try:
        if sys.stdout.isatty() and fmt in ("table", "wide"):
            _watch_live(plane, wanted, only, interval, pipelines, wide=fmt == "wide")
        else:
            _watch_lines(plane, wanted, only, interval, pipelines)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends: exit 0, no noise


def _watch_live(plane: Any, wanted: str | None, only: list[str], interval: float, pipelines: list[Any], *,
                wide: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    session = current()
    console = Console(file=sys.stdout, force_terminal=True, no_color=not session.renderer.color)
    error: str | None = None

    def footer() -> str:
        stamp = time.strftime("%H:%M:%S")
        line = f"every {interval:g}s · {stamp} · Ctrl-C to stop"
        return line + (f" · last refresh failed: {error}" if error else "")

    with Live(rich_view(pipelines, wide=wide, context=session.context_name, footer=footer()), console=console,
              auto_refresh=False, transient=False) as live:
        while True:
            time.sleep(interval)
            try:
                pipelines = _fetch(plane, wanted, only)
                error = None
            except PipelinectlError as exc:
                error = session.redact(exc.one_line())
            live.update(rich_view(pipelines, wide=wide, context=session.context_name, footer=footer()),
                        refresh=True)


def _change_key(s: Any) -> tuple[Any, ...]:
    """What counts as a change worth a line: not the sliding-window rates (throughput, error rate),
    which move on every poll; a stage crossing into or out of `failing` changes its health."""
    return (health(s), s.parallelism, s.in_flight, s.queue_depth, s.dlq_size, s.version)


def _watch_lines(plane: Any, wanted: str | None, only: list[str], interval: float, pipelines: list[Any]) -> None:
    """Piped: one line per stage that changed (everything on the first pass)."""
    session = current()
    fmt = session.options.output
    renderer = session.renderer
    last: dict[tuple[str, str], tuple[Any, ...]] = {}
    last_error: str | None = None
    while True:
        for p in pipelines:
            for s in p.stages:
                key = (p.name, s.name)
                now = _change_key(s)
                if last.get(key) == now:
                    continue
                last[key] = now
                if fmt in ("json", "jsonl"):
                    renderer._line(s.to_dict())
                elif fmt == "yaml":
                    sys.stdout.write("---\n")
                    renderer._document(s.to_dict())
                elif fmt == "name":
                    sys.stdout.write(f"stage/{p.name}/{s.name}\n")
                else:
                    sys.stdout.write(_line(p.name, s) + "\n")
                sys.stdout.flush()
        time.sleep(interval)
        try:
            pipelines = _fetch(plane, wanted, only)
            if last_error is not None:
                sys.stderr.write("note: the control plane answers again\n")
                sys.stderr.flush()
            last_error = None
        except PipelinectlError as exc:  # keep watching through a blip; say so once per kind of failure
            kind = f"{type(exc).__name__}:{exc.code}"
            if kind != last_error:
                sys.stderr.write(f"warning: refresh failed: {session.redact(exc.one_line())}\n")
                sys.stderr.flush()
            last_error = kind


def _line(pipeline: str, s: Any) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    queue = str(s.queue_depth) if s.queue_capacity is None else f"{s.queue_depth}/{s.queue_capacity}"
    return (f"{stamp} {pipeline}/{s.name} state={health(s)} parallelism={s.parallelism} in_flight={s.in_flight} "
            f"queue={queue} throughput={_rate(s.throughput)} errors={s.error_rate * 100:.1f}% dlq={s.dlq_size}")


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
