"""The one watch engine behind every `--watch`: poll, compare, show what changed.

    from pipelinectl.watch import watch
    code = watch(lambda: plane.saga_list(selection), output=session.options.output,
                 interval=interval, redact=session.redact)

- On a terminal with table/wide output: a rich Live view refreshed in place
  (`view(snapshot, footer)` builds it; the default is a Grid of output.COLUMNS
  per kind, laid out for the screen at every refresh).
- Piped: one line per object that changed since the last poll (all of them on
  the first poll); `-o json`/`jsonl` give one compact JSON object per line
  (`to_dict()`, the documented shape), `yaml` a `---` document each, `name`
  `kind/id`. `units(snapshot)` says which objects a snapshot's lines are made
  of (status: each pipeline's stages). `only_new=True` shows each object once
  (a DLQ that only grows).
- It survives outages: a plane that does not answer (down, restarting, timing
  out), at the start or later, is said once on stderr ("unreachable since
  12:03:04Z", or in the live footer) and the watch keeps polling, and says when
  the plane answers again. Any other failed refresh is said once per kind. The
  first fetch still fails loudly for anything but an outage (a wrong context, a
  typo: NotFoundError is exit 3).
- It ends with exit 130 on Ctrl-C (the exit-code table's "interrupted": a watch
  is stopped, it does not complete), and with exit 0 when the target is gone:
  `fetch` raised NotFoundError or returned None; a note says why on stderr.

No rich import unless the live view runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from pipelinectl.errors import ExitCode, NotFoundError, PipelinectlError, UnavailableError

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


def _stamp(clock: bool = False) -> str:
    return time.strftime("%H:%M:%SZ" if clock else "%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plain_line(obj: Any) -> str:
    """`TIME kind/id key=value ...` from the object's table columns (output.COLUMNS)."""
    from pipelinectl.output import COLUMNS, name_of

    columns = COLUMNS.get(getattr(obj, "kind", ""), [])
    fields = []
    for column in columns:
        if column.header in ("ID", "PIPELINE"):
            continue
        value = str(column.value(obj)).replace(" ", "_") or "-"
        fields.append(f"{column.header.lower().replace(' ', '_').replace('-', '_')}={value}")
    return " ".join([_stamp(), name_of(obj), *fields])


def table_view(items: list[Any], footer: str, *, wide: bool = False) -> Any:
    """The default live view: one table per kind (output.Grid, fitted to the screen), with a dim footer."""
    from rich.console import Group
    from rich.text import Text

    from pipelinectl.output import Grid

    parts: list[Any] = []
    kinds: dict[str, list[Any]] = {}
    for obj in items:
        kinds.setdefault(getattr(obj, "kind", "Object"), []).append(obj)
    for kind, objs in kinds.items():
        parts.append(Grid.of(objs, kind, "wide" if wide else "table", live=True))
    if not items:
        parts.append(Text("Nothing to show yet."))
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


class _Gone(Exception):
    pass


