"""The one watch engine behind every `--watch`: poll, compare, show what changed.

    from pipelinectl.watch import watch
    code = watch(lambda: plane.saga_list(selection), output=session.options.output,
                 interval=interval, redact=session.redact)

- On a terminal with table/wide output: a rich Live view refreshed in place
  (`view(items, footer)` builds it; the default is a table of output.COLUMNS).
- Piped: one line per object that changed since the last poll (all of them on
  the first poll); `-o json`/`jsonl` give one compact JSON object per line
  (`to_dict()`, the documented shape), `yaml` a `---` document each, `name`
  `kind/id`. `only_new=True` shows each object once (a DLQ that only grows).
- It ends cleanly, exit 0, on Ctrl-C (a watch has no other way to stop, so
  stopping it is success, as with `kubectl get -w`), and when the target is
  gone: `fetch` raised NotFoundError or returned None; a note says why on stderr.
- A failed refresh (plane restarting, a timeout) is not the end: it is said
  once on stderr (or in the live footer) and the watch keeps polling. The first
  fetch happens before the loop, so a wrong context or a typo fails loudly with
  its own exit code.

No rich import unless the live view runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from pipelinectl.errors import NotFoundError, PipelinectlError

Fetch = Callable[[], Iterable[Any] | None]


def identity_of(obj: Any) -> str:
    """A stable key for an object across polls: kind plus pipeline plus id or name."""
    ident = getattr(obj, "id", None) or getattr(obj, "name", None) or ""
    pipeline = getattr(obj, "pipeline", None)
    kind = getattr(obj, "kind", type(obj).__name__)
    return f"{kind}/{pipeline}/{ident}" if pipeline else f"{kind}/{ident}"


def _signature(obj: Any) -> Any:
    """What counts as a change: the whole machine shape, minus rates that wobble on every poll."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if isinstance(data, dict):
        return json.dumps({k: v for k, v in data.items() if k not in ("throughput", "updated_at")},
                          sort_keys=True, default=str)
    return repr(data)


def plain_line(obj: Any) -> str:
    """`TIME kind/id key=value ...` from the object's table columns (output.COLUMNS)."""
    from pipelinectl.output import COLUMNS, name_of

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    columns = COLUMNS.get(getattr(obj, "kind", ""), [])
    fields = []
    for column in columns:
        if column.header in ("ID", "PIPELINE"):
            continue
        value = str(column.value(obj)).replace(" ", "_") or "-"
        fields.append(f"{column.header.lower().replace(' ', '_').replace('-', '_')}={value}")
    return " ".join([stamp, name_of(obj), *fields])


