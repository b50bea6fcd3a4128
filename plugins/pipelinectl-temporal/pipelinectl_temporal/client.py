"""Temporal's HTTP API (the frontend's grpc-gateway, `/api/v1/...`) on the shared HttpApi client.

Why not the gRPC SDK: the HTTP API needs nothing but httpx, starts fast, and is
what an operator can reproduce with curl. Errors arrive as `{code, message}`
with a gRPC status code; they map onto pipelinectl's error kinds here, in one
place. Retries, deadlines, TLS and tracing are the shared policy of
`pipelinectl.plugin_api.HttpApi`: reads retry, writes only when they carry a
request id (the server deduplicates them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pipelinectl.plugin_api import HttpApi, PipelinectlError, error_class_for_status, from_canonical

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


class TemporalHTTP(HttpApi):
    """The HTTP API bound to one connection; Temporal's error body and server facts."""

    engine = "Temporal"
    hint_unreachable = "is the server running and is the context's url its HTTP port?"

    def __init__(self, connection: Any, transport: Any = None) -> None:
        super().__init__(connection, transport=transport, user_agent="pipelinectl-temporal")
        self._system_info: dict[str, Any] | None = None

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, retry: bool | None = None, headers: dict[str, str] | None = None) -> Any:
        """One call; `retry=True` on a write that carries a request id the server deduplicates."""
        data = super().request(method, path, params=params, body=body, idempotent=retry, headers=headers)
        return data if isinstance(data, dict) else {"value": data}

    def error_from(self, response: Any) -> PipelinectlError:
        """`{code: <gRPC status>, message}` -> the error kind; a body that is not Temporal's -> by HTTP status."""
        message = f"Temporal answered HTTP {response.status_code}"
        try:
            data = response.json()
        except ValueError:
            data = None
        err: PipelinectlError | None = None
        if isinstance(data, dict):
            if data.get("message"):
                message = str(data["message"]).strip().splitlines()[0]
            if isinstance(data.get("code"), int) and data["code"] in GRPC_CODES:
                err = from_canonical(GRPC_CODES[data["code"]], message)
        if err is None:
            err = error_class_for_status(response.status_code)(message)
        return self.with_retry_after(err, response)

    # -- server facts -----------------------------------------------------
    def system_info(self) -> dict[str, Any]:
        if self._system_info is None:
            self._system_info = self.request("GET", "/api/v1/system-info")
        return self._system_info

    def server_version(self) -> tuple[int, ...]:
        return version_tuple(self.system_info().get("serverVersion"))
