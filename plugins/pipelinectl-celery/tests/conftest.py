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
from pathlib import Path
from typing import Any

import pytest
from pipelinectl_celery.testing import WorkerGroup, leftover

from pipelinectl.testing import ServerProcess, eventually, free_port, read_jsonl

HERE = Path(__file__).parent
REDIS = "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else shutil.which("redis-server")
_databases = itertools.count(1)


def pytest_collection_modifyitems(config, items):
    """Real redis-server and celery workers behind nearly every test here: all `slow` (`-m "not slow"`)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


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


class Workers(WorkerGroup):
    """The tests' app (celeryapp.py) on a module's broker, and the JSON-lines log its tasks write."""

    def __init__(self, broker: str, root: Path) -> None:
        self.log = root / "tasks.jsonl"
        self.fix = root / "fixed"
        super().__init__(broker, root, app="celeryapp", app_dir=HERE,
                         env={"PIPELINECTL_TEST_LOG": str(self.log), "PIPELINECTL_TEST_FIX": str(self.fix)})

    def start(self, name: str, queues: str, *, concurrency: int = 2, prefetch: int = 1, **kw: Any) -> str:
        return super().start(name, queues, concurrency=concurrency, env={"TEST_PREFETCH": str(prefetch)}, **kw)

    def rows(self, action: str | None = None) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.log) if action is None or r["action"] == action]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        return eventually(predicate, timeout=timeout, what=what, interval=0.05,
                          detail=lambda: f"log tail: {self.rows()[-5:]}")


@pytest.fixture(scope="session", autouse=True)
def no_worker_left():
    yield
    left = leftover()
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


def make_driver(url: str, pipeline: str | None = None, timeout: float = 10.0, token: str | None = None,
                ca_file: str | None = None, insecure_skip_tls_verify: bool = False, **settings):
    from pipelinectl_celery.driver import CeleryControlPlane

    from pipelinectl.plugin_api import Connection

    driver = CeleryControlPlane(Connection(context="test", driver="celery", url=url, pipeline=pipeline,
                                           token=lambda: token, settings=settings, timeout=timeout, ca_file=ca_file,
                                           insecure_skip_tls_verify=insecure_skip_tls_verify))
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
