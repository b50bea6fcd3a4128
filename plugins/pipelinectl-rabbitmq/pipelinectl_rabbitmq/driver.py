"""RabbitControlPlane: the ControlPlane verbs on RabbitMQ.

Mapping (README.md and docs/plugins/rabbitmq.md have the operator's version):
- pipeline = a virtual host; stage = a queue of it (classic or quorum) with its consumers.
  The DLQs of those queues, stream queues and pipelinectl's own queues are not stages.
- status = the management API: ready, unacked, consumers and their prefetch, publish/deliver/ack
  rates, the dead-letter exchange and queue and its depth.
- pause/resume/scale = the control convention of control.py, which consumers opt into;
  its effect is checked on RabbitMQ's side (consumer count, consumers' prefetch).
- DLQ = the queue the dead-letter exchange routes a stage's rejected messages to; read by
  peeking (basic.get, then the channel is closed: RabbitMQ requeues every unacked message in
  place), redriven in AMQP transactions (publish to the original queue + ack, one commit).
- replay = read a stream queue from an offset or a time and republish into the stage.
Sagas and drain are not RabbitMQ concepts: they stay unsupported.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pipelinectl.plugin_api import (
    ERROR_KINDS,
    BulkResult,
    Capability,
    ConditionNotMetError,
    Connection,
    DLQFilter,
    DLQItem,
    NotFoundError,
    Pipeline,
    PipelinectlError,
    ReplayJob,
    ReplayRequest,
    Stage,
    StaleVersionError,
    UnavailableError,
    UnsupportedError,
    UnsupportedVerbs,
    UsageError,
    format_time,
    payload_view,
    retry,
)

from . import control, dlq
from .client import Amqp, Management, amqp_error, close_channel, seg
from .control import CONTROL_STREAM, MAX_PREFETCH, StageState

PREVIEW_CHARS = 512
DEFAULT_CONTROL_WAIT = 10.0  # seconds pause/scale wait for the consumers to follow
REPLAY_IDLE = 1.0  # seconds without a delivery that mean "the end of the stream, as it is now"
REDRIVE_BATCH = 100  # messages per AMQP transaction
REPLAY_PREFETCH = 500

ProgressFn = Callable[[str, int, int], None]  # (what, done, total)

NO_SAGAS = "RabbitMQ moves messages between queues; it has no sagas (workflows of steps with compensations)"
REPLAY_JOBS = "a replay runs to completion inside the 'replay' call; RabbitMQ keeps no replay jobs to list or cancel"


def _now() -> datetime:
    return datetime.now(UTC)


def _pairs(value: Any, setting: str) -> dict[str, str]:
    """`a=x,b=y` (or a mapping) as a dict: per-stage settings."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    pairs = [p.partition("=") for p in str(value).split(",") if p.strip()]
    if any(not sep or not k.strip() or not v.strip() for k, sep, v in pairs):
        raise UsageError(f"setting {setting}='{value}' is not STAGE=QUEUE[,STAGE=QUEUE...]")
    return {k.strip(): v.strip() for k, _, v in pairs}


