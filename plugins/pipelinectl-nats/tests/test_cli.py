"""The installed `pipelinectl` against a real nats-server: a context with --driver nats, as operators run it."""

from __future__ import annotations

import json
import time

import pytest

from pipelinectl.testing import CliEnv

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture
def cli(tmp_path, server):
    env = CliEnv(tmp_path / "cli")
    return env


def _context(cli, server, pipeline: str, *extra: str) -> None:
    cli.set_context("n", server.url, pipeline=pipeline, extra_args=("--driver", "nats", *extra))


def _pipeline(admin, stream: str, **consumer) -> None:
    admin.add_stream(stream, [f"{stream.lower()}.>"])
    admin.add_consumer(stream, "parse", filter_subject=f"{stream.lower()}.in", **consumer)


def test_status_pause_resume_scale(cli, server, admin):
    _pipeline(admin, "CL1", max_ack_pending=8)
    _context(cli, server, "CL1")
    admin.publish("cl1.in", {"id": "1"})

    version = cli.run("version", "-o", "json")
    assert version.rc == 0 and version.json()["server"].startswith("nats-server 2."), version

    status = cli.run("status", "-o", "json")
    assert status.rc == 0, status
    doc = status.json()
    pipelines = doc["items"] if "items" in doc else [doc]
    [stage] = pipelines[0]["stages"]
    assert (stage["name"], stage["state"], stage["parallelism"], stage["queue_depth"]) == ("parse", "running", 8, 1)

    paused = cli.run("pause", "parse", "--until", "1h", "-o", "json")
    assert paused.rc == 0, paused
    assert paused.json()["state"] == "paused" and paused.json()["paused_until"]
    info = admin.consumer("CL1", "parse")
    assert info["paused"] is True and info["pause_remaining"] > 3000e9

    assert cli.run("resume", "parse").rc == 0
    assert not admin.consumer("CL1", "parse").get("paused")

    bad = cli.run("scale", "parse", "--parallelism", "0")
    assert bad.rc == 2 and bad.stderr.count("\n") == 1 and "error:" in bad.stderr
    assert admin.consumer("CL1", "parse")["config"]["max_ack_pending"] == 8
    good = cli.run("scale", "parse", "--parallelism", "3", "-o", "json")
    assert good.rc == 0, good
    assert good.json()["parallelism"] == 3 and admin.consumer("CL1", "parse")["config"]["max_ack_pending"] == 3
    audited = [(line["verb"], line["target"]) for line in cli.audit_lines()]
    assert [verb for verb, _ in audited] == ["pause", "resume", "scale"]  # the refused scale never reached the plane
    assert all("CL1" in target and "parse" in target for _, target in audited)


def test_replay_dry_run_then_once(cli, server, admin):
    _pipeline(admin, "CL2")
    _context(cli, server, "CL2")
    for i in range(6):
        admin.publish("cl2.in", {"id": str(i)})
    plan = cli.run("replay", "--from-offset", "2", "--to-offset", "5", "-s", "parse", "--dry-run", "-o", "json")
    assert plan.rc == 0, plan
    assert admin.stream("CL2")["state"]["last_seq"] == 6
    job = cli.run("replay", "--from-offset", "2", "--to-offset", "5", "-s", "parse", "--yes", "-o", "json")
    assert job.rc == 0, job
    assert (job.json()["total"], job.json()["replayed"]) == (3, 3)
    again = cli.run("replay", "--from-offset", "2", "--to-offset", "5", "-s", "parse", "--yes", "-o", "json")
    assert (again.json()["replayed"], again.json()["skipped"]) == (0, 3)
    assert admin.stream("CL2")["state"]["last_seq"] == 9
    assert admin.consumer_names("CL2") == ["parse"]


def test_dlq_setup_list_inspect_redrive_purge(cli, server, admin, workers, tmp_path):
    _pipeline(admin, "CL3")
    _context(cli, server, "CL3")
    setup = cli.run("nats", "dlq", "setup")
    assert setup.rc == 0, setup
    assert "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.CL3.*" in setup.stdout
    assert "already covers" in cli.run("nats", "dlq", "setup").stdout
    as_json = cli.run("nats", "dlq", "setup", "--dry-run", "-o", "json")
    assert as_json.rc == 0 and as_json.json()["action"] == "unchanged" and as_json.json()["stream"] == "PIPELINECTL_DLQ"
    assert cli.run("nats", "dlq", "setup", "-o", "name").stdout == "PIPELINECTL_DLQ\n"
    bad_age = cli.run("nats", "dlq", "setup", "--max-age", "soon")
    assert bad_age.rc == 2 and "not a duration" in bad_age.output

    fix = tmp_path / "fixed"
    worker = workers("CL3", "parse", tmp_path / "w.jsonl", fix_file=fix)
    admin.publish("cl3.in", {"id": "poison", "rule": "term"}, headers={"Tenant": "acme"})
    admin.publish("cl3.in", {"id": "poison2", "rule": "term"})
    deadline = time.time() + 15
    items: list = []
    while time.time() < deadline and len(items) < 2:
        listed = cli.run("dlq", "list", "-o", "json")
        assert listed.rc == 0, listed
        items = listed.json()["items"]
        time.sleep(0.2)
    first = next(i for i in items if i["payload"]["id"] == "poison")
    assert first["error_kind"] == "fatal" and first["headers"]["Tenant"] == "acme"

    shown = cli.run("dlq", "inspect", first["id"])
    assert shown.rc == 0 and "terminated by the worker" in shown.stdout and "acme" in shown.stdout

    refused = cli.run("dlq", "redrive", "--all")  # a bulk redrive: no TTY, no --yes
    assert refused.rc == 2 and "without --yes" in refused.stderr
    assert len(cli.run("dlq", "list", "-o", "json").json()["items"]) == 2
    fix.touch()
    done = cli.run("dlq", "redrive", first["id"], "--yes", "-o", "json")
    assert done.rc == 0, done
    assert done.json()["succeeded"] == [first["id"]]
    worker.wait_for(lambda rows: "poison" in worker.processed_ids())

    purged = cli.run("dlq", "purge", "--all", "--yes", "-o", "json")
    assert purged.rc == 0 and len(purged.json()["succeeded"]) == 1
    assert cli.run("dlq", "list", "-o", "json").json()["items"] == []
    assert cli.run("dlq", "inspect", first["id"]).rc == 3


