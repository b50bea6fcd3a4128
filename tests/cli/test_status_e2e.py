"""`pipelinectl status` end to end: the installed executable against a real control plane.

Every output format is checked against what the plane itself reports over the
API, and machine output is validated against docs/schema/output.schema.json.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from tests.support.cli import (
    CliEnv,
    cli_fixture,  # noqa: F401  (the `cli` fixture)
    executable,
)
from tests.support.server import free_port, start_server

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schema" / "output.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def validate(obj: object) -> None:
    VALIDATOR.validate(obj)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("status-plane"))
    yield srv
    srv.stop()


@pytest.fixture
def env(cli: CliEnv, server) -> CliEnv:
    cli.set_context("demo", server.url, token=server.tokens["viewer"])
    return cli


def plane_pipelines(server) -> list[dict]:
    answer = httpx.get(server.url + "/v1/pipelines", headers=server.headers("viewer"), timeout=10)
    answer.raise_for_status()
    return answer.json()["items"]


def stage_post(server, verb: str, stage: str, body: dict | None = None) -> None:
    answer = httpx.post(f"{server.url}/v1/pipelines/orders/stages/{stage}/{verb}", json=body or {},
                        headers=server.headers("operator"), timeout=10)
    answer.raise_for_status()


def test_table_lists_every_stage_of_the_plane_plain_when_piped(env, server):
    result = env.run("status")
    assert result.rc == 0, result
    assert "\x1b[" not in result.stdout, "no escape codes when piped"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PIPELINE orders")
    assert "context demo" in lines[0]
    assert lines[1].split() == ["STAGE", "STATE", "PARALLELISM", "IN-FLIGHT", "QUEUE", "THROUGHPUT", "LIMIT", "ERRORS", "DLQ"]
    shown = [line.split()[0] for line in lines[2:] if line.strip()]
    expected = [s["name"] for p in plane_pipelines(server) for s in p["stages"]]
    assert shown == expected
    assert result.stderr == ""


def test_wide_adds_columns(env):
    result = env.run("status", "-o", "wide")
    assert result.rc == 0, result
    header = result.stdout.splitlines()[1]
    for column in ("PROCESSED", "FAILED", "ERRORS BY KIND", "BYPASSED", "VERSION", "PAUSED UNTIL"):
        assert column in header


def test_json_validates_and_matches_the_plane(env, server):
    result = env.run("status", "-o", "json")
    assert result.rc == 0, result
    data = result.json()
    validate(data)
    assert data["kind"] == "PipelineList"
    plane = plane_pipelines(server)
    assert [p["name"] for p in data["items"]] == [p["name"] for p in plane]
    ours = {s["name"]: s for s in data["items"][0]["stages"]}
    for stage in plane[0]["stages"]:
        assert ours[stage["name"]]["max_parallelism"] == stage["max_parallelism"]
        assert ours[stage["name"]]["state"] == stage["state"]
    assert result.stderr == ""


def test_named_pipeline_json_is_one_pipeline(env):
    result = env.run("status", "orders", "-o", "json")
    assert result.rc == 0, result
    data = result.json()
    validate(data)
    assert data["kind"] == "Pipeline" and data["name"] == "orders"


def test_yaml_is_the_same_document(env):
    result = env.run("status", "-o", "yaml")
    assert result.rc == 0, result
    data = yaml.safe_load(result.stdout)
    # YAML has no time type of its own here: times are quoted RFC 3339 strings like in JSON
    validate(json.loads(json.dumps(data, default=str)))
    assert data["kind"] == "PipelineList" and data["items"][0]["name"] == "orders"


def test_jsonl_one_pipeline_per_line(env):
    result = env.run("status", "-o", "jsonl")
    assert result.rc == 0, result
    lines = result.jsonl()
    assert len(lines) == len(result.stdout.strip().splitlines()) == 1
    for obj in lines:
        validate(obj)
        assert obj["kind"] == "Pipeline"


def test_name_output(env):
    result = env.run("status", "-o", "name")
    assert result.rc == 0, result
    assert result.stdout == "pipeline/orders\n"


def test_unknown_pipeline_is_not_found(env):
    result = env.run("status", "nope")
    assert result.rc == 3, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "nope" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_paused_stage_shows_and_stands_out_in_colour_on_a_tty(env, server):
    stage_post(server, "pause", "charge")
    try:
        piped = env.run("status", "-o", "json")
        states = {s["name"]: s["state"] for s in piped.json()["items"][0]["stages"]}
        assert states["charge"] == "paused"
        tty = env.run_pty("status")
        assert tty.rc == 0, tty
        assert "\x1b[" in tty.stdout, "colour on a terminal"
        paused_line = next(line for line in tty.stdout.splitlines() if "charge" in line)
        assert "paused" in paused_line and "\x1b[1;33m" in paused_line  # bold yellow
        plain = env.run_pty("status", env={"NO_COLOR": "1"})
        assert plain.rc == 0 and "\x1b[" not in plain.stdout and "paused" in plain.stdout
        nocolor = env.run_pty("--no-color", "status")
        assert nocolor.rc == 0 and "\x1b[" not in nocolor.stdout
    finally:
        stage_post(server, "resume", "charge")


def test_verbose_trace_redacts_the_token(env, server):
    token = server.tokens["viewer"]
    result = env.run("-v", "status", "-o", "json")
    assert result.rc == 0, result
    assert token not in result.stdout + result.stderr
    assert "Authorization: Bearer [REDACTED]" in result.stderr
    assert f"> GET {server.url}/v1/pipelines" in result.stderr
    assert "< 200 OK GET" in result.stderr and "request-id=" in result.stderr
    validate(result.json())  # stdout stays machine-clean under -v


def _start_watch(env: CliEnv, *args: str) -> subprocess.Popen:
    return subprocess.Popen([executable(), "status", "--watch", "--interval", "0.3", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env.env(), cwd=env.root)


def _read_until(proc: subprocess.Popen, predicate, timeout: float = 20.0) -> list[str]:
    import select

    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if predicate(lines):
                return lines
    raise AssertionError(f"watch did not produce the expected lines in {timeout}s: {lines!r}")


def test_watch_piped_jsonl_emits_changes_and_ctrl_c_exits_130(env, server):
    proc = _start_watch(env, "-o", "jsonl")
    try:
        stages = [s["name"] for s in plane_pipelines(server)[0]["stages"]]
        first = _read_until(proc, lambda lines: len(lines) >= len(stages))
        objs = [json.loads(line) for line in first]
        for obj in objs:
            validate(obj)
            assert obj["kind"] == "Stage"
        assert [o["name"] for o in objs[: len(stages)]] == stages, "the first pass shows every stage"
        stage_post(server, "pause", "ship")
        changed = _read_until(proc, lambda lines: any(
            json.loads(line)["name"] == "ship" and json.loads(line)["state"] == "paused" for line in lines))
        assert changed
    finally:
        stage_post(server, "resume", "ship")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error" not in err


def test_watch_piped_table_is_one_line_per_change(env):
    proc = _start_watch(env)
    try:
        lines = _read_until(proc, lambda lines: len(lines) >= 2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert all(" orders/" in line and " state=" in line and " dlq=" in line for line in lines)
    assert not any("\x1b[" in line for line in lines)


def test_watch_on_a_tty_is_a_live_view_and_ctrl_c_exits_130(env):
    result = env.run_pty("status", "--watch", "--interval", "0.3", timeout=30, interrupt_after="Ctrl-C to stop")
    assert result.rc == 130, result
    assert "STAGE" in result.stdout and "validate" in result.stdout
    assert "Traceback" not in result.stdout and "error:" not in result.stdout


def test_all_contexts_reports_each_row_and_an_unreachable_one(env, server):
    env.set_context("down", f"http://127.0.0.1:{free_port()}", token="unused-token-xyz", use=False)
    started = time.perf_counter()
    result = env.run("status", "--all-contexts", "-o", "json")
    elapsed = time.perf_counter() - started
    assert result.rc == 6, result
    data = result.json()
    validate(data)
    rows = {row["context"]: row for row in data["items"]}
    assert rows["demo"]["ok"] is True and rows["demo"]["pipelines"][0]["name"] == "orders"
    assert rows["down"]["ok"] is False and rows["down"]["error"]["exit_code"] == 6
    assert "cannot reach control plane" in rows["down"]["error"]["message"]
    assert "1 of 2 contexts could not be read: down" in result.stderr
    assert elapsed < 10
    table = env.run("status", "--all-contexts")
    assert table.rc == 6
    demo_row = next(line for line in table.stdout.splitlines() if " demo " in line)
    assert demo_row.rstrip().endswith("ok")
    assert "connection refused" in next(line for line in table.stdout.splitlines() if " down " in line)


def test_all_contexts_all_reachable_exit_0(env, server):
    env.set_context("demo-admin", server.url, token=server.tokens["admin"], use=False)
    result = env.run("status", "--all-contexts", "-o", "jsonl")
    assert result.rc == 0, result
    rows = result.jsonl()
    assert [r["context"] for r in rows] == ["demo", "demo-admin"]
    for row in rows:
        validate(row)
        assert row["ok"]


def test_status_json_wall_time(env):
    """Measured, not asserted tightly: a status round trip through the installed CLI."""
    times = []
    for _ in range(3):
        result = env.run("status", "-o", "json")
        assert result.rc == 0
        times.append(result.seconds)
    best = min(times)
    print(f"status -o json wall time: best {best * 1000:.0f} ms of {len(times)}")
    assert best < 5.0


def test_no_context_at_all_says_how_to_start(cli):
    result = cli.run("status")
    assert result.rc == 2, result
    assert "no context selected" in result.stderr and "pipelinectl demo" in result.stderr



class Streams:
    """stdout and stderr of a running watch, each read line by line by a thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import threading

        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((proc.stdout, self.out), (proc.stderr, self.err)):
            threading.Thread(target=lambda st=stream, sk=sink: [sk.append(line) for line in st], daemon=True).start()

    def until(self, what: str, predicate, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: out={self.out!r} err={self.err!r}"
            time.sleep(0.1)


def test_watch_survives_an_outage_and_resumes_when_the_plane_is_back(cli, tmp_path):
    """The plane goes away and comes back on its port: the watch says since when it is unreachable (once),
    keeps going, says when it answers again and shows changes again; Ctrl-C exits 130."""
    srv = start_server(tmp_path / "blip")
    try:
        cli.set_context("blip", srv.url, token=srv.tokens["viewer"])
        proc = subprocess.Popen([executable(), "status", "--watch", "--interval", "0.3", "--timeout", "1", "-o",
                                 "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env(),
                                cwd=cli.root)
        streams = Streams(proc)
        try:
            streams.until("the first pass", lambda: len(streams.out) >= 5)
            srv.stop()
            streams.until("the outage note", lambda: any("unreachable since" in line for line in streams.err))
            time.sleep(2)
            assert proc.poll() is None, "the watch keeps going while the plane is away"
            seen = len(streams.out)
            srv.start()  # back: same port, same state, same tokens
            streams.until("the plane to answer again", lambda: any("answers again" in line for line in streams.err))
            httpx.post(f"{srv.url}/v1/pipelines/orders/stages/notify/pause", json={},
                       headers=srv.headers("admin"), timeout=10).raise_for_status()
            streams.until("a change after the outage", lambda: any(
                json.loads(line)["name"] == "notify" and json.loads(line)["state"] == "paused"
                for line in streams.out[seen:]))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
    finally:
        srv.stop()
    assert proc.returncode == 130, streams.err
    notes = [line for line in streams.err if "unreachable since" in line]
    assert len(notes) == 1 and notes[0].startswith("warning: control plane unreachable since "), streams.err
    assert "cannot reach control plane" in notes[0]


def test_watch_started_while_the_plane_is_down_waits_for_it(cli, tmp_path):
    port = free_port()
    cli.set_context("later", f"http://127.0.0.1:{port}", token="unused-until-the-plane-is-up")
    proc = subprocess.Popen([executable(), "status", "--watch", "--interval", "0.3", "--timeout", "1", "-o", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env(), cwd=cli.root)
    streams = Streams(proc)
    srv = None
    try:
        streams.until("the outage note", lambda: any("unreachable since" in line for line in streams.err))
        assert proc.poll() is None, "a plane down at the start is an outage to wait through, not exit 6"
        srv = start_server(tmp_path / "later", port=port, auth=False)
        streams.until("the stages once the plane answers", lambda: len(streams.out) >= 5)
        assert all(json.loads(line)["kind"] == "Stage" for line in streams.out)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        if srv is not None:
            srv.stop()
    assert proc.returncode == 130, streams.err


def test_context_default_pipeline_keeps_the_list_shape(cli, server):
    """Scripts get the same shape whatever the context names: one object only for a named pipeline."""
    cli.set_context("scoped", server.url, token=server.tokens["viewer"], pipeline="orders")
    result = cli.run("status", "-o", "json")
    assert result.rc == 0, result
    data = result.json()
    assert data["kind"] == "PipelineList" and [p["name"] for p in data["items"]] == ["orders"]
    named = cli.run("status", "-p", "orders", "-o", "json")
    assert named.json()["kind"] == "Pipeline"