def _names(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def topic_match(pattern: str, key: str) -> bool:
    """AMQP topic matching: '*' is one word, '#' zero or more."""
    words, parts = key.split("."), pattern.split(".")

    def go(i: int, j: int) -> bool:
        if j == len(parts):
            return i == len(words)
        if parts[j] == "#":
            return any(go(k, j + 1) for k in range(i, len(words) + 1))
        if i == len(words):
            return False
        return (parts[j] == "*" or parts[j] == words[i]) and go(i + 1, j + 1)

    return go(0, 0)


def _default_progress(what: str, done: int, total: int) -> None:
    if sys.stderr.isatty() and (done == total or done % 50 == 0):
        sys.stderr.write(f"\r{what} {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class RabbitControlPlane(UnsupportedVerbs):
    """A ControlPlane over one RabbitMQ cluster (its management API and AMQP)."""

    driver = "rabbitmq"
    url_schemes = ("http", "https")
    capabilities = frozenset({
        Capability.STATUS, Capability.PAUSE, Capability.PAUSE_UNTIL, Capability.RESUME, Capability.SCALE,
        Capability.REPLAY, Capability.REPLAY_BY_TIME, Capability.DLQ_LIST, Capability.DLQ_SHOW,
        Capability.DLQ_REDRIVE, Capability.DLQ_PURGE,
    })

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.api = Management(connection)
        self.amqp = Amqp(connection)
        settings = connection.settings
        self.only_queues: list[str] = _names(settings.get("queues"))
        self.queue_prefix: str = str(settings.get("queue_prefix") or "")
        self.dlq_overrides = _pairs(settings.get("dlq_queues"), "dlq_queues")
        self.replay_streams = _pairs(settings.get("replay_streams"), "replay_streams")
        self.replay_stream: str | None = settings.get("replay_stream") or None
        try:
            self.control_wait = float(settings.get("control_wait", DEFAULT_CONTROL_WAIT))
        except (TypeError, ValueError):
            raise UsageError("setting control_wait must be a number of seconds") from None
        self.progress: ProgressFn | None = _default_progress
        self.redrive_batch = REDRIVE_BATCH
        self.replay_idle = REPLAY_IDLE

    def close(self) -> None:
        self.amqp.close()
        self.api.close()

    # -- what RabbitMQ has no concept of: exit 7, saying why ---------------------------------------
    def _no(self, verb: str, why: str) -> Any:
        raise UnsupportedError.verb(self.driver, verb, why)

    def limit(self, pipeline, stage, rate, **kw):  # type: ignore[no-untyped-def]
        return self._no("limit", "RabbitMQ has no delivery rate limit (prefetch bounds unacked messages, not a rate)")

    def drain(self, pipeline, stage, **kw):  # type: ignore[no-untyped-def]
        return self._no("drain", "a RabbitMQ queue has no draining state (it takes messages while it exists); "
                                 "use 'pause' to stop deliveries to its consumers")

    def replay_list(self, pipeline):  # type: ignore[no-untyped-def]
        return self._no("replay list", REPLAY_JOBS)

    def replay_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._no("replay show", REPLAY_JOBS)

    def replay_cancel(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._no("replay cancel", REPLAY_JOBS)

    def saga_list(self, selection, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga list", NO_SAGAS)

    def saga_show(self, pipeline, saga_id):  # type: ignore[no-untyped-def]
        return self._no("saga inspect", NO_SAGAS)

    def saga_force_fail(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga force-fail", NO_SAGAS)

    def saga_retry(self, pipeline, saga_id, reason=None, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga retry", NO_SAGAS)

    def saga_force_complete(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga force-complete", NO_SAGAS)

    def saga_cancel(self, pipeline, saga_id, reason, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga cancel", NO_SAGAS)

    def saga_advance(self, pipeline, saga_id, step, reason, **kw):  # type: ignore[no-untyped-def]
        return self._no("saga advance", NO_SAGAS)

    def saga_batch(self, action, selection, reason, **kw):  # type: ignore[no-untyped-def]
        return self._no(f"saga {action} --query", NO_SAGAS)

    def saga_batch_show(self, pipeline, job_id):  # type: ignore[no-untyped-def]
        return self._no("saga batch", NO_SAGAS)

    def server_version(self) -> str:
        info = self.api.get("/api/overview")
        return (f"RabbitMQ {info.get('rabbitmq_version')} (Erlang {info.get('erlang_version')}, "
                f"management {info.get('management_version')})")

    # -- reading the vhost -------------------------------------------------------------------
    def _vhost(self, pipeline: str | None) -> str:
        name = pipeline or self.connection.pipeline or "/"
        if "," in name:
            raise UsageError(f"choose one pipeline (vhost) with -p/--pipeline, not '{name}'")
        return name

    def _snapshot(self, vhost: str) -> dict[str, Any]:
        """Queues, exchanges, bindings and consumers of a vhost, as the management API has them now."""
        if self.api.maybe(f"/api/vhosts/{seg(vhost)}") is None:
            raise NotFoundError(f"pipeline '{vhost}' not found: no virtual host of that name at {self.api.base_url}")
        queues = self.api.get(f"/api/queues/{seg(vhost)}")
        exchanges = self.api.get(f"/api/exchanges/{seg(vhost)}", params={"columns": "name,type"})
        bindings = self.api.get(f"/api/bindings/{seg(vhost)}")
        consumers = self.api.get(f"/api/consumers/{seg(vhost)}")
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for c in consumers or []:
            by_queue.setdefault((c.get("queue") or {}).get("name", ""), []).append(c)
        return {
            "queues": {q["name"]: q for q in queues or []},
            "exchange_types": {e["name"]: e.get("type") for e in exchanges or []},
            "bindings": bindings or [],
            "consumers": by_queue,
        }

    def _dead_letter(self, queue: dict[str, Any], snap: dict[str, Any]) -> dict[str, Any] | None:
        """Where the queue's dead letters go: exchange, routing key, and the queues that receive them."""
        args = queue.get("arguments") or {}
        policy = queue.get("effective_policy_definition") or {}
        name = queue["name"]
        dlx = args.get("x-dead-letter-exchange", policy.get("dead-letter-exchange"))
        override = self.dlq_overrides.get(name)
        if dlx is None and override is None:
            return None
        rk = args.get("x-dead-letter-routing-key", policy.get("dead-letter-routing-key"))
        key = rk if rk is not None else name  # else the message's own routing key: the queue's name via ""
        targets: list[str]
        if override:
            targets = [override]
        elif dlx == "":
            targets = [key] if key in snap["queues"] else []
        else:
            kind = snap["exchange_types"].get(dlx)
            targets = []
            for b in snap["bindings"]:
                if b.get("source") != dlx or b.get("destination_type") != "queue":
                    continue
                pattern = b.get("routing_key", "")
                if kind in ("fanout", "headers") or (kind == "direct" and pattern == key) or (
                        kind == "topic" and topic_match(pattern, key)):
                    targets.append(b["destination"])
            targets = sorted(set(targets))
        return {"exchange": dlx, "routing_key": rk, "queues": targets,
                "exchange_exists": dlx == "" or override is not None or dlx in snap["exchange_types"]}

    def _dlq_names(self, snap: dict[str, Any]) -> set[str]:
        names: set[str] = set()
        for q in snap["queues"].values():
            dead = self._dead_letter(q, snap)
            if dead:
                names.update(dead["queues"][:1])
        return names

    def _is_stage(self, queue: dict[str, Any], dlqs: set[str]) -> bool:
        name = queue["name"]
        if self.only_queues:
            return name in self.only_queues
        if name.startswith((control.OWN_PREFIX, "amq.")) or name in dlqs:
            return False
        if queue.get("type") == "stream" or queue.get("exclusive"):
            return False
        return name.startswith(self.queue_prefix)

    def _stage(self, vhost: str, queue: dict[str, Any], snap: dict[str, Any]) -> Stage:
        name = queue["name"]
        marker = snap["queues"].get(control.marker(name))
        state = StageState.from_arguments(marker.get("arguments") if marker else None)
        consumers = snap["consumers"].get(name, [])
        prefetches = sorted({int(c.get("prefetch_count") or 0) for c in consumers})
        stats = queue.get("message_stats") or {}

        def rate(key: str) -> float:
            return float((stats.get(f"{key}_details") or {}).get("rate") or 0.0)

        dead = self._dead_letter(queue, snap)
        dlq_name = dead["queues"][0] if dead and dead["queues"] else None
        dlq_depth = int(snap["queues"][dlq_name].get("messages") or 0) if dlq_name in snap["queues"] else 0
        shared = sorted(q for q, other in snap["queues"].items()
                        if q != name and dlq_name and (d := self._dead_letter(other, snap)) and d["queues"][:1] == [dlq_name])
        paused = state.effective_paused()
        parallelism = state.prefetch or (max(prefetches) if prefetches else 0)
        details: dict[str, Any] = {
            "vhost": vhost,
            "queue": name,
            "type": queue.get("type"),
            "queue_state": queue.get("state"),
            "durable": queue.get("durable"),
            "ready": int(queue.get("messages_ready") or 0),
            "unacked": int(queue.get("messages_unacknowledged") or 0),
            "consumers": max(int(queue.get("consumers") or 0), len(consumers)),
            "consumer_prefetch": [int(c.get("prefetch_count") or 0) for c in consumers],
            "consumer_connections": sorted({(c.get("channel_details") or {}).get("connection_name", "?") for c in consumers}),
            "publish_rate": rate("publish"),
            "deliver_rate": rate("deliver_get"),
            "ack_rate": rate("ack"),
            "redeliver_rate": rate("redeliver"),
            "published": int(stats.get("publish") or 0),
            "delivered": int(stats.get("deliver_get") or 0),
            "acked": int(stats.get("ack") or 0),
            "policy": queue.get("policy"),
            "dead_letter_exchange": dead["exchange"] if dead else None,
            "dead_letter_routing_key": dead["routing_key"] if dead else None,
            "dlq_queue": dlq_name,
            "dlq_depth": dlq_depth,
            "dlq_shared_with": shared,
            "dlq": (f"not set up (pipelinectl rabbitmq dlq setup {name})" if not dead else
                    dlq_name or f"the dead-letter exchange '{dead['exchange']}' routes to no queue"),
            "control": {"paused": state.paused, "until": format_time(state.until), "prefetch": state.prefetch,
                        "changed_at": format_time(state.at), "stream": CONTROL_STREAM, "marker": control.marker(name)}
            if marker else None,
        }
        if paused and details["consumers"]:  # told to pause, yet consumed from: they do not follow the convention
            details["not_following_pause"] = details["consumer_connections"] or details["consumers"]
        version_basis = {"arguments": queue.get("arguments"), "policy": queue.get("policy"),
                         "control": marker.get("arguments") if marker else None}
        return Stage(
            pipeline=vhost, name=name, state="paused" if paused else "running",
            parallelism=parallelism, min_parallelism=1, max_parallelism=MAX_PREFETCH,
            in_flight=int(queue.get("messages_unacknowledged") or 0),
            queue_depth=int(queue.get("messages_ready") or 0),
            processed=int(stats.get("ack") or 0), failed=dlq_depth, throughput=rate("ack"),
            dlq_size=dlq_depth, paused_until=state.until if paused else None,
            version=zlib.crc32(json.dumps(version_basis, sort_keys=True, default=str).encode()) & 0x7FFFFFFF,
            details=details,
        )

    def _pipeline(self, vhost: str) -> Pipeline:
        snap = self._snapshot(vhost)
        dlqs = self._dlq_names(snap)
        stages = [self._stage(vhost, q, snap) for q in sorted(snap["queues"].values(), key=lambda q: q["name"])
                  if self._is_stage(q, dlqs)]
        dlq_depth = sum(int(snap["queues"][d].get("messages") or 0) for d in dlqs if d in snap["queues"])
        streams = sorted(n for n, q in snap["queues"].items() if q.get("type") == "stream" and n != CONTROL_STREAM)
        return Pipeline(name=vhost, stages=stages, dlq_size=dlq_depth, driver=self.driver, details={
            "vhost": vhost, "dlq_queues": sorted(dlqs), "streams": streams,
            "control_stream": CONTROL_STREAM if CONTROL_STREAM in snap["queues"] else None,
            "replay_stream": self.replay_stream,
        })

    # -- status -----------------------------------------------------------------------------
    def status(self, pipeline: str | None = None) -> list[Pipeline]:
        if pipeline or self.connection.pipeline:
            return [self._pipeline(self._vhost(pipeline))]
        return [self._pipeline(v["name"]) for v in self.api.get("/api/vhosts")]

    def get_stage(self, pipeline: str, stage: str) -> Stage:
        vhost = self._vhost(pipeline)
        snap = self._snapshot(vhost)
        return self._stage_of(vhost, stage, snap)

    def _stage_of(self, vhost: str, stage: str, snap: dict[str, Any]) -> Stage:
        queue = snap["queues"].get(stage)
        if queue is None or not self._is_stage(queue, self._dlq_names(snap)):
            why = "no queue of that name" if queue is None else "that queue is not a stage (a DLQ, stream or pipelinectl queue)"
            raise NotFoundError(f"stage '{stage}' not found in pipeline '{vhost}': {why}")
        return self._stage(vhost, queue, snap)

    def _check_version(self, stage: Stage, expected: int | None) -> None:
        if expected is not None and expected != stage.version:
            raise StaleVersionError(
                f"stage '{stage.name}' changed since version {expected} was read (now {stage.version}); nothing was changed",
                hint="read it again with 'status' and retry")

    # -- stage control (the convention of control.py) --------------------------------------
    def pause(self, pipeline: str, stage: str, *, until: datetime | None = None, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        vhost = self._vhost(pipeline)
        if until is not None:
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            if until <= _now():
                raise UsageError(f"--until {format_time(until)} is in the past; nothing was changed")
        current, state = self._control_target(vhost, stage, expected_version)
        if dry_run:
            current.state, current.paused_until = "paused", until
            return current
        self._announce(vhost, stage, StageState(paused=True, until=until, prefetch=state.prefetch, at=_now()))
        self._await(vhost, stage, "pause", lambda s: self._live_consumers(vhost, stage),
                    "still consume{s}", lambda s: s.details["consumer_connections"])
        return self.get_stage(vhost, stage)

    def resume(self, pipeline: str, stage: str, *, dry_run: bool = False,
               expected_version: int | None = None) -> Stage:
        vhost = self._vhost(pipeline)
        current, state = self._control_target(vhost, stage, expected_version)
        if dry_run or (current.state != "paused" and not state.paused):
            current.state, current.paused_until = "running", None
            return current
        self._announce(vhost, stage, StageState(paused=False, prefetch=state.prefetch, at=_now()))
        return self.get_stage(vhost, stage)

    def scale(self, pipeline: str, stage: str, parallelism: int, *, dry_run: bool = False,
              expected_version: int | None = None) -> Stage:
        vhost = self._vhost(pipeline)
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or not 1 <= parallelism <= MAX_PREFETCH:
            raise UsageError(
                f"--parallelism must be a whole number from 1 to {MAX_PREFETCH} (the consumers' prefetch count), "
                f"got {parallelism!r}; nothing was changed",
                hint="RabbitMQ reads prefetch 0 as 'unlimited', so it is not accepted here")
        current, state = self._control_target(vhost, stage, expected_version)
        if dry_run:
            current.parallelism = parallelism
            return current
        before = self._live_consumers(vhost, stage)  # the queue's own count: the API's list may lag
        self._announce(vhost, stage, StageState(paused=state.paused, until=state.until, prefetch=parallelism, at=_now()))
        if not current.state == "paused" and before:
            def not_following(s: Stage) -> list[str]:
                return [c for c, p in zip(s.details["consumer_connections"], s.details["consumer_prefetch"], strict=False)
                        if p != parallelism]

            def pending(s: Stage) -> int:  # consumers not (yet) showing the new prefetch
                shown = s.details["consumer_prefetch"]
                return max(before - len(shown), 0) + sum(1 for p in shown if p != parallelism)

            self._await(vhost, stage, "scale", pending, f"do{{es}} not show prefetch {parallelism}", not_following)
        return self.get_stage(vhost, stage)

    def _control_target(self, vhost: str, stage: str, expected: int | None) -> tuple[Stage, StageState]:
        snap = self._snapshot(vhost)
        current = self._stage_of(vhost, stage, snap)
        self._check_version(current, expected)
        if current.details["type"] == "stream":
            raise UnsupportedError.verb(self.driver, "pause", "a stream queue's consumers choose their own offsets")
        marker = snap["queues"].get(control.marker(stage))
        return current, StageState.from_arguments(marker.get("arguments") if marker else None)

    def _announce(self, vhost: str, queue: str, state: StageState) -> None:
        """Tell the consumers (control stream, publisher-confirmed), then record it (the stage marker)."""
        import pika

        def once() -> None:
            self._ensure_control_stream(vhost)
            channel = self.amqp.channel(vhost)
            try:
                channel.confirm_delivery()
                body = control.encode(state.message(queue))
                props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                             headers={control.QUEUE_HEADER: queue},
                                             message_id=f"pipelinectl-control-{uuid.uuid4().hex}",
                                             timestamp=int(time.time()))
                self.amqp.call(f"publishing to {CONTROL_STREAM}",
                               lambda: channel.basic_publish("", CONTROL_STREAM, body, props, mandatory=True), vhost=vhost)
                name = control.marker(queue)
                self.amqp.call(f"recording {name}", lambda: (channel.queue_delete(name),
                                                            channel.queue_declare(name, durable=True,
                                                                                  arguments=state.arguments())),
                               vhost=vhost)
            except UnavailableError:
                self.amqp.drop(vhost)
                raise
            finally:
                close_channel(channel)

        # the message is the stage's whole state: sending it twice changes nothing
        retry(once, timeout=self.connection.timeout, what="stage control", trace=self.amqp.trace)

    def _ensure_control_stream(self, vhost: str) -> None:
        """Declare the control stream unless it exists (a passive check first: a consumer may have
        declared it with extra arguments, such as retention, which a plain re-declare would refuse)."""
        import pika.exceptions

        probe = self.amqp.channel(vhost)
        try:
            probe.queue_declare(CONTROL_STREAM, passive=True)
            return
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise amqp_error(exc, f"checking {CONTROL_STREAM}", vhost=vhost) from None
        except Exception as exc:
            raise amqp_error(exc, f"checking {CONTROL_STREAM}", vhost=vhost) from None
        finally:
            close_channel(probe)
        channel = self.amqp.channel(vhost)
        try:
            self.amqp.call(f"declaring {CONTROL_STREAM}", lambda: channel.queue_declare(
                CONTROL_STREAM, durable=True, arguments={"x-queue-type": "stream"}), vhost=vhost)
        finally:
            close_channel(channel)

    def _declare_ok(self, vhost: str, queue: str) -> Any:
        """The queue's own counts (queue.declare-ok), current, unlike the management API's sampled statistics."""
        channel = self.amqp.channel(vhost)
        try:
            return self.amqp.call(f"reading {queue}", lambda: channel.queue_declare(queue, passive=True),
                                  vhost=vhost).method
        finally:
            close_channel(channel)

    def _live_consumers(self, vhost: str, queue: str) -> int:
        return int(self._declare_ok(vhost, queue).consumer_count)

    def _live_depth(self, vhost: str, queue: str) -> int:
        return int(self._declare_ok(vhost, queue).message_count)

    def _await(self, vhost: str, stage: str, verb: str, pending: Callable[[Stage], int], failing: str,
               culprits: Callable[[Stage], list[str]]) -> None:
        """Wait (up to control_wait) until RabbitMQ shows the consumers followed; else say how many did not, and which."""
        deadline = time.monotonic() + max(0.0, min(self.control_wait, self.connection.timeout))
        while True:
            current = self.get_stage(vhost, stage)
            left = pending(current)
            if not left:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        who = culprits(current)
        named = f": {', '.join(who)}" if who else " (not yet in the management API's statistics)"
        raise ConditionNotMetError(
            f"stage '{stage}' was told to {verb} on {CONTROL_STREAM}, but {left} consumer{'s' if left != 1 else ''} "
            f"{failing.format(s='s' if left == 1 else '', es='es' if left == 1 else '')} after {self.control_wait:g}s{named}; "
            "they do not follow the pipelinectl control convention",
            hint="stop them, or make them follow the convention (see docs/plugins/rabbitmq.md); the state is recorded")

    # -- dead letters -------------------------------------------------------------------------
    def _dlq_targets(self, vhost: str, stage: str | None) -> list[tuple[str, dict[str, Any]]]:
        """(dead-letter queue, its queue info) of the pipeline's stages (or one stage), each once."""
        snap = self._snapshot(vhost)
        if stage is not None:
            self._stage_of(vhost, stage, snap)
        dlqs = self._dlq_names(snap)
        names: list[str] = []
        for q in sorted(snap["queues"].values(), key=lambda q: q["name"]):
            if not self._is_stage(q, dlqs) or (stage is not None and q["name"] != stage):
                continue
            dead = self._dead_letter(q, snap)
            if dead and dead["queues"] and dead["queues"][0] not in names:
                names.append(dead["queues"][0])
        if not names and stage is not None:
            raise NotFoundError(f"stage '{stage}' of pipeline '{vhost}' has no dead-letter queue",
                                hint=f"set one up with 'pipelinectl rabbitmq dlq setup {stage}'")
        found = [(n, snap["queues"][n]) for n in names if n in snap["queues"]]
        for name, info in found:
            if info.get("type") == "stream":
                raise UnsupportedError.verb(self.driver, "dlq list", f"the dead-letter queue '{name}' is a stream: "
                                            "a stream cannot remove one message, so its items could not be redriven or purged")
            args = {**(info.get("effective_policy_definition") or {}), **(info.get("arguments") or {})}
            if info.get("type") == "quorum" and (args.get("x-delivery-limit") or args.get("delivery-limit")):
                raise UnsupportedError.verb(self.driver, "dlq list", f"the dead-letter queue '{name}' is a quorum queue with a "
                                            "delivery limit: peeking requeues messages, and each requeue counts as a delivery")
        return found

    def _check_filter(self, selection: DLQFilter) -> str:
        if selection.error_kind and selection.error_kind not in ERROR_KINDS:
            raise UsageError(f"unknown error kind '{selection.error_kind}' (one of: {', '.join(ERROR_KINDS)})")
        return self._vhost(selection.pipeline)

    @staticmethod
    def _matches(letter: dlq.Letter, selection: DLQFilter) -> bool:
        if selection.ids and letter.id not in selection.ids:
            return False
        if selection.stage and letter.original_queue != selection.stage:
            return False
        if selection.error_kind and letter.error_kind != selection.error_kind:
            return False
        seen = letter.last_seen
        if selection.since and (seen is None or seen < selection.since):
            return False
        return not (selection.until and (seen is None or seen >= selection.until))

    def peek(self, vhost: str, queue: str) -> Peek:
        return Peek(self, vhost, queue)

    def _letters(self, selection: DLQFilter) -> Iterator[dlq.Letter]:
        """Matching letters of every DLQ of the selection; each DLQ's channel is closed (requeue) after."""
        vhost = self._check_filter(selection)
        for queue, _info in self._dlq_targets(vhost, selection.stage):
            with self.peek(vhost, queue) as peek:
                wanted = set(selection.ids)
                for letter in peek.letters():
                    if self._matches(letter, selection):
                        yield letter
                        wanted.discard(letter.id)
                        if selection.ids and not wanted:
                            return

    def _item(self, vhost: str, letter: dlq.Letter, preview: int | None) -> DLQItem:
        headers = letter.headers
        payload, info = payload_view(letter.body, preview, letter.properties.content_type)
        shown_headers = {k: v if isinstance(v, str) else json.dumps(dlq.plain(v), default=str)
                         for k, v in ((k, dlq.plain(v)) for k, v in headers.items()) if not k.startswith("x-death")}
        details = {
            "dlq_queue": letter.dlq,
            "reason": letter.reason,
            "original_queue": letter.original_queue,
            "first_death_exchange": dlq.plain(headers.get("x-first-death-exchange")),
            "x_death": letter.deaths,
            "routing_key": letter.routing_key,
            "redelivered": letter.redelivered,
            "properties": dlq.properties_view(letter.properties),
            **info,
        }
        return DLQItem(
            id=letter.id, pipeline=vhost, stage=letter.original_queue or "?", error_kind=letter.error_kind,
            message=dlq.describe(letter), attempts=letter.count, first_seen=letter.first_seen,
            last_seen=letter.last_seen, key=letter.properties.message_id, payload=payload,
            headers=shown_headers, details=details,
        )

    def dlq_list(self, selection: DLQFilter, *, page_size: int = 500) -> Iterator[DLQItem]:
        vhost = self._check_filter(selection)
        for letter in self._letters(selection):
            yield self._item(vhost, letter, PREVIEW_CHARS)

    def dlq_count(self, selection: DLQFilter) -> int:
        vhost = self._check_filter(selection)
        if selection.ids or selection.error_kind or selection.since or selection.until:
            return sum(1 for _ in self._letters(selection))
        targets = self._dlq_targets(vhost, selection.stage)
        if selection.stage and any(self._shared(vhost, q) for q, _ in targets):
            return sum(1 for _ in self._letters(selection))
        return sum(self._live_depth(vhost, q) for q, _ in targets)

    def _shared(self, vhost: str, dlq_queue: str) -> bool:
        snap = self._snapshot(vhost)
        users = [q for q in snap["queues"].values() if (d := self._dead_letter(q, snap)) and d["queues"][:1] == [dlq_queue]]
        return len(users) > 1

    def dlq_show(self, pipeline: str, item_id: str) -> DLQItem:
        vhost = self._vhost(pipeline)
        for letter in self._letters(DLQFilter(pipeline=vhost, ids=[item_id])):
            return self._item(vhost, letter, None)
        raise NotFoundError(f"DLQ item {item_id} not found in pipeline '{vhost}'")

    def _require_selection(self, selection: DLQFilter, action: str) -> None:
        if selection.is_empty():
            raise UsageError(f"dlq {action} needs ids or a filter (--all, --stage, --error-kind, --since, --until)")

    def dlq_redrive(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """Publish each letter to its original queue and ack it in the same AMQP transaction.

        A commit makes both happen, or (connection lost, process killed before the commit)
        neither: the letter is then still in the DLQ, in its place, and the target has no copy.
        """
        self._require_selection(selection, "redrive")
        vhost = self._check_filter(selection)
        result = BulkResult(action="redrive", pipeline=vhost, dry_run=dry_run)
        from .redrive import Redrive

        Redrive(self, vhost, selection, result, dry_run).run()
        return result

    def dlq_purge(self, selection: DLQFilter, *, dry_run: bool = False) -> BulkResult:
        """Acknowledge (delete) each matching letter; the others are given back untouched."""
        self._require_selection(selection, "purge")
        vhost = self._check_filter(selection)
        result = BulkResult(action="purge", pipeline=vhost, dry_run=dry_run)
        for queue, _info in self._dlq_targets(vhost, selection.stage):
            if not self._purge_from(vhost, queue, selection, result, dry_run):
                break
        return result

    def _purge_from(self, vhost: str, queue: str, selection: DLQFilter, result: BulkResult, dry_run: bool) -> bool:
        """Ack the matching letters of one DLQ; False when the connection failed (stop there)."""
        with self.peek(vhost, queue) as peek:
            wanted = set(selection.ids)
            for letter in peek.letters():
                if not self._matches(letter, selection):
                    continue
                result.matched.append(letter.id)
                wanted.discard(letter.id)
                if not dry_run:
                    try:
                        self.amqp.call(f"purging from {queue}", lambda t=letter.delivery_tag: peek.channel.basic_ack(t),
                                       vhost=vhost)
                    except PipelinectlError as exc:
                        result.failed[letter.id] = exc.message
                        return False
                    result.succeeded.append(letter.id)
                    peek.removed += 1
                if selection.ids and not wanted:
                    break
            if not dry_run:  # acks are asynchronous: a round trip makes sure they arrived before we report
                self.amqp.call(f"purging from {queue}", lambda: peek.channel.queue_declare(queue, passive=True),
                               vhost=vhost)
            return True

    # -- replay from a stream ---------------------------------------------------------------
    def _replay_source(self, vhost: str, stage: str, snap: dict[str, Any]) -> str:
        source = self.replay_streams.get(stage) or self.replay_stream
        why_none = ("RabbitMQ classic and quorum queues delete a message once it is acknowledged, so only a stream "
                    "queue (x-queue-type=stream) can be read again; name the stream that records this stage's input "
                    "with the context setting replay_stream=QUEUE (or replay_streams=STAGE=QUEUE)")
        if not source:
            raise UnsupportedError.verb(self.driver, "replay", why_none)
        info = snap["queues"].get(source)
        if info is None:
            raise NotFoundError(f"replay source '{source}' not found in pipeline '{vhost}': no queue of that name")
        if info.get("type") != "stream":
            raise UnsupportedError.verb(self.driver, "replay", f"'{source}' is a {info.get('type')} queue, not a stream: "
                                        + why_none.split(", so ")[0] + ", so there is nothing to read again")
        return source

    def replay(self, request: ReplayRequest) -> ReplayJob:
        vhost = self._vhost(request.pipeline)
        by_offset = request.from_offset is not None or request.to_offset is not None
        by_time = request.from_time is not None or request.to_time is not None
        if by_offset == by_time:
            raise UsageError("replay needs an offset range (--from-offset/--to-offset) or a time range, not both or neither")
        if by_offset:
            if request.from_offset is None or request.from_offset < 0:
                raise UsageError("replay --from-offset must be a stream offset >= 0")
            if request.to_offset is not None and request.to_offset <= request.from_offset:
                raise UsageError(f"replay range is empty: --to-offset {request.to_offset} must be after "
                                 f"--from-offset {request.from_offset} (end is exclusive)")
        else:
            if request.from_time is None:
                raise UsageError("replay by time needs a start time")
            if request.to_time is not None and request.to_time <= request.from_time:
                raise UsageError("replay time range is empty: the end must be after the start (end is exclusive)")
        snap = self._snapshot(vhost)
        if request.stage is None:
            dlqs = self._dlq_names(snap)
            stages = sorted(n for n, q in snap["queues"].items() if self._is_stage(q, dlqs))
            if not stages:
                raise NotFoundError(f"pipeline '{vhost}' has no stages (queues) to replay into")
            stage = stages[0]
        else:
            stage = request.stage
            self._stage_of(vhost, stage, snap)
        source = self._replay_source(vhost, stage, snap)
        from .replay import Replay

        return Replay(self, vhost, stage, source, request).run()


class Peek:
    """A read of a queue that takes nothing away: basic.get without ack, then the channel is closed.

    `letters()` reads at most the depth the queue had when it began (so it ends while messages
    keep arriving), head first, each left unacknowledged on `channel`. `close()` closes the
    channel, and RabbitMQ puts every message not acknowledged back in its place; it does so
    after the channel is gone, so `close()` waits (a moment at most) until the queue shows them
    again, and the next read, a redrive's or a purge's, finds every message where it was.
    Whoever acknowledges letters on `channel` counts them in `removed`.
    """

    GIVE_BACK_WAIT = 3.0

    def __init__(self, plane: RabbitControlPlane, vhost: str, queue: str) -> None:
        self.plane = plane
        self.vhost = vhost
        self.queue = queue
        self.channel = plane.amqp.channel(vhost)
        self.depth: int | None = None
        self.removed = 0

    def letters(self) -> Iterator[dlq.Letter]:
        amqp, queue, vhost, channel = self.plane.amqp, self.queue, self.vhost, self.channel
        self.depth = amqp.call(f"reading {queue}", lambda: channel.queue_declare(queue, passive=True),
                               vhost=vhost).method.message_count
        ids = dlq.Ids()
        for _ in range(self.depth):
            method, properties, body = amqp.call(f"reading {queue}", lambda: channel.basic_get(queue, auto_ack=False),
                                                 vhost=vhost)
            if method is None:
                return
            yield ids.assign(dlq.parse(queue, method, properties, body))

    def close(self) -> None:
        close_channel(self.channel)
        if self.depth is None:
            return
        expected = self.depth - self.removed
        deadline = time.monotonic() + self.GIVE_BACK_WAIT
        try:
            while self.plane._live_depth(self.vhost, self.queue) < expected and time.monotonic() < deadline:
                time.sleep(0.02)
        except PipelinectlError:  # the connection is gone: RabbitMQ requeues on its own
            pass

    def __enter__(self) -> Peek:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dlq_setup(plane: RabbitControlPlane, pipeline: str | None, queues: list[str], *, exchange: str = dlq.DEFAULT_EXCHANGE,
              dry_run: bool = False) -> dict[str, Any]:
    """Give stages a dead-letter queue: exchange `exchange` (direct), queue `<stage>.dlq`, and a policy.

    The policy `pipelinectl-dlq-<stage>` (pattern ^<stage>$) sets dead-letter-exchange and
    dead-letter-routing-key=<stage>, so a rejected or expired message of the stage lands in
    `<stage>.dlq` with its x-death headers. A stage that already dead-letters somewhere is left
    as it is; a stage with a policy of its own is refused (RabbitMQ applies one policy per queue,
    so ours would replace it).
    """
    import re

    vhost = plane._vhost(pipeline)
    if not queues:
        raise UsageError("name the stage(s) to give a dead-letter queue: pipelinectl rabbitmq dlq setup QUEUE...")
    if not exchange or exchange.startswith("amq."):
        raise UsageError(f"'{exchange}' cannot be the dead-letter exchange (empty, or a reserved amq.* name)")
    snap = plane._snapshot(vhost)
    # the policies themselves, not the queues' `policy` field: that one is sampled and may lag a new policy
    policies = plane.api.get(f"/api/policies/{seg(vhost)}") or []
    plan: list[dict[str, Any]] = []
    for name in queues:
        queue = plane._stage_of(vhost, name, snap).details
        info = snap["queues"][name]
        dead = plane._dead_letter(info, snap)
        entry: dict[str, Any] = {"queue": name, "dlq": f"{name}{dlq.DLQ_SUFFIX}", "policy": f"pipelinectl-dlq-{name}"}
        if dead is not None:
            entry.update(action="unchanged", dlq=queue["dlq_queue"], exchange=dead["exchange"], policy=info.get("policy"))
        elif own := [p["name"] for p in policies if p["name"] != entry["policy"] and p.get("apply-to") in
                     ("queues", "all", None) and re.search(p.get("pattern") or "", name)]:
            raise UsageError(
                f"queue '{name}' already has the policy '{own[0]}': RabbitMQ applies one policy per queue, so a "
                "pipelinectl policy would replace it; nothing was changed",
                hint=f"add dead-letter-exchange={exchange} and dead-letter-routing-key={name} to '{own[0]}', "
                     f"and create the queue {name}{dlq.DLQ_SUFFIX} bound to {exchange} with routing key {name}")
        else:
            entry.update(action="created", exchange=exchange)
        plan.append(entry)
    if not dry_run:
        v = seg(vhost)
        for entry in plan:
            if entry["action"] != "created":
                continue
            name, target = entry["queue"], entry["dlq"]
            plane.api.request("PUT", f"/api/exchanges/{v}/{seg(exchange)}", body={"type": "direct", "durable": True},
                              idempotent=True)
            plane.api.request("PUT", f"/api/queues/{v}/{seg(target)}", body={"durable": True, "arguments": {}},
                              idempotent=True)
            plane.api.request("POST", f"/api/bindings/{v}/e/{seg(exchange)}/q/{seg(target)}",
                              body={"routing_key": name}, idempotent=True)
            plane.api.request("PUT", f"/api/policies/{v}/{seg(entry['policy'])}", idempotent=True, body={
                "pattern": f"^{re.escape(name)}$", "apply-to": "queues", "priority": 0,
                "definition": {"dead-letter-exchange": exchange, "dead-letter-routing-key": name}})
    return {"kind": "RabbitDLQSetup", "pipeline": vhost, "dry_run": dry_run, "queues": plan}
