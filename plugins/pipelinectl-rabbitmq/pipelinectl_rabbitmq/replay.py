"""replay: read a stream queue from an offset or a time, republish each message into the stage.

A stream keeps its messages after they are read, so a range of it can be read again: an AMQP
consumer attaches with `x-stream-offset` (an offset, or a timestamp: RabbitMQ starts at the first
chunk written at or after that time; a chunk is a batch written together, so times are that
coarse). The end of a time range is found the same way (the first offset at or after the end
time); without an end the replay stops at the end of the stream as it was when the replay
began (the first offset written after that moment), or when nothing more arrives.

Each copy goes to the stage's queue through the default exchange (no other queue sees it),
publisher-confirmed, with `x-pipelinectl-replay-of: <stream>:<offset>` and the dedupe id
`x-pipelinectl-dedupe-id: replay:<vhost>:<stream>:<offset>` (also its message_id when it had
none). RabbitMQ does not deduplicate: a consumer that must not process a message twice checks
that id. The stream itself is never written to.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelinectl.plugin_api import ReplayJob, ReplayRequest

from . import dlq

if TYPE_CHECKING:
    from .driver import RabbitControlPlane

REPLAY_HEADER = "x-pipelinectl-replay-of"
DEDUPE_HEADER = "x-pipelinectl-dedupe-id"


class Replay:
    def __init__(self, plane: RabbitControlPlane, vhost: str, stage: str, source: str, request: ReplayRequest) -> None:
        self.plane = plane
        self.amqp = plane.amqp
        self.vhost = vhost
        self.stage = stage
        self.source = source
        self.request = request

    def _first_offset_at(self, when: datetime) -> int | None:
        """The first offset written at or after `when`, or None when nothing was written since."""
        channel = self.amqp.channel(self.vhost)
        try:
            channel.basic_qos(prefetch_count=1)
            for method, props, _body in channel.consume(self.source, auto_ack=False, inactivity_timeout=self.plane.replay_idle,
                                                        arguments={"x-stream-offset": when}):
                if method is None:
                    return None
                return int((props.headers or {})["x-stream-offset"])
            return None
        finally:
            from .driver import _close

            _close(channel)  # never basic.cancel: pika would nack what it holds, and streams refuse nacks

    def run(self) -> ReplayJob:
        return self.amqp.call(f"replay from {self.source}", self._run, vhost=self.vhost)

    def _run(self) -> ReplayJob:
        import pika

        req = self.request
        started = datetime.now(UTC)
        job = ReplayJob(id=f"replay-{uuid.uuid4().hex[:12]}", pipeline=self.vhost, stage=self.stage,
                        state="planned" if req.dry_run else "running", from_offset=req.from_offset,
                        to_offset=req.to_offset, from_time=req.from_time, to_time=req.to_time, created_at=started)
        end = req.to_offset
        if end is None:  # a time range's end, or "now": what is written later is not part of this replay
            end = self._first_offset_at(req.to_time or started)
        start: Any = req.from_offset if req.from_offset is not None else req.from_time
        reader = self.amqp.channel(self.vhost)
        writer = None if req.dry_run else self.amqp.channel(self.vhost)
        try:
            reader.basic_qos(prefetch_count=500)
            if writer is not None:
                writer.confirm_delivery()
            total = (end - req.from_offset) if end is not None and req.from_offset is not None else 0
            for method, props, body in reader.consume(self.source, auto_ack=False, inactivity_timeout=self.plane.replay_idle,
                                                      arguments={"x-stream-offset": start}):
                if method is None:
                    break  # nothing more: the end of the stream as it is now
                headers = dict(props.headers or {})
                offset = int(headers.pop("x-stream-offset", -1))
                if end is not None and offset >= end:
                    break
                if req.from_offset is not None and offset < req.from_offset:
                    reader.basic_ack(method.delivery_tag)
                    continue
                job.total += 1
                if writer is not None:
                    headers[REPLAY_HEADER] = f"{self.source}:{offset}"
                    headers[DEDUPE_HEADER] = f"replay:{self.vhost}:{self.source}:{offset}"
                    copy = {**dlq.raw_properties(props), "headers": headers}
                    copy.setdefault("message_id", headers[DEDUPE_HEADER])
                    writer.basic_publish("", self.stage, body, pika.BasicProperties(**copy), mandatory=True)
                    job.replayed += 1
                    if self.plane.progress:
                        self.plane.progress("replaying", job.replayed, max(total, job.replayed))
                reader.basic_ack(method.delivery_tag)
        finally:
            from .driver import _close

            _close(reader)
            if writer is not None:
                _close(writer)
        job.state = "planned" if req.dry_run else "completed"
        job.finished_at = datetime.now(UTC)
        if job.to_offset is None and end is not None and req.from_offset is not None:
            job.to_offset = end
        return job
