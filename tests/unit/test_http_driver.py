"""The http driver's error paths, retries and headers, against httpx.MockTransport.

The happy paths run end to end against the real reference server (tests/cli);
here each failure the network or the plane can produce is made on purpose.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from pipelinectl.drivers.http import HttpControlPlane
from pipelinectl.errors import (
    DeadlineExceededError,
    ExitCode,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    StaleVersionError,
    ThrottledError,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedError,
    UsageError,
)
from pipelinectl.model import DLQFilter, SagaFilter
from pipelinectl.plane import Capability, Connection
from pipelinectl.testing import BlackHole
from pipelinectl.transport import UNREACHABLE_WITHIN, ssl_context

TOKEN = "s3cr3t-token-value-123"
URL = "http://plane.test:8765"


class Clock:
    """A fake monotonic clock that sleep() advances: retries take no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(handler, *, timeout=30.0, traces=None, clock=None, **conn):
    clock = clock or Clock()
    connection = Connection(context="ctx", driver="http", url=conn.pop("url", URL), token=lambda: TOKEN,
                            timeout=timeout, trace=traces.append if traces is not None else None, **conn)
    plane = HttpControlPlane(connection, transport=httpx.MockTransport(handler), sleep=clock.sleep, clock=clock)
    return plane, clock


def error(status, code, message, *, detail=None, cause=None, headers=None):
    body = {"code": code, "message": message, "detail": detail, "cause": cause}
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-42", **(headers or {})})


STAGE = {"kind": "Stage", "pipeline": "orders", "name": "parse", "state": "paused", "version": 3}


def test_api_error_body_maps_to_error_kind_and_keeps_request_id():
    plane, _ = make(lambda r: error(404, "NOT_FOUND", "stage 'nope' not found in pipeline 'orders'"))
    with pytest.raises(NotFoundError) as info:
        plane.get_stage("orders", "nope")
    err = info.value
    assert err.exit_code == ExitCode.NOT_FOUND
    assert err.request_id == "req-42"
    assert err.one_line() == "stage 'nope' not found in pipeline 'orders'"


@pytest.mark.parametrize(
    "status, code, cls, exit_code",
    [
        (400, "INVALID_ARGUMENT", UsageError, ExitCode.USAGE),
        (422, "INVALID_ARGUMENT", UsageError, ExitCode.USAGE),  # a rule beyond the schema
        (401, "UNAUTHENTICATED", UnauthenticatedError, ExitCode.PERMISSION),
        (403, "PERMISSION_DENIED", PermissionDeniedError, ExitCode.PERMISSION),
        (409, "FAILED_PRECONDITION", Exception, ExitCode.CONFLICT),
        (412, "ABORTED", StaleVersionError, ExitCode.CONFLICT),
        (500, "INTERNAL", InternalError, ExitCode.INTERNAL),
        (501, "UNIMPLEMENTED", UnsupportedError, ExitCode.UNSUPPORTED),
    ],
)
def test_each_canonical_code_gives_its_exit_code_without_retry(status, code, cls, exit_code):
    calls = []

    def handler(request):
        calls.append(request)
        return error(status, code, f"{code.lower()} happened")

    plane, clock = make(handler)
    with pytest.raises(cls) as info:
        plane.status()
    assert info.value.exit_code == exit_code
    assert len(calls) == 1, "a non-transient answer is never retried"
    assert clock.sleeps == []


def test_unauthenticated_and_forbidden_say_what_to_do():
    plane, _ = make(lambda r: error(401, "UNAUTHENTICATED", "missing or unknown bearer token"))
    with pytest.raises(UnauthenticatedError) as info:
        plane.status()
    assert "config view" in info.value.one_line()
    assert TOKEN not in info.value.one_line()
    plane, _ = make(lambda r: error(403, "PERMISSION_DENIED", "role viewer may not pause"))
    with pytest.raises(PermissionDeniedError) as info:
        plane.pause("orders", "parse")
    assert "role" in info.value.one_line()


