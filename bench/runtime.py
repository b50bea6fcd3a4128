"""Benchmark of the reference runtime on this machine.

    .venv/bin/python bench/runtime.py [--quick] [--runs N]

Prints:
- items/s through a three-stage pipeline fed by its source (each handler awaits
  2 ms of simulated I/O, then the runtime commits the move to SQLite) with every
  stage at parallelism 1, 4 and 16, the median of N runs; beside it the ratio to
  the I/O-bound ideal (parallelism / 2 ms: every worker of a stage busy with
  nothing but its I/O) and to a peer measured in the same runs: the same three
  stages as bare asyncio tasks over asyncio.Queue, with no store at all, which
  shows what the event loop alone reaches on the machine at that moment;
- the latency from a pause request (HTTP, sent while the pipeline runs at
  parallelism 16 under continuous input) to the stage taking no new items,
  p50/p99 over repeated pause/resume cycles. The stage stops taking items when
  the pause is applied; the bench checks no item was taken after that instant.

Everything runs in one process (server in the same event loop as the client),
so the latency includes HTTP parsing, auth, the SQLite commit and loop
contention from the workers, and no network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelinectl.server import Pipeline, Runtime, StageDef  # noqa: E402

IO_DELAY = 0.002


def build(parallelism: int, n: int | None, go: asyncio.Event | None = None,
          stop: asyncio.Event | None = None) -> Pipeline:
    """Three stages fed by the pipeline's source (as an embedding feeds it): `n` items, or from `go` to `stop`."""
    p = Pipeline("bench")

    @p.source
    async def numbers(start: int):  # noqa: ANN202 - an async generator
        if go is not None:
            await go.wait()
        i = start
        while (n is None or i < n) and not (stop and stop.is_set()):
            yield f"k-{i}", {"i": i}
            i += 1

    async def step(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(IO_DELAY)
        return None

    for name in ("parse", "enrich", "store"):
        p.add_stage(StageDef(name, step, parallelism=parallelism, max_parallelism=64, capacity=200))
    return p


async def bare(parallelism: int, n: int) -> float:
    """The peer: the same pipeline shape as plain asyncio tasks and queues, nothing persisted."""
    queues = [asyncio.Queue(200) for _ in range(3)]
    finished = asyncio.Event()
    done = 0

    async def worker(index: int) -> None:
        nonlocal done
        while True:
            item = await queues[index].get()
            await asyncio.sleep(IO_DELAY)
            if index < 2:
                await queues[index + 1].put(item)
            else:
                done += 1
                if done == n:
                    finished.set()

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(worker(i)) for i in range(3) for _ in range(parallelism)]
    for i in range(n):
        await queues[0].put(i)
    await finished.wait()
    elapsed = time.perf_counter() - t0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return n / elapsed


def ideal(parallelism: int) -> float:
    """Items/s if every worker of the slowest stage did nothing but its simulated I/O."""
    return parallelism / IO_DELAY


async def throughput(parallelism: int, n: int, directory: Path) -> float:
    directory.mkdir(parents=True, exist_ok=True)
    runtime = Runtime([build(parallelism, n)], directory / f"tp-{parallelism}.db")
    t0 = time.perf_counter()
    await runtime.start()
    last = runtime.pipelines["bench"].stages[-1]
    while last.processed < n:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    await runtime.stop(5)
    return n / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def pause_latency(cycles: int, directory: Path) -> tuple[list[float], list[float]]:
    import httpx
    import uvicorn

    from pipelinectl.server.app import create_app
    from pipelinectl.server.auth import Authenticator

    go, stop = asyncio.Event(), asyncio.Event()
    runtime = Runtime([build(16, None, go, stop)], directory / "pause.db")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, Authenticator(None)), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    stage = runtime.pipelines["bench"].by_name["enrich"]
    url = f"http://127.0.0.1:{port}/v1/pipelines/bench/stages/enrich"

    async def cycle(client: httpx.AsyncClient, n: int) -> list[float]:
        latencies = []
        for _ in range(n):
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            r = await client.post(url + "/pause")
            assert r.status_code == 200 and r.json()["state"] == "paused", r.text
            applied = stage.changed_at
            await asyncio.sleep(0.05)
            assert stage.last_take <= applied, "an item was taken after the pause was applied"
            latencies.append(applied - t0)
            await client.post(url + "/resume")
        return latencies

    async with httpx.AsyncClient(timeout=10) as client:
        idle = await cycle(client, 10)  # baseline: the HTTP request and the commit alone
        go.set()  # continuous input from the source
        await asyncio.sleep(1.0)  # reach steady state: workers busy, queues filling
        loaded = await cycle(client, cycles)
    stop.set()
    server.should_exit = True
    await serving
    return idle, loaded


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main(quick: bool, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        load = os.getloadavg()[0]
        print(f"pipelinectl runtime bench: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
              f"{load:.2f}, 3 stages x {IO_DELAY * 1000:.0f} ms simulated I/O, SQLite WAL, median of {runs} run(s)")
        for parallelism in (1, 4, 16):
            n = {1: 300, 4: 1000, 16: 4000}[parallelism] // (4 if quick else 1)
            rates, peers = [], []
            for run in range(runs):  # interleaved, so machine noise hits both alike
                rates.append(await throughput(parallelism, n, directory / f"run-{run}"))
                peers.append(await bare(parallelism, n))
            rate, peer = statistics.median(rates), statistics.median(peers)
            print(f"  parallelism {parallelism:>2}: {rate:8,.0f} items/s  = {rate / ideal(parallelism):4.0%} of the "
                  f"I/O-bound ideal {ideal(parallelism):,.0f}/s;  bare asyncio peer {peer:,.0f}/s "
                  f"({rate / peer:.2f}x)  ({n} items)")
        idle, lat = await pause_latency(10 if quick else 50, directory)
        print(f"  pause -> no new items (parallelism 16, under load, {len(lat)} pauses): "
              f"p50 {statistics.median(lat) * 1000:.2f} ms, p99 {pct(lat, 0.99) * 1000:.2f} ms, "
              f"max {max(lat) * 1000:.2f} ms")
        print(f"  (same request on the idle pipeline: p50 {statistics.median(idle) * 1000:.2f} ms)")
        print(f"  load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and pauses (smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per parallelism (the median is shown)")
    args = parser.parse_args()
    asyncio.run(main(args.quick, max(1, args.runs)))
