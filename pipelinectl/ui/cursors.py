"""Cursor pages for the DLQ browser and the audit view, over a driver's `dlq_list` / `audit_list` iterator.

The protocol's listings follow the plane's own cursor (page tokens) inside an
iterator. A browse keeps that iterator open between page requests, so each
"next page" asks the plane for one more page instead of starting over; the
items already read stay for "previous" (up to KEEP_ITEMS, then the oldest go).
A browse unused for IDLE_SECONDS is closed; a page of a closed or unknown browse
starts again at the first page, and the page says so.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelinectl.model import AuditEntry, AuditFilter, DLQFilter, DLQItem

    from .planes import Plane

    Selection = DLQFilter | AuditFilter

PAGE_SIZE = 50
KEEP_ITEMS = 5000
MAX_BROWSES = 32
IDLE_SECONDS = 600.0


@dataclass
class Browse:
    id: str
    plane: Plane
    key: tuple[Any, ...]  # the selection it lists; another selection is another browse
    iterator: Any
    items: list[DLQItem | AuditEntry] = field(default_factory=list)
    dropped: int = 0  # items read and let go (KEEP_ITEMS)
    done: bool = False
    used: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        close = getattr(self.iterator, "close", None)
        if close is not None:
            try:
                with self.plane.lock:
                    close()
            except Exception:  # a driver's clean-up failing must not break the page
                pass


@dataclass
class Page:
    browse: str
    number: int  # 0-based
    items: list[Any]  # DLQItem or AuditEntry
    has_next: bool
    restarted: bool  # the browse asked for was gone: this is the first page of a new one


class Cursors:
    def __init__(self) -> None:
        self._browses: dict[str, Browse] = {}
        self._lock = threading.Lock()

    def page(self, plane: Plane, selection: Selection, browse_id: str | None, number: int) -> Page:
        """Page `number` of what `selection` lists (a DLQFilter: dead letters; an AuditFilter: the trail)."""
        from pipelinectl.model import AuditFilter

        if isinstance(selection, AuditFilter):
            key: tuple[Any, ...] = (plane.name, selection)
        else:
            key = (plane.name, selection.pipeline, selection.stage, selection.error_kind, selection.since,
                   selection.until)
        self._expire()
        with self._lock:
            browse = self._browses.get(browse_id or "")
        restarted = False
        if browse is None or browse.key != key or number * PAGE_SIZE < browse.dropped:
            restarted = browse_id is not None and number > 0
            browse = self._start(plane, selection, key)
            number = 0 if restarted else number
        with plane.lock:  # one browse is read by one request at a time, with the driver to itself
            browse.used = time.monotonic()
            want = (number + 1) * PAGE_SIZE + 1 - browse.dropped  # one more: is there a next page?
            while not browse.done and len(browse.items) < want:
                try:
                    browse.items.append(next(browse.iterator))
                except StopIteration:
                    browse.done = True
                except BaseException:  # a failed read ends this browse: the next request starts afresh
                    with self._lock:
                        self._browses.pop(browse.id, None)
                    raise
            overflow = len(browse.items) - KEEP_ITEMS
            start = number * PAGE_SIZE - browse.dropped
            if overflow > 0 and overflow <= start:
                del browse.items[:overflow]
                browse.dropped += overflow
                start -= overflow
            items = browse.items[start:start + PAGE_SIZE]
            has_next = len(browse.items) > start + PAGE_SIZE
        return Page(browse=browse.id, number=number, items=items, has_next=has_next, restarted=restarted)

    def _start(self, plane: Plane, selection: Selection, key: tuple[Any, ...]) -> Browse:
        from pipelinectl.model import AuditFilter

        if isinstance(selection, AuditFilter):
            iterator = plane.call(lambda s: s.plane.audit_list(selection, page_size=PAGE_SIZE * 2))
        else:
            iterator = plane.call(lambda s: s.plane.dlq_list(selection, page_size=PAGE_SIZE * 2))
        browse = Browse(id=secrets.token_urlsafe(9), plane=plane, key=key, iterator=iter(iterator))
        evicted = []
        with self._lock:
            self._browses[browse.id] = browse
            while len(self._browses) > MAX_BROWSES:
                oldest = min(self._browses.values(), key=lambda b: b.used)
                evicted.append(self._browses.pop(oldest.id))
        for old in evicted:
            old.close()
        return browse

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = [b for b in self._browses.values() if now - b.used > IDLE_SECONDS]
            for b in idle:
                del self._browses[b.id]
        for b in idle:
            b.close()

    def close(self) -> None:
        with self._lock:
            browses = list(self._browses.values())
            self._browses.clear()
        for b in browses:
            b.close()
