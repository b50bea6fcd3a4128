"""The installed `pipelinectl` against a real redis-server: a context with --driver redis, as operators run it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from pipelinectl_redis.testing import add_entries, start_redis

from pipelinectl.testing import CliEnv, assert_knobs_unsupported, executable, free_port
from tests.support.cli import validate_output


@pytest.fixture
def cli(tmp_path):
    return CliEnv(tmp_path / "cli")


def _context(cli, server, pipeline: str, *extra: str, token: str | None = None) -> None:
    cli.set_context("r", server.url, pipeline=pipeline, token=token, extra_args=("--driver", "redis", *extra))


def test_status_pause_resume_scale(cli, server, admin):
    admin.xgroup_create("cl1:in", "parse", id="0", mkstream=True)
    add_entries(admin, "cl1:in", 3)
    _context(cli, server, "cl1")

    version = cli.run("version", "-o", "json")
    assert version.rc == 0 and version.json()["server"].startswith("redis 7."), version

    status = cli.run("status", "-o", "json")
    assert status.rc == 0, status
    doc = status.json()
    validate_output(doc)
    pipelines = doc["items"] if "items" in doc else [doc]
    [stage] = pipelines[0]["stages"]
    assert (stage["name"], stage["state"], stage["queue_depth"]) == ("parse", "running", 3)
    assert stage["details"]["lag"] == admin.xinfo_groups("cl1:in")[0]["lag"]

    paused = cli.run("pause", "parse", "--until", "1h", "-o", "json")
    assert paused.rc == 0, paused
    validate_output(paused.json())
    assert paused.json()["state"] == "paused" and paused.json()["paused_until"]
    stored = admin.hgetall("pipelinectl:stage:{cl1:in}:parse")
    assert stored[b"paused"] == b"1" and int(stored[b"paused_until"]) > time.time() * 1000 + 3000e3
    assert cli.run("resume", "parse").rc == 0
    assert admin.hget("pipelinectl:stage:{cl1:in}:parse", "paused") is None

    bad = cli.run("scale", "parse", "--parallelism", "0")
    assert bad.rc == 2 and bad.stderr.count("\n") == 1 and "error:" in bad.stderr
    unknown = cli.run("scale", "nope", "--parallelism", "2")
    assert unknown.rc == 3 and "known stages: parse" in unknown.stderr
    good = cli.run("scale", "parse", "--parallelism", "3", "-o", "json")
    assert good.rc == 0 and good.json()["parallelism"] == 3, good
    assert admin.hget("pipelinectl:stage:{cl1:in}:parse", "parallelism") == b"3"
    audited = [(line["verb"], line["target"]) for line in cli.audit_lines()]
    assert [verb for verb, _ in audited] == ["pause", "resume", "scale"]

    saga = cli.run("saga", "list")
    assert saga.rc == 7 and "not supported by the redis driver" in saga.stderr
    drain = cli.run("drain", "parse")
    assert drain.rc == 7 and "drain" in drain.stderr and "pause the stage" in drain.stderr


def test_knobs_and_saga_admin_exit_7_and_change_nothing(cli, server, admin):
    admin.xgroup_create("cl7:in", "parse", id="0", mkstream=True)
    _context(cli, server, "cl7")
    assert_knobs_unsupported(cli, "redis", "parse")
    assert admin.exists("pipelinectl:stage:{cl7:in}:parse") == 0  # no state written for a refused verb


def test_replay_dry_run_changes_nothing_then_replays_once(cli, server, admin):
    admin.xgroup_create("cl2:in", "parse", id="0", mkstream=True)
    ids = add_entries(admin, "cl2:in", 6)
    got = admin.xreadgroup("parse", "c1", {"cl2:in": ">"}, count=6)
    admin.xack("cl2:in", "parse", *[e for e, _ in got[0][1]])
    _context(cli, server, "cl2")
    before = (admin.xlen("cl2:in"), admin.xinfo_groups("cl2:in"))

    plan = cli.run("redis", "replay", "-s", "parse", "--from-id", ids[1], "--to-id", ids[4], "--dry-run", "-o", "json")
    assert plan.rc == 0, plan
    validate_output(plan.json())
    assert plan.json()["total"] == 3 and "replay would send 3 entries" in plan.stderr
    core = cli.run("replay", "--from", "-1h", "--to", "+1h", "-s", "parse", "--dry-run", "-o", "json")
    assert core.rc == 0 and core.json()["outcome"]["result"]["total"] == 6, core
    assert (admin.xlen("cl2:in"), admin.xinfo_groups("cl2:in")) == before

    refused = cli.run("redis", "replay", "-s", "parse", "--from-id", ids[1], "--to-id", ids[4])
    assert refused.rc == 2 and "--yes" in refused.stderr and admin.xlen("cl2:in") == 6
    job = cli.run("redis", "replay", "-s", "parse", "--from-id", ids[1], "--to-id", ids[4], "--yes", "-o", "json")
    assert job.rc == 0, job
    assert (job.json()["replayed"], job.json()["skipped"]) == (3, 0) and admin.xlen("cl2:in") == 9
    again = cli.run("redis", "replay", "-s", "parse", "--from-id", ids[1], "--to-id", ids[4], "--yes")
    assert again.rc == 2 and "nothing to replay" in again.stderr and admin.xlen("cl2:in") == 9
    assert [line["verb"] for line in cli.audit_lines()] == ["redis replay"]


def test_dlq_setup_sweep_list_inspect_purge(cli, server, admin):
    admin.xgroup_create("cl3:in", "parse", id="0", mkstream=True)
    _context(cli, server, "cl3")
    assert cli.run("dlq", "list").rc == 3  # no DLQ set up yet: says so
    setup = cli.run("redis", "dlq", "setup", "--max-deliveries", "1", "--min-idle", "0")
    assert setup.rc == 0 and "dead letters to cl3:in:dlq:parse after 1 deliveries" in setup.stdout, setup
    assert "already has" in cli.run("redis", "dlq", "setup", "--max-deliveries", "1", "--min-idle", "0").stdout
    assert cli.run("redis", "dlq", "setup", "--min-idle", "soon").rc == 2

    admin.xadd("cl3:in", {"id": "poison", "tenant": "acme"})
    admin.xadd("cl3:in", {"id": "poison2"})
    admin.xreadgroup("parse", "c1", {"cl3:in": ">"}, count=2)
    dry = cli.run("redis", "dlq", "sweep", "--dry-run", "-o", "json")
    assert dry.rc == 0 and dry.json()["would_move"] == 2 and admin.xlen("cl3:in:dlq:parse") == 0
    swept = cli.run("redis", "dlq", "sweep", "-o", "json")
    assert swept.rc == 0 and swept.json()["moved"] == 2 and admin.xlen("cl3:in:dlq:parse") == 2

    listed = cli.run("dlq", "list", "-o", "json")
    assert listed.rc == 0, listed
    validate_output(listed.json())
    items = listed.json()["items"]
    first = next(i for i in items if i["payload"]["id"] == "poison")
    assert first["stage"] == "parse" and first["details"]["consumer"] == "c1" and first["attempts"] == 1
    shown = cli.run("dlq", "inspect", first["id"])
    assert shown.rc == 0 and "acme" in shown.stdout and "delivered 1 time without an ack" in shown.stdout

    refused = cli.run("dlq", "purge", "--all")
    assert refused.rc == 2 and "without --yes" in refused.stderr and admin.xlen("cl3:in:dlq:parse") == 2
    purged = cli.run("dlq", "purge", first["id"], "--yes", "-o", "json")
    assert purged.rc == 0 and purged.json()["succeeded"] == [first["id"]]
    assert admin.xlen("cl3:in:dlq:parse") == 1
    assert cli.run("dlq", "inspect", first["id"]).rc == 3


def test_a_wrong_password_is_refused_and_never_printed(cli, tmp_path):
    srv = start_redis(tmp_path / "auth", "--requirepass", "tok-abcdef-123", name="redis-cli-auth")
    try:
        cli.set_context("r", srv.url, token="wrong-secret-999", pipeline="x", extra_args=("--driver", "redis"))
        denied = cli.run("-v", "status")
        assert denied.rc == 5, denied
        assert "refused the credentials" in denied.stderr
        assert "wrong-secret-999" not in denied.output and "tok-abcdef-123" not in denied.output
        cli.set_context("r", srv.url, token="tok-abcdef-123", pipeline="x", extra_args=("--driver", "redis"))
        missing = cli.run("status")
        assert missing.rc == 3 and "pipeline 'x' not found" in missing.stderr
    finally:
        srv.stop()


def test_server_down_is_unreachable_exit_6(cli):
    port = free_port()
    cli.set_context("r", f"redis://127.0.0.1:{port}", pipeline="x", extra_args=("--driver", "redis"))
    down = cli.run("status")
    assert down.rc == 6 and "cannot reach" in down.stderr, down
    assert down.seconds < 2 + 1.5, down  # 1.5 s of retrying, plus the interpreter starting on a loaded machine


@pytest.mark.slow
def test_redrive_killed_midway_moves_every_entry_exactly_once(cli, server, admin, workers, tmp_path):
    """SIGKILL the CLI during a large redrive, run it again, and count both sides."""
    n = 4000
    admin.xgroup_create("kill:in", "parse", id="0", mkstream=True)
    _context(cli, server, "kill")
    assert cli.run("redis", "dlq", "setup", "--max-deliveries", "1", "--min-idle", "0").rc == 0
    originals = add_entries(admin, "kill:in", n, prefix="k")
    admin.xreadgroup("parse", "crashed", {"kill:in": ">"}, count=n)  # delivered once, never acked
    assert cli.run("redis", "dlq", "sweep", "-o", "json").json()["moved"] == n
    assert admin.xlen("kill:in:dlq:parse") == n and admin.xpending("kill:in", "parse")["pending"] == 0
    listed = cli.run("dlq", "list", "-o", "jsonl")
    assert listed.rc == 0 and len(listed.jsonl()) == n  # pipelinectl's count == the engine's

    fixed = tmp_path / "fixed"
    fixed.touch()
    # from now on entries in the consumer's hands (pending, idle < 30 s) are not due for the sweep
    assert cli.run("redis", "dlq", "setup", "--max-deliveries", "1", "--min-idle", "30s").rc == 0
    assert cli.run("scale", "parse", "--parallelism", "32").rc == 0  # the consumer keeps up with the redrive
    worker = workers("kill:in", "parse", tmp_path / "w.jsonl", fix_file=fixed)
    proc = subprocess.Popen([executable(), "dlq", "redrive", "--all", "--yes"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 60
        while admin.xlen("kill:in:dlq:parse") > n - 100 and time.time() < deadline:  # some are redriven now
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    left = admin.xlen("kill:in:dlq:parse")
    assert 0 < left < n, "the kill did not land in the middle of the redrive"

    def copies() -> list[str]:
        found, low = [], "-"
        while True:
            page = admin.xrange("kill:in", min=low, max="+", count=1000)
            found += [f[b"pipelinectl:redrive-of"].decode() for _, f in page if b"pipelinectl:redrive-of" in f]
            if len(page) < 1000:
                return found
            low = "(" + page[-1][0].decode()

    midway = copies()
    assert len(midway) + left == n and len(set(midway)) == len(midway)  # nothing lost, nothing doubled

    again = cli.run("dlq", "redrive", "--all", "--yes", "-o", "json")
    assert again.rc == 0, again
    assert len(again.json()["succeeded"]) == left
    final = copies()
    assert len(final) == n and len(set(final)) == n
    assert admin.xlen("kill:in") == 2 * n and admin.xlen("kill:in:dlq:parse") == 0
    # pipelinectl's view agrees with the engine's
    status = cli.run("status", "-o", "json").json()
    stages = (status["items"] if "items" in status else [status])[0]["stages"]
    assert stages[0]["dlq_size"] == 0
    assert cli.run("dlq", "list", "-o", "json").json()["items"] == []
    # and the real consumer processed every redriven entry exactly once
    worker.wait_for(lambda rows: len(worker.rows("processed")) == n, timeout=120)
    time.sleep(0.3)
    processed = [r["id"] for r in worker.rows("processed")]
    assert sorted(processed) == sorted(f"k{i}" for i in range(n)) and len(originals) == n