def test_stale_version_keeps_detail_and_sends_if_match():
    seen = {}

    def handler(request):
        seen.update(request.headers)
        return error(412, "ABORTED", "stage 'parse' is at version 4, not 3",
                     detail={"current_version": 4, "current": STAGE})

    plane, _ = make(handler)
    with pytest.raises(StaleVersionError) as info:
        plane.scale("orders", "parse", 4, expected_version=3)
    assert seen["if-match"] == '"3"'
    assert info.value.detail["current_version"] == 4


def test_write_retries_reuse_one_idempotency_key_and_honour_retry_after():
    keys = []

    def handler(request):
        keys.append(request.headers.get("Idempotency-Key"))
        if len(keys) < 3:
            return error(503, "UNAVAILABLE", "restarting", headers={"Retry-After": "2"})
        assert json.loads(request.content) == {"parallelism": 4}
        return httpx.Response(200, json=STAGE, headers={"X-Request-Id": "req-ok"})

    plane, clock = make(handler)
    stage = plane.scale("orders", "parse", 4)
    assert stage.name == "parse" and stage.version == 3
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]
    assert all(s >= 2 for s in clock.sleeps) and len(clock.sleeps) == 2
    assert plane.last_request_id == "req-ok"


def test_each_verb_call_gets_a_new_idempotency_key():
    keys = []

    def handler(request):
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(200, json=STAGE)

    plane, _ = make(handler)
    plane.pause("orders", "parse")
    plane.pause("orders", "parse")
    assert len(set(keys)) == 2


def test_reads_carry_no_idempotency_key_and_send_bearer_token():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"kind": "PipelineList", "items": []})

    plane, _ = make(handler)
    assert plane.status() == []
    assert "idempotency-key" not in seen[0].headers
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_proxy_502_html_is_retried_then_succeeds():
    answers = [httpx.Response(502, text="<html>bad gateway</html>"), httpx.Response(200, json=STAGE)]
    plane, clock = make(lambda r: answers.pop(0))
    assert plane.get_stage("orders", "parse").state == "paused"
    assert len(clock.sleeps) == 1


def test_throttled_past_the_deadline_gives_up_without_waiting():
    calls = []

    def handler(request):
        calls.append(request)
        return error(429, "RESOURCE_EXHAUSTED", "too many requests", headers={"Retry-After": "120"})

    plane, clock = make(handler, timeout=10)
    with pytest.raises(ThrottledError) as info:
        plane.status()
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert len(calls) == 1 and clock.sleeps == []
    assert "retry after 120s" in info.value.message and "10s deadline" in info.value.message


def test_backoff_grows_with_full_jitter_and_stops_at_max_attempts():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, text="unavailable")

    plane, clock = make(handler, timeout=300)
    with pytest.raises(UnavailableError) as info:
        plane.status()
    assert len(calls) == plane.max_attempts
    assert f"gave up after {plane.max_attempts} attempts" in info.value.message
    for attempt, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= min(plane.backoff.cap, plane.backoff.base * 2 ** attempt)


def test_connection_refused_names_url_and_context():
    def handler(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    plane, clock = make(handler)
    with pytest.raises(UnavailableError) as info:
        plane.status()
    line = info.value.one_line()
    assert line.startswith(f"cannot reach control plane at {URL} (context ctx): connection refused")
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert clock.sleeps, "a refused connection is retried briefly"
    assert sum(clock.sleeps) < UNREACHABLE_WITHIN, "and reported within UNREACHABLE_WITHIN seconds"


def test_real_refused_port_is_unavailable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = Connection(context="down", driver="http", url=f"http://127.0.0.1:{port}", timeout=2)
    plane = HttpControlPlane(connection, sleep=lambda s: None)
    with pytest.raises(UnavailableError) as info:
        plane.status()
    assert "connection refused" in info.value.message
    assert f"127.0.0.1:{port}" in info.value.message


def test_plane_that_never_accepts_is_reported_within_two_seconds():
    with BlackHole() as port:
        connection = Connection(context="hung", driver="http", url=f"http://127.0.0.1:{port}", timeout=30)
        started = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            HttpControlPlane(connection).status()
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"took {elapsed:.2f}s with a 30s deadline"
    assert f"127.0.0.1:{port}" in info.value.message


def test_timeout_past_deadline_is_deadline_exceeded():
    clock = Clock()

    def handler(request):
        clock.now += 5  # the plane took the whole deadline
        raise httpx.ReadTimeout("timed out", request=request)

    plane, _ = make(handler, timeout=5, clock=clock)
    with pytest.raises(DeadlineExceededError) as info:
        plane.status()
    assert "within the 5s deadline" in info.value.message
    assert info.value.exit_code == ExitCode.UNAVAILABLE


def test_reset_mid_answer_is_retried():
    answers = []

    def handler(request):
        answers.append(1)
        if len(answers) == 1:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=request)
        return httpx.Response(200, json={"kind": "PipelineList", "items": []})

    plane, _ = make(handler)
    assert plane.status() == []
    assert len(answers) == 2


