"""TLS: verified against the context's CA by default; refused without it; skippable only on request."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from pipelinectl_nats.driver import NatsControlPlane

from pipelinectl.plugin_api import Connection, UnavailableError

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test CA")]


@pytest.fixture
def tls_server(tmp_path, server_factory):
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.pem")
    srv = server_factory("--tls", "--tlscert", str(tmp_path / "server.pem"), "--tlskey", str(tmp_path / "server.key"))
    return srv, str(tmp_path / "ca.pem")


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
