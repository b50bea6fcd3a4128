"""Renderers: one place that knows how each kind of resource is shown.

- table / wide: rich tables with coloured states on a colour terminal; plain
  text when piped or with --no-color / NO_COLOR (no escape codes). Both are laid
  out by Grid for the terminal's width: a narrow terminal loses less important
  columns, then the end of free text; never an ID or a name.
- json / yaml: one document; a list is `{"kind": "<Kind>List", "items": [...]}`.
- jsonl: one object per line, streamed as items arrive (long DLQ or saga lists
  are never held in memory).
- name: `kind/name` per line, for piping into other commands.

The machine shapes are `Resource.to_dict()`, documented in docs/output.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

from .model import Resource, ResourceList
from .timeparse import format_time


class Column(NamedTuple):
    """One column of a resource table.

    `drop`: on a terminal too narrow for the table, columns with a higher `drop`
    go first (kubectl's habit); 0 is never dropped (IDs, names, states).
    `clip`: the column is free text (a message, an error): a table cuts it with
    an ellipsis, at this width when piped, to what the terminal has room for on
    one; `-o wide` and machine output keep it whole. Nothing else is ever cut.
    `wide`: the value in `-o wide`, where it says more. `style`: the cell's colour
    from the object (default: by the value, STATE_STYLES).
    """

    header: str
    value: Callable[[Any], Any]
    wide_only: bool = False
    drop: int = 0
    clip: int = 0
    wide: Callable[[Any], Any] | None = None
    style: Callable[[Any], str] | None = None


def _age(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rate_text(value: float) -> str:
    return f"{value:.1f}/s" if value < 100 else f"{value:,.0f}/s"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _kinds(counts: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "-"


def _text(value: Any) -> str:
    """Free text as one line of a cell: `-` when there is none."""
    return "-" if value in (None, "") else str(value).replace("\r", " ").replace("\n", " ")


def _joined(value: Any) -> Any:
    """A list or mapping on one line: `a, b` / `k v, k v`."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value


def clip_text(text: Any, width: int = 60) -> str:
    text = _text(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def queue_text(stage: Any) -> str:
    return str(stage.queue_depth) if stage.queue_capacity is None else f"{stage.queue_depth}/{stage.queue_capacity}"


def _queue_style(stage: Any) -> str:
    return "bold yellow" if stage.queue_capacity and stage.queue_depth >= 0.8 * stage.queue_capacity else ""


def _errors_style(stage: Any) -> str:
    from .model import FAILING_ERROR_RATE

    return "bold red" if stage.error_rate >= FAILING_ERROR_RATE else "yellow" if stage.error_rate > 0 else ""


def _health(stage: Any) -> str:
    from .model import stage_health

    return stage_health(stage)


COLUMNS: dict[str, list[Column]] = {
    "Stage": [  # status shows these (without PIPELINE: its summary line names the pipeline)
        Column("PIPELINE", lambda s: s.pipeline),
        Column("STAGE", lambda s: s.name),
        Column("STATE", _health),
        Column("PARALLELISM", lambda s: s.parallelism, drop=3,
               wide=lambda s: f"{s.parallelism} ({s.min_parallelism}-{s.max_parallelism})"),
        Column("IN-FLIGHT", lambda s: s.in_flight, drop=2),
        Column("QUEUE", queue_text, style=_queue_style),
        Column("THROUGHPUT", lambda s: rate_text(s.throughput), drop=1),
        Column("LIMIT", lambda s: s.rate_limit.rate if s.rate_limit else "-", drop=2,
               wide=lambda s: f"{s.rate_limit.rate} burst {s.rate_limit.burst}" if s.rate_limit else "-",
               style=lambda s: "bold cyan" if s.rate_limit else ""),
        Column("ERRORS", lambda s: _pct(s.error_rate), style=_errors_style),
        Column("DLQ", lambda s: s.dlq_size, style=lambda s: "yellow" if s.dlq_size else ""),
        Column("PROCESSED", lambda s: s.processed, wide_only=True, drop=5),
        Column("FAILED", lambda s: s.failed, wide_only=True, drop=5),
        Column("ERRORS BY KIND", lambda s: _kinds(s.errors_by_kind), wide_only=True, drop=4),
        Column("BYPASSED", lambda s: s.bypassed, wide_only=True, drop=5,
               style=lambda s: "bold magenta" if s.bypassed else ""),
        Column("VERSION", lambda s: s.version, wide_only=True, drop=6),
        Column("PAUSED UNTIL", lambda s: format_time(s.paused_until, timespec="seconds") or "-",
               wide_only=True, drop=4),
    ],
    "Pipeline": [
        Column("PIPELINE", lambda p: p.name),
        Column("STAGES", lambda p: len(p.stages), drop=1),
        Column("PAUSED", lambda p: sum(1 for s in p.stages if s.state != "running")),
        Column("DLQ", lambda p: p.dlq_size),
        Column("SAGAS IN FLIGHT", lambda p: p.sagas_in_flight, drop=2),
        Column("INPUT OFFSET", lambda p: p.input_offset if p.input_offset is not None else "-", wide_only=True, drop=3),
        Column("DRIVER", lambda p: p.driver, wide_only=True, drop=4),
    ],
    "ReplayJob": [
        Column("ID", lambda j: j.id),
        Column("STAGE", lambda j: j.stage),
        Column("STATE", lambda j: j.state),
        Column("RANGE", lambda j: replay_range(j), drop=4),
        Column("PROGRESS", lambda j: f"{j.done}/{j.total}"),  # replayed + skipped, as --wait's bar counts
        Column("REPLAYED", lambda j: j.replayed, drop=2),
        Column("SKIPPED", lambda j: j.skipped, drop=3),
        Column("AGE", lambda j: _age(j.created_at), drop=1),
        Column("ERROR", lambda j: _text(j.error), wide_only=True, clip=60),
    ],
    "DLQItem": [
        Column("ID", lambda d: d.id),
        Column("STAGE", lambda d: d.stage),
        Column("KIND", lambda d: d.error_kind, drop=2),
        Column("ATTEMPTS", lambda d: d.attempts, drop=3),
        Column("LAST SEEN", lambda d: _age(d.last_seen), drop=1),
        Column("MESSAGE", lambda d: _text(d.message), clip=50),
        Column("KEY", lambda d: d.key or "-", wide_only=True, drop=4),
        Column("OFFSET", lambda d: d.offset if d.offset is not None else "-", wide_only=True, drop=5),
        Column("FIRST SEEN", lambda d: _age(d.first_seen), wide_only=True, drop=6),
    ],
    "BulkResult": [
        Column("ACTION", lambda r: r.action + (" (dry run)" if r.dry_run else "")),
        Column("MATCHED", lambda r: len(r.matched)),
        Column("SUCCEEDED", lambda r: len(r.succeeded)),
        Column("FAILED", lambda r: len(r.failed)),
    ],
    "Saga": [
        Column("ID", lambda s: s.id),
        Column("DEFINITION", lambda s: s.definition, drop=3),
        Column("STATUS", lambda s: s.status),
        Column("CURRENT STEP", lambda s: s.current_step or "-", drop=2),
        Column("COMPLETED", lambda s: "-" if s.completed_steps is None else len(s.completed_steps), drop=4),
        Column("AGE", lambda s: _age(s.started_at), drop=1),
        Column("LAST ERROR", lambda s: _text(s.last_error), clip=40),
        Column("UPDATED", lambda s: _age(s.updated_at), wide_only=True, drop=5),
    ],
    "SagaStep": [
        Column("STEP", lambda s: s.name),
        Column("STATUS", lambda s: s.status),
        Column("ATTEMPTS", lambda s: s.attempts, drop=2),
        Column("STARTED", lambda s: _age(s.started_at), drop=3),
        Column("FINISHED", lambda s: _age(s.finished_at), drop=4),
        Column("COMPENSATION", lambda s: s.compensation or "-", drop=1),
        Column("ERROR", lambda s: _text(s.error), clip=50),
    ],
    "SagaEvent": [
        Column("SEQ", lambda e: e.seq),
        Column("TIME", lambda e: e.time.strftime("%H:%M:%S") if e.time else "-", drop=2),
        Column("TYPE", lambda e: e.type),
        Column("STEP", lambda e: e.step or "-", drop=1),
        Column("MESSAGE", lambda e: _text(e.message), clip=60),
    ],
    "AuditEntry": [
        Column("TIME", lambda e: format_time(e.time, timespec="seconds") or "-", drop=3),
        Column("ACTOR", lambda e: e.actor),
        Column("VERB", lambda e: e.verb),
        Column("TARGET", lambda e: e.target),
        Column("REASON", lambda e: _text(e.reason), clip=30, drop=2),
        Column("RESULT", lambda e: _text(e.result), clip=40, drop=1),
        Column("PIPELINE", lambda e: e.pipeline or "-", wide_only=True, drop=4),
        Column("REQUEST ID", lambda e: e.request_id or "-", wide_only=True, drop=5),
        Column("PLAN", lambda e: (e.plan or "-")[:19], wide_only=True, drop=6),
    ],
    "BatchJob": [
        Column("ID", lambda b: b.id),
        Column("ACTION", lambda b: b.action),
        Column("STATE", lambda b: b.state),
        Column("PROGRESS", lambda b: f"{b.completed + b.failed}/{b.total}"),
        Column("FAILED", lambda b: b.failed, drop=1),
        Column("QUERY", lambda b: _text(b.query), clip=50),
    ],
}


def replay_range(job: Any) -> str:
    """What a replay job covers: `offsets A..B`, `START..END` in RFC 3339 seconds, or `skipped items`."""
    if getattr(job, "source", "range") == "skipped":
        return "skipped items"
    if job.from_offset is not None or job.to_offset is not None:
        return f"offsets {job.from_offset}..{job.to_offset}"
    return f"{format_time(job.from_time, timespec='seconds') or '?'}..{format_time(job.to_time, timespec='seconds') or '?'}"


# Values that deserve a colour at a glance. Anything not listed stays plain.
STATE_STYLES = {
    "running": "green",
    "completed": "green",
    "paused": "bold yellow",
    "draining": "bold cyan",
    "disabled": "bold magenta",
    "planned": "cyan",
    "pending": "dim",
    "compensating": "bold magenta",
    "compensated": "magenta",
    "stuck": "bold red",
    "failed": "bold red",
    "cancelled": "dim",
    "timed_out": "bold red",
    "compensation_failed": "bold red",
    "failing": "bold red",
}


# -- tables laid out for a width -------------------------------------------------------------------------
GAP = 2  # spaces between columns (rich without a box, and the plain text)
TEXT_MIN = 20  # a table drops columns before it cuts free text shorter than this
NUMERIC = frozenset({"IN-FLIGHT", "QUEUE", "THROUGHPUT", "ERRORS", "DLQ", "PROCESSED", "FAILED", "ATTEMPTS",
                     "COMPLETED", "SEQ", "REPLAYED", "SKIPPED", "MATCHED", "SUCCEEDED"})


def columns_for(kind: str, fmt: str) -> list[Column]:
    return [c for c in COLUMNS.get(kind, []) if fmt == "wide" or not c.wide_only]


class Layout(NamedTuple):
    kept: list[int]  # indexes of the columns shown
    widths: dict[int, int]  # width of each kept column
    limited: frozenset[int]  # text columns narrower than their text: cut (table) or wrapped (wide)
    total: int  # width of a row


class Grid:
    """Resources as rows under headers, laid out for a width: the one place that decides what a narrow
    terminal loses. A table drops its less important columns first (highest `drop`), then cuts free text
    with an ellipsis; `-o wide` drops nothing and wraps free text when that makes it fit, else prints
    long lines (the terminal wraps them). IDs, names and states are never cut. A live view (`live`) always
    fits the screen, wide or not. Piped (width None) nothing is dropped and tables cut text at `clip`.

    A Grid is a rich renderable too: a live view lays it out for the console's width at each refresh.
    """

    def __init__(self, columns: list[Column], items: Iterable[Any], *, wide: bool = False, live: bool = False,
                 width: int | None = None, title: str | None = None) -> None:
        self.columns = columns
        self.items = list(items)
        self.wide = wide
        self.live = live
        self.width = width  # lay out for this width rather than the console's (one-shot output)
        self.title = title
        self.cells = [[_cell(column, item, wide) for column in columns] for item in self.items]

    @classmethod
    def of(cls, items: Iterable[Any], kind: str, fmt: str, **kw: Any) -> Grid:
        return cls(columns_for(kind, fmt), items, wide=fmt == "wide", **kw)

    def layout(self, width: int | None) -> Layout:
        cols = self.columns
        natural = {i: max([len(c.header)] + [len(row[i]) for row in self.cells]) for i, c in enumerate(cols)}
        kept = list(range(len(cols)))
        text = [i for i, c in enumerate(cols) if c.clip]
        cut = not self.wide or self.live

        def span(widths: dict[int, int]) -> int:
            return sum(widths[i] for i in kept) + GAP * max(len(kept) - 1, 0)

        if width is None:  # piped: all columns; a table cuts free text at its clip, wide keeps it whole
            widths = dict(natural)
            if not self.wide:
                widths.update({i: min(natural[i], cols[i].clip) for i in text})
            return Layout(kept, widths, frozenset(i for i in text if widths[i] < natural[i]), span(widths))
        floor = {i: min(natural[i], max(len(cols[i].header), TEXT_MIN)) for i in text}
        if cut:
            for i in sorted((i for i in kept if cols[i].drop), key=lambda i: (-cols[i].drop, -i)):
                if span({**natural, **floor}) <= width:
                    break
                kept.remove(i)
        widths = {i: natural[i] for i in kept}
        shown = [i for i in kept if i in floor]
        if not cut and span({**natural, **floor}) > width:
            shown = []  # wide, and even wrapped text would not fit: whole lines, as long as they are
        room = width - sum(natural[i] for i in kept if i not in floor) - GAP * max(len(kept) - 1, 0)
        for n, i in enumerate(sorted(shown, key=lambda i: natural[i])):
            lowest = min(natural[i], len(cols[i].header) if cut else TEXT_MIN)
            widths[i] = max(lowest, min(natural[i], room // (len(shown) - n)))
            room -= widths[i]
        return Layout(kept, widths, frozenset(i for i in shown if widths[i] < natural[i]), span(widths))

    def _rows(self, layout: Layout) -> list[list[str]]:
        wrap = self.wide and not self.live
        return [[row[i] if wrap or i not in layout.limited else clip_text(row[i], layout.widths[i])
                 for i in layout.kept] for row in self.cells]

    def plain(self, width: int | None) -> str:
        """Plain text, no escape codes: cells left-aligned in their layout widths, GAP spaces apart."""
        layout = self.layout(width)
        rows = self._rows(layout)
        if self.wide and not self.live and layout.limited:
            import textwrap

            at = {i: n for n, i in enumerate(layout.kept)}
            for row in rows:
                for i in layout.limited:
                    row[at[i]] = "\n".join(textwrap.wrap(row[at[i]], layout.widths[i])) or "-"
        widths = [layout.widths[i] for i in layout.kept]
        lines = [f"{self.title}"] if self.title else []
        for row in [[self.columns[i].header for i in layout.kept], *rows]:
            cells = [cell.split("\n") for cell in row]
            for k in range(max(len(c) for c in cells)):
                lines.append((" " * GAP).join((c[k] if k < len(c) else "").ljust(w)
                                              for c, w in zip(cells, widths, strict=True)).rstrip())
        return "\n".join(lines) + "\n"

    def rich(self, width: int | None) -> Any:
        """A rich Table whose column widths the layout fixed (rich never has to shrink one)."""
        from rich.table import Table
        from rich.text import Text

        layout = self.layout(width)
        wrap = self.wide and not self.live
        table = Table(title=self.title, title_justify="left", box=None, header_style="bold", pad_edge=False)
        for i in layout.kept:
            column = self.columns[i]
            justify = "right" if column.header in NUMERIC else "left"
            if i in layout.limited and wrap:
                table.add_column(column.header, justify=justify, width=layout.widths[i], overflow="fold")
            else:
                table.add_column(column.header, justify=justify, no_wrap=True, min_width=layout.widths[i],
                                 max_width=layout.widths[i])
        for item, row, shown in zip(self.items, self.cells, self._rows(layout), strict=True):
            styles = [self.columns[i].style(item) if self.columns[i].style else STATE_STYLES.get(row[i], "")
                      for i in layout.kept]
            table.add_row(*(Text(cell, style=style) for cell, style in zip(shown, styles, strict=True)))
        return table

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self.rich(self.width if self.width is not None else options.max_width)


def _cell(column: Column, item: Any, wide: bool) -> str:
    value = column.wide(item) if wide and column.wide is not None else column.value(item)
    return str(value)


def terminal_width() -> int | None:
    """The terminal's width when stdout is one (COLUMNS overrides it, as everywhere); None when piped."""
    import shutil

    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def name_of(item: Any) -> str:
    """`kind/name` for -o name."""
    ident = getattr(item, "id", None) or getattr(item, "name", None) or ""
    return f"{item.kind.lower()}/{ident}"


class Renderer:
    def __init__(self, fmt: str = "table", *, color: bool = False, stream: TextIO | None = None,
                 width: int | None = None) -> None:
        self.fmt = fmt
        self.color = color
        self.stream = stream or sys.stdout
        self.width = width  # the terminal's columns, or None when piped: tables are laid out for it

    # -- entry point --------------------------------------------------------
    def emit(self, obj: Any, *, kind: str | None = None) -> None:
        """Render a resource, a mapping with `kind`, a list, or an iterator of resources (streamed where it can)."""
        if isinstance(obj, dict):
            self.emit_mapping(obj)
            return
        if isinstance(obj, Resource) and not isinstance(obj, ResourceList):
            self._one(obj)
            return
        if isinstance(obj, ResourceList):
            items: Iterable[Any] = obj.items
            kind = kind or (obj.kind[:-4] if obj.kind.endswith("List") else None)
        else:
            items = obj
        self._many(items, kind)

    def _one(self, obj: Resource) -> None:
        if self.fmt in ("json", "yaml"):
            self._document(obj.to_dict())
        elif self.fmt == "jsonl":
            self._line(obj.to_dict())
        elif self.fmt == "name":
            self.stream.write(name_of(obj) + "\n")
        else:
            self.table([obj], obj.kind)

    def _many(self, items: Iterable[Any], kind: str | None) -> None:
        if self.fmt == "jsonl":
            for item in items:
                self._line(item.to_dict())
            return
        if self.fmt == "name":
            for item in items:
                self.stream.write(name_of(item) + "\n")
            return
        listed = list(items)
        kind = kind or (listed[0].kind if listed else "Resource")
        if self.fmt in ("json", "yaml"):
            self._document({"kind": f"{kind}List", "items": [i.to_dict() for i in listed]})
        else:
            self.table(listed, kind)

    # -- machine formats ----------------------------------------------------
    def _document(self, data: dict[str, Any]) -> None:
        if self.fmt == "json":
            self.stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        else:
            import yaml

            yaml.safe_dump(data, self.stream, sort_keys=False, allow_unicode=True)

    def _line(self, data: dict[str, Any]) -> None:
        self.stream.write(json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
        self.stream.flush()

    def emit_mapping(self, data: dict[str, Any]) -> None:
        """A plain mapping that carries `kind` (config, version, a plugin's facts).

        Machine formats print it as it is; table/wide show `key: value` lines, lists and
        mappings joined on one line.
        """
        if self.fmt in ("table", "wide"):
            self.key_values([(key, _joined(value)) for key, value in data.items() if key != "kind"])
        elif self.fmt == "jsonl":
            self._line(data)
        elif self.fmt == "name":
            ident = data.get("name") or data.get("id") or ""
            self.stream.write(f"{str(data.get('kind', 'object')).lower()}/{ident}\n")
        else:
            self._document(data)

    def stream_lines(self, items: Iterator[Any]) -> None:
        for item in items:
            self._line(item.to_dict())

    # -- tables -------------------------------------------------------------
    def table(self, items: list[Any], kind: str, *, title: str | None = None) -> None:
        columns = columns_for(kind, self.fmt)
        if not columns:
            for item in items:
                self._document(item.to_dict())
            return
        if not items:
            self.stream.write(f"No {kind} found.\n" if not title else f"{title}: none\n")
            return
        self.grid(Grid(columns, items, wide=self.fmt == "wide", title=title))

    def plain_table(self, headers: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
        """Rows under headers (no resource kind): laid out like any table; nothing here is dropped or cut."""
        columns = [Column(header, lambda row, i=i: row[i]) for i, header in enumerate(headers)]
        self.grid(Grid(columns, rows, wide=self.fmt == "wide", title=title))

    def grid(self, grid: Grid) -> None:
        """A Grid on the stream: rich on a colour terminal, plain text otherwise, for this terminal's width."""
        if not self.color:
            self.stream.write(grid.plain(self.width))
            return
        self.rich_print(grid, grid.layout(self.width).total)

    def rich_print(self, renderable: Any, needed: int = 0) -> None:
        """Print a rich renderable at least `needed` wide: a table that cannot fit is printed whole in long
        lines (the terminal wraps them), never squeezed by rich into cut IDs."""
        from rich.console import Console

        if isinstance(renderable, Grid):
            renderable.width = self.width
        width = max(self.width or 0, needed) or None
        Console(file=self.stream, force_terminal=True, soft_wrap=False, width=width,
                no_color=not self.color).print(renderable)

    def key_values(self, pairs: list[tuple[str, Any]], *, title: str | None = None) -> None:
        """A detail view (inspect): aligned `Key: value` lines."""
        width = max((len(k) for k, _ in pairs), default=0) + 1
        if title:
            self.stream.write((f"\x1b[1m{title}\x1b[0m" if self.color else title) + "\n")
        for key, value in pairs:
            shown = "-" if value in (None, "", [], {}) else value
            if isinstance(shown, datetime):
                shown = shown.strftime("%Y-%m-%d %H:%M:%S UTC") + f" ({_age(shown)} ago)"
            style = STATE_STYLES.get(str(shown)) if self.color else None
            text = f"\x1b[{_ANSI.get(style, '0')}m{shown}\x1b[0m" if style else str(shown)
            self.stream.write(f"{key + ':':<{width}} {text}\n")


_ANSI = {
    "green": "32", "bold yellow": "1;33", "bold cyan": "1;36", "cyan": "36", "dim": "2",
    "bold magenta": "1;35", "magenta": "35", "bold red": "1;31",
}
