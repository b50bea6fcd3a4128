"""The dead-letter convention: a stream that records JetStream's give-up advisories.

JetStream has no dead-letter queue. When a consumer gives up on a message it
publishes an advisory instead: MAX_DELIVERIES (delivered `max_deliver` times
without an ack) or MSG_TERMINATED (the worker sent +TERM). `pipelinectl nats
dlq setup` creates one stream (default PIPELINECTL_DLQ) that captures these
advisories for the pipeline's streams. An entry is that advisory; its id is
the advisory's sequence in the DLQ stream; its original message is read back
from the source stream by the advisory's `stream_seq`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipelinectl.plugin_api import parse_time

DEFAULT_STREAM = "PIPELINECTL_DLQ"
PREFIX = "$JS.EVENT.ADVISORY.CONSUMER"
MAX_DELIVERIES = "MAX_DELIVERIES"
TERMINATED = "MSG_TERMINATED"
EVENTS = (MAX_DELIVERIES, TERMINATED)
# error kind shown for each advisory: retries exhausted vs. rejected by the worker
KIND_OF_EVENT = {MAX_DELIVERIES: "persistent", TERMINATED: "fatal"}
EVENT_OF_KIND = {kind: event for event, kind in KIND_OF_EVENT.items()}
DEFAULT_MAX_AGE = timedelta(days=14)


def subject(stream: str, consumer: str = "*", event: str = "*") -> str:
    """The advisory subject: $JS.EVENT.ADVISORY.CONSUMER.<EVENT>.<stream>.<consumer>."""
    return f"{PREFIX}.{event}.{stream}.{consumer}"


def stream_subjects(streams: list[str]) -> list[str]:
    """What the DLQ stream captures for these source streams."""
    return [subject(s, "*", event) for s in streams for event in EVENTS]


def stream_config(name: str, subjects: list[str], *, max_age: timedelta = DEFAULT_MAX_AGE,
                  replicas: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "description": "pipelinectl dead letters: JetStream max-delivery and terminated-message advisories",
        "subjects": subjects,
        "retention": "limits",
        "storage": "file",
        "discard": "old",
        "max_age": int(max_age.total_seconds() * 1e9),
        "num_replicas": replicas,
        "allow_direct": True,
    }


@dataclass
class Entry:
    """One DLQ entry: its advisory, decoded."""

    seq: int  # sequence in the DLQ stream, the entry's id
    event: str  # MAX_DELIVERIES | MSG_TERMINATED
    stream: str
    consumer: str
    stream_seq: int | None
    deliveries: int
    time: datetime | None
    reason: str | None
    advisory: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.seq)

    @property
    def error_kind(self) -> str:
        return KIND_OF_EVENT.get(self.event, "persistent")

    def describe(self) -> str:
        if self.event == TERMINATED:
            return f"terminated by the worker: {self.reason}" if self.reason else "terminated by the worker"
        return f"gave up after {self.deliveries} deliveries (max_deliver reached)"


def parse_entry(seq: int, subject_: str, data: bytes, stored: datetime | None) -> Entry:
    """Decode an advisory; the subject names event, stream and consumer even if the body is odd."""
    parts = subject_.split(".")
    event, stream, consumer = (parts[4], parts[5], ".".join(parts[6:])) if len(parts) >= 7 else ("?", "?", "?")
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    stream_seq = body.get("stream_seq")
    return Entry(
        seq=seq,
        event=event,
        stream=body.get("stream") or stream,
        consumer=body.get("consumer") or consumer,
        stream_seq=int(stream_seq) if isinstance(stream_seq, int) else None,
        deliveries=int(body.get("deliveries") or 1),
        time=parse_time(body["timestamp"]) if body.get("timestamp") else stored,
        reason=body.get("reason") or None,
        advisory=body,
    )
