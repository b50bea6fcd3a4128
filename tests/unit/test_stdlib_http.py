"""The stdlib HTTP client the drivers use on the CLI's path, against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from pipelinectl.transport import HttpxClient, StdlibHttp, TransportFailure, http_client


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the plane speaks
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/close"):
            self.close_connection = True
        served, self.served = getattr(self, "served", 0), getattr(self, "served", 0) + 1
        if self.path.startswith("/drop") and served:  # closes a kept-alive connection as the request arrives
            self.seen.append({"path": self.path, "port": self.client_address[1], "dropped": True})
            self.close_connection = True
            return
        self.seen.append({"path": self.path, "port": self.client_address[1], "body": body,
                          "headers": dict(self.headers)})
        out = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Request-Id", "rid-1")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def server():
    _Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


def _get(client: StdlibHttp, url: str, **kw):
    return client.request("GET", url, params=kw.pop("params", None), json=kw.pop("json", None),
                          headers=kw.pop("headers", {}), connect=kw.pop("connect", 2.0), read=kw.pop("read", 2.0))


def test_requests_share_one_kept_alive_connection_and_send_the_query_as_httpx_would(server):
    url, _ = server
    client = StdlibHttp(url, verify=False, headers={"User-Agent": "t"})
    first = _get(client, url + "/v1/a", params={"page_size": 5, "dry": True, "off": False})
    _get(client, url + "/v1/b")
    assert first.status_code == 200 and first.json() == {"ok": True}
    assert first.headers.get("x-request-id") == "rid-1"  # case-insensitive
    assert _Handler.seen[0]["path"] == "/v1/a?page_size=5&dry=true&off=false"
    assert _Handler.seen[0]["port"] == _Handler.seen[1]["port"], "the second request reused the connection"
    assert _Handler.seen[0]["headers"]["User-Agent"] == "t"
    client.close()


def test_a_json_body_is_sent_compact_with_its_content_type(server):
    url, _ = server
    client = StdlibHttp(url, verify=False, headers={})
    client.request("POST", url + "/v1/x", params=None, json={"reason": "é"}, headers={}, connect=2, read=2)
    assert _Handler.seen[0]["body"] == '{"reason":"é"}'.encode()
    assert _Handler.seen[0]["headers"]["Content-Type"] == "application/json"


def test_a_connection_the_server_closed_is_not_reused(server):
    url, _ = server
    client = StdlibHttp(url, verify=False, headers={})
    _get(client, url + "/close")  # the server closes after answering
    _get(client, url + "/after")
    assert _Handler.seen[0]["port"] != _Handler.seen[1]["port"]
    assert _get(client, url + "/again").status_code == 200


def _requests(path: str) -> list[dict]:
    return [r for r in _Handler.seen if r["path"] == path]


@pytest.mark.parametrize("method, headers", [("GET", {}), ("POST", {"Idempotency-Key": "k-1"})])
def test_a_repeatable_request_the_server_closed_under_goes_once_more_on_a_fresh_connection(server, method, headers):
    url, _ = server
    client = StdlibHttp(url, verify=False, headers={})
    _get(client, url + "/first")  # leaves a kept-alive connection
    answer = client.request(method, url + "/drop", params=None, json=None, headers=headers, connect=2, read=2)
    assert answer.status_code == 200
    dropped, answered = _requests("/drop")
    assert dropped.get("dropped") and dropped["port"] == _requests("/first")[0]["port"]
    assert "dropped" not in answered and answered["port"] != dropped["port"]


def test_a_write_without_an_idempotency_key_is_never_sent_twice(server):
    url, _ = server
    client = StdlibHttp(url, verify=False, headers={})
    _get(client, url + "/first")
    with pytest.raises(TransportFailure) as caught:
        client.request("POST", url + "/drop", params=None, json={"n": 1}, headers={}, connect=2, read=2)
    assert caught.value.kind == "protocol"
    assert len(_requests("/drop")) == 1


def test_refused_is_a_connect_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(TransportFailure) as caught:
        _get(StdlibHttp(url, verify=False, headers={}), url + "/v1")
    assert caught.value.kind == "connect" and "refused" in str(caught.value).lower()


def test_a_slow_answer_is_a_read_timeout_not_a_connect_timeout(server):
    url, _ = server
    with pytest.raises(TransportFailure) as caught:
        _get(StdlibHttp(url, verify=False, headers={}), url + "/slow", read=0.2)
    assert caught.value.kind == "timeout" and caught.value.name == "ReadTimeout"


def test_a_header_value_that_cannot_be_sent_is_refused_without_echoing_it(server):
    url, _ = server
    with pytest.raises(TransportFailure) as caught:
        _get(StdlibHttp(url, verify=False, headers={}), url + "/v1", headers={"Authorization": "Bearer s3cret\nX: y"})
    assert caught.value.kind == "protocol-local" and "s3cret" not in str(caught.value)
    assert _Handler.seen == []


def test_an_overlong_url_is_refused_before_sending(server):
    url, _ = server
    with pytest.raises(TransportFailure) as caught:
        _get(StdlibHttp(url, verify=False, headers={}), url + "/" + "x" * 70_000)
    assert caught.value.kind == "invalid-url"
    assert _Handler.seen == []


def test_httpx_serves_a_proxy_the_environment_names_and_credentials_in_the_url(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                 "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(http_client("http://plane.example:80", verify=False, headers={}), StdlibHttp)
    assert isinstance(http_client("http://u:p@plane.example:80", verify=False, headers={}), HttpxClient)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert isinstance(http_client("http://plane.example:80", verify=False, headers={}), HttpxClient)
    monkeypatch.setenv("NO_PROXY", "plane.example")
    assert isinstance(http_client("http://plane.example:80", verify=False, headers={}), StdlibHttp)