def test_trace_redacts_token_and_shows_request_id():
    traces: list[str] = []
    plane, _ = make(lambda r: httpx.Response(200, json=STAGE, headers={"X-Request-Id": "rid-7"}), traces=traces)
    plane.pause("orders", "parse")
    text = "\n".join(traces)
    assert TOKEN not in text
    assert "Authorization: Bearer [REDACTED]" in text
    assert "> POST http://plane.test:8765/v1/pipelines/orders/stages/parse/pause" in text
    assert "< 200 OK POST" in text and "request-id=rid-7" in text and "ms" in text


def _dlq_page(ids, next_token):
    items = [{"id": i, "pipeline": "o", "stage": "s", "error_kind": "validation", "message": "m"} for i in ids]
    return {"kind": "DLQItemList", "items": items, "next_page_token": next_token, "total": 3}


def _eventually(condition, seconds=5.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_dlq_list_pages_lazily_with_page_token_reading_one_page_ahead_after_the_first():
    pages = {None: _dlq_page(["a"], "p2"), "p2": _dlq_page(["b"], "p3"), "p3": _dlq_page(["c"], "p4"),
             "p4": _dlq_page(["d"], None)}
    requests = []

    def handler(request):
        params = dict(request.url.params)
        assert params["stage"] == "s" and params["page_size"] == "1"
        requests.append(params.get("page_token"))
        return httpx.Response(200, json=pages[params.get("page_token")])

    plane, _ = make(handler)
    items = plane.dlq_list(DLQFilter(pipeline="o", stage="s"), page_size=1)
    assert requests == [], "nothing is fetched before the caller iterates"
    assert next(items).id == "a" and requests == [None], "one page answers a small --limit: no read-ahead yet"
    assert next(items).id == "b"
    assert _eventually(lambda: requests == [None, "p2", "p3"]), "past the first page, the next one downloads"
    assert requests == [None, "p2", "p3"], "never more than one page ahead"
    assert [i.id for i in items] == ["c", "d"] and requests == [None, "p2", "p3", "p4"]


def test_an_error_on_a_page_read_ahead_is_raised_where_its_items_would_be():
    def handler(request):
        token = request.url.params.get("page_token")
        if token == "p3":
            return httpx.Response(404, json={"code": "NOT_FOUND", "message": "page token expired"})
        return httpx.Response(200, json=_dlq_page(["a", "b"] if token is None else ["c"], "p2" if token is None else "p3"))

    plane, _ = make(handler)
    items = plane.dlq_list(DLQFilter(pipeline="o"), page_size=2)
    assert [next(items).id, next(items).id, next(items).id] == ["a", "b", "c"]
    with pytest.raises(NotFoundError, match="page token expired"):
        next(items)


def test_stopping_early_does_not_wait_for_the_page_read_ahead():
    import threading
    import time

    release = threading.Event()

    def handler(request):
        token = request.url.params.get("page_token")
        if token == "p3":
            release.wait(10)  # a slow plane
        return httpx.Response(200, json=_dlq_page(["a"] if token is None else ["b"], "p2" if token is None else "p3"))

    plane, _ = make(handler)
    items = plane.dlq_list(DLQFilter(pipeline="o"), page_size=1)
    assert [next(items).id, next(items).id] == ["a", "b"]  # p3 is on its way
    started = time.monotonic()
    items.close()  # --limit reached, or the pipe closed
    assert time.monotonic() - started < 1
    release.set()


def test_unsupported_verbs_exit_7():
    plane, _ = make(lambda r: httpx.Response(200, json={}))
    assert Capability.SAGA_BATCH not in plane.capabilities
    assert Capability.SAGA_TERMINATE not in plane.capabilities
    assert Capability.DLQ_PURGE in plane.capabilities
    for call in (
        lambda: plane.saga_batch("force-fail", SagaFilter(pipeline="o", query="x"), "r"),
        lambda: plane.saga_force_fail("o", "s1", "r", terminate=True),
        lambda: next(iter(plane.saga_list(SagaFilter(pipeline="o", query="WorkflowType='x'")))),
    ):
        with pytest.raises(UnsupportedError) as info:
            call()
        assert info.value.exit_code == ExitCode.UNSUPPORTED
        assert "not supported by the http driver" in info.value.message


def test_empty_dlq_selection_is_refused_before_sending():
    plane, _ = make(lambda r: pytest.fail("nothing may be sent"))
    with pytest.raises(UsageError):
        plane.dlq_purge(DLQFilter(pipeline="o"))


def test_non_json_success_is_internal_error():
    plane, _ = make(lambda r: httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}))
    with pytest.raises(InternalError, match="not JSON"):
        plane.status()


