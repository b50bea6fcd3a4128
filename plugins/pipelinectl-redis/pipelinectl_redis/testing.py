"""Helpers for tests against a real redis-server: start one, drive a consumer process, add entries.

Used by this plugin's tests (and usable by an application's own): `start_redis()` runs
Debian's redis-server through `pipelinectl.testing.ServerProcess` (free port, own dir,
stopped by PID); `Worker` runs a consumer script and reads the JSON lines it logs.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pipelinectl.testing import ServerProcess, WorkerProcess, eventually, free_port

REDIS_SERVER = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


def start_redis(root: Path, *extra: str, persist: bool = False, name: str = "redis", port: int | None = None,
                plain_port: bool = True) -> ServerProcess:
    """redis-server on a free port of 127.0.0.1 with its own dir (AOF on with `persist`); stopped by PID."""
    if REDIS_SERVER is None:
        raise RuntimeError("redis-server is not installed")
    port = port or free_port()
    listen = ["--port", str(port)] if plain_port else ["--port", "0", "--tls-port", str(port)]
    argv = [REDIS_SERVER, *listen, "--bind", "127.0.0.1", "--dir", str(root), "--save", "",
            "--appendonly", "yes" if persist else "no", "--daemonize", "no", *extra]
    server = ServerProcess(argv, port=port, root=root, name=name)
    server.url = f"{'redis' if plain_port else 'rediss'}://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return server.start()


class Worker(WorkerProcess):
    """A consumer process (tests/worker.py) and the log of what it did."""

    def __init__(self, script: Path, url: str, stream: str, group: str, out: Path, consumer: str = "w1",
                 delay: float = 0.0,
                 fix_file: Path | None = None, env: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        args = [sys.executable, str(script), url, stream, group, consumer, str(out), "--delay", str(delay),
                *extra]
        if fix_file:
            args += ["--fix-file", str(fix_file)]
        super().__init__(args, out, env=env)

def make_driver(url: str, pipeline: str | None = None, timeout: float = 10.0, token: str | None = None, **settings):
    from pipelinectl.plugin_api import Connection
    from pipelinectl_redis.driver import RedisControlPlane

    return RedisControlPlane(Connection(context="test", driver="redis", url=url, pipeline=pipeline,
                                        token=lambda: token, settings=settings, timeout=timeout))


def add_entries(admin, stream: str, n: int, rule: str = "ok", prefix: str = "e") -> list[str]:
    pipe = admin.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"id": f"{prefix}{i}", "rule": rule})
    return [x.decode() for x in pipe.execute()]


def wait(predicate, timeout: float = 15.0, what: str = "condition"):
    return eventually(predicate, timeout=timeout, what=what, interval=0.05)
