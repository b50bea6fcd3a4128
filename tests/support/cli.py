"""Run the installed `pipelinectl` executable as a user would: a subprocess, an isolated home.

Every run gets its own HOME, XDG config/state/cache dirs and no inherited
PIPELINECTL_* variables, so tests never read or write the developer's config
or audit log. `CliEnv.run()` pipes stdin/stdout/stderr (no TTY: the non-
interactive paths); `CliEnv.run_pty()` runs on a pseudo-terminal (the TTY
prompt paths) and answers prompts as they appear.

    from tests.support.cli import cli_fixture  # noqa: F401  (the `cli` fixture)

    def test_x(cli):
        cli.set_context("demo", url, token="...")
        result = cli.run("status", "-o", "json")
        assert result.rc == 0, result.stderr
        result.json()
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def executable() -> str:
    """The installed console script, next to this interpreter (the venv's bin dir)."""
    candidate = Path(sys.executable).parent / "pipelinectl"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pipelinectl")
    if found is None:
        raise RuntimeError("the pipelinectl executable is not installed (pip install -e .)")
    return found


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    args: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self) -> str:  # readable assertion failures
        return (f"Result(args={self.args!r}, rc={self.rc}, {self.seconds:.2f}s,\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr})")


class CliEnv:
    """An isolated user environment for running pipelinectl."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.config_home = self.home / ".config"
        self.state_home = self.home / ".local" / "state"
        self.cache_home = self.home / ".cache"
        for path in (self.config_home, self.state_home, self.cache_home):
            path.mkdir(parents=True, exist_ok=True)
        self.extra_env: dict[str, str] = {}

    # -- paths --------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.config_home / "pipelinectl" / "config.yaml"

    @property
    def audit_path(self) -> Path:
        return self.state_home / "pipelinectl" / "audit.jsonl"

    def audit_lines(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
        for key in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE"):
            env.pop(key, None)
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.config_home),
            XDG_STATE_HOME=str(self.state_home),
            XDG_CACHE_HOME=str(self.cache_home),
            COLUMNS="200",
            LC_ALL="C.UTF-8",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(self.extra_env)
        if extra:
            env.update(extra)
        return env

    # -- config helpers -----------------------------------------------------
    def set_context(self, name: str, url: str, *, token: str | None = None, pipeline: str | None = None,
                    use: bool = True, extra_args: tuple[str, ...] = ()) -> None:
        """Create a context through the CLI itself; a token goes into an env var the context names."""
        args = ["config", "set-context", name, "--url", url, *extra_args]
        if pipeline:
            args += ["--pipeline", pipeline]
        if token is not None:
            var = "PIPELINECTL_TEST_TOKEN_" + "".join(c if c.isalnum() else "_" for c in name).upper()
            self.extra_env[var] = token
            args += ["--token-env", var]
        if use:
            args.append("--use")
        result = self.run(*args)
        assert result.rc == 0, result

    # -- running ------------------------------------------------------------
    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60.0, cwd: str | Path | None = None) -> Result:
        """Run with pipes (no TTY). stdin is empty unless `input` is given."""
        started = time.perf_counter()
        done = subprocess.run(
            [executable(), *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout,
            cwd=cwd or self.root,
        )
        return Result(done.returncode, done.stdout, done.stderr, tuple(args), time.perf_counter() - started)

    def run_pty(self, *args: str, answers: list[tuple[str, str]] | None = None,
                env: dict[str, str] | None = None, timeout: float = 60.0,
                columns: int = 160, rows: int = 40, interrupt_after: str | None = None) -> Result:
        """Run on a pseudo-terminal (stdin, stdout and stderr all a TTY).

        `answers` is a list of (text to wait for, line to send), sent in order as
        each text appears in the output. The output of a TTY run is one stream;
        it is returned as `stdout` (with `\\r\\n` turned into `\\n`). With `interrupt_after`, Ctrl-C
        (SIGINT to the process group) is sent once that text has appeared.
        """
        return run_pty([executable(), *args], env=self.env(env), answers=answers, timeout=timeout,
                       columns=columns, rows=rows, cwd=self.root, interrupt_after=interrupt_after)


def run_pty(argv: list[str], *, env: dict[str, str], answers: list[tuple[str, str]] | None = None,
            timeout: float = 60.0, columns: int = 160, rows: int = 40, cwd: str | Path | None = None,
            interrupt_after: str | None = None) -> Result:
    """Run argv on a fresh pty; answer prompts; optionally send Ctrl-C once a text appears."""
    import fcntl
    import pty
    import signal
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**env, "COLUMNS": str(columns), "LINES": str(rows), "TERM": env.get("TERM", "xterm-256color")}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    pending = list(answers or [])
    seen = ""
    searched_from = 0
    interrupted = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"pty run timed out after {timeout}s; output so far:\n{seen}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    if proc.poll() is not None:
                        break
                    continue
                seen += chunk.decode("utf-8", "replace")
            elif proc.poll() is not None:
                # drain whatever is left, then stop
                try:
                    while select.select([master], [], [], 0.05)[0]:
                        chunk = os.read(master, 65536)
                        if not chunk:
                            break
                        seen += chunk.decode("utf-8", "replace")
                except OSError:
                    pass
                break
            while pending and pending[0][0] in seen[searched_from:]:
                expect, send = pending.pop(0)
                searched_from = seen.index(expect, searched_from) + len(expect)
                os.write(master, (send + "\n").encode())
            if interrupt_after and not interrupted and interrupt_after in seen:
                interrupted = True
                os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return Result(rc, seen.replace("\r\n", "\n"), "", tuple(argv[1:]), time.perf_counter() - started)


def validate_output(obj: Any) -> None:
    """Validate one machine-output object (a -o json document or a -o jsonl line) against
    docs/schema/output.schema.json; raises jsonschema.ValidationError naming the mismatch."""
    import jsonschema

    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schema" / "output.schema.json").read_text())
        _VALIDATOR = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    _VALIDATOR.validate(obj)


_VALIDATOR: Any = None


@pytest.fixture(name="cli")
def cli_fixture(tmp_path: Path) -> CliEnv:
    """`cli`: an isolated CliEnv under the test's tmp_path.

    Import it as `from tests.support.cli import cli_fixture  # noqa: F401`.
    """
    return CliEnv(tmp_path)
