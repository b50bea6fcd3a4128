"""The contexts the dashboard shows: one CLI Session per context, and what was read from each.

Each context gets its own `Session` (its driver, its audit lines, the CLI's mutate
flows), built exactly as `pipelinectl --context NAME ...` would build it. Drivers
need not be thread-safe, so one context's driver is called from one thread at a
time (`Plane.lock`). Status reads are shared: however many pages watch a
pipeline, the plane is asked at most once per interval (single flight), and each
answer adds a point to a short per-stage history that the sparklines draw.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pipelinectl.cli.options import GlobalOptions
from pipelinectl.cli.session import Session
from pipelinectl.errors import PipelinectlError, UnsupportedError

if TYPE_CHECKING:
    from pipelinectl.model import Pipeline

T = TypeVar("T")
HISTORY_SECONDS = 180.0  # what a sparkline covers
MIN_SAMPLE_GAP = 0.5  # two reads closer than this add one history point
METRICS = ("throughput", "error_rate", "queue_depth", "in_flight", "parallelism")


@dataclass
class Problem:
    """A failed read, as the page shows it: one redacted line, and whether the driver simply cannot do it."""

    message: str
    code: str
    unsupported: bool = False

    @classmethod
    def of(cls, exc: BaseException, session: Session) -> Problem:
        if isinstance(exc, PipelinectlError):
            return cls(session.redact(exc.one_line()), exc.code, isinstance(exc, UnsupportedError))
        return cls(session.redact(f"internal error: {type(exc).__name__}: {exc}"), "INTERNAL")


@dataclass
class Read:
    """One answer (or its failure), shared by every page that asked within max_age."""

    seq: int
    at: float  # monotonic
    value: Any = None
    problem: Problem | None = None
    rendered: dict[str, str] = field(default_factory=dict)  # fragments rendered from this read, by name

    @property
    def pipelines(self) -> list[Pipeline]:
        return self.value or []


class Plane:
    """One context of the dashboard."""

    def __init__(self, name: str, options: GlobalOptions) -> None:
        self.name = name
        self.session = Session(dataclasses.replace(options, context=name, contexts=[name], output="json"))
        self.lock = threading.RLock()
        self._cond = threading.Condition()
        self._reads: dict[Any, Read] = {}
        self._fetching: set[Any] = set()
        self._seq = 0
        self._history: dict[tuple[str, str], deque[tuple[float, dict[str, float]]]] = {}

    # -- what the context says ----------------------------------------------------------------------
    @property
    def driver(self) -> str:
        return self.session.context.driver

    @property
    def url(self) -> str:
        """The context's URL without any user:password@ part."""
        parts = urlsplit(self.session.context.url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return self.session.redact(urlunsplit((parts.scheme, host, parts.path, "", "")))

    def can(self, capability: str) -> bool:
        """Whether the driver declares this capability (`plugin list` shows them).

        Until a read has built the driver, assume it can (the read says otherwise in place); this
        never waits for the driver's lock, which a slow plane may hold.
        """
        driver = self.session.__dict__.get("plane")  # Session.plane, once built
        if driver is None:
            return True
        return any(getattr(c, "value", c) == capability for c in driver.capabilities)

    def scope(self) -> list[str]:
        """The pipelines the context names (empty: every pipeline of the plane)."""
        return [n.strip() for n in (self.session.context.pipeline or "").split(",") if n.strip()]

    # -- calls ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` with this context's driver to itself."""
        with self.lock:
            return fn(self.session)

    def status(self, pipeline: str | None, *, max_age: float) -> Read:
        """The plane's status at most `max_age` seconds old (None: the context's scope, as
        `status --all-contexts` shows it); every fresh answer adds a history point."""
        return self.shared(("status", pipeline), max_age, lambda s: self._fetch(s, pipeline), self._record)

    def shared(self, key: Any, max_age: float, fetch: Callable[[Session], Any],
               then: Callable[[Any], None] | None = None) -> Read:
        """`fetch(session)` at most every `max_age` seconds; callers arriving together share one call.

        While a fetch is under way, callers get the previous answer at once (a slow or unreachable
        plane never holds more than one worker thread per key); only the very first read waits.
        """
        with self._cond:
            while True:
                read = self._reads.get(key)
                if read is not None and (time.monotonic() - read.at < max_age or key in self._fetching):
                    return read
                if key not in self._fetching:
                    self._fetching.add(key)
                    self._seq += 1
                    seq = self._seq
                    break
                self._cond.wait(timeout=1.0)
        read = Read(seq, time.monotonic())
        try:
            read.value = self.call(fetch)
            if then is not None:
                then(read.value)
        except Exception as exc:  # a plane that cannot be read is shown as such, never as an error page
            read.problem = Problem.of(exc, self.session)
        finally:
            read.at = time.monotonic()
            with self._cond:
                self._fetching.discard(key)
                self._reads[key] = read
                self._cond.notify_all()
        return read

    def _fetch(self, session: Session, pipeline: str | None) -> list[Pipeline]:
        if pipeline is not None:
            return [p for p in session.plane.status(pipeline) if p.name == pipeline]
        only = self.scope()
        found = session.plane.status(only[0] if len(only) == 1 else None)
        return [p for p in found if p.name in only] if only else found

    # -- history ----------------------------------------------------------------------------------------
    def _record(self, pipelines: list[Pipeline]) -> None:
        now = time.monotonic()
        with self._cond:
            for p in pipelines:
                for s in p.stages:
                    points = self._history.setdefault((p.name, s.name), deque())
                    if points and now - points[-1][0] < MIN_SAMPLE_GAP:
                        continue
                    points.append((now, {m: float(getattr(s, m) or 0) for m in METRICS}))
                    while points and points[0][0] < now - HISTORY_SECONDS:
                        points.popleft()

    def history(self, pipeline: str, stage: str) -> list[tuple[float, dict[str, float]]]:
        """(age in seconds, metrics) points of the last minutes, oldest first."""
        now = time.monotonic()
        with self._cond:
            return [(now - t, values) for t, values in self._history.get((pipeline, stage), ())]

    def close(self) -> None:
        with self.lock:
            self.session.close()


class Planes:
    """Every context the dashboard was started with, by name, in the order given."""

    def __init__(self, names: list[str], options: GlobalOptions) -> None:
        self.by_name = {name: Plane(name, options) for name in names}

    def __iter__(self) -> Any:
        return iter(self.by_name.values())

    def get(self, name: str) -> Plane | None:
        return self.by_name.get(name)

    def close(self) -> None:
        for plane in self:
            try:
                plane.close()
            except Exception:  # closing one driver must not keep the others open
                pass
