"""A real RabbitMQ node for tests and benchmarks: own ports, own data dir, own epmd, stopped by PID.

    with RabbitNode(tmp_path) as node:
        node.management_url, node.amqp_url  # guest/guest over localhost

The node runs `/usr/lib/rabbitmq/bin/rabbitmq-server` directly (not the /usr/sbin wrapper,
which switches to the system `rabbitmq` user and its shared data dir) with every path in
the given directory: node name, AMQP, distribution and epmd ports are free ports of its
own, so it never meets another node on the machine. Its process group (the start script,
beam.smp, epmd, erl_child_setup) is stopped as a whole.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from pipelinectl.testing import ServerProcess, free_port

SERVER_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
PLUGINS = ("rabbitmq_management",)


def available() -> bool:
    """Is the Debian rabbitmq-server package installed?"""
    return os.path.exists(SERVER_SCRIPT) and os.path.exists(EPMD)


class RabbitNode:
    """One RabbitMQ node with the management plugin, guest/guest reachable from localhost."""

    def __init__(self, root: Path, *, user: str = "guest", password: str = "guest",
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        """`tls` = (CA, certificate, key) PEM files: also listen for amqps (`amqps_port`) and https (`https_port`)."""
        self.root = Path(root)
        self.tls = tls
        self.amqps_port = free_port() if tls else None
        self.https_port = free_port() if tls else None
        self.amqp_port = free_port()
        self.management_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.user = user
        self.password = password
        self.nodename = f"rabbit-{self.amqp_port}@localhost"
        self.server: ServerProcess | None = None
        self.epmd: ServerProcess | None = None

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.amqp_port}/%2F"

    def _environment(self) -> dict[str, str]:
        root = self.root
        for sub in ("mnesia", "log", "home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "rabbitmq.conf").write_text("\n".join([
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
            f"management.tcp.port = {self.management_port}",
            "management.tcp.ip = 127.0.0.1",
            "loopback_users = none" if self.user != "guest" else "loopback_users.guest = true",
            f"default_user = {self.user}",
            f"default_pass = {self.password}",
            "collect_statistics_interval = 1000",
            "management.rates_mode = basic",
            "log.console = false",
            "log.file.level = warning",
            "disk_free_limit.absolute = 50MB",
            *self._tls_config(),
            "",
        ]))
        (root / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        (root / "env.conf").write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(root / "home"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(root / "mnesia"),
            RABBITMQ_LOG_BASE=str(root / "log"),
            RABBITMQ_CONFIG_FILE=str(root / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(root / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(root / "env.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(root / "advanced.config"),
            RABBITMQ_PID_FILE=str(root / "rabbit.pid"),
        )
        return env

    def _tls_config(self) -> list[str]:
        if not self.tls:
            return []
        ca, cert, key = self.tls
        files = [f"cacertfile = {ca}", f"certfile = {cert}", f"keyfile = {key}"]
        return [f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}",
                *(f"ssl_options.{f}" for f in files), "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
                f"management.ssl.port = {self.https_port}", "management.ssl.ip = 127.0.0.1",
                *(f"management.ssl.{f}" for f in files)]

    def api(self, method: str, path: str, body: object = None) -> object:
        """One management API call as guest (test setup and checks), decoded JSON or None."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.management_url + path, data=data, method=method)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {auth}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def _ready(self) -> bool:
        try:
            self.api("GET", "/api/overview")
            return True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def start(self, timeout: float = 90.0) -> RabbitNode:
        # Our own epmd in the foreground, so it is ours to stop: left to itself, erl would start
        # `epmd -daemon`, which leaves the node's process group and outlives it.
        env = self._environment()
        self.epmd = ServerProcess([EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                  port=self.epmd_port, root=self.root, name="epmd", env=env)
        self.epmd.start(timeout=10)
        self.server = ServerProcess([SERVER_SCRIPT], port=self.management_port, root=self.root,
                                    name="rabbitmq", env=env, ready=self._ready, grace=20.0)
        try:
            self.server.start(timeout=timeout)
        except Exception:
            self.epmd.stop()
            raise
        return self

    def restart(self, timeout: float = 90.0) -> RabbitNode:
        """Start the node again on the same ports and data dir (after `kill` or `stop_node`)."""
        assert self.server is not None
        self.server.start(timeout=timeout)
        return self

    def stop(self) -> None:
        """Stop the node, then its epmd (both by process group)."""
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            if self.epmd is not None:
                self.epmd.stop()

    def kill(self) -> None:
        """SIGKILL the node (a crash); its epmd stays, so `restart()` can bring it back."""
        if self.server is not None:
            self.server.kill()

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait(predicate, timeout: float = 15.0, step: float = 0.1):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout` seconds."""
    from pipelinectl.testing import eventually

    return eventually(predicate, timeout=timeout, interval=step)
