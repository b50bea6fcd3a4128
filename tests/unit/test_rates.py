"""pipelinectl.rates: the one parser of rates (`limit --rate`, the API's `rate`), and the drivers' 'unsupported'."""

from __future__ import annotations

import pytest

from pipelinectl.errors import ExitCode, UnsupportedError, UsageError
from pipelinectl.plane import UnsupportedVerbs
from pipelinectl.rates import parse_rate, rate_limit


@pytest.mark.parametrize(("text", "expected"), [
    ("50/s", ("50/s", 50.0, 50)),
    ("3000/m", ("3000/m", 50.0, 50)),
    ("1/h", ("1/h", 1 / 3600, 1)),
    (" 2.5 / sec ", ("2.5/s", 2.5, 3)),
    ("120/min", ("120/m", 2.0, 2)),
    ("10/S", ("10/s", 10.0, 10)),
    ("+7/hour", ("7/h", 7 / 3600, 1)),
])
def test_rates_read_in_canonical_form_with_one_second_of_burst(text, expected):
    limit = rate_limit(text)
    assert (limit.rate, limit.per_second, limit.burst) == expected


def test_an_explicit_burst_is_kept():
    assert rate_limit("50/s", 5).burst == 5


@pytest.mark.parametrize("text", ["0/s", "0.0/m", "-5/s", "-0.1/h"])
def test_zero_and_negative_are_refused_naming_clear(text):
    with pytest.raises(UsageError) as caught:
        parse_rate(text)
    assert "more than zero" in caught.value.message and "--clear" in caught.value.hint
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("text", ["", "fast", "50", "50/", "/s", "50/d", "50 per s", "5e3/s", "1/s/s", "NaN/s"])
def test_junk_is_one_line_naming_examples(text):
    with pytest.raises(UsageError) as caught:
        parse_rate(text)
    assert "\n" not in caught.value.one_line() and "50/s" in caught.value.message


def test_too_fast_and_bad_bursts_are_refused():
    with pytest.raises(UsageError, match="items per second"):
        rate_limit("2000000/s")
    for burst in (0, -1, 10**7, True):
        with pytest.raises(UsageError, match="--burst"):
            rate_limit("5/s", burst)


def test_the_option_name_is_the_callers():
    with pytest.raises(UsageError, match="^rate must"):
        parse_rate("x", option="rate")


@pytest.mark.parametrize(("call", "verb"), [
    (lambda d: d.limit("p", "s", None), "limit"),
    (lambda d: d.disable("p", "s", "why"), "disable"),
    (lambda d: d.enable("p", "s"), "enable"),
    (lambda d: d.replay_skipped("p", "s"), "replay --skipped"),
])
def test_a_driver_without_the_knobs_says_unsupported_in_one_line(call, verb):
    class Plain(UnsupportedVerbs):
        driver = "plain"

    with pytest.raises(UnsupportedError) as caught:
        call(Plain())
    assert caught.value.one_line() == f"'{verb}' is not supported by the plain driver"
    assert caught.value.exit_code == ExitCode.UNSUPPORTED
