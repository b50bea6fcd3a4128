"""Measure the driver's dead-letter verbs on a real redis-server, each next to a plain-Celery peer.

    .venv/bin/python plugins/pipelinectl-celery/bench/bench_celery.py [N] [SUCCESSES]

Starts its own redis-server (free port, temp dir), writes N failure records (and SUCCESSES
successful ones, which a scan must read past) with Celery's own result backend, as workers with
`result_extended=True` write them, then times, in the same run:

- `dlq count` and `dlq list` (all, oldest first) against the peer a script would write: Celery's
  backend read of every record, with the task ids known in advance (`backend.get_many`);
- `dlq redrive` (exactly once: publish + marker in one MULTI, then the record removed) against the
  plain loop `app.send_task(...)` + `AsyncResult.forget()`, which can send a task twice when it dies
  between the two calls.
No worker runs: the redriven tasks stay on the queue, and their count is checked.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pipelinectl_celery.driver import CeleryControlPlane

from pipelinectl.plugin_api import Connection, DLQFilter
from pipelinectl.testing import ServerProcess, free_port


def records(app, n: int, successes: int, queue: str) -> list[str]:
    from celery.app.task import Context

    ids = []
    for i in range(n):
        task_id = f"bench-fail-{i}"
        request = Context(id=task_id, task="bench.work", args=[i, "x" * 100], kwargs={"n": i}, hostname="bench@host",
                          retries=0, delivery_info={"routing_key": queue})
        app.backend.mark_as_failure(task_id, ValueError(f"boom {i}"), request=request, call_errbacks=False)
        ids.append(task_id)
    for i in range(successes):
        request = Context(id=f"bench-ok-{i}", task="bench.work", args=[i], kwargs={}, hostname="bench@host",
                          retries=0, delivery_info={"routing_key": queue})
        app.backend.mark_as_done(f"bench-ok-{i}", i, request=request)
    return ids


def timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    return label, seconds, value


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    successes = int(sys.argv[2]) if len(sys.argv) > 2 else 10 * n
    root = Path(tempfile.mkdtemp())
    port = free_port()
    server = ServerProcess(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                            "--save", ""], port=port, root=root, name="redis").start()
    url = f"redis://127.0.0.1:{port}/0"
    from celery import Celery

    app = Celery("bench", broker=url, backend=url, set_as_current=False)
    app.conf.update(result_extended=True, result_serializer="json", accept_content=["json"])
    driver = CeleryControlPlane(Connection(context="bench", driver="celery", url=url, timeout=300))
    driver.progress = None
    rows = []
    try:
        ids = records(app, n, successes, "bench.q")
        everything = DLQFilter(pipeline="celery", all=True)
        rows.append(timed("dlq count", lambda: driver.dlq_count(everything)))
        rows.append(timed("dlq list (all, oldest first)", lambda: sum(1 for _ in driver.dlq_list(everything))))
        rows.append(timed("peer: backend.get_many(known ids)",
                          lambda: sum(1 for _ in app.backend.get_many(ids, timeout=60, interval=0.01))))
        rows.append(timed("dlq redrive (exactly once)", lambda: len(driver.dlq_redrive(everything).succeeded)))
        queued = driver.link.broker().llen("bench.q")
        records(app, n, 0, "bench.peer")  # the same failures again, for the peer to re-send

        def peer() -> int:
            for i in range(n):
                meta = app.backend.get_task_meta(f"bench-fail-{i}")
                app.send_task(meta["name"], args=meta["args"], kwargs=meta["kwargs"], queue="bench.peer")
                app.AsyncResult(f"bench-fail-{i}").forget()
            return n

        rows.append(timed("peer: send_task + forget loop", peer))
        peer_queued = driver.link.broker().llen("bench.peer")
    finally:
        driver.close()
        server.stop()
    print(f"N = {n} failure records among {n + successes} results; redis-server on loopback")
    print(f"{'verb':40} {'time':>9} {'rate':>14}  value")
    for label, seconds, value in rows:
        print(f"{label:40} {seconds:8.3f}s {n / seconds:11.0f}/s  {value}")
    by = {label: seconds for label, seconds, _ in rows}
    print(f"dlq list / peer read: {by['dlq list (all, oldest first)'] / by['peer: backend.get_many(known ids)']:.2f}x")
    print(f"dlq redrive / peer loop: {by['dlq redrive (exactly once)'] / by['peer: send_task + forget loop']:.2f}x")
    print(f"queued by redrive: {queued} (expected {n}); by the peer: {peer_queued}")


if __name__ == "__main__":
    main()
