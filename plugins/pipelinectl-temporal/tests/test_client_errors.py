"""Error paths of the HTTP client, with httpx.MockTransport (a real server cannot be made to fail so)."""

from __future__ import annotations

import httpx
import pytest
from pipelinectl_temporal.driver import TemporalControlPlane

from pipelinectl.plugin_api import (
    Connection,
    ExitCode,
    NotFoundError,
    PermissionDeniedError,
    SagaFilter,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)

TOKEN = "sk-live-abcdef123456"


def plane(handler, **kw) -> TemporalControlPlane:
    connection = Connection(context="t", driver="temporal", url="https://temporal.example:7243",
                            namespace="ns", token=lambda: TOKEN, timeout=kw.pop("timeout", 2.0), **kw)
    return TemporalControlPlane(connection, transport=httpx.MockTransport(handler))


def test_grpc_codes_in_the_body_map_to_error_kinds_without_the_token():
    answers = {
        "/api/v1/namespaces/ns/workflows/a": (404, {"code": 5, "message": "workflow not found for ID: a"}),
        "/api/v1/namespaces/ns/workflows/b": (403, {"code": 7, "message": "Request unauthorized."}),
        "/api/v1/namespaces/ns/workflows/c": (401, {"code": 16, "message": "token expired"}),
        "/api/v1/namespaces/ns/workflows/d": (400, {"code": 3, "message": "invalid query\ndetails"}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        status, body = answers[request.url.path]
        return httpx.Response(status, json=body)

    p = plane(handler)
    for saga_id, kind, code in (("a", NotFoundError, ExitCode.NOT_FOUND),
                                ("b", PermissionDeniedError, ExitCode.PERMISSION),
                                ("c", UnauthenticatedError, ExitCode.PERMISSION),
                                ("d", UsageError, ExitCode.USAGE)):
        with pytest.raises(kind) as err:
            p.saga_show("ns", saga_id)
        assert err.value.exit_code == code
        assert TOKEN not in err.value.one_line() and "\n" not in err.value.one_line()


def test_reads_retry_transient_failures_then_succeed():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, json={"code": 14, "message": "frontend unavailable"})
        return httpx.Response(200, json={"executions": []})

    assert list(plane(handler).saga_list(SagaFilter(pipeline="ns"))) == []
    assert len(calls) == 3


def test_reads_give_up_at_the_deadline_with_one_line():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(UnavailableError) as err:
        list(plane(handler, timeout=0.5).saga_list(SagaFilter(pipeline="ns")))
    assert "cannot reach Temporal at https://temporal.example:7243" in err.value.message
    assert err.value.exit_code == ExitCode.UNAVAILABLE


@pytest.mark.parametrize("where", ["refused", "black hole"])
def test_an_unreachable_server_is_reported_within_two_seconds(where):
    """Real sockets: nothing listening, and a listener that never accepts (connect hangs)."""
    import time

    from pipelinectl.testing import BlackHole, free_port

    def attempt(port: int) -> tuple[float, UnavailableError]:
        connection = Connection(context="t", driver="temporal", url=f"http://127.0.0.1:{port}",
                                namespace="ns", timeout=30)
        started = time.monotonic()
        with pytest.raises(UnavailableError) as err:
            list(TemporalControlPlane(connection).saga_list(SagaFilter(pipeline="ns")))
        return time.monotonic() - started, err.value

    if where == "refused":
        elapsed, error = attempt(free_port())
    else:
        with BlackHole() as port:
            elapsed, error = attempt(port)
    assert elapsed < 2, f"took {elapsed:.2f}s with a 30s deadline"
    assert error.exit_code == ExitCode.UNAVAILABLE and "cannot reach Temporal" in error.message


def test_terminate_is_not_retried():
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"workflowExecutionInfo": {
                "execution": {"workflowId": "w", "runId": "r"}, "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"}})
        posts.append(request.url.path)
        return httpx.Response(503, json={"code": 14, "message": "unavailable"})

    with pytest.raises(UnavailableError):
        plane(handler).saga_force_fail("ns", "w", "why", terminate=True)
    assert posts == ["/api/v1/namespaces/ns/workflows/w/terminate"]


def test_workflow_ids_are_one_path_segment():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"code": 5, "message": "not found"})

    with pytest.raises(NotFoundError):
        plane(handler).saga_show("ns", "orders/42 x")
    assert seen[0].startswith("/api/v1/namespaces/ns/workflows/orders%2F42%20x")


def test_old_servers_have_no_activity_pause():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/system-info":
            return httpx.Response(200, json={"serverVersion": "1.24.2"})
        return httpx.Response(200, json={"workflowExecutionInfo": {
            "execution": {"workflowId": "w", "runId": "r"}, "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"},
            "pendingActivities": [{"activityId": "1", "activityType": {"name": "x"}}]})

    with pytest.raises(UnsupportedError, match="not supported by the temporal driver: Temporal server 1.24.2"):
        plane(handler).pause("ns", "w")


def test_extra_headers_and_no_token_when_none():
    def handler(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        assert request.headers["temporal-namespace"] == "ns"
        return httpx.Response(200, json={"count": "7"})

    connection = Connection(context="t", driver="temporal", url="http://h:1", namespace="ns",
                            headers={"temporal-namespace": "ns"})
    p = TemporalControlPlane(connection, transport=httpx.MockTransport(handler))
    assert p.saga_count(SagaFilter(pipeline="ns")) == 7


def test_workflow_pause_not_enabled_is_unsupported_naming_the_verb():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"workflowExecutionInfo": {
                "execution": {"workflowId": "w", "runId": "r"}, "status": "WORKFLOW_EXECUTION_STATUS_RUNNING"}})
        return httpx.Response(501, json={"code": 12, "message": "workflow pause is not enabled for namespace: ns"})

    with pytest.raises(UnsupportedError) as err:
        plane(handler, settings={"pause_scope": "workflow"}).pause("ns", "w")
    assert err.value.exit_code == ExitCode.UNSUPPORTED
    assert err.value.message == ("'pause (workflow)' is not supported by the temporal driver: "
                                 "workflow pause is not enabled for namespace: ns")


def test_bad_settings_are_usage_errors():
    with pytest.raises(UsageError, match="pause_scope"):
        plane(lambda r: httpx.Response(200), settings={"pause_scope": "queue"})
    with pytest.raises(UsageError, match="stuck_attempts must be a whole number, not 'three'"):
        plane(lambda r: httpx.Response(200), settings={"stuck_attempts": "three"})


def test_trace_lines_never_carry_the_token():
    lines: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": "1"})

    connection = Connection(context="t", driver="temporal", url="http://h:1", namespace="ns",
                            token=lambda: TOKEN, trace=lines.append)
    p = TemporalControlPlane(connection, transport=httpx.MockTransport(handler))
    p.saga_count(SagaFilter(pipeline="ns", status="failed"))
    assert lines[0].startswith("> GET /api/v1/namespaces/ns/workflow-count")
    assert lines[1].startswith("< 200 GET")
    assert not [line for line in lines if TOKEN in line]
