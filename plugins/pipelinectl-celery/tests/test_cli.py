"""The installed `pipelinectl` with a `--driver celery` context, against real workers, as operators run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pipelinectl.testing import CliEnv, assert_knobs_unsupported, executable, free_port

try:
    from tests.support.cli import validate_output
except ImportError:  # the plugin tested outside the pipelinectl checkout
    validate_output = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def nodes(workers):
    return {"c1": workers.start("c1", "cl.parse,cl.ship"), "c2": workers.start("c2", "cl.parse")}


@pytest.fixture
def cli(tmp_path, db):
    env = CliEnv(tmp_path / "cli")
    env.set_context("cel", db, extra_args=("--driver", "celery"))
    return env


def _valid(doc):
    if validate_output is not None:
        validate_output(doc)
    return doc


def _json(result):
    assert result.rc == 0, result
    return _valid(result.json())


def test_status_pause_resume_scale_through_the_cli(cli, nodes, workers, admin):
    doc = _json(cli.run("status", "-o", "json"))
    pipelines = doc["items"] if "items" in doc else [doc]
    stages = {s["name"]: s for s in pipelines[0]["stages"]}
    assert set(stages) == {"cl.parse", "cl.ship"} and stages["cl.parse"]["parallelism"] == 4
    version = cli.run("version", "-o", "json")
    assert version.rc == 0 and version.json()["server"].startswith("redis ") and "2 workers online" in \
        version.json()["server"], version
    plugins = cli.run("plugin", "list", "-o", "json")
    [driver] = [p for p in plugins.json()["items"] if p["name"] == "celery" and p["type"] == "driver"]
    assert {"status", "pause", "resume", "scale", "dlq-redrive"} <= set(driver["capabilities"]) and not driver["error"]
    table = cli.run("status")
    assert table.rc == 0 and "cl.parse" in table.stdout

    paused = cli.run("pause", "cl.parse")
    assert paused.rc == 0 and "paused (was running)" in paused.stdout, paused
    for i in range(3):
        admin.send(f"cli-{i}", "cl.parse")
    time.sleep(1.5)
    assert not [r for r in workers.rows("start") if r["item"].startswith("cli-")]
    stage = _json(cli.run("status", "-o", "json"))
    shown = {s["name"]: s for s in (stage["items"] if "items" in stage else [stage])[0]["stages"]}["cl.parse"]
    assert shown["state"] == "paused" and shown["queue_depth"] == 3 == admin.depth("cl.parse")
    resumed = cli.run("resume", "cl.parse")
    assert resumed.rc == 0 and "running (was paused)" in resumed.stdout
    workers.wait_for(lambda: len([r for r in workers.rows("done") if r["item"].startswith("cli-")]) == 3,
                     what="three processed after resume")

    scaled = _json(cli.run("scale", "cl.parse", "--parallelism", "6", "-o", "json"))
    assert scaled["parallelism"] == 6
    stats = admin.inspect(list(nodes.values())).stats()
    assert sum(len(s["pool"]["processes"]) for s in stats.values()) == 6
    assert cli.run("scale", "cl.parse", "--parallelism", "4").rc == 0
    refused = cli.run("scale", "cl.parse", "--parallelism", "1")
    assert refused.rc == 2 and "outside [2," in refused.stderr
    unknown = cli.run("pause", "nope")
    assert unknown.rc == 3 and "known stages: cl.parse, cl.ship" in unknown.stderr
    audited = [(line["verb"], line["target"]) for line in cli.audit_lines()]
    assert [v for v, _ in audited] == ["pause", "resume", "scale", "scale"]


def test_unsupported_verbs_exit_7_naming_the_verb(cli, nodes):
    replay = cli.run("replay", "--from-offset", "1", "--to-offset", "5", "-s", "cl.parse", "--dry-run")
    assert replay.rc == 7 and "'replay' is not supported by the celery driver" in replay.stderr, replay
    assert "no log of past tasks" in replay.stderr
    saga = cli.run("saga", "list")
    assert saga.rc == 7 and "'saga list' is not supported by the celery driver" in saga.stderr
    drain = cli.run("drain", "cl.ship")
    assert drain.rc == 7 and "'drain' is not supported" in drain.stderr
    until = cli.run("pause", "cl.ship", "--until", "30m")
    assert until.rc == 7 and "'pause --until' is not supported" in until.stderr


def test_knobs_and_saga_admin_exit_7_and_change_nothing(cli, nodes):
    assert_knobs_unsupported(cli, "celery", "cl.ship")
    status = json.loads(cli.run("status", "-o", "json").stdout)
    [ship] = [s for s in (status["items"] if "items" in status else [status])[0]["stages"] if s["name"] == "cl.ship"]
    assert ship["state"] == "running" and ship.get("rate_limit") is None


def test_dlq_list_inspect_redrive_purge(cli, nodes, workers, admin):
    ids = [admin.send(f"dl-{i}", "cl.ship", fail="ValueError") for i in range(3)]
    workers.wait_for(lambda: set(ids) <= set(admin.failure_ids()), what="three failures")
    listed = _json(cli.run("dlq", "list", "-o", "json"))
    assert sorted(i["id"] for i in listed["items"]) == sorted(ids)
    for line in cli.run("dlq", "list", "-o", "jsonl").jsonl():
        _valid(line)
    shown = cli.run("dlq", "inspect", ids[0])
    assert shown.rc == 0 and "ValueError: boom dl-0" in shown.stdout and "Traceback" in shown.stdout

    refused = cli.run("dlq", "redrive", "--all")
    assert refused.rc == 2 and "without --yes" in refused.stderr
    assert sorted(admin.failure_ids()) == sorted(ids)
    dry = _json(cli.run("dlq", "redrive", "--all", "--dry-run", "-o", "json"))
    assert sorted(dry["target"]["items"]) == sorted(ids) and sorted(admin.failure_ids()) == sorted(ids)

    workers.fix.touch()
    try:
        done = _json(cli.run("dlq", "redrive", ids[0], "--yes", "-o", "json"))
        assert done["succeeded"] == [ids[0]]
        workers.wait_for(lambda: [r for r in workers.rows("done") if r["redrive_of"] == ids[0]], what="redriven")
        purge_refused = cli.run("dlq", "purge", "--all")
        assert purge_refused.rc == 2
        purged = _json(cli.run("dlq", "purge", "--all", "--yes", "-o", "json"))
        assert sorted(purged["succeeded"]) == sorted(ids[1:]) and admin.failure_ids() == []
        assert cli.run("dlq", "inspect", ids[1]).rc == 3
    finally:
        workers.fix.unlink(missing_ok=True)


def test_celery_commands_workers_tasks_rate_limit_revoke(cli, nodes, workers, admin):
    listed = cli.run("celery", "workers", "-o", "json")
    assert listed.rc == 0, listed
    assert sorted(w["name"] for w in listed.json()["items"]) == sorted(nodes.values())
    assert "c1@" in cli.run("celery", "workers").stdout

    limited = cli.run("celery", "rate-limit", "t.work", "30/m")
    assert limited.rc == 0 and "30/m" in limited.stdout, limited
    registered = admin.inspect(list(nodes.values())).registered("rate_limit")
    assert all("t.work [rate_limit=30/m]" in tasks for tasks in registered.values())
    assert cli.run("celery", "rate-limit", "t.nope", "1/s").rc == 3
    assert cli.run("celery", "rate-limit", "t.work", "fast").rc == 2
    assert cli.run("celery", "rate-limit", "t.work", "none").rc == 0
    registered = admin.inspect(list(nodes.values())).registered("rate_limit")
    assert all("t.work" in tasks for tasks in registered.values())

    stuck = admin.send("stuck", "cl.ship", delay=60)
    workers.wait_for(lambda: [r for r in workers.rows("start") if r["item"] == "stuck"], what="stuck started")
    time.sleep(0.6)
    everything = cli.run("celery", "tasks", "-o", "json")
    tasks = cli.run("celery", "tasks", "--older-than", "0.5s", "-o", "json")
    assert tasks.rc == 0 and [t["id"] for t in tasks.json()["items"]] == [stuck], (tasks, everything)
    plan = cli.run("celery", "revoke", "--stuck-for", "0.5s", "--terminate", "--dry-run")
    assert plan.rc == 0 and stuck in plan.stdout and "nothing was changed" in plan.stdout
    assert cli.run("celery", "revoke", "--stuck-for", "0.5s", "--terminate").rc == 2  # no --yes off a terminal
    done = cli.run("celery", "revoke", "--stuck-for", "0.5s", "--terminate", "--yes", "-o", "json")
    assert done.rc == 0, done
    assert done.json()["revoked_on"] == sorted(nodes.values())
    revoked = admin.inspect(list(nodes.values())).revoked()
    assert all(stuck in ids for ids in revoked.values())
    workers.wait_for(lambda: not any(admin.inspect(list(nodes.values())).active().values()), what="terminated")
    assert not [r for r in workers.rows("done") if r["item"] == "stuck"]
    assert [line["verb"] for line in cli.audit_lines()] == ["celery rate-limit", "celery rate-limit", "celery revoke"]


def test_unreachable_broker_exits_6_quickly_and_never_prints_the_token(tmp_path):
    cli = CliEnv(tmp_path / "down")
    port = free_port()
    cli.set_context("down", f"redis://127.0.0.1:{port}/0", token="tok-secret-777", extra_args=("--driver", "celery"))
    result = cli.run("-v", "status")
    assert result.rc == 6, result
    # the driver gives up within two seconds (test_connection.py); here the CLI's own start-up
    # (and redis-py's import, on a loaded machine) comes on top
    assert result.seconds < 4
    assert "cannot reach" in result.stderr and "tok-secret-777" not in result.output


@pytest.mark.slow
def test_redrive_killed_midway_then_rerun_moves_every_task_exactly_once(cli, nodes, workers, admin):
    """SIGKILL the CLI during a large redrive, run it again; count on the broker and on the workers."""
    n = 600
    ids = [admin.send(f"k-{i}", "cl.ship", fail="ValueError") for i in range(n)]
    workers.wait_for(lambda: len(set(ids) & set(admin.failure_ids())) == n, timeout=120, what="all failures")
    assert _json(cli.run("pause", "cl.ship", "-o", "json"))["state"] == "paused"  # count on the broker first
    proc = subprocess.Popen([executable(), "dlq", "redrive", "--all", "--yes", "-o", "json"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and admin.depth("cl.ship") == 0:  # the first batch is on the queue: kill now
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    moved = admin.depth("cl.ship")
    left = len(admin.failure_ids())
    assert 0 < moved < n, f"the kill did not land mid-redrive (moved {moved})"
    assert left >= n - moved  # no record left before its task was on the queue

    again = _json(cli.run("dlq", "redrive", "--all", "--yes", "-o", "json", timeout=120))
    assert again["failed"] == {} and len(again["succeeded"]) == left  # pipelinectl's count of what was left
    assert admin.failure_ids() == [] and _json(cli.run("dlq", "list", "-o", "json"))["items"] == []
    status = _json(cli.run("status", "-o", "json"))
    [ship] = [s for s in (status["items"] if "items" in status else [status])[0]["stages"] if s["name"] == "cl.ship"]
    assert ship["queue_depth"] == n == admin.depth("cl.ship") and ship["dlq_size"] == 0
    # the broker's side: each failure is on the queue exactly once
    queued = [json.loads(raw) for raw in admin.redis.lrange("cl.ship", 0, -1)]
    origins = [m["headers"]["pipelinectl_redrive_of"] for m in queued]
    assert len(origins) == n and sorted(origins) == sorted(ids)
    # the workers' side: each runs once, with its original argument
    workers.fix.touch()
    try:
        assert cli.run("resume", "cl.ship").rc == 0
        workers.wait_for(lambda: len([r for r in workers.rows("done") if r["redrive_of"] in set(ids)]) >= n,
                         timeout=180, what="every redriven task done")
        time.sleep(1.0)
        runs = [r for r in workers.rows("start") if r["redrive_of"] in set(ids)]
        assert len(runs) == n and sorted(r["redrive_of"] for r in runs) == sorted(ids)
        item_of = dict(zip(ids, (f"k-{i}" for i in range(n)), strict=True))
        assert all(r["item"] == item_of[r["redrive_of"]] for r in runs)
    finally:
        workers.fix.unlink(missing_ok=True)
