"""Measure the driver on a real nats-server: DLQ list/count/redrive and replay throughput.

    .venv/bin/python plugins/pipelinectl-nats/bench/bench_nats.py [N]

Starts its own nats-server (free port, temp dir), makes N dead letters by
terminating N messages with a real consumer, then times the driver's verbs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelinectl_nats.driver import NatsControlPlane

from pipelinectl.plugin_api import Connection, DLQFilter, ReplayRequest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def make_dead_letters(url: str, n: int) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(n):
        await js.publish("bench.in", json.dumps({"id": i, "pad": "x" * 200}).encode())
    sub = await js.pull_subscribe_bind(consumer="work", stream="BENCH")
    done = 0
    while done < n:
        for msg in await sub.fetch(256, timeout=5):
            await nc.publish(msg.reply, b"+TERM bench")
            done += 1
    await nc.flush()
    await nc.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    server_bin = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"
    store = tempfile.mkdtemp()
    port = free_port()
    proc = subprocess.Popen([server_bin, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    time.sleep(0.5)
    driver = NatsControlPlane(Connection(context="bench", driver="nats", url=url, pipeline="BENCH", timeout=60))
    driver.progress = None
    try:
        run = driver.link.run
        api = driver.link.api
        run(api("STREAM.CREATE.BENCH", {"name": "BENCH", "subjects": ["bench.>"], "storage": "file"}))
        run(api("CONSUMER.CREATE.BENCH.work", {"stream_name": "BENCH", "config": {
            "durable_name": "work", "ack_policy": "explicit", "filter_subject": "bench.in", "max_ack_pending": 10000}}))
        driver.dlq_setup(["BENCH"])
        asyncio.run(make_dead_letters(url, n))
        everything = DLQFilter(pipeline="BENCH", all=True)
        while driver.dlq_count(everything) < n:
            time.sleep(0.1)

        def timed(label: str, fn, per_item: bool = True):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            result = fn()
            took = time.perf_counter() - started
            rate = f"   {n / took:9.0f} items/s" if per_item else ""
            print(f"{label:<38} {took:7.3f} s{rate}")
            return result

        print(f"nats-server at {url}, {n} dead letters")
        timed("status", lambda: driver.status(), per_item=False)
        timed("dlq count (subject counts)", lambda: driver.dlq_count(everything), per_item=False)
        items = timed("dlq list (all, originals resolved)", lambda: list(driver.dlq_list(everything)))
        assert len(items) == n
        pages = driver.dlq_list(everything)
        started = time.perf_counter()
        next(pages)
        print(f"{'dlq list: first item':<38} {time.perf_counter() - started:7.3f} s")
        pages.close()
        timed("replay dry run (headers only)", lambda: driver.replay(
            ReplayRequest(pipeline="BENCH", stage="work", from_offset=1, dry_run=True)))
        job = timed("replay (republish, Nats-Msg-Id)", lambda: driver.replay(
            ReplayRequest(pipeline="BENCH", stage="work", from_offset=1, to_offset=n + 1)))
        assert job.replayed == n
        result = timed("dlq redrive (publish ack, then delete)", lambda: driver.dlq_redrive(everything))
        assert len(result.succeeded) == n, result.failed
    finally:
        driver.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
