"""Pure pieces of the driver: header codec, dedupe headers, versions, advisories, error mapping."""

from __future__ import annotations

import pytest
from pipelinectl_nats import dlq
from pipelinectl_nats.driver import _stage_subjects, config_version, republish_headers
from pipelinectl_nats.link import ApiError, Link, api_error, decode_headers

from pipelinectl.plugin_api import (
    ConflictError,
    Connection,
    DeadlineExceededError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    UsageError,
)


def test_decode_headers():
    raw = b"NATS/1.0\r\nNats-Msg-Id: a1\r\nTenant: acme\r\nTenant: beta\r\n\r\n"
    assert decode_headers(raw) == {"Nats-Msg-Id": "a1", "Tenant": "acme, beta"}
    assert decode_headers(b"") == {} and decode_headers(b"garbage") == {}


def test_republish_headers_drop_server_controls_and_set_the_dedupe_id():
    original = {"Nats-Msg-Id": "orig", "Nats-Expected-Last-Sequence": "4", "nats-rollup": "all", "Trace": "t1"}
    out = republish_headers(original, "pipelinectl-replay:S:5", "Pipelinectl-Replay-Of", "S:5")
    assert out == {"Trace": "t1", "Nats-Msg-Id": "pipelinectl-replay:S:5", "Pipelinectl-Replay-Of": "S:5"}


def test_config_version_ignores_server_metadata_only():
    base = {"durable_name": "p", "max_ack_pending": 5, "metadata": {"team": "a", "_nats.req.level": "0"}}
    same = {**base, "metadata": {"team": "a", "_nats.req.level": "1", "_nats.ver": "2.15.1"}}
    assert config_version(base) == config_version(same)
    assert config_version(base) != config_version({**base, "max_ack_pending": 6})
    assert config_version(base) != config_version({**base, "metadata": {"team": "b"}})


def test_advisory_parsing_uses_the_subject_when_the_body_is_odd():
    subject = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.ORDERS.parse"
    entry = dlq.parse_entry(7, subject, b"not json", None)
    assert (entry.id, entry.event, entry.stream, entry.consumer, entry.stream_seq) == ("7", "MSG_TERMINATED", "ORDERS", "parse", None)
    assert entry.error_kind == "fatal" and entry.describe() == "terminated by the worker"
    body = b'{"stream":"ORDERS","consumer":"parse","stream_seq":5,"deliveries":4,"timestamp":"2026-01-02T03:04:05.123456789Z"}'
    full = dlq.parse_entry(8, subject.replace("MSG_TERMINATED", "MAX_DELIVERIES"), body, None)
    assert (full.stream_seq, full.deliveries, full.error_kind) == (5, 4, "persistent")
    assert full.time.isoformat() == "2026-01-02T03:04:05.123456+00:00"
    assert dlq.stream_subjects(["A"]) == ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.A.*",
                                          "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.A.*"]


def test_stage_subjects_setting():
    assert _stage_subjects("parse=orders.parse, enrich=orders.enrich") == {"parse": "orders.parse", "enrich": "orders.enrich"}
    assert _stage_subjects({"parse": "x"}) == {"parse": "x"} and _stage_subjects(None) == {}
    with pytest.raises(UsageError, match="STAGE=SUBJECT"):
        _stage_subjects("parse")


@pytest.mark.parametrize(("code", "kind"), [
    (400, UsageError), (404, NotFoundError), (403, PermissionDeniedError), (409, ConflictError),
    (503, UnavailableError), (500, InternalError),
])
def test_api_error_kinds(code, kind):
    err = api_error(ApiError(code, 10000, "server says no"), "scale")
    assert type(err) is kind and err.message == "scale: server says no"


def test_transport_errors_map_to_kinds_without_credentials():
    import nats.errors as ne

    link = Link(Connection(context="c", driver="nats", url="nats://u:pw-secret@h:4222", timeout=1))
    try:
        assert isinstance(link._map(ne.NoRespondersError()), UnavailableError)
        assert isinstance(link._map(ne.TimeoutError()), DeadlineExceededError)
        assert isinstance(link._map(TimeoutError()), DeadlineExceededError)
        refused = link._map(ne.NoServersError())
        assert isinstance(refused, UnavailableError) and "pw-secret" not in refused.one_line()
        assert "nats://h:4222" in refused.one_line()
        assert isinstance(link._map(RuntimeError("boom")), InternalError)
    finally:
        link.close()
