"""One real RabbitMQ node for the plugin's tests, real worker processes, and direct AMQP for checks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pipelinectl_rabbitmq.testing import RabbitNode, available

from pipelinectl.testing import WorkerProcess

HERE = Path(__file__).parent



def pytest_collection_modifyitems(config, items):
    """Without rabbitmq-server only the unit tests run; the others skip, saying why."""
    if available():
        return
    skip = pytest.mark.skip(reason="rabbitmq-server is not installed (Debian package rabbitmq-server)")
    for item in items:
        path = Path(str(item.fspath))
        if HERE in path.parents and path.name != "test_units.py":
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory):
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


class Admin:
    """Test set-up and checks straight through pika and the management API (not through the driver)."""

    def __init__(self, node: RabbitNode) -> None:
        import pika

        self.node = node
        self.connection = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()  # a publish returns once RabbitMQ has the message

    def declare(self, name: str, **arguments: Any) -> None:
        self.channel.queue_declare(name, durable=True, arguments=arguments or None)

    def pipeline(self, name: str, *, dlq: bool = True, **arguments: Any) -> str:
        """A stage queue `name` with its own DLQ `name.dlq` through the exchange `name.dlx`."""
        if dlq:
            self.channel.exchange_declare(f"{name}.dlx", "direct", durable=True)
            self.declare(f"{name}.dlq")
            self.channel.queue_bind(f"{name}.dlq", f"{name}.dlx", name)
            arguments = {"x-dead-letter-exchange": f"{name}.dlx", "x-dead-letter-routing-key": name, **arguments}
        self.declare(name, **arguments)
        return name

    def publish(self, queue: str, body: dict | bytes, **props: Any) -> None:
        import pika

        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.channel.basic_publish("", queue, data, pika.BasicProperties(delivery_mode=2, **props))

    def queue(self, name: str) -> dict:
        return self.node.api("GET", f"/api/queues/%2F/{name}")

    def depth(self, name: str) -> int:
        return self.channel.queue_declare(name, passive=True).method.message_count

    def prefetches(self, name: str) -> list[int]:
        """The prefetch count of each consumer of the queue, from the management API's consumer list."""
        return [c["prefetch_count"] for c in self.node.api("GET", "/api/consumers/%2F")
                if c["queue"]["name"] == name]

    def consumers(self, name: str) -> int:
        return self.channel.queue_declare(name, passive=True).method.consumer_count

    def drain(self, name: str) -> list[tuple[Any, bytes]]:
        """Take every message off a queue (acked): what is really in it."""
        got = []
        while True:
            method, props, body = self.channel.basic_get(name, auto_ack=True)
            if method is None:
                return got
            got.append((props, body))

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:
            pass


@pytest.fixture(scope="session")
def admin(rabbit):
    a = Admin(rabbit)
    yield a
    a.close()


class Worker(WorkerProcess):
    """A worker process (tests/worker.py) and the log of what it did."""

    def __init__(self, url: str, queue: str, out: Path, *, ready: bool = True, **options: Any) -> None:
        args = [sys.executable, str(HERE / "worker.py"), url, queue, str(out)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            args += [flag] if value is True else [flag, str(value)]
        super().__init__(args, out, ready=ready)

@pytest.fixture
def workers(rabbit):
    started: list[Worker] = []

    def start(queue: str, out: Path, **kw) -> Worker:
        w = Worker(rabbit.amqp_url, queue, out, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def make_driver(node: RabbitNode, pipeline: str | None = "/", timeout: float = 10.0, url: str | None = None,
                password: str | None = None, **settings):
    from pipelinectl_rabbitmq.driver import RabbitControlPlane

    from pipelinectl.plugin_api import Connection

    settings.setdefault("amqp_url", f"amqp://127.0.0.1:{node.amqp_port}")
    secret = node.password if password is None else password
    driver = RabbitControlPlane(Connection(context="test", driver="rabbitmq", url=url or node.management_url,
                                           pipeline=pipeline, settings={"user": node.user, **settings},
                                           token=lambda: secret, timeout=timeout))
    driver.progress = None
    return driver


@pytest.fixture
def driver_for(rabbit):
    made = []

    def make(pipeline: str | None = "/", **kw):
        d = make_driver(rabbit, pipeline, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


os.environ.setdefault("NO_COLOR", "1")
