"""Times, durations, ranges and selectors as operators type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelinectl.errors import ExitCode, UsageError
from pipelinectl.timeparse import (
    parse_duration,
    parse_offset_range,
    parse_range,
    parse_selectors,
    parse_time,
    target_name,
)

NOW = datetime(2026, 5, 2, 10, 30, 0, tzinfo=UTC)



@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T12:00:00Z", datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01t12:00:00z", datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01T14:00:00+02:00", datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("2026-05-01T12:00:00.250Z", datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-05-01 12:00", datetime(2026, 5, 1, 12, tzinfo=UTC)),
        ("now", NOW),
        ("NOW", NOW),
        ("today", datetime(2026, 5, 2, tzinfo=UTC)),
        ("yesterday", datetime(2026, 5, 1, tzinfo=UTC)),
        ("-2h", NOW - timedelta(hours=2)),
        ("30m", NOW - timedelta(minutes=30)),
        ("1d", NOW - timedelta(days=1)),
        ("+15m", NOW + timedelta(minutes=15)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("-90s", NOW - timedelta(seconds=90)),
        ("2w", NOW - timedelta(weeks=2)),
    ],
)
def test_parse_time_accepts(text, expected):
    parsed = parse_time(text, now=NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


def test_unsigned_relative_follows_default_direction():
    assert parse_time("30m", now=NOW, default="future") == NOW + timedelta(minutes=30)
    assert parse_time("-30m", now=NOW, default="future") == NOW - timedelta(minutes=30)


@pytest.mark.parametrize(
    "text", ["", "  ", "yesterdayish", "2026-13-01", "2026-05-32", "05/01/2026", "2h ago", "-", "1y", "12:00", "2026-05-01T25:00"]
)
def test_parse_time_rejects_with_one_line_usage_error(text):
    with pytest.raises(UsageError) as info:
        parse_time(text, option="--since", now=NOW)
    err = info.value
    assert err.exit_code == ExitCode.USAGE
    assert "--since" in err.one_line()
    assert "\n" not in err.one_line()


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("45", 45), ("0.5s", 0.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "0", "5x", "m5", "1000d"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text, option="--timeout")


def test_range_in_order():
    start, end = parse_range("2026-05-01", "2026-05-02", now=NOW)
    assert (start, end) == (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 2, tzinfo=UTC))


def test_relative_range():
    start, end = parse_range("-2h", "now", now=NOW)
    assert end - start == timedelta(hours=2)


@pytest.mark.parametrize("start, end", [("2026-05-02", "2026-05-01"), ("2026-05-01", "2026-05-01"), ("now", "-1h")])
def test_range_end_not_after_start_is_usage_error(start, end):
    with pytest.raises(UsageError) as info:
        parse_range(start, end, now=NOW)
    assert "--to" in info.value.message and "must be after --from" in info.value.message


def test_range_open_ends_and_required_pairs():
    assert parse_range("-1h", None, now=NOW) == (NOW - timedelta(hours=1), None)
    with pytest.raises(UsageError, match="--to is required"):
        parse_range("-1h", None, now=NOW, require_both=True)


def test_offset_range():
    assert parse_offset_range(10, 20) == (10, 20)
    assert parse_offset_range(None, None) == (None, None)
    for start, end in [(20, 10), (5, 5), (-1, 3), (None, 3), (3, None)]:
        with pytest.raises(UsageError):
            parse_offset_range(start, end)


def test_selectors():
    assert parse_selectors(["stage=parse"], allowed=("stage",)) == {"stage": "parse"}
    assert parse_selectors(["stage=parse", "error-kind=validation"], allowed=("stage", "error-kind")) == {
        "stage": "parse",
        "error_kind": "validation",
    }
    assert parse_selectors(["error_kind=x"], allowed=("error-kind",)) == {"error_kind": "x"}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["stage"], "not key=value"),
        (["=parse"], "not key=value"),
        (["stage="], "needs a value"),
        (["colour=red"], "unknown key 'colour'"),
        (["stage=a", "stage=b"], "given twice"),
        (["St@ge=a"], "not a valid key"),
    ],
)
def test_selectors_reject(args, fragment):
    with pytest.raises(UsageError) as info:
        parse_selectors(args, allowed=("stage",))
    assert fragment in info.value.message


def test_target_name_accepts_both_forms():
    assert target_name("parse") == "parse"
    assert target_name("stage=parse") == "parse"
    with pytest.raises(UsageError):
        target_name("pipeline=orders")
    with pytest.raises(UsageError):
        target_name("")


# -- the one place: machine timestamps and the formatter -----------------------------------------------
def test_machine_timestamps_round_trip_through_the_one_formatter():
    from pipelinectl.timeparse import format_time, parse_timestamp

    when = datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert format_time(when) == "2026-05-01T12:00:00.250000Z"
    assert format_time(when, timespec="seconds") == "2026-05-01T12:00:00Z"
    assert format_time(datetime(2026, 5, 1, 12)) == "2026-05-01T12:00:00Z"  # naive is UTC
    assert parse_timestamp("2026-05-01T12:00:00.250000Z") == when
    assert parse_timestamp("2026-05-01T14:00:00+02:00") == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert parse_timestamp("2026-05-01T12:00:00").tzinfo is not None  # no zone means UTC
    assert parse_timestamp(None) is None and parse_timestamp(when) is when
    with pytest.raises(ValueError):  # a plane's bad answer is not the operator's usage error
        parse_timestamp("-2h")


def test_there_is_one_time_parser_the_others_are_its_names():
    from pipelinectl import model, timeparse
    from pipelinectl.cli import common

    assert common.parse_time is timeparse.parse_time and common.parse_range is timeparse.parse_range
    assert model.parse_time is timeparse.parse_timestamp  # the name plugins import for machine times
    assert model.format_time is timeparse.format_time
    assert parse_time(None, "--until") is None


def test_resources_read_back_what_they_write_with_nested_times_and_lists():
    from pipelinectl.model import DLQItem, Saga, SagaEvent, SagaStep

    saga = Saga(id="s1", pipeline="p", definition="order", status="stuck", completed_steps=["a"],
                started_at=NOW, steps=[SagaStep(name="a", status="completed", started_at=NOW)],
                events=[SagaEvent(seq=1, time=NOW, type="started")], details={"k": [1, None]})
    back = Saga.from_dict(saga.to_dict())
    assert back == saga and isinstance(back.steps[0], SagaStep) and back.events[0].time == NOW
    item = DLQItem.from_dict({"id": "d", "pipeline": "p", "stage": "s", "error_kind": "fatal", "message": "m",
                              "last_seen": "2026-05-02T10:30:00Z", "first_seen": None, "unknown": 1})
    assert item.last_seen == NOW and item.first_seen is None
    with pytest.raises(ValueError):
        DLQItem.from_dict({"id": "d", "pipeline": "p", "stage": "s", "error_kind": "fatal", "message": "m",
                           "last_seen": "yesterday-ish"})
