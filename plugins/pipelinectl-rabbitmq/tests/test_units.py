"""Pieces without a server: topic matching, DLQ ids, the control state, the error mapping (error paths only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pika
import pika.exceptions as pe
import pytest
from pipelinectl_rabbitmq import dlq
from pipelinectl_rabbitmq.client import Management, amqp_error, amqp_url, display
from pipelinectl_rabbitmq.control import StageState
from pipelinectl_rabbitmq.driver import topic_match

from pipelinectl.plugin_api import (
    ConflictError,
    Connection,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
)


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("a.*", "a.b", True), ("a.*", "a.b.c", False), ("a.#", "a", True), ("a.#", "a.b.c", True),
    ("#", "", True), ("*.b", "x.b", True), ("a.b", "a.b", True), ("a.b", "a.c", False), ("#.c", "a.b.c", True),
])
def test_topic_match(pattern, key, expected):
    assert topic_match(pattern, key) is expected


def _letter(body: bytes, tag: int, when: datetime, **props) -> dlq.Letter:
    headers = {"x-death": [{"queue": "orders", "reason": "rejected", "count": 2, "time": when, "exchange": "",
                            "routing-keys": ["orders"]}], "x-first-death-queue": "orders", "x-first-death-reason": "rejected"}
    method = SimpleNamespace(delivery_tag=tag, redelivered=False, routing_key="orders")
    return dlq.parse("orders.dlq", method, pika.BasicProperties(headers=headers, **props), body)


def test_dlq_ids_are_stable_and_tell_identical_messages_apart():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ids = dlq.Ids()
    a, b, c = (ids.assign(_letter(b"same", 1, when)), ids.assign(_letter(b"same", 2, when)),
               ids.assign(_letter(b"other", 3, when)))
    assert b.id == f"{a.id}~2" and c.id != a.id and len(a.id) == 16
    again = dlq.Ids().assign(_letter(b"same", 9, when))
    assert again.id == a.id  # the delivery tag (a read's detail) is not part of the id
    assert (a.original_queue, a.reason, a.error_kind, a.count, a.first_seen) == ("orders", "rejected", "fatal", 2, when)
    assert "rejected in queue orders (2x dead-lettered" in dlq.describe(a)


def test_stage_state_round_trips_through_queue_arguments():
    until = datetime.now(UTC) + timedelta(hours=1)
    state = StageState(paused=True, until=until.replace(microsecond=0), prefetch=7)
    back = StageState.from_arguments(state.arguments())
    assert (back.paused, back.until, back.prefetch) == (True, until.replace(microsecond=0), 7)
    assert back.effective_paused() and not StageState(paused=True, until=datetime.now(UTC) - timedelta(1)).effective_paused()
    message = state.message("orders")
    assert message["kind"] == "StageControl" and message["queue"] == "orders" and message["prefetch"] == 7


def test_amqp_errors_map_to_the_kinds():
    assert isinstance(amqp_error(pe.ChannelClosedByBroker(404, "NOT_FOUND - no queue 'x'"), "reading x"), NotFoundError)
    assert isinstance(amqp_error(pe.ChannelClosedByBroker(403, "ACCESS_REFUSED"), "w"), PermissionDeniedError)
    assert isinstance(amqp_error(pe.ChannelClosedByBroker(406, "PRECONDITION_FAILED"), "w"), ConflictError)
    assert isinstance(amqp_error(pe.ConnectionClosedByBroker(320, "CONNECTION_FORCED"), "w"), UnavailableError)
    assert isinstance(amqp_error(pe.ProbableAuthenticationError("ACCESS_REFUSED"), "w"), UnauthenticatedError)
    assert isinstance(amqp_error(pe.AMQPConnectionError(pe.ProbableAccessDeniedError("no vhost")), "w"),
                      PermissionDeniedError)
    assert isinstance(amqp_error(pe.AMQPConnectionError(ConnectionRefusedError(111, "Connection refused")),
                                 "AMQP connection to amqp://h:1"), UnreachableError)
    assert isinstance(amqp_error(pe.StreamLostError("lost"), "w"), UnavailableError)


def test_addresses_and_a_refused_login():
    import httpx

    conn = Connection(context="c", driver="rabbitmq", url="https://mq.example:15671", token=lambda: "s3cret",
                      settings={"user": "ops"})
    assert amqp_url(conn) == "amqps://mq.example:5671"
    assert display("amqp://u:pw@h:5672/%2F") == "amqp://h:5672"
    seen = {}

    def handler(request):
        seen["auth"] = request.headers["Authorization"]
        return httpx.Response(401, json={"error": "not_authorised", "reason": "Login failed"})

    api = Management(conn, transport=httpx.MockTransport(handler))
    with pytest.raises(UnauthenticatedError, match="refused the credentials") as err:
        api.get("/api/overview")
    assert "s3cret" not in err.value.one_line()
    import base64

    assert base64.b64decode(seen["auth"].split()[1]) == b"ops:s3cret"
