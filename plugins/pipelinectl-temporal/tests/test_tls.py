"""TLS is verified by default; a context's CA file or explicit insecure mode are the only ways round it.

A real HTTPS server (http.server + ssl) with a certificate from a throwaway CA made by openssl.
"""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import threading
import time

import pytest
from pipelinectl_temporal.driver import TemporalControlPlane

from pipelinectl.plugin_api import Connection, ExitCode, SagaFilter, UnavailableError
from pipelinectl.testing import make_test_ca

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it



@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    certs = make_test_ca(d)
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"count": "5"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert, certs.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", certs.ca, seen
    finally:
        server.shutdown()


def count(url: str, **kw) -> int:
    plane = TemporalControlPlane(Connection(context="tls", driver="temporal", url=url, namespace="ns",
                                            token=lambda: "tls-token", timeout=5, **kw))
    try:
        return plane.saga_count(SagaFilter(pipeline="ns"))
    finally:
        plane.close()


def test_an_untrusted_certificate_is_refused_at_once_with_a_hint(https_server):
    url, _, seen = https_server
    before = len(seen)
    started = time.monotonic()
    with pytest.raises(UnavailableError) as err:
        count(url)
    assert time.monotonic() - started < 2  # not retried until the deadline
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    assert err.value.one_line() == (f"the TLS certificate of {url} is not trusted "
                                    "(give the context its CA with --ca-file FILE (verification stays on))")
    assert len(seen) == before  # the token never went to the untrusted server


def test_the_contexts_ca_file_is_trusted(https_server):
    url, ca, seen = https_server
    assert count(url, ca_file=str(ca)) == 5
    assert seen[-1] == "Bearer tls-token"


def test_insecure_skip_verify_connects(https_server):
    url, _, _ = https_server
    assert count(url, insecure_skip_tls_verify=True) == 5
