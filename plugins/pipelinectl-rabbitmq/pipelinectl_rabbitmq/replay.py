"""replay: read a stream queue from an offset or a time, republish each message into the stage.

A stream keeps its messages after they are read, so a range of it can be read again: an AMQP
consumer attaches with `x-stream-offset` (an offset, or a timestamp: RabbitMQ starts at the first
chunk written at or after that time; a timestamp is whole seconds, and a chunk is a batch written
together, so times are that coarse). The end of a time range is found the same way (the first offset at or after the end
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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelinectl.plugin_api import ReplayJob, ReplayRequest

from . import dlq
from .client import close_channel

if TYPE_CHECKING:
    from .driver import RabbitControlPlane

REPLAY_HEADER = "x-pipelinectl-replay-of"
DEDUPE_HEADER = "x-pipelinectl-dedupe-id"
REPLAY_FIRST_WAIT = 5.0  # seconds a replay waits for its first message (an empty range costs this much)


class Replay:
    def __init__(self, plane: RabbitControlPlane, vhost: str, stage: str, source: str, request: ReplayRequest) -> None:
        self.plane = plane
        self.amqp = plane.amqp
        self.vhost = vhost
        self.stage = stage
        self.source = source
        self.request = request

    def _first_wait(self) -> float:
        """How long to wait for a stream's first message: the node may take a moment to find an offset or a time."""
        return max(self.plane.replay_idle, min(REPLAY_FIRST_WAIT, self.plane.connection.timeout / 4))

    def _first_offset_at(self, when: datetime) -> int | None:
        """The first offset written at or after `when`, or None when nothing was written since."""
        # a generous wait: on a busy node attaching can take a while, and a late answer must not
        # read as "nothing since" (the replay would then run past its end)
        with self.amqp.stream(self.vhost, self.source, when, prefetch=1, idle=self.plane.replay_idle,
                              first_wait=self._first_wait()) as reader:
            for _method, props, _body in reader:
                return int((props.headers or {})["x-stream-offset"])
        return None

    def _republish(self, writer: Any, offset: int, headers: dict[str, Any], props: Any, body: bytes) -> None:
        import pika

        headers[REPLAY_HEADER] = f"{self.source}:{offset}"
        headers[DEDUPE_HEADER] = f"replay:{self.vhost}:{self.source}:{offset}"
        copy = {**dlq.raw_properties(props), "headers": headers}
        copy.setdefault("message_id", headers[DEDUPE_HEADER])
        writer.basic_publish("", self.stage, body, pika.BasicProperties(**copy), mandatory=True)

    def run(self) -> ReplayJob:
        return self.amqp.call(f"replay from {self.source}", self._run, vhost=self.vhost)

    def _run(self) -> ReplayJob:
        req = self.request
        started = datetime.now(UTC)
        job = ReplayJob(id=f"replay-{uuid.uuid4().hex[:12]}", pipeline=self.vhost, stage=self.stage,
                        state="planned" if req.dry_run else "running", from_offset=req.from_offset,
                        to_offset=req.to_offset, from_time=req.from_time, to_time=req.to_time, created_at=started)
        end = req.to_offset
        end_exists = False  # the message at `end` was seen: every offset before it can be waited for
        if end is None:  # a time range's end, or "now": what is written later is not part of this replay
            # AMQP timestamps are whole seconds: "now" is the next whole second, so what was written in this
            # second (before the replay began) is not cut off
            now = (started + timedelta(seconds=1)).replace(microsecond=0)
            end = self._first_offset_at(req.to_time or now)
            end_exists = end is not None
        start: Any = req.from_offset if req.from_offset is not None else req.from_time
        writer = None if req.dry_run else self.amqp.channel(self.vhost)
        total = (end - req.from_offset) if end is not None and req.from_offset is not None else 0
        try:
            if writer is not None:
                writer.confirm_delivery()
            # with a known end, a pause in deliveries is the node being slow, not the end of the range
            idle = self._first_wait() if end_exists else self.plane.replay_idle
            last = -1
            with self.amqp.stream(self.vhost, self.source, start, prefetch=500, idle=idle,
                                  first_wait=self._first_wait()) as reader:
                for method, props, body in reader:
                    headers = dict(props.headers or {})
                    offset = last = int(headers.pop("x-stream-offset", -1))
                    if end is not None and offset >= end:
                        break
                    if req.from_offset is not None and offset < req.from_offset:  # the chunk holding the start
                        reader.ack(method)
                        continue
                    job.total += 1
                    if writer is not None:
                        self._republish(writer, offset, headers, props, body)
                        job.replayed += 1
                        if self.plane.progress:
                            self.plane.progress("replaying", job.replayed, max(total, job.replayed))
                    reader.ack(method)
        finally:
            if writer is not None:

                close_channel(writer)
        job.state = "planned" if req.dry_run else "completed"
        if end_exists and last < end - 1 and job.total:
            job.state = "failed"
            job.error = (f"the stream stopped delivering at offset {last}, before the end of the range (offset {end}); "
                         f"{job.replayed} messages were replayed")
        job.finished_at = datetime.now(UTC)
        if job.to_offset is None and end is not None and req.from_offset is not None:
            job.to_offset = end
        return job
