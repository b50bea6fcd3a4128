"""Renderers: one place that knows how each kind of resource is shown.

- table / wide: rich tables with coloured states on a colour terminal; plain
  tabulate text when piped or with --no-color / NO_COLOR (no escape codes).
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


class Column(NamedTuple):
    header: str
    value: Callable[[Any], Any]
    wide_only: bool = False


def _age(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rate(value: float) -> str:
    return f"{value:.1f}/s" if value < 100 else f"{value:,.0f}/s"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _kinds(counts: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "-"


def _joined(value: Any) -> Any:
    """A list or mapping on one line: `a, b` / `k v, k v`."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return value


def _clip(text: Any, width: int = 60) -> str:
    text = "-" if text in (None, "") else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


COLUMNS: dict[str, list[Column]] = {
    "Stage": [
        Column("PIPELINE", lambda s: s.pipeline),
        Column("STAGE", lambda s: s.name),
        Column("STATE", lambda s: s.state),
        Column("PARALLELISM", lambda s: f"{s.parallelism} ({s.min_parallelism}-{s.max_parallelism})"),
        Column("IN-FLIGHT", lambda s: s.in_flight),
        Column("QUEUE", lambda s: s.queue_depth if s.queue_capacity is None else f"{s.queue_depth}/{s.queue_capacity}"),
        Column("THROUGHPUT", lambda s: _rate(s.throughput)),
        Column("ERRORS", lambda s: _pct(s.error_rate)),
        Column("DLQ", lambda s: s.dlq_size),
        Column("PROCESSED", lambda s: s.processed, wide_only=True),
        Column("FAILED", lambda s: s.failed, wide_only=True),
        Column("ERRORS BY KIND", lambda s: _kinds(s.errors_by_kind), wide_only=True),
        Column("VERSION", lambda s: s.version, wide_only=True),
    ],
    "Pipeline": [
        Column("PIPELINE", lambda p: p.name),
        Column("STAGES", lambda p: len(p.stages)),
        Column("PAUSED", lambda p: sum(1 for s in p.stages if s.state != "running")),
        Column("DLQ", lambda p: p.dlq_size),
        Column("SAGAS IN FLIGHT", lambda p: p.sagas_in_flight),
        Column("INPUT OFFSET", lambda p: p.input_offset if p.input_offset is not None else "-", wide_only=True),
        Column("DRIVER", lambda p: p.driver, wide_only=True),
    ],
    "ReplayJob": [
        Column("ID", lambda j: j.id),
        Column("STAGE", lambda j: j.stage),
        Column("STATE", lambda j: j.state),
        Column("RANGE", lambda j: _range(j)),
        Column("PROGRESS", lambda j: f"{j.replayed}/{j.total}"),
        Column("SKIPPED", lambda j: j.skipped, wide_only=True),
        Column("AGE", lambda j: _age(j.created_at)),
        Column("ERROR", lambda j: _clip(j.error), wide_only=True),
    ],
    "DLQItem": [
        Column("ID", lambda d: d.id),
        Column("STAGE", lambda d: d.stage),
        Column("KIND", lambda d: d.error_kind),
        Column("ATTEMPTS", lambda d: d.attempts),
        Column("LAST SEEN", lambda d: _age(d.last_seen)),
        Column("MESSAGE", lambda d: _clip(d.message, 50)),
        Column("KEY", lambda d: d.key or "-", wide_only=True),
        Column("OFFSET", lambda d: d.offset if d.offset is not None else "-", wide_only=True),
        Column("FIRST SEEN", lambda d: _age(d.first_seen), wide_only=True),
    ],
    "BulkResult": [
        Column("ACTION", lambda r: r.action + (" (dry run)" if r.dry_run else "")),
        Column("MATCHED", lambda r: len(r.matched)),
        Column("SUCCEEDED", lambda r: len(r.succeeded)),
        Column("FAILED", lambda r: len(r.failed)),
    ],
    "Saga": [
        Column("ID", lambda s: s.id),
        Column("DEFINITION", lambda s: s.definition),
        Column("STATUS", lambda s: s.status),
        Column("CURRENT STEP", lambda s: s.current_step or "-"),
        Column("COMPLETED", lambda s: "-" if s.completed_steps is None else len(s.completed_steps)),
        Column("AGE", lambda s: _age(s.started_at)),
        Column("LAST ERROR", lambda s: _clip(s.last_error, 40)),
        Column("UPDATED", lambda s: _age(s.updated_at), wide_only=True),
    ],
    "SagaStep": [
        Column("STEP", lambda s: s.name),
        Column("STATUS", lambda s: s.status),
        Column("ATTEMPTS", lambda s: s.attempts),
        Column("STARTED", lambda s: _age(s.started_at)),
        Column("FINISHED", lambda s: _age(s.finished_at)),
        Column("COMPENSATION", lambda s: s.compensation or "-"),
        Column("ERROR", lambda s: _clip(s.error, 50)),
    ],
    "SagaEvent": [
        Column("SEQ", lambda e: e.seq),
        Column("TIME", lambda e: e.time.strftime("%H:%M:%S") if e.time else "-"),
        Column("TYPE", lambda e: e.type),
        Column("STEP", lambda e: e.step or "-"),
        Column("MESSAGE", lambda e: _clip(e.message, 60)),
    ],
    "BatchJob": [
        Column("ID", lambda b: b.id),
        Column("ACTION", lambda b: b.action),
        Column("STATE", lambda b: b.state),
        Column("PROGRESS", lambda b: f"{b.completed + b.failed}/{b.total}"),
        Column("FAILED", lambda b: b.failed),
        Column("QUERY", lambda b: _clip(b.query, 50)),
    ],
}