def table_view(items: list[Any], footer: str) -> Any:
    """The default live view: one rich table per kind, with a dim footer line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from pipelinectl.output import COLUMNS, STATE_STYLES

    parts: list[Any] = []
    kinds: dict[str, list[Any]] = {}
    for obj in items:
        kinds.setdefault(getattr(obj, "kind", "Object"), []).append(obj)
    for kind, objs in kinds.items():
        columns = [c for c in COLUMNS.get(kind, []) if not c.wide_only]
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in columns:
            table.add_column(column.header, no_wrap=True)
        for obj in objs:
            cells = [str(c.value(obj)) for c in columns]
            table.add_row(*(Text(cell, style=STATE_STYLES.get(cell, "")) for cell in cells))
        parts.append(table)
    if not items:
        parts.append(Text("Nothing to show yet."))
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


class _Gone(Exception):
    pass


def _poll(fetch: Fetch) -> list[Any]:
    try:
        found = fetch()
    except NotFoundError as exc:
        raise _Gone(exc.one_line()) from None
    if found is None:
        raise _Gone("the target no longer exists")
    return list(found)


def watch(
    fetch: Fetch,
    *,
    output: str = "table",
    interval: float = 2.0,
    identity: Callable[[Any], str] = identity_of,
    signature: Callable[[Any], Any] = _signature,
    line: Callable[[Any], str] = plain_line,
    view: Callable[[list[Any], str], Any] = table_view,
    only_new: bool = False,
    show_removed: bool = True,
    redact: Callable[[str], str] = lambda text: text,
    color: bool = True,
    stream: TextIO | None = None,
    live: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_polls: int | None = None,
) -> int:
    """Watch until Ctrl-C or the target is gone; returns the exit code (0).

    `live` forces the live view on or off (default: stdout is a TTY and the
    format is table/wide). `max_polls` bounds the loop (tests, `--count`-like uses).
    """
    out = stream or sys.stdout
    first = fetch()  # the first read fails loudly, with its own exit code (NotFoundError: 3)
    if first is None:
        raise NotFoundError("nothing to watch: the target does not exist")
    items = list(first)
    use_live = live if live is not None else (out.isatty() and output in ("table", "wide"))
    try:
        if use_live:
            _live(fetch, items, out, interval, view, redact, color, sleep, max_polls)
        else:
            _lines(fetch, items, out, output, interval, identity, signature, line, only_new, show_removed,
                   redact, sleep, max_polls)
    except KeyboardInterrupt:
        return 0
    except _Gone as gone:
        out.flush()
        sys.stderr.write(f"watch ended: {redact(str(gone))}\n")
        return 0
    return 0


def _lines(fetch: Fetch, items: list[Any], out: TextIO, output: str, interval: float,
           identity: Callable[[Any], str], signature: Callable[[Any], Any], line: Callable[[Any], str],
           only_new: bool, show_removed: bool, redact: Callable[[str], str],
           sleep: Callable[[float], None], max_polls: int | None) -> None:
    last: dict[str, Any] = {}
    last_error: str | None = None
    polls = 1
    while True:
        current: dict[str, Any] = {}
        for obj in items:
            key = identity(obj)
            sig = signature(obj)
            current[key] = (obj, sig)
            if key in last and (only_new or last[key][1] == sig):
                continue
            _write(out, output, obj, line, redact)
        if show_removed and not only_new:
            for key in last.keys() - current.keys():
                _write_removed(out, output, last[key][0], redact)
        last = {**last, **current} if only_new else current
        out.flush()
        if max_polls is not None and polls >= max_polls:
            return
        sleep(interval)
        polls += 1
        try:
            items = _poll(fetch)
            if last_error:
                sys.stderr.write("watch: refresh works again\n")
            last_error = None
        except PipelinectlError as exc:  # keep watching through a blip; say it once per kind of failure
            kind = f"{type(exc).__name__}:{exc.code}"  # messages carry timings; the kind does not change
            if kind != last_error:
                sys.stderr.write(f"warning: refresh failed: {redact(exc.one_line())}\n")
                sys.stderr.flush()
            last_error = kind
            items = [entry[0] for entry in last.values()] if not only_new else []


def _write(out: TextIO, output: str, obj: Any, line: Callable[[Any], str], redact: Callable[[str], str]) -> None:
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if output in ("json", "jsonl"):
        out.write(redact(json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)) + "\n")
    elif output == "yaml":
        import yaml

        out.write("---\n" + redact(yaml.safe_dump(data, sort_keys=False, allow_unicode=True)))
    elif output == "name":
        from pipelinectl.output import name_of

        out.write(name_of(obj) + "\n")
    else:
        out.write(redact(line(obj)) + "\n")


def _write_removed(out: TextIO, output: str, obj: Any, redact: Callable[[str], str]) -> None:
    """An object that left the listing: a JSON line `{"kind": ..., "id": ..., "removed": true}`, or text."""
    from pipelinectl.output import name_of

    if output in ("json", "jsonl", "yaml"):
        data = {"kind": getattr(obj, "kind", "Object"), "removed": True}
        for attr in ("pipeline", "id", "name"):
            if getattr(obj, attr, None) is not None:
                data[attr] = getattr(obj, attr)
        if output == "yaml":
            import yaml

            out.write("---\n" + yaml.safe_dump(data, sort_keys=False))
        else:
            out.write(json.dumps(data, separators=(",", ":")) + "\n")
    elif output == "name":
        out.write(name_of(obj) + "\n")
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.write(redact(f"{stamp} {name_of(obj)} removed") + "\n")


def _live(fetch: Fetch, items: list[Any], out: TextIO, interval: float, view: Callable[[list[Any], str], Any],
          redact: Callable[[str], str], color: bool, sleep: Callable[[float], None], max_polls: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out, force_terminal=True, no_color=not color)
    error: str | None = None

    def footer() -> str:
        text = f"every {interval:g}s · {time.strftime('%H:%M:%S')} · Ctrl-C to stop"
        return text + (f" · last refresh failed: {error}" if error else "")

    polls = 1
    with Live(view(items, footer()), console=console, auto_refresh=False, transient=False) as display:
        while max_polls is None or polls < max_polls:
            sleep(interval)
            polls += 1
            try:
                items = _poll(fetch)
                error = None
            except PipelinectlError as exc:
                error = redact(exc.one_line())
            display.update(view(items, footer()), refresh=True)
