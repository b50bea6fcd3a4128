"""A real pipeline worker for the tests: pulls from a durable consumer and applies rules.

Each message is JSON {"id": ..., "rule": "ok" | "nak" | "term"}:
- ok: wait --delay seconds, ack, record it as processed;
- nak: nak it (redelivered until the consumer's max_deliver gives up);
- term: +TERM it with a reason (the consumer gives up at once).
Once the file --fix-file exists, every message is processed as ok (the bug is
"fixed", so a redrive succeeds). Every action is one JSON line in OUT, with the
worker's in-flight count, so tests can observe pausing and parallelism.
"""

import argparse
import asyncio
import json
import os
import time

import nats
import nats.errors


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("consumer")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fix-file", default="")
    args = parser.parse_args()

    out = open(args.out, "a", buffering=1)
    nc = await nats.connect(args.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=_quiet)
    js = nc.jetstream()
    sub = await js.pull_subscribe_bind(consumer=args.consumer, stream=args.stream)
    state = {"inflight": 0}
    tasks: set[asyncio.Task] = set()

    def record(action: str, msg, body: dict) -> None:
        meta = msg.metadata
        headers = msg.headers or {}
        out.write(json.dumps({
            "action": action, "id": body.get("id"), "seq": meta.sequence.stream,
            "deliveries": meta.num_delivered, "subject": msg.subject, "inflight": state["inflight"],
            "replay_of": headers.get("Pipelinectl-Replay-Of"), "redrive_of": headers.get("Pipelinectl-Redrive-Of"),
            "t": time.time(),
        }) + "\n")

    async def handle(msg) -> None:
        state["inflight"] += 1
        try:
            body = json.loads(msg.data or b"{}")
            rule = body.get("rule", "ok")
            if args.fix_file and os.path.exists(args.fix_file):
                rule = "ok"
            if rule == "nak":
                record("nak", msg, body)
                await msg.nak()
            elif rule == "term":
                record("term", msg, body)
                await nc.publish(msg.reply, b"+TERM poison: " + str(body.get("id")).encode())
            else:
                await asyncio.sleep(args.delay)
                record("processed", msg, body)
                await msg.ack_sync(timeout=5)
        except Exception as exc:  # a restart mid-ack: the server redelivers
            out.write(json.dumps({"action": "error", "error": repr(exc)}) + "\n")
        finally:
            state["inflight"] -= 1

    out.write(json.dumps({"action": "ready"}) + "\n")
    while True:
        try:
            msgs = await sub.fetch(16, timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        except Exception:
            await asyncio.sleep(0.2)
            continue
        for msg in msgs:
            task = asyncio.create_task(handle(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


async def _quiet(exc: Exception) -> None:
    pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
