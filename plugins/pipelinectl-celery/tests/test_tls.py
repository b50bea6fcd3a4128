"""rediss://: verified against the context's CA by default, refused without it, skippable only on request;
a real worker over TLS is paused and resumed through the control API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pipelinectl_celery.testing import WorkerGroup

from pipelinectl.plugin_api import UnavailableError
from pipelinectl.testing import ServerProcess, free_port, make_test_ca

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test CA")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, redis_binary):
    root = tmp_path_factory.mktemp("tls")
    certs = make_test_ca(root)
    port = free_port()
    server = ServerProcess([redis_binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                            "--dir", str(root), "--save", "", "--tls-cert-file", str(certs.cert),
                            "--tls-key-file", str(certs.key), "--tls-ca-cert-file", str(certs.ca),
                            "--tls-auth-clients", "no"], port=port, root=root, name="redis-tls").start()
    yield f"rediss://127.0.0.1:{port}/0", str(certs.ca)
    server.stop()


def test_tls_is_verified_with_the_context_ca(tls_redis, make_driver):
    url, ca = tls_redis
    [pipeline] = make_driver(url, ca_file=ca).status()
    assert pipeline.details["broker"] == url
    with pytest.raises(UnavailableError, match="TLS") as err:
        make_driver(url).status()  # the system store does not know the test CA
    assert err.value.retryable is False
    [pipeline] = make_driver(url, insecure_skip_tls_verify=True).status()
    assert pipeline.stages == []


def test_a_worker_over_tls_is_paused_and_resumed(tls_redis, make_driver, tmp_path):
    url, ca = tls_redis
    broker = f"{url}?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    group = WorkerGroup(broker, tmp_path, app="celeryapp", app_dir=Path(__file__).parent)
    try:
        node = group.start("t1", "tls.q")
        driver = make_driver(url, ca_file=ca)
        assert driver.get_stage("celery", "tls.q").details["workers"][0]["name"] == node
        assert driver.pause("celery", "tls.q").state == "paused"
        assert driver.resume("celery", "tls.q").details["consumers"] == 1
    finally:
        group.stop_all()