def test_bad_url_and_tls_settings_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not an http"):
        HttpControlPlane(Connection(context="c", driver="http", url="ftp://x"))
    with pytest.raises(UsageError, match="ca-file"):
        HttpControlPlane(Connection(context="c", driver="http", url="https://x", ca_file=str(tmp_path / "none.pem")))


def test_tls_verified_by_default_and_off_only_when_asked():
    import ssl

    verifying = ssl_context(Connection(context="c", driver="http", url="https://plane.test"))
    assert isinstance(verifying, ssl.SSLContext)
    assert verifying.verify_mode == ssl.CERT_REQUIRED and verifying.check_hostname
    assert ssl_context(Connection(context="c", driver="http", url="https://plane.test",
                                  insecure_skip_tls_verify=True)) is False


def test_path_segments_are_quoted():
    seen = []

    def handler(request):
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json=STAGE)

    plane, _ = make(handler)
    plane.get_stage("orders", "a/b c")
    assert seen == ["/v1/pipelines/orders/stages/a%2Fb%20c"]


@pytest.mark.parametrize("call", [lambda p: p.dlq_show("orders", "a" * 100_000),
                                  lambda p: p.replay_cancel("orders", "a" * 100_000),
                                  lambda p: list(p.dlq_list(DLQFilter(pipeline="orders", stage="s" * 100_000)))],
                         ids=["read", "write", "query"])
def test_a_url_too_long_to_send_is_a_usage_error_and_nothing_is_sent(call):
    plane, clock = make(lambda r: pytest.fail("nothing may be sent"))
    with pytest.raises(UsageError, match="not sent: URL.*too long") as info:
        call(plane)
    assert len(info.value.one_line()) < 200 and clock.sleeps == []


def test_a_read_attempt_gets_a_share_of_the_deadline_a_write_all_of_it():
    timeouts = {}

    def handler(request):
        timeouts[request.method] = request.extensions["timeout"]["read"]
        return httpx.Response(200, json=STAGE)

    plane, _ = make(handler, timeout=30)
    plane.get_stage("orders", "parse")
    plane.pause("orders", "parse")
    assert timeouts["GET"] == 10.0, "a hung read is abandoned after a third of the deadline and retried"
    assert timeouts["POST"] == 30.0


def test_a_hung_read_attempt_is_retried_inside_the_deadline():
    clock = Clock()
    calls = []

    def handler(request):
        calls.append(clock.now)
        if len(calls) == 1:
            clock.now += request.extensions["timeout"]["read"]
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"kind": "PipelineList", "items": []})

    plane, _ = make(handler, timeout=15, clock=clock)
    assert plane.status() == []
    assert len(calls) == 2 and calls[1] - calls[0] < 15


def test_a_redirect_is_not_followed_and_says_where_to_point_the_context():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(301, headers={"Location": "https://plane.test:8443/v1/pipelines"})

    plane, _ = make(handler)
    with pytest.raises(UsageError) as info:
        plane.status()
    assert len(seen) == 1
    assert "redirected (HTTP 301) to https://plane.test:8443/v1/pipelines" in info.value.one_line()
    assert "set the url of context 'ctx'" in info.value.one_line()
