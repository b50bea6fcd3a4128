"""TLS, for the management API (https) and AMQP (amqps): verified against the context's CA by default."""

from __future__ import annotations

import shutil

import pytest
from pipelinectl_rabbitmq.driver import RabbitControlPlane
from pipelinectl_rabbitmq.testing import RabbitNode

from pipelinectl.plugin_api import Connection, DLQFilter, UnavailableError
from pipelinectl.testing import make_test_ca

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test CA")


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    certs = make_test_ca(root)
    node = RabbitNode(root / "node", tls=(certs.ca, certs.cert, certs.key))
    node.start()
    node.ca = str(certs.ca)
    yield node
    node.stop()


def _driver(node: RabbitNode, **kw) -> RabbitControlPlane:
    return RabbitControlPlane(Connection(
        context="t", driver="rabbitmq", url=f"https://127.0.0.1:{node.https_port}", pipeline="/", timeout=5,
        token=lambda: node.password, settings={"user": node.user, "amqp_url": f"amqps://127.0.0.1:{node.amqps_port}"},
        **kw))


def _use(driver: RabbitControlPlane) -> tuple[list, list]:
    try:
        return driver.status(), list(driver.dlq_list(DLQFilter(pipeline="/", all=True)))
    finally:
        driver.close()


def test_verified_with_the_context_ca_refused_without_it(tls_node):
    import pika

    with pika.BlockingConnection(pika.URLParameters(tls_node.amqp_url)) as conn:  # plain AMQP, for set-up
        ch = conn.channel()
        ch.queue_declare("tls.orders", durable=True, arguments={"x-dead-letter-exchange": "",
                                                                "x-dead-letter-routing-key": "tls.dlq"})
        ch.queue_declare("tls.dlq", durable=True)
        ch.basic_publish("", "tls.dlq", b'{"id": 1}')
    driver = _driver(tls_node, ca_file=tls_node.ca)
    driver.api.get("/api/overview")
    channel = driver.amqp.channel("/")  # amqps, verified against the CA
    channel.close()
    driver.close()
    with pytest.raises(UnavailableError, match="TLS|certificate"):
        _use(_driver(tls_node))  # the system store does not know the test CA: the API refuses
    no_ca_amqp = _driver(tls_node, ca_file=tls_node.ca)
    no_ca_amqp.amqp.connection = Connection(context="t", driver="rabbitmq", url=no_ca_amqp.connection.url, timeout=5,
                                            token=lambda: tls_node.password, settings=no_ca_amqp.connection.settings)
    with pytest.raises(UnavailableError, match="TLS"):
        no_ca_amqp.amqp.channel("/")  # and so does AMQP
    no_ca_amqp.close()
    status, items = _use(_driver(tls_node, insecure_skip_tls_verify=True))
    assert [s.name for s in status[0].stages] == ["tls.orders"] and len(items) == 1
