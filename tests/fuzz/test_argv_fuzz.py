"""Whole-CLI argv fuzzing: whatever is typed, pipelinectl answers with help, a result,
or one `error:` line and a documented exit code; never a traceback, never exit 1.

No context is configured (each example gets a fresh empty home), so nothing is
sent anywhere and every command that needs a plane must refuse as a usage
error (2), or not-found (3) for a `--context` that does not exist. In-process
main() runs many examples quickly; a few run the installed executable as a
subprocess to prove the same holds for the real entry point.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import tempfile
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelinectl.cli.commands import COMMANDS
from pipelinectl.errors import ExitCode
from tests.support.cli import CliEnv

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(target.partition(":")[0]) is not None


# `server` and `demo` start a control plane (they are meant to run a long time): not fuzzed here.
# A command whose module is missing fails test_every_command_in_the_table_has_its_module instead.
FUZZED_COMMANDS = sorted(name for name, spec in COMMANDS.items()
                         if name not in ("server", "demo") and _module_exists(spec.target))
SUBCOMMANDS = ["list", "show", "redrive", "purge", "cancel", "retry", "force-fail", "force-complete", "get-contexts",
               "set-context", "use-context", "current-context", "delete-context", "view", "run", "validate", "bash"]
OPTIONS = ["-p", "--pipeline", "--yes", "-y", "--dry-run", "--all", "--id", "--since", "--until", "--from", "--to",
           "--from-offset", "--to-offset", "--stage", "--error-kind", "--reason", "--for", "--url", "--limit",
           "--watch", "--page-size", "--help", "-h", "-o", "--output", "--timeout", "--context", "-v", "--", "-"]
VALUES = ["json", "jsonl", "xml", "0", "-1", "1e9", "nan", "2026-13-01", "-2h", "stage=", "stage=parse",
          "error-kind=validation", "=", "", " ", "\x00", "é", "dlq-1", "orders", "validate", "http://",
          "state=paused", "a" * 300,
          "\udcff\udcfe", "dlq-\udcff", "--id=\udcfe"]  # invalid UTF-8 from the shell arrives as surrogate escapes
word = st.one_of(st.sampled_from(SUBCOMMANDS), st.sampled_from(OPTIONS), st.sampled_from(VALUES),
                 st.text(max_size=15).filter(lambda t: "\x00" not in t and not re.search(r"[\v\f]", t)))
argv_strategy = st.builds(lambda cmd, rest: [cmd, *rest], st.sampled_from(FUZZED_COMMANDS + ["bogus", "-x", ""]),
                          st.lists(word, max_size=6))
# What a terminal shows as a new line. Values holding \v or \f are pinned in test_options_fuzz.py.
LINE_BREAK = re.compile(r"[\n\r\v\f]")
ALLOWED = {ExitCode.OK, ExitCode.USAGE, ExitCode.NOT_FOUND}


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINECTL_")}
    env.pop("NO_COLOR", None)
    env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_STATE_HOME=f"{home}/.local/state",
               XDG_CACHE_HOME=f"{home}/.cache", PIPELINECTL_LOAD_PLUGINS="", COLUMNS="120")
    return env


def _check(rc: int, stdout: str, stderr: str, argv: list[str], allowed: set[ExitCode] = ALLOWED) -> None:
    assert "Traceback" not in stdout, (argv, stdout)
    assert rc in allowed, (argv, rc, stderr)
    verbose = _verbosity(argv) >= 2
    if not verbose:  # -vv prints a traceback on error by design; without it, never
        assert "Traceback" not in stderr, (argv, stderr)
    if rc != 0:
        lines = [line for line in LINE_BREAK.split(stderr.rstrip("\n")) if not line.startswith("warning: ")]
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], (argv, stderr)
        if not verbose:
            assert len(lines) == 1, (argv, stderr)
        assert len(errors[0]) < 2000


def _verbosity(argv) -> int:
    """How many -v the CLI counts (-v, --verbose, -vv...), before a bare `--`."""
    head = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    return sum(1 if a in ("-v", "--verbose") else len(a) - 1 if len(a) > 2 and set(a[1:]) == {"v"} and a[0] == "-"
               else 0 for a in head)


def run_in_process(argv: list[str], home: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """main(argv) in a fresh empty home (or the given one), stdout and stderr captured."""
    from pipelinectl.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        home = home or stack.enter_context(tempfile.TemporaryDirectory())
        stack.enter_context(mock.patch.dict(os.environ, {**_env(home), **(env or {})}, clear=True))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(argv_strategy)
@example(["dlq", "list", "--since", "9999-12-31T23:59:59-01:00"])
@example(["scale", "validate", "nan"])
@example(["pause", "--until", "nan", "validate"])
@example(["replay", "--from-offset", "10", "--to-offset", "5"])
@example(["config", "set-context", "", "--url", ""])
@example(["status", "--context", "nope"])
@example(["replay", "cancel", "\udcff\udcfe"])
@example(["config", "set-context", "\udcff", "--url", "http://x"])
def test_any_argv_in_process(argv):
    rc, out, err = run_in_process(argv)
    _check(rc, out, err, argv)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv_strategy)
@example(["dlq", "purge", "--all"])
@example(["-o", "xml", "status"])
def test_any_argv_installed_executable(argv):
    argv = [arg.replace("\x00", "") for arg in argv]  # an OS argv cannot carry NUL bytes
    with tempfile.TemporaryDirectory() as tmp:
        env = CliEnv(tmp)
        env.extra_env["PIPELINECTL_LOAD_PLUGINS"] = ""
        result = env.run(*argv, timeout=30)
    _check(result.rc, result.stdout, result.stderr, argv)


def test_every_command_in_the_table_has_its_module():
    missing = [name for name, spec in COMMANDS.items() if not _module_exists(spec.target)]
    assert not missing, f"commands in the table without a module: {missing}"


# Hostile values against a real plane: a context is set (admin token), so each value reaches the request
# path. Bytes that are not UTF-8, an ID longer than a URL may be, control characters and any text: each
# is a result, a not-found, or a usage error in one line; never exit 1, never an "unreachable" 5/6.
HOSTILE = st.one_of(
    st.sampled_from(["\udcff\udcfe", "dlq-\udcff", "\udc80", "a" * 100_000, "é" * 40_000, "%00", "%2F..%2F",
                     "../../v1/healthz", "?page_token=x", "#frag", "\x01\x1b[31m", "\u202e", "\ufeff", " ", "*"]),
    st.text(max_size=30).filter(lambda t: "\x00" not in t and not re.search(r"[\v\f]", t)),
)
VERBS = [
    ("status", "-p", "{}"), ("dlq", "show", "{}"), ("dlq", "list", "--stage", "{}"),
    ("dlq", "redrive", "{}", "--yes"), ("dlq", "purge", "{}", "--yes", "-o", "json"),
    ("replay", "show", "{}"), ("replay", "cancel", "{}"),
    ("replay", "--stage", "{}", "--from-offset", "0", "--to-offset", "1", "--dry-run"),
    ("saga", "show", "{}"), ("saga", "list", "--definition", "{}"), ("saga", "retry", "{}", "--yes"),
    ("saga", "force-fail", "{}", "--reason", "{}", "--yes"),
    ("pause", "{}", "--dry-run"), ("resume", "{}"), ("drain", "{}", "--dry-run"), ("scale", "{}", "--parallelism", "2"),
]
ON_A_PLANE = {ExitCode.OK, ExitCode.USAGE, ExitCode.NOT_FOUND}


@pytest.fixture(scope="module")
def plane_home(tmp_path_factory):
    from tests.support.server import start_server

    server = start_server(tmp_path_factory.mktemp("plane"))
    home = tmp_path_factory.mktemp("home")
    cli = CliEnv(home)
    cli.set_context("plane", server.url, token=server.tokens["admin"], pipeline="orders")
    yield str(cli.home), cli.extra_env
    server.stop()


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(verb=st.sampled_from(VERBS), value=HOSTILE)
@example(verb=("replay", "cancel", "{}"), value="\udcff\udcfe")
@example(verb=("dlq", "show", "{}"), value="a" * 100_000)
@example(verb=("dlq", "redrive", "{}", "--yes"), value="a" * 100_000)  # in the body: echoed back, capped
def test_hostile_values_against_a_real_plane(plane_home, verb, value):
    home, env = plane_home
    argv = [value if part == "{}" else part for part in verb]
    rc, out, err = run_in_process(argv, home=home, env=env)
    _check(rc, out, err, argv, ON_A_PLANE)
