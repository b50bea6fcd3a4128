"""A real consumer for the tests, following the documented pipelinectl consumer convention.

It reads one stream as one consumer of a group and, as docs/plugins/redis.md asks:
- polls the stage hash pipelinectl:stage:{STREAM}:GROUP every --poll seconds: while `paused`
  is "1" (and `paused_until`, if set, is still ahead) it reads nothing, new or pending;
  `parallelism` is how many entries it processes at once (threads);
- acknowledges without processing an entry whose `pipelinectl:for-group` names another group;
- retries its failures by claiming pending entries idle --retry-idle ms, but only those
  delivered fewer than `max_deliveries` times: the rest are left for the dead-letter sweep.

Each entry is {"id": ..., "rule": "ok" | "fail"}: ok waits --delay seconds, acks and is
recorded as processed; fail is not acked (so it is retried, then dead-lettered). Once the
file --fix-file exists every entry is ok. Every action is one JSON line in OUT.
"""

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("stream")
    parser.add_argument("group")
    parser.add_argument("consumer")
    parser.add_argument("out")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--fix-file", default="")
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--retry-idle", type=int, default=300)
    parser.add_argument("--password-env", default="")
    args = parser.parse_args()

    password = os.environ.get(args.password_env) if args.password_env else None
    r = redis.Redis.from_url(args.url, password=password)
    stage_key = f"pipelinectl:stage:{{{args.stream}}}:{args.group}"
    out = open(args.out, "a", buffering=1)
    lock = threading.Lock()
    state = {"inflight": 0, "paused": None, "parallelism": None}
    pool = ThreadPoolExecutor(max_workers=64)

    def record(action: str, **fields) -> None:
        with lock:
            out.write(json.dumps({"action": action, "inflight": state["inflight"], "t": time.time(), **fields}) + "\n")

    def handle(entry_id: bytes, fields: dict) -> None:
        body = {k.decode(): v.decode() for k, v in fields.items()}
        info = {"id": body.get("id"), "entry_id": entry_id.decode(), "replay_of": body.get("pipelinectl:replay-of"),
                "redrive_of": body.get("pipelinectl:redrive-of")}
        try:
            target = body.get("pipelinectl:for-group")
            if target and target != args.group:
                r.xack(args.stream, args.group, entry_id)
                record("foreign", **info)
                return
            rule = body.get("rule", "ok")
            if args.fix_file and os.path.exists(args.fix_file):
                rule = "ok"
            if rule == "fail":
                record("fail", **info)
                return  # not acked: retried after --retry-idle, dead-lettered after max_deliveries
            time.sleep(args.delay)
            record("processed", **info)
            r.xack(args.stream, args.group, entry_id)
        except Exception as exc:  # a server restart mid-ack: the entry stays pending and comes back
            record("error", error=repr(exc))
        finally:
            with lock:
                state["inflight"] -= 1

    def submit(entries) -> None:
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                continue
            with lock:
                state["inflight"] += 1
            pool.submit(handle, entry_id, fields)

    record("ready")
    while True:
        try:
            paused, until, parallelism, max_deliveries = r.hmget(
                stage_key, "paused", "paused_until", "parallelism", "max_deliveries")
            now_ms = time.time() * 1000
            is_paused = paused == b"1" and (until is None or now_ms < int(until))
            limit = int(parallelism) if parallelism else 1
            if (is_paused, limit) != (state["paused"], state["parallelism"]):
                state["paused"], state["parallelism"] = is_paused, limit
                record("state", paused=is_paused, parallelism=limit)
            if is_paused:
                time.sleep(args.poll)
                continue
            free = limit - state["inflight"]
            if free <= 0:
                time.sleep(0.01)
                continue
            # retries first: pending entries idle long enough, delivered fewer than max_deliveries times
            most = int(max_deliveries) if max_deliveries else None
            stale = r.xpending_range(args.stream, args.group, min="-", max="+", count=free, idle=args.retry_idle)
            retry = [p["message_id"] for p in stale if most is None or p["times_delivered"] < most]
            if retry:
                claimed = r.xclaim(args.stream, args.group, args.consumer, args.retry_idle, retry)
                submit(claimed)
                free -= len(claimed)
            if free > 0:
                got = r.xreadgroup(args.group, args.consumer, {args.stream: ">"}, count=free,
                                   block=int(args.poll * 1000))
                for _stream, entries in got or []:
                    submit(entries)
        except redis.exceptions.ConnectionError:
            time.sleep(0.2)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
