"""A fault-injecting HTTP/TCP proxy on loopback, started by tests between the CLI and a real plane.

The network an operator has at 3 AM is slow, drops connections, resets in the
middle of an answer and throttles. This proxy reproduces each of those on
purpose, one request at a time, so a test can say exactly which request
fails and how:

    with FaultProxy(upstream_port) as proxy:
        proxy.add(Fault("reset"), Fault("status", status=503, retry_after=1))
        cli.set_context("flaky", proxy.url, token=...)
        ...                                  # first request reset, second 503, the rest pass
        assert proxy.log[-1].action == "pass"

It reads one HTTP/1.1 request from the client, decides its fate from the
queue of faults (first matching fault wins; `times` counts it down), and
then either answers itself or forwards the request on a fresh upstream
connection with `Connection: close` and relays the whole answer. Every
connection carries a single request: simple, and each fault hits exactly the
request it was meant for.

Actions:
  pass           forward and relay the answer (after `delay` seconds)
  drop           close the client connection without forwarding anything
  hang           hold the client connection open, silent, for `delay` seconds (or until stop)
  reset          forward, relay the first half of the answer, then RST the connection
  lose_response  forward (the plane acts), then close without relaying the answer
  status         answer `status` itself with a JSON error body and optional Retry-After
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from pipelinectl.testing import free_port  # noqa: F401  (re-exported: the fault tests take it from here)

ACTIONS = ("pass", "drop", "hang", "reset", "lose_response", "status")

_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}
_CODES = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
          502: "UNAVAILABLE", 500: "INTERNAL"}


@dataclass
class Fault:
    """What to do to the next request(s) that match.

    `match` is a prefix of "METHOD /path?query" (e.g. "POST", "GET /v1/pipelines"),
    or the whole of it when it ends with `$`; None matches every request.
    `gate`: a threading.Event the request waits on (up to 60 s) before its action: a test
    holds two operators' writes until both have read, then lets them race.
    `unless_body`: the fault skips a request whose body, without spaces, holds this text
    (e.g. '"dry_run":true' to spare a dry-run plan and hit the real write).
    `times=None` applies forever.
    """

    action: str = "pass"
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    match: str | None = None
    times: int | None = 1
    unless_body: str | None = None
    gate: threading.Event | None = None  # hold the request until the test sets it (deterministic races)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; choose from {ACTIONS}")

    def matches(self, request_line: str, body: bytes = b"") -> bool:
        if self.unless_body is not None:
            compact = body.replace(b" ", b"").replace(b"\n", b"")
            if self.unless_body.replace(" ", "").encode() in compact:
                return False
        if self.match is None:
            return True
        if self.match.endswith("$"):
            return request_line == self.match[:-1]
        return request_line.startswith(self.match)


@dataclass
class Seen:
    """One request as the proxy saw it, and what it did to it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    action: str
    at: float = field(default_factory=time.monotonic)
    answer_head: bytes = b""  # status line and headers of the upstream's answer, when it was forwarded

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def answer_status(self) -> int | None:
        parts = self.answer_head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    def answer_header(self, name: str) -> str | None:
        for line in self.answer_head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


class FaultProxy:
    """A threaded loopback proxy in front of one upstream (host, port)."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", *, latency: float = 0.0,
                 port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency  # added to every forwarded request
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[Seen] = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()

    # -- control ------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *faults: Fault) -> FaultProxy:
        with self._lock:
            self._faults.extend(faults)
        return self

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def pending(self) -> int:
        """Faults not yet used up (a test can assert its faults were all hit)."""
        with self._lock:
            return sum(1 for f in self._faults if f.times is None or f.times > 0)

    def requests(self, prefix: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.log if f"{s.method} {s.path}".startswith(prefix)]

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name=f"faultproxy:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            _close(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ------------------------------------------------------------
    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._clients.add(client)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _choose(self, request_line: str, body: bytes) -> Fault:
        with self._lock:
            for fault in self._faults:
                if (fault.times is None or fault.times > 0) and fault.matches(request_line, body):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return Fault("pass", times=None)

    def _handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(30)
            request = _read_request(client)
            if request is None:
                return
            head, body, method, path, headers = request
            fault = self._choose(f"{method} {path}", body)
            seen = Seen(method, path, headers, body, fault.action)
            with self._lock:
                self.log.append(seen)
            action = fault.action
            if fault.gate is not None:
                fault.gate.wait(60)
            if action == "drop":
                return
            if action == "hang":
                self._stopping.wait(fault.delay or 3600)
                return
            if action == "status":
                client.sendall(_status_response(fault.status, fault.retry_after))
                return
            delay = self.latency + fault.delay
            if delay and self._stopping.wait(delay):
                return
            answer = self._forward(head, body)
            if answer is None:  # the upstream is down: what a dead plane looks like through a proxy
                return
            seen.answer_head = answer.partition(b"\r\n\r\n")[0]
            if action == "lose_response":
                return
            if action == "reset":
                client.sendall(answer[: max(1, len(answer) // 2)])
                _reset(client)
                return
            client.sendall(answer)
        except OSError:
            pass
        finally:
            with self._lock:
                self._clients.discard(client)
            _close(client)

    def _forward(self, head: bytes, body: bytes) -> bytes | None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            return None
        try:
            upstream.sendall(_force_close(head) + body)
            chunks = []
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            _close(upstream)


def _read_request(sock: socket.socket) -> tuple[bytes, bytes, str, str, dict[str, str]] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    method, path = (parts[0], parts[1]) if len(parts) >= 2 else (parts[0], "")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest
    else:
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest[:length]
    return head + b"\r\n\r\n", body, method, path, headers


def _force_close(head: bytes) -> bytes:
    """The same request head with `Connection: close`, so the upstream ends the answer with EOF."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _status_response(status: int, retry_after: float | None) -> bytes:
    code = _CODES.get(status, "UNAVAILABLE")
    body = json.dumps({"code": code, "message": f"injected {status} by the fault proxy",
                       "detail": None, "cause": None}).encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after:g}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: what a crashed middlebox looks like."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
