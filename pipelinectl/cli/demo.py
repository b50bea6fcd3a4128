"""`pipelinectl demo`: run the demo control plane in the background and select it.

`pipelinectl demo` (= `demo up`) starts `pipelinectl server --demo` detached on
loopback (auth off), waits for it to answer, creates and selects the context
"demo", then shows status. `demo down` stops it with SIGTERM. The pid file,
log and database live in the state directory, with the port it last listened
on: a restart takes that port again when it is free, so a running watch resumes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from pipelinectl.errors import UnavailableError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=False)

DEFAULT_PORT = 8780
CONTEXT = "demo"


def demo_dir() -> Path:
    from pipelinectl.config import state_dir

    return state_dir() / "demo"


def _pid_file() -> Path:
    return demo_dir() / "demo.json"


def _read_state() -> dict[str, Any] | None:
    try:
        return json.loads(_pid_file().read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a recycled pid is not our server
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"pipelinectl" in cmdline
    except OSError:
        return True


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/v1/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    """Free to listen on, as the server binds it: SO_REUSEADDR, so connections of the demo's last run
    lingering in TIME_WAIT do not count (a listening socket still does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_file() -> Path:
    """The port the demo last listened on; kept after 'demo down', so a restart comes back to it."""
    return demo_dir() / "port"


def _last_port() -> int | None:
    try:
        port = int(_port_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _pick_port(port: int | None) -> int:
    """--port; else the port it had (a running `status --watch` resumes on its own); else the default
    or any free one."""
    if port:
        return port
    last = _last_port()
    if last is not None and _port_free(last):
        return last
    chosen = DEFAULT_PORT if _port_free(DEFAULT_PORT) else _any_free_port()
    if last is not None:
        _info(f"port {last}, the demo's last, is taken: it listens on {chosen} now (context '{CONTEXT}' follows; "
              "watches started before do not)")
    return chosen


def _any_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running() -> dict[str, Any] | None:
    state = _read_state()
    if state and _alive(int(state.get("pid", 0))):
        return state
    return None


def _select_context(url: str) -> None:
    from pipelinectl.config import Context, load_config, save_config

    from .session import current

    path = current().options.config
    config = load_config(path)
    config.contexts[CONTEXT] = Context(name=CONTEXT, driver="http", url=url, pipeline="orders")
    config.current_context = CONTEXT
    save_config(config, path)


def _show_status() -> None:
    import dataclasses

    from .app import run
    from .session import current

    options = dataclasses.replace(current().options, context=CONTEXT)
    code = run(options, ["status"])
    if code:
        raise typer.Exit(code)


def _info(message: str) -> None:
    from .session import current

    current().info(message)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Start the demo control plane in the background, select context "demo", show status.

    `pipelinectl demo` alone is `pipelinectl demo up`. The demo listens on
    loopback with auth off; its pid file, log and database are in the state
    directory.

    Examples:
      pipelinectl demo
      pipelinectl demo down
    """
    if ctx.invoked_subcommand is None:
        up(port=None, fresh=False, timeout=30.0)


@app.command()
def up(
    port: int = typer.Option(None, "--port", min=1, max=65535,
                             help=f"Port (default: the demo's last one if free, else {DEFAULT_PORT}, else a free one)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start from an empty database (the demo must be down)."),
    timeout: float = typer.Option(30.0, "--timeout", min=1, help="Seconds to wait for the server to answer."),
) -> None:
    """Start the demo (if it is not running), select context "demo", show status.

    Examples:
      pipelinectl demo up
      pipelinectl demo up --fresh --port 8781
    """
    state = _running()
    if state is not None:
        if fresh:
            raise UsageError("the demo is running; run 'pipelinectl demo down' before --fresh")
        _info(f"demo already running at {state['url']} (pid {state['pid']})")
    else:
        state = _start(port, fresh, timeout)
        _info(f"demo control plane running at {state['url']} (pid {state['pid']}, auth off, loopback only)\n"
              f"  logs: {state['log']}\n  stop: pipelinectl demo down")
    _select_context(state["url"])
    _info(f"context '{CONTEXT}' selected")
    _show_status()
    _info("dashboard: pipelinectl ui --open (read-only; add --allow-writes for pause, redrive and the rest)")


def _start(port: int | None, fresh: bool, timeout: float) -> dict[str, Any]:
    from .server import require_server_extra

    require_server_extra()
    directory = demo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    db, log = directory / "demo.db", directory / "demo.log"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    port = _pick_port(port)
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "pipelinectl", "server", "--demo", "--host", "127.0.0.1", "--port", str(port),
            "--db", str(db)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    state = {"pid": proc.pid, "port": port, "url": url, "db": str(db), "log": str(log), "started": time.time()}
    _pid_file().write_text(json.dumps(state))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file().unlink(missing_ok=True)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise UnavailableError(f"the demo server exited with code {proc.returncode}: {tail[0]}",
                                   hint=f"see {log}")
        if _healthy(url):
            _port_file().write_text(f"{port}\n")
            return state
        time.sleep(0.2)
    raise UnavailableError(f"the demo server did not answer at {url} within {timeout:.0f}s", hint=f"see {log}")


@app.command()
def down(
    timeout: float = typer.Option(20.0, "--timeout", min=1, help="Seconds to wait after SIGTERM."),
) -> None:
    """Stop the demo server (SIGTERM, then wait for a graceful exit).

    Examples:
      pipelinectl demo down
    """
    state = _running()
    if state is None:
        _pid_file().unlink(missing_ok=True)
        _info("demo is not running")
        return
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        raise UnavailableError(f"the demo server (pid {pid}) did not stop within {timeout:.0f}s",
                               hint=f"kill it with 'kill -9 {pid}'")
    _pid_file().unlink(missing_ok=True)
    _info(f"demo stopped (pid {pid}); state kept in {state['db']}")


@app.command()
def status() -> None:
    """Say whether the demo server runs, where, and whether it answers.

    Examples:
      pipelinectl demo status
      pipelinectl -o json demo status
    """
    from .session import current

    state = _running()
    session = current()
    info: dict[str, Any] = {"kind": "Demo", "running": state is not None}
    if state is not None:
        info.update(url=state["url"], pid=state["pid"], healthy=_healthy(state["url"]), log=state["log"],
                    db=state["db"])
    if session.options.output in ("json", "yaml", "jsonl"):
        sys.stdout.write(json.dumps(info) + "\n")
        return
    if state is None:
        sys.stdout.write("demo: not running (start it with 'pipelinectl demo')\n")
        return
    health = "healthy" if info["healthy"] else "NOT answering"
    sys.stdout.write(f"demo: running at {state['url']} (pid {state['pid']}, {health})\n  logs: {state['log']}\n")
