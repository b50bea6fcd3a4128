"""`pipelinectl server` and `pipelinectl demo` as an operator runs them (subprocesses, temp XDG dirs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import ROOT, free_port

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def xdg_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=str(ROOT), NO_COLOR="1")
    return env


def test_auth_off_is_refused_off_loopback(tmp_path):
    env = xdg_env(tmp_path)
    for cmd in (["pipelinectl.server"], ["pipelinectl", "server"]):
        out = run([*cmd, "--host", "0.0.0.0", "--port", str(free_port()), "--demo", "--db", str(tmp_path / "x.db")],
                  env)
        assert out.returncode == 2, out.stderr
        assert "without auth" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.db").exists()


def test_bad_token_file_is_one_line(tmp_path):
    env = xdg_env(tmp_path)
    bad = tmp_path / "tokens.yaml"
    bad.write_text("tokens:\n  - token: abc\n    role: root\n")
    out = run(["pipelinectl", "server", "--demo", "--port", str(free_port()), "--token-file", str(bad)], env)
    assert out.returncode == 2
    assert "role must be one of" in out.stderr and "abc" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_demo_up_selects_context_and_down_stops(tmp_path):
    env = xdg_env(tmp_path)
    port = free_port()
    try:
        up = run(["pipelinectl", "demo", "up", "--port", str(port)], env)
        assert up.returncode == 0, up.stderr
        assert "AUTH OFF" not in up.stdout  # the banner goes to the log, the status to stdout
        assert "orders" in up.stdout and "charge" in up.stdout  # status of the demo pipeline
        assert "context 'demo' selected" in up.stderr
        assert "dashboard: pipelinectl ui --open" in up.stderr  # how to open the web UI
        config = (tmp_path / "config" / "pipelinectl" / "config.yaml").read_text()
        assert "current-context: demo" in config and f"127.0.0.1:{port}" in config
        log = (tmp_path / "state" / "pipelinectl" / "demo" / "demo.log").read_text()
        assert "AUTH OFF" in log  # the banner says auth is off
        health = httpx.get(f"http://127.0.0.1:{port}/v1/healthz").json()
        assert health["auth"] is False
        again = run(["pipelinectl", "demo"], env)  # idempotent: already running, just selects and shows
        assert again.returncode == 0 and "already running" in again.stderr
        status = run(["pipelinectl", "-o", "json", "demo", "status"], env)
        assert json.loads(status.stdout)["running"] is True
    finally:
        down = run(["pipelinectl", "demo", "down"], env)
    assert down.returncode == 0, down.stderr
    assert "demo stopped" in down.stderr
    assert run(["pipelinectl", "demo", "down"], env).returncode == 0  # stopping a stopped demo is fine
    try:
        httpx.get(f"http://127.0.0.1:{port}/v1/healthz", timeout=1)
        raise AssertionError("the demo server still answers after 'demo down'")
    except httpx.ConnectError:
        pass


def _demo_port(tmp_path: Path) -> int:
    config = (tmp_path / "config" / "pipelinectl" / "config.yaml").read_text()
    return int(config.split("url: http://127.0.0.1:")[1].split()[0])


def test_demo_restarts_on_the_port_it_had_and_says_so_when_that_port_is_taken(tmp_path):
    import socket

    env = xdg_env(tmp_path)
    port = free_port()
    try:
        assert run(["pipelinectl", "demo", "up", "--port", str(port)], env).returncode == 0
        assert run(["pipelinectl", "demo", "down"], env).returncode == 0
        again = run(["pipelinectl", "demo", "up"], env)  # no --port: the one it had
        assert again.returncode == 0, again.stderr
        assert _demo_port(tmp_path) == port and f"127.0.0.1:{port}" in again.stderr
        assert run(["pipelinectl", "demo", "down"], env).returncode == 0
        with socket.socket() as squatter:  # someone else took it meanwhile
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = run(["pipelinectl", "demo", "up"], env)
            assert moved.returncode == 0, moved.stderr
            assert _demo_port(tmp_path) != port
            assert f"port {port}, the demo's last, is taken: it listens on {_demo_port(tmp_path)} now" in moved.stderr
    finally:
        run(["pipelinectl", "demo", "down"], env)


def test_a_status_watch_resumes_after_the_demo_restarts(tmp_path):
    import signal
    import threading
    import time

    env = xdg_env(tmp_path)
    port = free_port()
    out: list[str] = []
    err: list[str] = []

    def until(what, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {out[-3:]} {err}"
            time.sleep(0.1)

    try:
        assert run(["pipelinectl", "demo", "up", "--port", str(port)], env).returncode == 0
        proc = subprocess.Popen([sys.executable, "-m", "pipelinectl", "status", "--watch", "--interval", "0.3",
                                 "--timeout", "2", "-o", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
            threading.Thread(target=lambda st=stream, sk=sink: [sk.append(line) for line in st], daemon=True).start()
        try:
            until("the first pass", lambda: len(out) >= 5)
            assert run(["pipelinectl", "demo", "down"], env).returncode == 0
            until("the outage note", lambda: any("unreachable since" in line for line in err))
            assert run(["pipelinectl", "demo", "up"], env).returncode == 0  # same port: the watch finds it
            until("the plane to answer again", lambda: any("answers again" in line for line in err))
            seen = len(out)
            until("lines after the restart", lambda: len(out) > seen)  # the demo keeps changing
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
        assert proc.returncode == 130, err
    finally:
        run(["pipelinectl", "demo", "down"], env)
