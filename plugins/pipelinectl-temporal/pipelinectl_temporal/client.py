"""A small client for Temporal's HTTP API (the frontend's grpc-gateway, `/api/v1/...`).

Why not the gRPC SDK: the HTTP API needs nothing but httpx, starts fast, and is
what an operator can reproduce with curl. Errors arrive as `{code, message}`
with a gRPC status code; they map onto pipelinectl's error kinds here, in one
place. Reads retry transient failures with backoff and jitter under the
connection's deadline; writes retry only when they carry a request id (the
server deduplicates them).
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any
from urllib.parse import quote

if "httpx" not in sys.modules:
    # httpx's package import also loads its own command line (httpx._main: click, rich,
    # pygments), ~70 ms of every pipelinectl run. We never call it: stand in an empty one.
    import types

    _cli = types.ModuleType("httpx._main")
    _cli.main = lambda: None  # type: ignore[attr-defined]
    sys.modules.setdefault("httpx._main", _cli)

import httpx  # noqa: E402

from pipelinectl.errors import (
    InternalError,
    PipelinectlError,
    UnavailableError,
    from_canonical,
)
from pipelinectl.plane import Connection

# gRPC status code -> canonical API code (the same names pipelinectl's API uses).
GRPC_CODES: dict[int, str] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "INTERNAL",  # DATA_LOSS
    16: "UNAUTHENTICATED",
}
HTTP_CODES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
TRANSIENT = {"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}


def seg(value: str) -> str:
    """One URL path segment (workflow ids may hold '/', spaces, anything)."""
    return quote(value, safe="")


def version_tuple(text: str | None) -> tuple[int, ...]:
    parts = []
    for piece in (text or "").split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


class TemporalHTTP:
    """HTTP transport bound to one connection: auth, TLS, errors, retries."""

    def __init__(self, connection: Connection, transport: httpx.BaseTransport | None = None) -> None:
        self.connection = connection
        self._client: httpx.Client | None = None
        self._transport = transport
        self._system_info: dict[str, Any] | None = None

    # -- plumbing ---------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self._client is None:
            conn = self.connection
            verify: Any = True
            if conn.insecure_skip_tls_verify:
                verify = False
            elif conn.ca_file:
                import ssl

                verify = ssl.create_default_context(cafile=conn.ca_file)
            headers = {"Accept": "application/json", "User-Agent": "pipelinectl-temporal"}
            headers.update(conn.headers or {})
            self._client = httpx.Client(
                base_url=conn.url.rstrip("/"),
                headers=headers,
                verify=verify,
                timeout=httpx.Timeout(min(conn.timeout, 30.0), connect=min(conn.timeout, 5.0)),
                transport=self._transport,
            )
        return self._client

    def _auth(self) -> dict[str, str]:
        token = self.connection.token() if self.connection.token else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _trace(self, line: str) -> None:
        if self.connection.trace:
            self.connection.trace(line)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        retry: bool | None = None,
    ) -> dict[str, Any]:
        """Send one call; retry transient failures if it is a read (or idempotent)."""
        retry = (method == "GET") if retry is None else retry
        deadline = time.monotonic() + self.connection.timeout
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(method, path, params, body)
            except UnavailableError as exc:
                wait = getattr(exc, "retry_after", None) or delay * (0.5 + random.random())
                if not retry or not getattr(exc, "retryable", True) or time.monotonic() + wait > deadline:
                    raise
                self._trace(f"retry {attempt} in {wait:.2f}s after: {exc.message}")
                time.sleep(wait)
                delay = min(delay * 2, 5.0)

    def _once(self, method: str, path: str, params: dict[str, Any] | None,
              body: dict[str, Any] | None) -> dict[str, Any]:
        self._trace(f"> {method} {path}" + (f" {params}" if params else ""))
        started = time.monotonic()
        try:
            response = self._http().request(method, path, params=params, json=body, headers=self._auth())
        except httpx.TimeoutException as exc:
            raise UnavailableError(f"Temporal at {self.connection.url} timed out ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
                err = UnavailableError(
                    f"the TLS certificate of {self.connection.url} is not trusted",
                    hint="give the context its CA with --ca-file FILE (verification stays on)")
                err.retryable = False  # type: ignore[attr-defined]  # retrying cannot fix a certificate
                raise err from None
            raise UnavailableError(
                f"cannot reach Temporal at {self.connection.url}: {type(exc).__name__}",
                hint="is the server running and is the context's url its HTTP port?",
            ) from None
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach Temporal at {self.connection.url}: {type(exc).__name__}",
                hint="is the server running and is the context's url its HTTP port?",
            ) from None
        self._trace(f"< {response.status_code} {method} {path} ({(time.monotonic() - started) * 1000:.0f} ms)")
        if response.status_code < 300:
            if not response.content:
                return {}
            try:
                data = response.json()
            except ValueError:
                raise InternalError(f"Temporal answered {path} with non-JSON content") from None
            return data if isinstance(data, dict) else {"value": data}
        raise self._error(response)

    def _error(self, response: httpx.Response) -> PipelinectlError:
        code_name = HTTP_CODES.get(response.status_code, "UNAVAILABLE" if response.status_code >= 500 else "UNKNOWN")
        message = f"Temporal answered HTTP {response.status_code}"
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict):
            if isinstance(data.get("code"), int):
                code_name = GRPC_CODES.get(data["code"], code_name)
            if data.get("message"):
                message = str(data["message"]).strip().splitlines()[0]
        err = from_canonical(code_name, message)
        retry_after = response.headers.get("Retry-After")
        if retry_after and retry_after.isdigit():
            err.retry_after = float(retry_after)  # type: ignore[attr-defined]
        return err

    # -- server facts -----------------------------------------------------
    def system_info(self) -> dict[str, Any]:
        if self._system_info is None:
            self._system_info = self.request("GET", "/api/v1/system-info")
        return self._system_info

    def server_version(self) -> tuple[int, ...]:
        return version_tuple(self.system_info().get("serverVersion"))
