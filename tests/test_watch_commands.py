"""`saga list --watch` and `dlq list --watch` against a real plane, piped: JSON lines appear as things
change, and Ctrl-C (SIGINT) ends the watch with exit 130 (interrupted, as the exit-code table says). (`status --watch` has its own end-to-end
tests in tests/cli/test_status_e2e.py.)
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cli import CliEnv, executable
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, CliEnv]]:
    root = tmp_path_factory.mktemp("watch-commands")
    server = start_server(root / "server", env={"PIPELINECTL_DEMO_RATE": "6"})
    try:
        cli = CliEnv(root / "user")
        cli.set_context("demo", server.url, token=server.tokens["admin"], pipeline="orders")
        yield server, cli
    finally:
        server.stop()


def api(server: RunningServer, method: str, path: str, **kw):
    response = httpx.request(method, server.url + "/v1/pipelines/orders" + path, headers=server.headers("admin"),
                             timeout=10, **kw)
    response.raise_for_status()
    return response.json()


def lines_until(proc: subprocess.Popen, done, timeout: float = 30.0) -> list[dict]:
    """Read JSON lines (a thread reads the pipe) until done(lines) is true."""
    if not hasattr(proc, "lines"):
        proc.lines = queue.Queue()
        threading.Thread(target=lambda: [proc.lines.put(line) for line in proc.stdout] + [proc.lines.put("")],
                         daemon=True).start()
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; lines so far: {seen}"
        try:
            line = proc.lines.get(timeout=remaining)
        except queue.Empty:
            continue
        assert line, "the watch ended early"
        seen.append(json.loads(line))
    return seen


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    return proc.returncode, err


def test_saga_list_watch_jsonl_says_when_a_saga_leaves_the_listing(plane):
    server, cli = plane
    deadline = time.monotonic() + 120
    while not api(server, "GET", "/sagas", params={"status": "stuck"})["items"]:
        assert time.monotonic() < deadline, "the demo makes stuck sagas"
        time.sleep(0.5)
    proc = subprocess.Popen([executable(), "saga", "list", "--status", "stuck", "--watch", "--interval", "0.3",
                             "-o", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=cli.env())
    try:
        first = lines_until(proc, lambda seen: len(seen) >= 1)
        saga_id = first[0]["id"]
        assert first[0]["kind"] == "Saga" and first[0]["status"] == "stuck"
        api(server, "POST", f"/sagas/{saga_id}/force-fail", json={"reason": "watch test"})
        lines_until(proc, lambda seen: any(d.get("id") == saga_id and d.get("removed") for d in seen))
        rc, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, err


def test_dlq_list_watch_jsonl_prints_new_items_as_they_arrive(plane):
    server, cli = plane
    proc = subprocess.Popen([executable(), "dlq", "list", "--watch", "--interval", "0.3", "-o", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=cli.env())
    try:
        total = api(server, "GET", "/dlq")["total"]
        # the demo keeps dead-lettering (every 17th order is poison): more lines than were there at the start
        lines = lines_until(proc, lambda seen: len(seen) > total, timeout=60)
        rc, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130, err
    ids = [d["id"] for d in lines]
    assert len(ids) == len(set(ids)), "each item once"
    assert all(d["kind"] == "DLQItem" for d in lines)
