"""Start the real control plane as a subprocess on a free port, for any test folder.

    from tests.support.server import start_server
    srv = start_server(tmp_path)            # demo pipeline, auth on, three tokens
    httpx.get(srv.url + "/v1/pipelines", headers=srv.headers("viewer"))
    srv.stop()

The server is `python -m pipelinectl.server`, i.e. the same code `pipelinectl
server` runs, over its own SQLite file in `tmp_path`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelinectl import testing
from pipelinectl.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("viewer", "operator", "admin")


def write_tokens(path: Path) -> dict[str, str]:
    tokens = {role: f"test-{role}-{os.urandom(6).hex()}" for role in ROLES}
    path.write_text(json.dumps({"tokens": [{"token": t, "role": r, "name": r} for r, t in tokens.items()]}))
    return tokens


@dataclass
class RunningServer:
    url: str
    db: Path
    log: Path
    args: list[str]
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token; empty when auth is off
    proc: subprocess.Popen | None = None

    def headers(self, role: str | None = "admin") -> dict[str, str]:
        if role is None or not self.tokens:
            return {}
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def start(self, timeout: float = 30.0) -> RunningServer:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                         start_new_session=True)
        wait_healthy(self.url, timeout, self.proc, self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send `sig` and wait; returns the exit code (None if it had to be killed)."""
        return stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL, 10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
    """Send `sig` to a process this test started and wait; its exit code (None if it had to be killed)."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{text[-3000:]}")
        try:
            if httpx.get(url + "/v1/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} not healthy after {timeout}s")


def start_server(tmp_path: Path, *, demo: bool = True, auth: bool = True, pipelines: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, extra_args: tuple[str, ...] = (),
                 db: Path | None = None, port: int | None = None) -> RunningServer:
    """Start a server (demo pipeline by default) and wait until /v1/healthz answers."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    db = db or tmp_path / "state.db"
    args = [sys.executable, "-m", "pipelinectl.server", "--host", "127.0.0.1", "--port", str(port), "--db", str(db)]
    tokens: dict[str, str] = {}
    if auth:
        tokens = write_tokens(tmp_path / "tokens.json")
        args += ["--token-file", str(tmp_path / "tokens.json")]
    args.append("--demo" if demo else "--no-demo")
    for spec in pipelines:
        args += ["--pipeline", spec]
    args += list(extra_args)
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                **(env or {})}
    server = RunningServer(url=f"http://127.0.0.1:{port}", db=db, log=tmp_path / f"server-{port}.log", args=args,
                           env=full_env, tokens=tokens)
    return server.start()


def eventually(what: str, probe, timeout: float = 40.0):  # noqa: ANN001, ANN201
    """Poll `probe` until it returns something truthy (returned), or fail naming `what`."""
    return testing.eventually(probe, timeout=timeout, what=what, interval=0.2)
