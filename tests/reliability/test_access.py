"""Access control and secrecy, through the real CLI against a real plane with auth on.

A viewer token cannot change anything: every mutating verb is tried and each
is refused with exit 5 while the plane's state stays the same. A missing or
wrong token is refused. No token (viewer, operator, admin, or a wrong one)
ever appears in stdout, stderr, a -v trace, the audit log, or the plane's log.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.reliability.plane import PIPELINE, api, dlq_ids, start_quiet_plane, use_context
from tests.support.cli import CliEnv, Result

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

WRONG_TOKEN = "wrong-token-5e1f0c2a9b7d"


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    server = start_quiet_plane(tmp_path_factory.mktemp("plane"), seed_dlq=10)
    with api(server, "operator") as client:  # a replay job to try to cancel
        answer = client.post(f"/v1/pipelines/{PIPELINE}/replays", json={"from_offset": 0, "to_offset": 2})
        assert answer.status_code == 201, answer.text
        server.replay_id = answer.json()["id"]  # type: ignore[attr-defined]
    yield server
    server.stop()


def _secrets(plane) -> list[str]:
    return [*plane.tokens.values(), WRONG_TOKEN]


def _snapshot(plane) -> dict:
    with api(plane, "viewer") as client:
        stages = client.get(f"/v1/pipelines/{PIPELINE}").json()["stages"]
        replays = client.get(f"/v1/pipelines/{PIPELINE}/replays").json()["items"]
        sagas = client.get(f"/v1/pipelines/{PIPELINE}/sagas", params={"page_size": 1000}).json()["items"]
    return {
        "stages": {s["name"]: (s["state"], s["parallelism"], s["version"], s["paused_until"]) for s in stages},
        "dlq": dlq_ids(plane),
        "replays": sorted(j["id"] for j in replays),
        "terminal_or_stuck_sagas": {s["id"]: s["status"] for s in sagas
                                    if s["status"] in ("completed", "compensated", "failed", "stuck")},
    }


def _assert_unchanged(before: dict, after: dict) -> None:
    """Same stages, DLQ and replay jobs; every saga that had settled is where it was.

    (A saga still running when `before` was taken may settle meanwhile: that is the plane, not the test.)
    """
    assert {k: v for k, v in after.items() if k != "terminal_or_stuck_sagas"} == \
           {k: v for k, v in before.items() if k != "terminal_or_stuck_sagas"}
    settled_after = after["terminal_or_stuck_sagas"]
    for saga_id, status in before["terminal_or_stuck_sagas"].items():
        assert settled_after.get(saga_id) == status, (saga_id, status, settled_after.get(saga_id))


def _saga_id(plane) -> str:
    with api(plane, "viewer") as client:
        sagas = client.get(f"/v1/pipelines/{PIPELINE}/sagas", params={"page_size": 1000}).json()["items"]
    stuck = [s["id"] for s in sagas if s["status"] == "stuck"]
    return (stuck or [s["id"] for s in sagas])[0]


def _mutations(plane) -> dict[str, tuple[str, ...]]:
    item = dlq_ids(plane)[0]
    saga = _saga_id(plane)
    return {
        "pause": ("pause", "validate"),
        "pause --until": ("pause", "validate", "--until", "30m"),
        "resume": ("resume", "charge"),
        "drain": ("drain", "validate"),
        "scale": ("scale", "validate", "--parallelism", "3"),
        "resize": ("resize", "validate", "--parallelism", "4"),
        "replay": ("replay", "--from-offset", "0", "--to-offset", "5", "--yes"),
        "replay cancel": ("replay", "cancel", plane.replay_id),
        "dlq redrive id": ("dlq", "redrive", item, "--yes"),
        "dlq redrive --all": ("dlq", "redrive", "--all", "--yes"),
        "dlq purge id": ("dlq", "purge", item, "--yes"),
        "dlq purge --all": ("dlq", "purge", "--all", "--yes"),
        "saga force-fail": ("saga", "force-fail", saga, "--reason", "drill", "--yes"),
        "saga retry": ("saga", "retry", saga, "--yes"),
        "saga force-complete": ("saga", "force-complete", saga, "--reason", "drill", "--yes"),
    }


def _assert_no_secret(plane, *texts: str) -> None:
    for text in texts:
        for secret in _secrets(plane):
            assert secret not in text, f"a token leaked into: {text[:500]!r}"


def _refused(result: Result) -> str:
    assert result.rc == 5, result
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result
    assert "Traceback" not in result.output  # -v traces requests; only -vv adds a traceback
    return lines[0]


def test_viewer_cannot_mutate_anything(tmp_path, plane):
    cli = CliEnv(tmp_path)
    use_context(cli, "ro", plane.url, plane.tokens["viewer"])
    before = _snapshot(plane)
    outputs = []
    for i, (name, argv) in enumerate(_mutations(plane).items()):
        # every verb plainly; machine output and -v traces on alternate verbs (keeps the test quick)
        for extra in ((), ("-o", "json") if i % 2 else ("-v",)):
            result = cli.run(*argv, *extra, "--timeout", "10")
            line = _refused(result)
            assert "permission" in line.lower() or "role" in line.lower() or "forbidden" in line.lower() \
                or "may not" in line.lower(), (name, line)
            outputs += [result.stdout, result.stderr]
    _assert_unchanged(before, _snapshot(plane))  # a viewer changed nothing
    _assert_no_secret(plane, *outputs, cli.audit_path.read_text() if cli.audit_path.exists() else "")


def test_operator_cannot_do_admin_verbs(tmp_path, plane):
    cli = CliEnv(tmp_path)
    use_context(cli, "op", plane.url, plane.tokens["operator"])
    before = _snapshot(plane)
    admin_only = {k: v for k, v in _mutations(plane).items()
                  if k.startswith("dlq purge") or k in ("saga force-fail", "saga force-complete")}
    for argv in admin_only.values():
        _refused(cli.run(*argv, "--timeout", "10"))
    _assert_unchanged(before, _snapshot(plane))


@pytest.mark.parametrize("who", ["missing", "wrong"])
def test_missing_or_wrong_token_is_refused(tmp_path, plane, who):
    cli = CliEnv(tmp_path)
    use_context(cli, "anon", plane.url, None if who == "missing" else WRONG_TOKEN)
    before = _snapshot(plane)
    for argv in (("dlq", "list"), ("saga", "list", "-o", "json"), ("pause", "validate"),
                 ("dlq", "purge", "--all", "--yes"), ("-v", "scale", "validate", "--parallelism", "2")):
        result = cli.run(*argv, "--timeout", "10")
        line = _refused(result)
        assert "token" in line.lower() or "auth" in line.lower(), line
        if who == "missing":  # the hint's placeholder survives redaction
            assert "send 'Authorization: Bearer <token>'" in line, line
        _assert_no_secret(plane, result.stdout, result.stderr)
    _assert_unchanged(before, _snapshot(plane))


def test_tokens_never_appear_in_output_traces_audit_or_plane_log(tmp_path, plane):
    """Successful and failing verbs, -v and -v -v, every output format: grep for every token."""
    cli = CliEnv(tmp_path)
    use_context(cli, "ops", plane.url, plane.tokens["operator"])
    use_context(cli, "boss", plane.url, plane.tokens["admin"], current=False)
    use_context(cli, "bad", plane.url, WRONG_TOKEN, current=False)
    # a token passed as a plain header in the context (not a token source) is a secret too
    use_context(cli, "hdr", plane.url, None, current=False,
                extra={"headers": {"Authorization": f"Bearer {plane.tokens['viewer']}"}})
    runs = [
        ("-v", "dlq", "list", "-o", "jsonl"),
        ("-v", "-v", "saga", "list", "-o", "yaml"),
        ("-v", "pause", "validate"),
        ("-v", "resume", "validate", "-o", "json"),
        ("-v", "scale", "validate", "--parallelism", "2"),
        ("-v", "dlq", "redrive", dlq_ids(plane)[0], "--yes"),
        ("-v", "dlq", "show", "dlq-999999999"),
        ("-v", "--context", "boss", "dlq", "purge", dlq_ids(plane)[0], "--yes", "-o", "json"),
        ("-v", "--context", "bad", "dlq", "list"),
        ("-v", "--context", "bad", "pause", "validate"),
        ("-v", "--context", "hdr", "dlq", "list", "-o", "json"),
        ("-v", "--context", "hdr", "pause", "validate"),
        ("-v", "scale", "validate", "--parallelism", "9999"),
        ("-v", "saga", "force-fail", "no-such-saga", "--reason", "x", "--yes"),
        ("-v", "replay", "--from-offset", "5", "--to-offset", "1", "--yes"),
    ]
    outputs = []
    saw_trace = False
    for argv in runs:
        result = cli.run(*argv, "--timeout", "10")
        assert "Traceback" not in result.output or argv.count("-v") >= 2
        outputs += [result.stdout, result.stderr]
        saw_trace = saw_trace or "Authorization" in result.stderr or "> GET" in result.stderr
    assert saw_trace, "the -v runs printed request traces (so the grep looked at real traces)"
    assert cli.audit_path.exists() and cli.audit_lines(), "mutations were audited (so the grep saw the log)"
    # (the config file is left out: the test itself wrote a header token there)
    _assert_no_secret(plane, *outputs, cli.audit_path.read_text(), plane.output())


def test_token_sources_file_exec_and_header_never_shown(tmp_path, plane):
    """Every way a context can hold a credential; config views, -v traces and errors are grepped."""
    cli = CliEnv(tmp_path)
    token_file = tmp_path / "operator.token"
    token_file.write_text(plane.tokens["operator"] + "\n")
    token_file.chmod(0o600)
    use_context(cli, "by-file", plane.url, None, extra={"token-file": str(token_file)})
    use_context(cli, "by-exec", plane.url, None, current=False,
                extra={"token-exec": f"echo {plane.tokens['admin']}"})
    use_context(cli, "by-header", plane.url, None, current=False,
                extra={"headers": {"Authorization": f"Bearer {plane.tokens['viewer']}"}})
    use_context(cli, "by-env-wrong", plane.url, WRONG_TOKEN, current=False)
    runs = [("config", "view"), ("config", "view", "-o", "json"), ("config", "view", "-o", "yaml"),
            ("config", "get-contexts"), ("config", "get-contexts", "-o", "json")]
    for name in ("by-file", "by-exec", "by-header", "by-env-wrong"):
        runs += [("-v", "--context", name, "status", "-o", "json"),
                 ("-v", "--context", name, "version"),
                 ("-v", "--context", name, "pause", "validate", "--dry-run")]
    runs += [("status", "--all-contexts", "-o", "wide", "-v")]
    outputs = []
    for argv in runs:
        result = cli.run(*argv, "--timeout", "10")
        assert result.rc in (0, 5, 6), result
        outputs += [result.stdout, result.stderr]
    by_name = {argv: out for argv, out in zip(runs, outputs[::2], strict=True)}
    assert "by-exec" in by_name[("config", "view")], "config view listed the contexts (the grep saw them)"
    _assert_no_secret(plane, *outputs, cli.audit_path.read_text() if cli.audit_path.exists() else "")


# Tokens a credential source may hand over that cannot travel in a header: a helper that prints a notice
# line before the token, a NUL in a token file, a non-ASCII character. Each is refused where it is read
# (exit 2, one line naming the source), with or without -v and -o json; the token never shows.
HOSTILE = {
    "notice line": "notice: refreshed cache\n{token}",
    "NUL": "{token}\x00",
    "non-ASCII": "{token}-é",
    "space inside": "{token} extra",
}


@pytest.mark.parametrize("kind", HOSTILE, ids=HOSTILE.keys())
def test_a_token_that_cannot_be_sent_is_refused_by_source_and_never_shown(tmp_path, plane, kind):
    cli = CliEnv(tmp_path)
    token = HOSTILE[kind].format(token=plane.tokens["operator"])
    token_file = tmp_path / "operator.token"
    token_file.write_bytes(token.encode() + b"\n")
    token_file.chmod(0o600)
    helper = tmp_path / "helper.py"
    helper.write_text(f"import sys; sys.stdout.buffer.write({token.encode()!r} + b'\\n')\n")
    sources = {"by-file": ({"token-file": str(token_file)}, str(token_file)),
               "by-exec": ({"token-exec": f"{sys.executable} {helper}"}, f"'{Path(sys.executable).name}'")}
    if "\x00" not in token:  # an environment variable cannot hold a NUL
        cli.extra_env["PLANE_TOKEN_HOSTILE"] = token
        sources["by-env"] = ({"token-env": "PLANE_TOKEN_HOSTILE"}, "$PLANE_TOKEN_HOSTILE")
    for name, (extra, _) in sources.items():
        use_context(cli, name, plane.url, None, extra=extra)
    before = _snapshot(plane)
    outputs = []
    for name, (_, source) in sources.items():
        for argv in (("status",), ("-v", "dlq", "list"), ("pause", "validate", "-o", "json"),
                     ("-v", "-v", "scale", "validate", "--parallelism", "2")):
            result = cli.run("--context", name, *argv, "--timeout", "10")
            assert result.rc == 2, result
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and source in errors[0], result
            if argv.count("-v") < 2:  # -vv adds a traceback by design
                assert result.stderr.strip().splitlines() == errors, result
            outputs += [result.stdout, result.stderr]
    _assert_unchanged(before, _snapshot(plane))
    _assert_no_secret(plane, *outputs, cli.audit_path.read_text() if cli.audit_path.exists() else "", plane.output())
