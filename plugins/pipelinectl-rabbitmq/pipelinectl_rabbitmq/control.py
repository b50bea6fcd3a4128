"""The stage-control convention: how pause, resume and scale reach consumers that opt in.

RabbitMQ cannot stop delivering a queue to its consumers, nor change a running consumer's
prefetch. A consumer can: by cancelling its basic.consume (pause), consuming again (resume),
and re-consuming after basic.qos (a new prefetch). pipelinectl tells it to, in two places of the
queue's vhost (docs/plugins/rabbitmq.md has the consumer's side, step by step):

- the **control stream** `pipelinectl.control` (a stream queue): one JSON message per change,
  each carrying the stage's whole state (`paused`, `until`, `prefetch`). Consumers read it from
  the first offset, so one that starts (or restarts) during a pause learns of it; they know they
  have caught up when their own `hello` message comes back.
- the **stage marker** `pipelinectl.stage.<queue>`: an empty durable queue whose arguments hold the
  same state, which `status` reads from the management API (a stream has no cheap "last message").

The effect is checked on RabbitMQ's side: `pause` waits until the queue has no consumers,
`scale` until every consumer of the queue shows the new prefetch count, and says which
consumers did not follow.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelinectl.plugin_api import format_time, parse_time

CONTROL_STREAM = "pipelinectl.control"
MARKER_PREFIX = "pipelinectl.stage."
OWN_PREFIX = "pipelinectl."  # queues pipelinectl declares: never stages
QUEUE_HEADER = "pipelinectl-queue"
ARG_PAUSED = "x-pipelinectl-paused"
ARG_UNTIL = "x-pipelinectl-until"
ARG_PREFETCH = "x-pipelinectl-prefetch"
MAX_PREFETCH = 65535  # basic.qos prefetch_count is a 16-bit field; 0 means unlimited


def marker(queue: str) -> str:
    return MARKER_PREFIX + queue


@dataclass
class StageState:
    """What pipelinectl last told a stage's consumers."""

    paused: bool = False
    until: datetime | None = None
    prefetch: int | None = None
    at: datetime | None = None

    def effective_paused(self, now: datetime | None = None) -> bool:
        """Paused, and not past its --until (the consumers resume by themselves then)."""
        now = now or datetime.now(UTC)
        return self.paused and (self.until is None or self.until > now)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any] | None) -> StageState:
        args = arguments or {}
        prefetch = args.get(ARG_PREFETCH)
        return cls(paused=bool(args.get(ARG_PAUSED)), until=parse_time(args.get(ARG_UNTIL)) if args.get(ARG_UNTIL) else None,
                   prefetch=int(prefetch) if isinstance(prefetch, int) and not isinstance(prefetch, bool) else None,
                   at=parse_time(args.get("x-pipelinectl-at")) if args.get("x-pipelinectl-at") else None)

    def arguments(self) -> dict[str, Any]:
        """The marker queue's arguments (x-max-length 0: it never holds a message)."""
        args: dict[str, Any] = {"x-max-length": 0, ARG_PAUSED: self.paused}
        if self.until is not None:
            args[ARG_UNTIL] = format_time(self.until)
        if self.prefetch is not None:
            args[ARG_PREFETCH] = self.prefetch
        if self.at is not None:
            args["x-pipelinectl-at"] = format_time(self.at)
        return args

    def message(self, queue: str) -> dict[str, Any]:
        """The control-stream message: the stage's whole state, so the last one read wins."""
        return {"kind": "StageControl", "queue": queue, "paused": self.paused, "until": format_time(self.until),
                "prefetch": self.prefetch, "at": format_time(self.at), "id": uuid.uuid4().hex}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True).encode()
