"""Rows of the store as the API's models, and the ids, times and page tokens the API shows for them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelinectl import model as m
from pipelinectl.errors import UsageError

from .store import loads


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def to_ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def dlq_id(seq: int) -> str:
    return f"dlq-{seq}"


def parse_dlq_id(text: str) -> int | None:
    if text.startswith("dlq-") and text[4:].isdigit() and len(text) < 24:
        return int(text[4:])
    return None


def encode_token(seq: int) -> str:
    return f"s{seq}"


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    if token.startswith("s") and token[1:].isdigit() and len(token) < 24:
        return int(token[1:])
    raise UsageError("invalid page_token", hint="pass the next_page_token of the previous page unchanged")


def dlq_item(r: Any) -> m.DLQItem:
    return m.DLQItem(
        id=dlq_id(r["seq"]), pipeline=r["pipeline"], stage=r["stage"], error_kind=r["error_kind"],
        message=r["message"], attempts=r["attempts"], first_seen=to_dt(r["first_seen"]),
        last_seen=to_dt(r["last_seen"]), key=r["key"], offset=r["offset"], payload=loads(r["payload"]),
        headers=loads(r["headers"]) or {}, details=loads(r["details"]) or {},
    )


def replay_job(r: Any) -> m.ReplayJob:
    ranged = r["source"] != "skipped"  # a skipped job's start and end are record numbers, not offsets
    return m.ReplayJob(
        id=r["id"], pipeline=r["pipeline"], stage=r["stage"], state=r["state"], source=r["source"],
        from_offset=r["start_offset"] if ranged else None, to_offset=r["end_offset"] if ranged else None,
        from_time=to_dt(r["from_time"]), to_time=to_dt(r["to_time"]), total=r["total"], replayed=r["replayed"],
        skipped=r["skipped"], created_at=to_dt(r["created_at"]), finished_at=to_dt(r["finished_at"]),
        error=r["error"],
    )