def test_sagas_unsupported_and_secrets_never_printed(cli, server_factory):
    srv = server_factory("--auth", "tok-abcdef-123")
    cli.set_context("n", srv.url, token="wrong-secret-999", pipeline="X", extra_args=("--driver", "nats"))
    saga = cli.run("saga", "list")
    assert saga.rc == 7 and "not supported by the nats driver" in saga.stderr
    for argv, verb in ((("saga", "force-fail", "s1", "--reason", "outage", "--yes"), "saga force-fail"),
                       (("replay", "cancel", "replay-1"), "replay cancel")):
        refused = cli.run(*argv)  # named as run, not as the read it starts with (saga inspect, replay show)
        assert refused.rc == 7 and f"'{verb}' is not supported by the nats driver" in refused.stderr, refused
    denied = cli.run("-v", "status")
    assert denied.rc == 5, denied
    assert "refused the credentials" in denied.stderr
    assert "wrong-secret-999" not in denied.output and "tok-abcdef-123" not in denied.output
    cli.set_context("n", srv.url, token="tok-abcdef-123", pipeline="X", extra_args=("--driver", "nats"))
    missing = cli.run("status")
    assert missing.rc == 3 and "pipeline 'X' not found" in missing.stderr


def test_replay_shows_progress_on_a_terminal_only(cli, server, admin):
    _pipeline(admin, "CL4")
    _context(cli, server, "CL4")
    for i in range(4):
        admin.publish("cl4.in", {"id": str(i)})
    on_tty = cli.run_pty("replay", "--from-offset", "1", "--to-offset", "5", "-s", "parse", "--yes")
    assert on_tty.rc == 0, on_tty
    assert "replaying 4/4" in on_tty.stdout
    piped = cli.run("replay", "--from-offset", "1", "--to-offset", "5", "-s", "parse", "--yes")
    assert piped.rc == 0 and "replaying" not in piped.output


def test_ctrl_c_in_a_replay_removes_the_temporary_consumer_at_once(cli, server, admin):
    import os
    import signal
    import subprocess

    from pipelinectl.testing import executable

    admin.add_stream("CL5", ["cl5.>"])
    admin.add_consumer("CL5", "parse", filter_subject="cl5.in")
    _context(cli, server, "CL5")

    async def flood(n: int) -> None:
        nc = await admin._nc()
        for i in range(n):
            await nc.publish("cl5.in", json.dumps({"id": i}).encode())
        await nc.flush()

    admin._run(flood(30000))
    deadline = time.time() + 20
    while admin.stream("CL5")["state"]["messages"] < 30000 and time.time() < deadline:
        time.sleep(0.1)
    proc = subprocess.Popen([executable(), "-v", "replay", "--from-offset", "1", "--to-offset", "30001", "-s", "parse",
                             "--yes"], env=cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(n.startswith("pipelinectl-replay-") for n in admin.consumer_names("CL5")):
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"no exit after SIGINT: {err[-2000:]}") from None
    assert proc.returncode == 130, err
    assert "never awaited" not in err and "Traceback" not in err
    assert admin.consumer_names("CL5") == ["parse"]  # not left for the 60 s inactivity timer
    assert admin.stream("CL5")["state"]["last_seq"] < 60000  # it was stopped before the end


def test_stage_knobs_are_unsupported_in_one_line_and_change_nothing(cli, server, admin):
    _pipeline(admin, "CLK")
    _context(cli, server, "CLK")
    before = cli.run("status", "-o", "json").json()
    for argv, verb, why in (
            (("limit", "parse", "--rate", "50/s"), "limit", "bits per second"),
            (("disable", "parse", "--reason", "outage"), "disable", None),
            (("enable", "parse"), "enable", None),
            (("replay", "--skipped", "parse", "--yes"), "replay --skipped", None)):
        refused = cli.run(*argv)
        assert refused.rc == 7, refused
        assert refused.stderr.startswith(f"error: '{verb}' is not supported by the nats driver"), refused
        assert len(refused.stderr.strip().splitlines()) == 1 and (why is None or why in refused.stderr)
    assert cli.run("status", "-o", "json").json()["items"][0]["stages"] == before["items"][0]["stages"]