def _range(job: Any) -> str:
    if job.from_offset is not None or job.to_offset is not None:
        return f"offsets {job.from_offset}..{job.to_offset}"
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start = job.from_time.strftime(fmt) if job.from_time else "?"
    end = job.to_time.strftime(fmt) if job.to_time else "?"
    return f"{start}..{end}"


# Values that deserve a colour at a glance. Anything not listed stays plain.
STATE_STYLES = {
    "running": "green",
    "completed": "green",
    "paused": "bold yellow",
    "draining": "bold cyan",
    "planned": "cyan",
    "pending": "dim",
    "compensating": "bold magenta",
    "compensated": "magenta",
    "stuck": "bold red",
    "failed": "bold red",
    "cancelled": "dim",
    "timed_out": "bold red",
    "compensation_failed": "bold red",
}


def name_of(item: Any) -> str:
    """`kind/name` for -o name."""
    ident = getattr(item, "id", None) or getattr(item, "name", None) or ""
    return f"{item.kind.lower()}/{ident}"


class Renderer:
    def __init__(self, fmt: str = "table", *, color: bool = False, stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.color = color
        self.stream = stream or sys.stdout

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
        columns = [c for c in COLUMNS.get(kind, []) if self.fmt == "wide" or not c.wide_only]
        if not columns:
            for item in items:
                self._document(item.to_dict())
            return
        headers = [c.header for c in columns]
        rows = [[c.value(item) for c in columns] for item in items]
        if not rows:
            self.stream.write(f"No {kind} found.\n" if not title else f"{title}: none\n")
            return
        self.plain_table(headers, rows, title=title)

    def plain_table(self, headers: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
        """Rows under headers: rich on a colour terminal, tabulate text otherwise."""
        if self.color:
            self._rich_table(title, headers, rows)
            return
        from tabulate import tabulate

        if title:
            self.stream.write(f"{title}\n")
        self.stream.write(tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True) + "\n")

    def _rich_table(self, title: str | None, headers: list[str], rows: list[list[Any]]) -> None:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
        for header in headers:
            numeric = header in ("IN-FLIGHT", "DLQ", "PROCESSED", "FAILED", "ATTEMPTS", "COMPLETED", "SEQ")
            table.add_column(header, justify="right" if numeric else "left", no_wrap=header != "MESSAGE")
        for row in rows:
            table.add_row(*(Text(str(v), style=STATE_STYLES.get(str(v), "")) for v in row))
        Console(file=self.stream, force_terminal=True, soft_wrap=False).print(table)

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
