"""Test helpers for pipelinectl and its plugins: the CLI as a user runs it, and real servers.

Public (plugins' tests import it): `CliEnv` runs the installed `pipelinectl` executable
in an isolated home; `ServerProcess` starts a real engine server on a free port with
its own data dir and stops it by PID; `free_port`, `wait_for_port`; `eventually` (poll
until something holds); `read_jsonl` (the whole lines of a log being written);
`assert_knobs_unsupported` (a driver's refusals of the verbs it does not offer);
`make_test_ca` (a throwaway CA and a server certificate for TLS tests).

Every CLI run gets its own HOME, XDG config/state/cache dirs and no inherited
PIPELINECTL_* variables, so tests never read or write the developer's config
or audit log. `CliEnv.run()` pipes stdin/stdout/stderr (no TTY: the non-
interactive paths); `CliEnv.run_pty()` runs on a pseudo-terminal (the TTY
prompt paths) and answers prompts as they appear.

    def test_x(tmp_path):
        cli = CliEnv(tmp_path)
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


def pytest_configure(config: Any) -> None:
    """Ctrl-C reaches every process a test starts, as it would from an operator's terminal.

    A shell without job control starts a background command with SIGINT ignored, and a child inherits
    that (Python then never raises KeyboardInterrupt): tests of Ctrl-C would fail for how pytest was
    started. Loaded for the whole suite by `-p pipelinectl.testing` (pyproject's addopts).
    """
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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
        return read_jsonl(self.audit_path)

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


def assert_knobs_unsupported(cli: CliEnv, driver: str, stage: str, *, saga: str = "saga-1",
                             having: frozenset[str] = frozenset()) -> None:
    """Each knob and saga-admin verb a driver does not offer exits 7 naming the verb, in a line or two,
    and the client's audit log has it as an error, never as done; `having` names the verbs it does offer."""
    invocations = {
        "limit": ("limit", stage, "--rate", "50/s"),
        "limit --clear": ("limit", stage, "--clear"),
        "disable": ("disable", stage, "--reason", "drill"),
        "enable": ("enable", stage),
        "replay --skipped": ("replay", "--skipped", stage, "--yes"),
        "saga cancel": ("saga", "cancel", saga, "--reason", "drill", "--yes"),
        "saga advance": ("saga", "advance", saga, "--step", "charge", "--reason", "drill", "--yes"),
        "audit": ("audit",),
    }
    audited = len(cli.audit_lines())
    for name, argv in invocations.items():
        if name in having:
            continue
        result = cli.run(*argv)
        verb = name.removesuffix(" --clear")
        assert result.rc == 7, (name, result)
        assert f"'{verb}' is not supported by the {driver} driver" in result.stderr, (name, result.stderr)
        assert result.stderr.count("\n") <= 2, (name, result.stderr)
    done = [e for e in cli.audit_lines()[audited:] if not str(e.get("result", "")).startswith("error")]
    assert done == [], f"a refused verb was audited as done: {done}"


# -- real servers -------------------------------------------------------------------------------------------


def eventually(probe: Any, *, timeout: float = 30.0, what: str = "condition", interval: float = 0.1,
               detail: Any = None) -> Any:
    """Poll `probe` until it returns something truthy (returned), or fail naming `what`.

    `detail`, a callable, adds what a failure should show (a log tail, the last rows seen).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    shown = f"; {detail()}" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{shown}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole JSON lines of a log another process is appending to.

    A reader can catch a line mid-write, so a last line without its newline is left for the next read.
    """
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0,
                  process: subprocess.Popen | None = None) -> None:
    """Until `host:port` accepts connections; fails early if `process` exits first."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited ({process.returncode}) before port {port} opened")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g}s")


@dataclass(frozen=True)
class TestCertificates:
    """Files written by `make_test_ca`: the CA to trust, and the server's certificate and key."""

    __test__ = False  # not a pytest test class

    ca: Path
    cert: Path
    key: Path


