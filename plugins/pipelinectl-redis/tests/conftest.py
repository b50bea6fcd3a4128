"""A real redis-server (Debian's) and real consumer processes for the plugin's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pipelinectl_redis.testing import REDIS_SERVER, Worker, make_driver, start_redis

HERE = Path(__file__).parent



def pytest_collection_modifyitems(config, items):
    """All but the pure unit tests run against a real redis-server: they are `slow` (`-m "not slow"` leaves
    them out), and without redis-server they skip with the reason."""
    skip = pytest.mark.skip(reason="redis-server is not installed (Debian package redis-server)")
    for item in items:
        if HERE in Path(str(item.fspath)).parents and Path(str(item.fspath)).name != "test_units.py":
            item.add_marker(pytest.mark.slow)
            if REDIS_SERVER is None:
                item.add_marker(skip)

os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_redis(tmp_path_factory.mktemp("redis"), persist=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server):
    """A plain redis-py client for set-up and for checking what really happened."""
    import redis

    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


@pytest.fixture
def workers(server):
    started: list[Worker] = []

    def start(stream: str, group: str, out: Path, url: str | None = None, **kw) -> Worker:
        w = Worker(HERE / "worker.py", url or server.url, stream, group, out, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


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
