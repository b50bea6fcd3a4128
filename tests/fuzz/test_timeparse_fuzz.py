"""Property tests: whatever an operator types as a time, duration, range or selector,
the answer is a value or a one-line usage error (exit 2), never another exception."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelinectl.errors import ExitCode, UsageError
from pipelinectl.timeparse import (
    parse_duration,
    parse_offset_range,
    parse_range,
    parse_selectors,
    parse_time,
    target_name,
)

NOW = datetime(2026, 5, 2, 10, 30, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text shaped like what people type: digits, units, signs, date punctuation, plus anything at all.
_ALPHABET = string.digits + "smhdwSMHDW+-:.TtZz ew" + "naif"
near_time = st.one_of(
    st.text(alphabet=_ALPHABET, max_size=30),
    st.text(max_size=30),
    st.builds(lambda d, sep, t, z: f"{d}{sep}{t}{z}",
              st.dates(min_value=datetime(1, 1, 1).date()).map(str),
              st.sampled_from(["T", "t", " ", "_"]),
              st.times().map(lambda t: t.isoformat()),
              st.sampled_from(["", "Z", "z", "+00:00", "-01:00", "+14:00", "-23:59", "+25:00"])),
    st.builds(lambda s, n, u: f"{s}{n}{u}", st.sampled_from(["", "+", "-"]),
              st.one_of(st.integers(0, 10**12).map(str), st.floats(allow_nan=True).map(str)),
              st.sampled_from(["s", "m", "h", "d", "w", "", "y"])),
)


def _one_line_usage(err: UsageError, option: str | None = None) -> None:
    line = err.one_line()
    assert err.exit_code == ExitCode.USAGE
    assert line and "\n" not in line
    if option:
        assert option in line


@FUZZ
@given(near_time, st.sampled_from(["past", "future"]))
@example("-9999999999d", "past")
def test_parse_time_value_or_usage_error(text, default):
    try:
        value = parse_time(text, option="--since", now=NOW, default=default)
    except UsageError as err:
        _one_line_usage(err, "--since")
    else:
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


def _check_duration(text):
    try:
        value = parse_duration(text, option="--timeout")
    except UsageError as err:
        _one_line_usage(err, "--timeout")
    else:
        assert timedelta(0) <= value <= timedelta(days=400)  # under 1 µs rounds to 0


def _check_time(text, default="past"):
    try:
        value = parse_time(text, option="--since", now=NOW, default=default)
    except UsageError as err:
        _one_line_usage(err, "--since")
    else:
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)



@pytest.mark.parametrize("check, text", [
    pytest.param(_check_time, "9999-12-31T23:59:59-01:00", id="time-past-max"),
    pytest.param(_check_time, "0001-01-01T00:30:00+01:00", id="time-before-min"),
    pytest.param(_check_duration, "nan", id="duration-nan"),
    pytest.param(_check_duration, "inf", id="duration-inf"),
    pytest.param(_check_duration, "1e400", id="duration-huge"),
    pytest.param(_check_time, "-9999999999d", id="time-huge-relative"),
])
def test_edge_inputs_found_by_fuzzing(check, text):
    """Inputs fuzzing found (each once a traceback), kept as fixed cases."""
    check(text)


@FUZZ
@given(near_time)
def test_parse_duration_value_or_usage_error(text):
    _check_duration(text)


@FUZZ
@given(st.one_of(st.none(), near_time), st.one_of(st.none(), near_time), st.booleans())
def test_parse_range_ordered_or_usage_error(start, end, require_both):
    try:
        begin, finish = parse_range(start, end, now=NOW, require_both=require_both)
    except UsageError as err:
        _one_line_usage(err)
    else:
        if begin is not None and finish is not None:
            assert begin < finish


@FUZZ
@given(st.one_of(st.none(), st.integers()), st.one_of(st.none(), st.integers()))
def test_parse_offset_range_ordered_or_usage_error(start, end):
    try:
        first, last = parse_offset_range(start, end)
    except UsageError as err:
        _one_line_usage(err)
    else:
        assert (first is None) == (last is None)
        if first is not None:
            assert 0 <= first < last


selector_arg = st.one_of(
    st.text(max_size=25),
    st.builds(lambda k, eq, v: f"{k}{eq}{v}",
              st.sampled_from(["stage", "error-kind", "error_kind", "STAGE", "Stage", "since", "x", "", "1a", " stage"]),
              st.sampled_from(["=", "==", ":", ""]),
              st.text(max_size=12)),
)


@FUZZ
@given(st.lists(selector_arg, max_size=5))
def test_parse_selectors_mapping_or_usage_error(args):
    allowed = ("stage", "error-kind")
    try:
        out = parse_selectors(args, allowed=allowed, option="dlq list")
    except UsageError as err:
        _one_line_usage(err, "dlq list")
    else:
        assert set(out) <= {"stage", "error_kind"}
        assert all(isinstance(v, str) and v and v == v.strip() for v in out.values())


@FUZZ
@given(selector_arg)
def test_target_name_name_or_usage_error(arg):
    try:
        name = target_name(arg)
    except UsageError as err:
        _one_line_usage(err)
    else:
        assert name and name == name.strip()
