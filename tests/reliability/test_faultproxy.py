"""The fault proxy does what the reliability tests rely on, checked against a tiny real HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.faultproxy import Fault, FaultProxy, free_port


class _Counter(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        type(self).hits.append(f"{self.command} {self.path}")
        body = json.dumps({"hits": len(type(self).hits), "pad": "x" * 4000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream():
    _Counter.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_pass_relays_the_whole_answer(upstream):
    with FaultProxy(upstream.server_address[1]) as proxy:
        answer = httpx.get(f"{proxy.url}/a")
        assert answer.status_code == 200
        assert answer.json()["hits"] == 1
        assert [s.action for s in proxy.log] == ["pass"]


def test_status_fault_answers_without_reaching_the_upstream(upstream):
    with FaultProxy(upstream.server_address[1]) as proxy:
        proxy.add(Fault("status", status=429, retry_after=2))
        answer = httpx.get(f"{proxy.url}/a")
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["code"] == "RESOURCE_EXHAUSTED"
        assert _Counter.hits == []
        assert httpx.get(f"{proxy.url}/a").status_code == 200  # the fault was used once


def test_drop_and_reset_are_transport_errors(upstream):
    with FaultProxy(upstream.server_address[1]) as proxy:
        proxy.add(Fault("drop"), Fault("reset"))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{proxy.url}/a")
        assert _Counter.hits == []  # dropped before forwarding
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{proxy.url}/b")
        assert _Counter.hits == ["GET /b"]  # a reset happens after the upstream answered
        assert proxy.pending() == 0


def test_lose_response_reaches_the_upstream_but_not_the_client(upstream):
    with FaultProxy(upstream.server_address[1]) as proxy:
        proxy.add(Fault("lose_response", match="POST"))
        assert httpx.get(f"{proxy.url}/read").status_code == 200  # GET does not match
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{proxy.url}/write", json={"a": 1}, headers={"Idempotency-Key": "k1"})
        assert _Counter.hits == ["GET /read", "POST /write"]
        assert proxy.requests("POST")[0].header("idempotency-key") == "k1"


def test_latency_and_hang(upstream):
    with FaultProxy(upstream.server_address[1], latency=0.3) as proxy:
        started = time.monotonic()
        assert httpx.get(f"{proxy.url}/a").status_code == 200
        assert time.monotonic() - started >= 0.3
        proxy.add(Fault("hang", delay=5))
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            httpx.get(f"{proxy.url}/a", timeout=0.5)
        assert time.monotonic() - started < 3


def test_dead_upstream_looks_like_a_closed_connection():
    with FaultProxy(free_port()) as proxy:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{proxy.url}/a")