def make_test_ca(directory: Path, host: str = "127.0.0.1") -> TestCertificates:
    """A throwaway CA (openssl) and a certificate for `host` (an IP) signed by it, valid two days.

    Tests that need it skip when openssl is missing: `pytest.mark.skipif(shutil.which("openssl") is None, ...)`.
    """
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    directory.mkdir(parents=True, exist_ok=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pipelinectl test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text(f"subjectAltName=IP:{host}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.pem")
    (directory / "server.key").chmod(0o644)  # a server running as another user (rabbitmq) must read it
    return TestCertificates(ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key")


class ServerProcess:
    """A real server started by a test: its own session (process group), data dir and log file.

    `ready()` (optional) is polled after the port opens until it returns true, for
    servers that listen before they can serve. `stop()` sends SIGTERM to the process
    group (SIGKILL after `grace` seconds): servers that fork helpers stop whole.

        redis = ServerProcess(["redis-server", "--port", str(port), "--dir", str(tmp)],
                              port=port, root=tmp, name="redis").start()
        ...
        redis.stop()
    """

    def __init__(self, argv: list[str], *, port: int, root: Path, name: str = "server",
                 env: dict[str, str] | None = None, ready: Any = None, grace: float = 15.0) -> None:
        self.argv = argv
        self.port = port
        self.root = Path(root)
        self.name = name
        self.env = env
        self.ready = ready
        self.grace = grace
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        cwd=self.root, start_new_session=True)
        log.close()
        started = time.monotonic()
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
            while self.ready is not None and not self.ready():
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.process.returncode})")
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"{self.name} listens on {self.port} but is not ready after {timeout:g}s")
                time.sleep(0.1)
        except Exception as exc:
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {exc}\n--- {self.log_path} ---\n{self.log_tail()}") from None
        return self

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        import signal

        if self.process is None or self.process.poll() is not None:
            self._signal_group(signal.SIGKILL)  # helpers it left behind
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self._signal_group(signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole group now (a crash, for tests that need one)."""
        import signal

        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BlackHole:
    """A port where connecting hangs, as on a black-holed route: a listener whose accept queue is full.

        with BlackHole() as port:
            ...  # connect to 127.0.0.1:port: the SYN is dropped, connect() waits for its timeout
    """

    def __enter__(self) -> int:
        import socket

        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(0)
        port = self._server.getsockname()[1]
        self._fillers = []
        for _ in range(4):  # fill the accept queue; nobody ever accepts
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            self._fillers.append(filler)
        return port

    def __exit__(self, *exc: object) -> None:
        for filler in self._fillers:
            filler.close()
        self._server.close()


class WorkerProcess:
    """A consumer process a test starts, and the log of what it did (one JSON object per line).

    The worker script writes `{"action": ..., ...}` lines to `out` (`ready` once it consumes,
    `processed` with an `id` per item...); tests read them to count what really happened.
    Its stderr goes to `<out>.stderr` (a pipe nobody reads would fill up and stall it).
    """

    def __init__(self, argv: list[str], out: Path, *, env: dict[str, str] | None = None,
                 ready: bool = True, ready_timeout: float = 20.0) -> None:
        self.out = Path(out)
        self.stderr_path = self.out.with_name(self.out.name + ".stderr")
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr,
                                         env={**os.environ, **(env or {})})
        if ready:
            self.wait_for(lambda rows: any(r["action"] == "ready" for r in rows), timeout=ready_timeout)

    def rows(self, action: str | None = None) -> list[dict[str, Any]]:
        return [r for r in read_jsonl(self.out) if action is None or r["action"] == action]

    def processed_ids(self) -> list[str]:
        return [r["id"] for r in self.rows("processed")]

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            rows = self.rows()
            if predicate(rows):
                return rows
            if self.proc.poll() is not None:
                tail = self.stderr_path.read_text(errors="replace")[-2000:]
                raise AssertionError(f"worker exited ({self.proc.returncode}): {tail}")
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; worker log tail: {self.rows()[-5:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