class _Health:
    """What a watch says about refreshes that fail: an outage once, with when it began and when it
    ended; any other failure once per kind (its messages carry timings; the kind does not change)."""

    def __init__(self, redact: Callable[[str], str], quiet: bool) -> None:
        self.redact = redact
        self.quiet = quiet  # the live view shows it in its footer instead of on stderr
        self.down_since: str | None = None
        self.started = 0.0
        self.failure: str | None = None  # kind of the last other failure
        self.message: str | None = None

    def failed(self, exc: PipelinectlError) -> None:
        self.message = self.redact(exc.one_line())
        if isinstance(exc, UnavailableError):
            if self.down_since is None:
                self.down_since, self.started = _stamp(clock=True), time.monotonic()
                self._say(f"warning: control plane unreachable since {self.down_since}: {self.message}; "
                          "still watching")
            return
        if self.down_since is not None:  # it answers, if only to refuse: the outage is over
            self._answers()
        kind = f"{type(exc).__name__}:{exc.code}"
        if kind != self.failure:
            self._say(f"warning: refresh failed: {self.message}")
        self.failure = kind

    def ok(self) -> None:
        if self.down_since is not None:
            self._answers()
        elif self.failure is not None:
            self._say("watch: refresh works again")
        self.down_since = self.failure = self.message = None

    def _answers(self) -> None:
        self._say(f"watch: control plane answers again after {time.monotonic() - self.started:.0f}s "
                  f"(down from {self.down_since})")
        self.down_since = None

    def footer(self) -> str:
        if self.down_since is not None:
            return f" · unreachable since {self.down_since}: {self.message}"
        return f" · last refresh failed: {self.message}" if self.failure else ""

    def _say(self, text: str) -> None:
        if not self.quiet:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


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
    view: Callable[[list[Any], str], Any] | None = None,
    units: Callable[[list[Any]], Iterable[Any]] | None = None,
    only_new: bool = False,
    show_removed: bool = True,
    redact: Callable[[str], str] = lambda text: text,
    color: bool = True,
    stream: TextIO | None = None,
    live: bool | None = None,
    sleep: Callable[[float], None] | None = None,
    max_polls: int | None = None,
) -> int:
    """Watch until Ctrl-C (130) or the target is gone (0); returns the exit code.

    `live` forces the live view on or off (default: stdout is a TTY and the
    format is table/wide). `max_polls` bounds the loop (tests, `--count`-like uses).
    """
    out = stream or sys.stdout
    sleep = sleep or time.sleep  # looked up now: a test may stand in for the clock
    use_live = live if live is not None else (out.isatty() and output in ("table", "wide"))
    health = _Health(redact, quiet=use_live)
    draw = view or (lambda items, footer: table_view(items, footer, wide=output == "wide"))
    try:
        try:
            first = fetch()  # anything but an outage fails loudly, with its own exit code (NotFoundError: 3)
        except UnavailableError as exc:
            health.failed(exc)
            first = []
        if first is None:
            raise NotFoundError("nothing to watch: the target does not exist")
        items = list(first)
        if use_live:
            _live(fetch, items, out, interval, draw, health, color, sleep, max_polls)
        else:
            _lines(fetch, items, out, output, interval, identity, signature, line, units or list, only_new,
                   show_removed, redact, health, sleep, max_polls)
    except KeyboardInterrupt:
        out.flush()
        return int(ExitCode.INTERRUPTED)
    except _Gone as gone:
        out.flush()
        sys.stderr.write(f"watch ended: {redact(str(gone))}\n")
    return 0


def _lines(fetch: Fetch, items: list[Any], out: TextIO, output: str, interval: float,
           identity: Callable[[Any], str], signature: Callable[[Any], Any], line: Callable[[Any], str],
           units: Callable[[list[Any]], Iterable[Any]], only_new: bool, show_removed: bool,
           redact: Callable[[str], str], health: _Health, sleep: Callable[[float], None],
           max_polls: int | None) -> None:
    last: dict[str, Any] = {}
    polls = 1
    while True:
        current: dict[str, Any] = {}
        for obj in units(items):
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
            health.ok()
        except PipelinectlError as exc:  # keep watching, showing the last snapshot (nothing changed, nothing left)
            health.failed(exc)


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
        out.write(redact(f"{_stamp()} {name_of(obj)} removed") + "\n")


def _live(fetch: Fetch, items: list[Any], out: TextIO, interval: float, view: Callable[[list[Any], str], Any],
          health: _Health, color: bool, sleep: Callable[[float], None], max_polls: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out, force_terminal=True, no_color=not color)

    def footer() -> str:
        return f"every {interval:g}s · {time.strftime('%H:%M:%S')} · Ctrl-C to stop" + health.footer()

    polls = 1
    with Live(view(items, footer()), console=console, auto_refresh=False, transient=False) as display:
        while max_polls is None or polls < max_polls:
            sleep(interval)
            polls += 1
            try:
                items = _poll(fetch)
                health.ok()
            except PipelinectlError as exc:
                health.failed(exc)
            display.update(view(items, footer()), refresh=True)
