"""TLS: verified against the context's CA by default; refused without it; skippable only on request."""

from __future__ import annotations

import shutil

import pytest
from pipelinectl_nats.driver import NatsControlPlane

from pipelinectl.plugin_api import Connection, UnavailableError
from pipelinectl.testing import make_test_ca

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test CA")]


@pytest.fixture
def tls_server(tmp_path, server_factory):
    certs = make_test_ca(tmp_path)
    srv = server_factory("--tls", "--tlscert", str(certs.cert), "--tlskey", str(certs.key))
    return srv, str(certs.ca)


def _status(url: str, **kw) -> list:
    d = NatsControlPlane(Connection(context="t", driver="nats", url=url, timeout=5, **kw))
    try:
        return d.status()
    finally:
        d.close()


def test_tls_verified_with_the_context_ca(tls_server):
    srv, ca = tls_server
    url = f"tls://127.0.0.1:{srv.port}"
    assert _status(url, ca_file=ca) == []
    with pytest.raises(UnavailableError, match="TLS"):
        _status(url)  # the system store does not know the test CA
    assert _status(url, insecure_skip_tls_verify=True) == []
