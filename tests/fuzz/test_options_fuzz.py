"""Property tests over the global options lifted out of argv (pipelinectl/cli/options.py).

Whatever argv looks like, split_global_options either returns options that are
valid (a known output format, a sane timeout) plus the rest of argv untouched
and in order, or raises OptionError with one line; main() turns that into exit 2.
"""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelinectl.cli.options import OUTPUT_FORMATS, GlobalOptions, OptionError, split_global_options

FUZZ = settings(max_examples=400, deadline=None)

GLOBAL_FLAGS = ["--context", "--config", "-o", "--output", "--timeout", "--confirm-context", "--no-color", "-v", "--verbose"]
token = st.one_of(
    st.sampled_from(GLOBAL_FLAGS),
    st.sampled_from([f"{f}=" for f in GLOBAL_FLAGS]),
    st.sampled_from(["-ojson", "-o=yaml", "-ox", "--output=jsonl", "--timeout=0", "--timeout=nan",
                     "--timeout=inf", "--timeout=-1", "--timeout=1e3", "--timeout=86401", "--", "-", "status",
                     "dlq", "list", "--help", "-h", "--yes", "json", "table", "name"]),
    st.sampled_from(OUTPUT_FORMATS),
    st.text(max_size=12).filter(lambda t: not re.search(r"[\n\r\v\f]", t)),  # line breaks: pinned below
)
argv_strategy = st.lists(token, max_size=8)


@FUZZ
@given(argv_strategy)
def test_split_is_valid_or_one_line_option_error(argv):
    try:
        options, rest = split_global_options(list(argv))
    except OptionError as err:
        text = str(err)
        assert text and "\n" not in text
        return
    assert isinstance(options, GlobalOptions)
    assert options.output in OUTPUT_FORMATS
    assert 0 < options.timeout <= 86400
    assert options.verbose >= 0
    # what is left is argv minus the global options, in the same order
    if "--" not in argv:
        remaining = iter(argv)
        assert all(any(arg == other for other in remaining) for arg in rest)
        assert not any(arg.partition("=")[0] in GLOBAL_FLAGS for arg in rest)
    assert options.context is None or options.context  # never an empty name


@FUZZ
@given(argv_strategy)
def test_options_are_the_same_before_or_after_the_command(argv):
    """Global options are position-independent: `-o json status` == `status -o json`."""
    if "--" in argv:
        return
    try:
        before, rest_before = split_global_options(list(argv) + ["status"])
    except OptionError:
        return
    try:
        after, rest_after = split_global_options(["status"] + list(argv))
    except OptionError:
        # only a trailing value-taking flag can differ (it would swallow "status" when first)
        return
    if rest_before and rest_before[-1] == "status" and rest_after and rest_after[0] == "status":
        assert before == after
        assert rest_before[:-1] == rest_after[1:]


@pytest.mark.parametrize("argv", [
    pytest.param(["-o", "\n"], id="output-newline"),
    pytest.param(["--timeout", "1\n2"], id="timeout-newline"),
    pytest.param(["-o", "a\rb"], id="output-carriage-return"),
    pytest.param(["-o", "a\x0bb"], id="output-vertical-tab"),
    pytest.param(["--timeout", "a\x0cb"], id="timeout-form-feed"),
])
def test_values_with_line_breaks_still_give_one_line(argv):
    """Found by fuzzing: a value is shown escaped, so the error stays one line on a terminal."""
    try:
        split_global_options(argv)
    except OptionError as err:
        assert not re.search(r"[\n\r\v\f]", str(err)), repr(str(err))
    else:
        raise AssertionError("expected an OptionError")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(GLOBAL_FLAGS + ["-o", "=", "xml", "", "--timeout=x"]), min_size=1, max_size=4))
def test_main_reports_bad_global_options_as_one_line_exit_2(argv):
    """main() itself, in-process, on argv made only of (possibly malformed) global options."""
    from pipelinectl.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            split_global_options(list(argv))
            valid = True
        except OptionError:
            valid = False
        if valid:
            return  # valid options without a command print top-level help: not this test's business
        rc = main(list(argv))
    assert rc == 2
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
