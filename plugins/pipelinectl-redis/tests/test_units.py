"""Pure pieces: ids, the stage hash, DLQ entry parsing, payload views, the one error mapping."""

from __future__ import annotations

import pytest
import redis.exceptions as rx
from pipelinectl_redis import conventions as cv
from pipelinectl_redis.link import Link, credentials

from pipelinectl.plugin_api import (
    Connection,
    DeadlineExceededError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    UnreachableError,
    UsageError,
)


def test_ids_sort_and_step_back_like_redis():
    assert cv.parse_id("5-3") < cv.parse_id("5-10") < cv.parse_id("6") == (6, 0)
    with pytest.raises(ValueError):
        cv.parse_id("5-x")
    assert cv.id_time("1715000000123-4").isoformat() == "2024-05-06T12:53:20.123000+00:00"
    assert cv.stage_key("orders:in", "parse") == "pipelinectl:stage:{orders:in}:parse"


def test_stage_hash_defaults_and_expiry():
    s = cv.StageSettings.from_hash({})
    assert (s.paused, s.parallelism, s.version, s.dlq_stream, s.max_parallelism) == (False, None, 0, None, 64)
    s = cv.StageSettings.from_hash({b"paused": b"1", b"paused_until": b"2000", b"parallelism": b"3", b"version": b"7"})
    assert s.paused_now(1999) and not s.paused_now(2000)
    assert (s.parallelism, s.version) == (3, 7)
    assert cv.StageSettings.from_hash({b"paused": b"1"}).paused_now(10**15)


def test_dead_entry_meta_stops_at_the_original_marker():
    fields = [b"pipelinectl-dlq:stream", b"s", b"pipelinectl-dlq:group", b"g", b"pipelinectl-dlq:deliveries", b"4",
              b"pipelinectl-dlq:original", b"present",
              b"pipelinectl-dlq:stream", b"an application field of that name", b"x", b"\xff"]
    entry = cv.parse_dead_entry("s:dlq:g", b"9-0", fields)
    assert (entry.stream, entry.group, entry.deliveries, entry.present, entry.kind) == ("s", "g", 4, True, "persistent")
    assert entry.fields == [(b"pipelinectl-dlq:stream", b"an application field of that name"), (b"x", b"\xff")]
    payload, info = cv.fields_view(entry.fields)
    assert payload == {"pipelinectl-dlq:stream": "an application field of that name", "x": "base64:/w=="}
    assert info["payload_encoding"] == "base64"
    foreign = cv.parse_dead_entry("d", "1-0", {b"a": b"1"})  # not written by the sweep: all payload
    assert foreign.meta == {} and foreign.fields == [(b"a", b"1")] and not foreign.present


def test_repeated_fields_are_shown_as_pairs():
    payload, _ = cv.fields_view([(b"a", b"1"), (b"a", b"2")])
    assert payload == [["a", "1"], ["a", "2"]]
    text, info = cv.fields_view([(b"k", b"v" * 600)], 512)
    assert len(text["k"]) == 512 and info["payload_truncated"]


def _link(url: str = "redis://u:pw-secret@h:6379") -> Link:
    return Link(Connection(context="c", driver="redis", url=url, timeout=1))


@pytest.mark.parametrize(("exc", "kind"), [
    (rx.AuthenticationError("invalid username-password pair"), UnauthenticatedError),
    (rx.ResponseError("WRONGPASS invalid username-password pair or user is disabled."), UnauthenticatedError),
    (rx.ResponseError("NOAUTH Authentication required."), UnauthenticatedError),
    (rx.ResponseError("NOPERM User v has no permissions to run the 'hset' command"), PermissionDeniedError),
    (rx.ResponseError("NOGROUP No such key 's' or consumer group 'g'"), NotFoundError),
    (rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), UsageError),
    (rx.BusyLoadingError("Redis is loading the dataset in memory"), UnavailableError),
    (rx.ReadOnlyError("You can't write against a read only replica."), UnavailableError),
    (rx.TimeoutError("Timeout connecting to server"), UnreachableError),
    (rx.TimeoutError("Timeout reading from socket"), DeadlineExceededError),
    (rx.ConnectionError("Error 111 connecting to h:6379. Connection refused."), UnreachableError),
    (rx.ConnectionError("Connection closed by server."), UnavailableError),
    (rx.ResponseError("ERR something odd"), InternalError),
])
def test_every_redis_failure_has_its_kind(exc, kind):
    err = _link().map_error(exc, "test")
    assert type(err) is kind
    assert "pw-secret" not in err.one_line()


def test_credentials_come_from_the_token_then_the_url():
    conn = Connection(context="c", driver="redis", url="redis://:url-pass@h", token=lambda: "tok")
    assert credentials(conn) == {"password": "tok"}
    conn = Connection(context="c", driver="redis", url="redis://ops:url-pass@h")
    assert credentials(conn) == {"password": "url-pass", "username": "ops"}
    conn = Connection(context="c", driver="redis", url="redis://h", token=lambda: "tok", settings={"user": "ops"})
    assert credentials(conn) == {"password": "tok", "username": "ops"}
    assert _link().url == "redis://h:6379"
