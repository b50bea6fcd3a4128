"""Dead letters as RabbitMQ writes them: the x-death headers, stable item ids, error kinds.

A dead-lettered message carries `x-death` (one entry per (queue, reason), newest first: `queue`,
`reason`, `count`, `time`, `exchange`, `routing-keys`) and `x-first-death-queue/-reason/-exchange`.
A queue has no message ids of its own, so an item's id is a digest of what does not change while it
waits in the DLQ (its first death: queue, reason, time; its message_id, correlation_id, timestamp
and body). Identical messages dead-lettered in the same second get `~2`, `~3` in queue order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# x-death reason -> pipelinectl error kind
REASON_KINDS: dict[str, str] = {
    "rejected": "fatal",  # basic.reject / basic.nack with requeue=false: the consumer gave up on it
    "delivery_limit": "persistent",  # a quorum queue redelivered it x-delivery-limit times
    "expired": "transient",  # its TTL (message or queue x-message-ttl) ran out before a consumer took it
    "maxlen": "transient",  # the queue was full (x-max-length / x-max-length-bytes, drop-head)
}
DEFAULT_EXCHANGE = "pipelinectl.dlx"
DLQ_SUFFIX = ".dlq"


def plain(value: Any) -> Any:
    """pika's header values as JSON-friendly values (bytes -> text, datetimes -> RFC 3339, Decimals -> float)."""
    from decimal import Decimal

    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@dataclass
class Letter:
    """One message read from a dead-letter queue (still unacknowledged on our channel)."""

    dlq: str
    delivery_tag: int
    body: bytes
    properties: Any  # pika.BasicProperties
    redelivered: bool
    routing_key: str
    id: str = ""
    deaths: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    @property
    def original_queue(self) -> str | None:
        first = self.headers.get("x-first-death-queue")
        if isinstance(first, bytes):
            first = first.decode()
        if first:
            return str(first)
        return str(self.deaths[-1]["queue"]) if self.deaths else None

    @property
    def reason(self) -> str:
        """The latest reason (x-death is newest first)."""
        return str(self.deaths[0].get("reason")) if self.deaths else "unknown"

    @property
    def error_kind(self) -> str:
        return REASON_KINDS.get(self.reason, "persistent")

    @property
    def count(self) -> int:
        """How many times it was dead-lettered, all queues and reasons together."""
        return sum(int(d.get("count") or 1) for d in self.deaths) or 1

    @property
    def first_seen(self) -> datetime | None:
        times = [t for t in (_time(d.get("time")) for d in self.deaths) if t]
        return min(times) if times else None

    @property
    def last_seen(self) -> datetime | None:
        times = [t for t in (_time(d.get("time")) for d in self.deaths) if t]
        return max(times) if times else None

    def digest(self) -> str:
        p = self.properties
        first = next((d for d in reversed(self.deaths)), {})
        parts = [self.original_queue or "", str(first.get("reason", "")), str(plain(first.get("time"))),
                 str(p.message_id or ""), str(p.correlation_id or ""), str(p.timestamp or "")]
        h = hashlib.sha256("\x00".join(parts).encode())
        h.update(self.body)
        return h.hexdigest()[:16]


def parse(dlq: str, method: Any, properties: Any, body: bytes) -> Letter:
    """A Letter from what basic.get / basic.deliver gave (its id is set by `Ids`)."""
    headers = properties.headers or {}
    deaths = [plain(d) for d in (headers.get("x-death") or []) if isinstance(d, dict)]
    return Letter(dlq=dlq, delivery_tag=method.delivery_tag, body=body or b"", properties=properties,
                  redelivered=bool(method.redelivered), routing_key=method.routing_key, deaths=deaths)


class Ids:
    """Gives each letter of one scan its id: the digest, with ~N for identical messages in queue order."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def assign(self, letter: Letter) -> Letter:
        base = letter.digest()
        n = self.seen.get(base, 0) + 1
        self.seen[base] = n
        letter.id = base if n == 1 else f"{base}~{n}"
        return letter


def describe(letter: Letter) -> str:
    """One line for an operator: why and where it died, how often."""
    if not letter.deaths:
        return f"in dead-letter queue {letter.dlq} without x-death headers (published there directly?)"
    latest = letter.deaths[0]
    keys = ",".join(str(k) for k in latest.get("routing-keys") or [])
    return (f"{latest.get('reason')} in queue {latest.get('queue')} "
            f"({letter.count}x dead-lettered; exchange {latest.get('exchange')!r}, routing keys {keys or '-'})")



def properties_view(properties: Any) -> dict[str, Any]:
    """The AMQP basic properties that are set (headers apart)."""
    names = ("content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
             "expiration", "message_id", "timestamp", "type", "user_id", "app_id")
    return {n: plain(getattr(properties, n)) for n in names if getattr(properties, n, None) is not None}


# user_id is left out: RabbitMQ refuses a publish whose user_id is not the publishing user
PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "app_id", "cluster_id")


def raw_properties(properties: Any) -> dict[str, Any]:
    """A message's basic properties as keyword arguments for a new pika.BasicProperties (a copy, no user_id)."""
    return {n: getattr(properties, n) for n in PROPERTY_NAMES if getattr(properties, n, None) is not None}
