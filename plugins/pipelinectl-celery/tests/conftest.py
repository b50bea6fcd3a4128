"""A real redis-server and real `celery worker` processes (prefork) for the plugin's tests.

One redis-server per test session (free port, own dir, no persistence), one Redis database per
test module, and the module's workers on it: broadcasts of one module never reach another's
workers. Workers run in their own process group and are stopped by PID; the session fails if
one is left running.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipelinectl.testing import ServerProcess, free_port

HERE = Path(__file__).parent
REDIS = "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else shutil.which("redis-server")
_databases = itertools.count(1)
_started: list[subprocess.Popen] = []


@pytest.fixture(scope="session")
def redis_binary() -> str:
    if REDIS is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    return REDIS


@pytest.fixture(scope="session")
def redis(tmp_path_factory, redis_binary):
    root = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = ServerProcess([redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
                            "--appendonly", "no", "--databases", "64"], port=port, root=root, name="redis")
    server.start()
    server.url = f"redis://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def db(redis) -> str:
    """A broker URL on a Redis database of this module's own."""
    return f"{redis.url}/{next(_databases)}"


class Workers:
    """Real `celery worker` processes of one module, and the JSON-lines log the tasks write."""

    def __init__(self, broker: str, root: Path) -> None:
        self.broker = broker
        self.root = root
        self.log = root / "tasks.jsonl"
        self.fix = root / "fixed"
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINECTL_", "CELERY_"))}
        env.update(CELERY_BROKER_URL=self.broker, CELERY_RESULT_BACKEND=self.broker,
                   PIPELINECTL_TEST_LOG=str(self.log), PIPELINECTL_TEST_FIX=str(self.fix),
                   PYTHONPATH=str(HERE), PYTHONDONTWRITEBYTECODE="1", **extra)
        return env

    def start(self, name: str, queues: str, *, concurrency: int = 2, prefetch: int = 1, extra: tuple = ()) -> str:
        """Start `celery worker -n NAME@%h -Q QUEUES --pool prefork`; return its node name once it is ready."""
        before = len(self.rows("ready"))
        argv = [sys.executable, "-m", "celery", "-A", "celeryapp", "worker", "-Q", queues, "--pool", "prefork",
                "--concurrency", str(concurrency), "-n", f"{name}@%h", "-l", "warning", "--without-gossip",
                "--without-mingle", *extra]
        out = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed below, the child keeps its copy
        proc = subprocess.Popen(argv, cwd=HERE, env=self.env(TEST_PREFETCH=str(prefetch)), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        _started.append(proc)
        self.procs[name] = proc
        deadline = time.time() + 60
        while time.time() < deadline:
            ready = [r for r in self.rows("ready")[before:] if str(r.get("worker", "")).startswith(f"{name}@")]
            if ready:
                return ready[0]["worker"]
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {(self.root / f'{name}.log').read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {name} not ready in 60 s: {(self.root / f'{name}.log').read_text()[-3000:]}")

    def rows(self, action: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if action is None or r["action"] == action]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"{what} not met in {timeout}s; log tail: {self.rows()[-5:]}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_group(proc)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the worker's process group (main process and pool children), SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # pool children that outlived their parent
            except ProcessLookupError:
                pass
        break


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session", autouse=True)
def no_worker_left():
    yield
    left = [p.pid for p in _started if _group_alive(p.pid)]
    for pid in left:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"celery worker process groups left running: {left}"


@pytest.fixture(scope="module")
def workers(db, tmp_path_factory):
    group = Workers(db, tmp_path_factory.mktemp("workers"))
    yield group
    group.stop_all()


class Admin:
    """Celery's own view (a client app, its inspect API) and raw Redis, to check what really happened."""

    def __init__(self, broker: str) -> None:
        import redis as redis_py
        from celery import Celery

        self.broker = broker
        self.redis = redis_py.Redis.from_url(broker)
        self.app = Celery("pipelinectl-test", broker=broker, backend=broker, set_as_current=False)
        self.app.conf.update(result_extended=True, task_serializer="json", result_serializer="json",
                             accept_content=["json"])

    def send(self, item: str, queue: str, *, delay: float = 0.0, fail: str | None = None, **options) -> str:
        kwargs: dict[str, Any] = {"delay": delay}
        if fail:
            kwargs["fail"] = fail
        return self.app.send_task("t.work", args=[item], kwargs=kwargs, queue=queue, **options).id

    def inspect(self, nodes: list[str]) -> Any:
        return self.app.control.inspect(destination=nodes, timeout=2.0)

    def depth(self, queue: str) -> int:
        return int(self.redis.llen(queue))

    def failure_keys(self) -> list[str]:
        keys = [k.decode() for k in self.redis.scan_iter(match="celery-task-meta-*", count=1000)]
        return [k for k in keys if json.loads(self.redis.get(k) or b"{}").get("status") == "FAILURE"]

    def failure_ids(self) -> list[str]:
        return [k[len("celery-task-meta-"):] for k in self.failure_keys()]

    def close(self) -> None:
        self.redis.close()


@pytest.fixture(scope="module")
def admin(db):
    a = Admin(db)
    yield a
    a.close()


def make_driver(url: str, pipeline: str | None = None, timeout: float = 10.0, token: str | None = None, **settings):
    from pipelinectl_celery.driver import CeleryControlPlane

    from pipelinectl.plugin_api import Connection

    driver = CeleryControlPlane(Connection(context="test", driver="celery", url=url, pipeline=pipeline,
                                           token=lambda: token, settings=settings, timeout=timeout))
    driver.progress = None
    return driver


@pytest.fixture(name="make_driver")
def make_driver_fixture():
    """Build a driver for any URL (no server needed); closed at the end of the test."""
    made = []

    def make(url: str, **kw):
        d = make_driver(url, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


@pytest.fixture
def driver_for(db):
    made = []

    def make(url: str | None = None, **kw):
        d = make_driver(url or db, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


os.environ.setdefault("NO_COLOR", "1")
