"""Real `celery worker` processes for tests and benchmarks: each in its own process group, stopped by PID.

    group = WorkerGroup("redis://127.0.0.1:6379/1", tmp_path, app="myapp", app_dir=Path("tests"))
    node = group.start("w1", "parse,enrich")      # -> "w1@<host>" once it answers a ping
    ...
    group.stop_all()

A worker is ready when it answers a control ping (through this plugin's own link), so any
app works. Every process started is kept in STARTED, so a test session can check that none
is left running (`leftover()`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STARTED: list[subprocess.Popen] = []


class WorkerGroup:
    """`python -m celery -A APP worker -Q ... --pool prefork -n NAME@%h` processes on one broker."""

    def __init__(self, broker: str, root: Path, *, app: str, app_dir: Path, env: dict[str, str] | None = None) -> None:
        self.broker = broker
        self.root = Path(root)
        self.app = app
        self.app_dir = Path(app_dir)
        self.extra_env = dict(env or {})
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINECTL_", "CELERY_"))}
        env.update(CELERY_BROKER_URL=self.broker, CELERY_RESULT_BACKEND=self.broker, PYTHONPATH=str(self.app_dir),
                   PYTHONDONTWRITEBYTECODE="1", **self.extra_env, **extra)
        return env

    def start(self, name: str, queues: str, *, concurrency: int = 2, env: dict[str, str] | None = None,
              args: tuple[str, ...] = (), timeout: float = 60.0) -> str:
        """Start a prefork worker consuming QUEUES; return its node name once it answers a ping."""
        node = f"{name}@{socket.gethostname().split('.')[0]}"
        argv = [sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", queues, "--pool", "prefork",
                "--concurrency", str(concurrency), "-n", f"{name}@%h", "-l", "warning", "--without-gossip",
                "--without-mingle", *args]
        log_path = self.root / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, cwd=self.app_dir, env=self.env(**(env or {})), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(proc)
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited ({proc.returncode}): {log_path.read_text()[-3000:]}")
            if node in self.online():
                return node
            time.sleep(0.2)
        self.stop(name)
        raise RuntimeError(f"worker {name} did not answer a ping in {timeout:g}s: {log_path.read_text()[-3000:]}")

    def online(self) -> list[str]:
        from pipelinectl.plugin_api import Connection, PipelinectlError

        from .link import Link

        link = Link(Connection(context="testing", driver="celery", url=self.broker.split("?")[0], timeout=5,
                               settings={"reply_timeout": 0.5}, **self._tls()))
        try:
            return link.online_workers()
        except PipelinectlError:
            return []
        finally:
            link.close()

    def _tls(self) -> dict[str, str]:
        """A broker URL `rediss://...?ssl_ca_certs=CA` (as Celery takes it) gives the link the same CA."""
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(self.broker).query)
        return {"ca_file": query["ssl_ca_certs"][0]} if "ssl_ca_certs" in query else {}

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_group(proc)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the worker's process group (main process and pool children), then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the main process if it hung, pool children that outlived it
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover() -> list[int]:
    """Process groups of started workers that are still running."""
    return [p.pid for p in STARTED if group_alive(p.pid)]
