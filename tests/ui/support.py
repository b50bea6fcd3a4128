"""Support for the dashboard's tests: `pipelinectl ui` as a user runs it, a real headless Chromium, screenshots.

    ui = UiProcess(cli, "--allow-writes").start()   # the installed executable, an isolated home
    page.goto(ui.url)                                # the printed URL, access token included
    shoot(page, "pipeline")                          # test-artifacts/ui/pipeline.png (or $PIPELINECTL_TEST_ARTIFACTS)
    ui.stop()

Chromium is Debian's /usr/bin/chromium driven by Playwright for Python (no
`playwright install`: no browser is downloaded); the flags keep it off the
network, which on this closed machine would refuse its background connections.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.cli import CliEnv, executable
from tests.support.server import stop_process

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
URL_LINE = re.compile(r"^(http://127\.0\.0\.1:(\d+))/\?token=(\S+)$")


def artifacts_dir() -> Path:
    """Where screenshots go: $PIPELINECTL_TEST_ARTIFACTS/ui, else test-artifacts/ui (gitignored)."""
    base = os.environ.get("PIPELINECTL_TEST_ARTIFACTS")
    path = (Path(base) if base else ROOT / "test-artifacts") / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(page: Any, name: str, *, full_page: bool = True) -> Path:
    path = artifacts_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class UiProcess:
    """`pipelinectl [global options] ui ARGS`, started and stopped by PID."""

    def __init__(self, cli: CliEnv, *args: str, global_args: tuple[str, ...] = ()) -> None:
        self.cli = cli
        self.args = [executable(), *global_args, "ui", *args]
        self.log = cli.root / f"ui-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None
        self.url = self.base = self.token = ""
        self.port = 0

    def start(self, timeout: float = 30.0) -> UiProcess:
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         env=self.cli.env(), cwd=self.cli.root, start_new_session=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if self.proc.poll() is not None:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        match = URL_LINE.match(line.decode(errors="replace").strip())
        if match is None:
            self.stop()
            raise RuntimeError(f"pipelinectl ui printed {line!r}; stderr:\n{self.stderr()[-3000:]}")
        self.url = match.group(0)
        self.base, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        return stop_process(self.proc, timeout=timeout)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, *, token: bool = True) -> httpx.Client:
        """An HTTP client of the dashboard (with the access token as a Bearer header, or without any)."""
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, follow_redirects=False)

    def page_url(self, path: str, **params: str) -> str:
        from urllib.parse import urlencode

        return self.base + path + (f"?{urlencode(params)}" if params else "")


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
