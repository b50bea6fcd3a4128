"""A real pipeline worker for the tests: consumes one queue with pika and follows the control convention.

Each message is JSON {"id": ..., "rule": "ok" | "reject"}:
- ok: wait --delay seconds, ack, record it as processed;
- reject: basic.reject with requeue=false (RabbitMQ dead-letters it).
Once the file --fix-file exists every message is processed as ok (the bug is "fixed").

The control convention (docs/plugins/rabbitmq.md), implemented here with nothing but pika:
1. declare the stream `pipelinectl.control` (x-queue-type=stream) and consume it from offset
   "first" (prefetch 100, manual acks), keeping the last StageControl message for our queue;
2. publish a hello {"kind": "StageControlHello", "id": <uuid>} to it; when our own hello comes
   back we have read the whole history: apply the state, and from then on apply each message;
3. apply = paused (and `until` in the future): cancel our basic.consume, and consume again at
   `until`; not paused: basic.qos(prefetch) + basic.consume; a new prefetch while consuming:
   cancel, basic.qos(prefetch), consume.
Every action is one JSON line in OUT, so tests can see what the consumer really did.
"""

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime

import pika

CONTROL = "pipelinectl.control"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("queue")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--prefetch", type=int, default=10)
    parser.add_argument("--fix-file", default="")
    parser.add_argument("--ignore-control", action="store_true", help="a consumer that does not follow the convention")
    args = parser.parse_args()

    out = open(args.out, "a", buffering=1)

    def record(action: str, **fields) -> None:
        out.write(json.dumps({"action": action, "t": time.time(), **fields}) + "\n")

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    work = connection.channel()
    state = {"tag": None, "prefetch": args.prefetch, "paused": False, "caught_up": False, "latest": None,
             "timer": None}
    hello = uuid.uuid4().hex

    def on_message(ch, method, props, body) -> None:
        message = json.loads(body or b"{}")
        headers = props.headers or {}
        rule = message.get("rule", "ok")
        if args.fix_file and os.path.exists(args.fix_file):
            rule = "ok"
        common = {"id": message.get("id"), "redelivered": method.redelivered,
                  "redrive_of": _text(headers.get("x-pipelinectl-redrive-of")),
                  "replay_of": _text(headers.get("x-pipelinectl-replay-of")),
                  "dedupe": _text(headers.get("x-pipelinectl-dedupe-id"))}
        if rule == "reject":
            record("rejected", **common)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        if args.delay:
            time.sleep(args.delay)
        record("processed", **common)
        ch.basic_ack(method.delivery_tag)

    def consume() -> None:
        if state["tag"] is None:
            work.basic_qos(prefetch_count=state["prefetch"])
            state["tag"] = work.basic_consume(args.queue, on_message)
            record("consuming", prefetch=state["prefetch"])

    def cancel() -> None:
        if state["tag"] is not None:
            work.basic_cancel(state["tag"])  # undelivered prefetched messages go back (nack, requeue)
            state["tag"] = None
            record("cancelled")

    def apply(message: dict) -> None:
        if state["timer"] is not None:
            connection.remove_timeout(state["timer"])
            state["timer"] = None
        prefetch = message.get("prefetch") or args.prefetch
        until = message.get("until")
        remaining = (datetime.fromisoformat(until.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds() if until else None
        paused = bool(message.get("paused")) and (remaining is None or remaining > 0)
        if paused:
            cancel()
            if remaining is not None:
                state["timer"] = connection.call_later(remaining, lambda: apply({**message, "paused": False}))
        else:
            if prefetch != state["prefetch"] and state["tag"] is not None:
                cancel()
            state["prefetch"] = prefetch
            consume()

    def on_control(ch, method, props, body) -> None:
        ch.basic_ack(method.delivery_tag)
        try:
            message = json.loads(body)
        except ValueError:
            return
        if message.get("kind") == "StageControlHello":
            if message.get("id") == hello and not state["caught_up"]:
                state["caught_up"] = True
                record("caught-up", state=state["latest"])
                apply(state["latest"] or {})
                record("ready")
            return
        if message.get("kind") != "StageControl" or message.get("queue") != args.queue:
            return
        state["latest"] = message
        if state["caught_up"]:
            record("control", message=message)
            apply(message)

    if args.ignore_control:
        consume()
        record("ready")
    else:
        ctl = connection.channel()
        ctl.queue_declare(CONTROL, durable=True, arguments={"x-queue-type": "stream"})
        ctl.basic_qos(prefetch_count=100)
        ctl.basic_consume(CONTROL, on_control, arguments={"x-stream-offset": "first"})
        ctl.basic_publish("", CONTROL, json.dumps({"kind": "StageControlHello", "id": hello}).encode(),
                          pika.BasicProperties(content_type="application/json", delivery_mode=2))
    try:
        while True:
            connection.process_data_events(time_limit=0.1)
    except KeyboardInterrupt:
        pass


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()
