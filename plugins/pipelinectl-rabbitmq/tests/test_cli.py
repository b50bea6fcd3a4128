"""The installed `pipelinectl` against the real node: a context with --driver rabbitmq, as operators run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pipelinectl_rabbitmq.testing import wait

from pipelinectl.testing import CliEnv, assert_knobs_unsupported, executable

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "schema" / "output.schema.json"


def validate(doc) -> None:
    """-o json output has the schema every driver shares (docs/schema/output.schema.json)."""
    import jsonschema

    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()),
                                    format_checker=jsonschema.FormatChecker()).validate(doc)


@pytest.fixture
def cli(tmp_path):
    return CliEnv(tmp_path / "cli")


def _context(cli, rabbit, prefix: str, *extra: str, password: str | None = None, url: str | None = None) -> None:
    cli.set_context("r", url or rabbit.management_url, token=password or rabbit.password, pipeline="/", extra_args=(
        "--driver", "rabbitmq", "--set", f"user={rabbit.user}", "--set", f"amqp_url=amqp://127.0.0.1:{rabbit.amqp_port}",
        "--set", f"queue_prefix={prefix}", *extra))


def test_status_pause_resume_scale(cli, rabbit, admin, workers, tmp_path):
    q = admin.pipeline("cl1.orders")
    _context(cli, rabbit, "cl1.")
    worker = workers(q, tmp_path / "w.jsonl", prefetch=5)
    version = cli.run("version", "-o", "json")
    assert version.rc == 0 and version.json()["server"].startswith("RabbitMQ 3."), version

    status = cli.run("status", "-o", "json")
    assert status.rc == 0, status
    validate(status.json())
    doc = status.json()
    [pipeline] = doc["items"] if "items" in doc else [doc]
    assert [s["name"] for s in pipeline["stages"]] == [q]

    paused = cli.run("pause", q, "-o", "json")
    assert paused.rc == 0, paused
    validate(paused.json())
    assert paused.json()["state"] == "paused" and admin.consumers(q) == 0
    admin.publish(q, {"id": "p1"})
    time.sleep(0.5)
    assert worker.processed_ids() == []
    assert cli.run("resume", q).rc == 0
    worker.wait_for(lambda rows: worker.processed_ids() == ["p1"])

    bad = cli.run("scale", q, "--parallelism", "0")
    assert bad.rc == 2 and bad.stderr.count("\n") == 1 and "error:" in bad.stderr
    unknown = cli.run("pause", "cl1.nope")
    assert unknown.rc == 3 and q in unknown.stderr  # names the known stages
    good = cli.run("scale", q, "--parallelism", "2", "-o", "json")
    assert good.rc == 0, good
    assert good.json()["parallelism"] == 2 and admin.prefetches(q) == [2]
    dry = cli.run("pause", q, "--dry-run")
    assert dry.rc == 0 and admin.consumers(q) == 1
    audited = [line["verb"] for line in cli.audit_lines()]
    assert audited == ["pause", "resume", "scale"]  # refused and dry runs never reached the plane


def test_dlq_list_inspect_redrive_purge(cli, rabbit, admin, workers, tmp_path):
    q = admin.pipeline("cl2.orders")
    _context(cli, rabbit, "cl2.")
    fix = tmp_path / "fixed"
    worker = workers(q, tmp_path / "w.jsonl", fix_file=fix)
    admin.publish(q, {"id": "poison", "rule": "reject"}, headers={"tenant": "acme"})
    admin.publish(q, {"id": "poison2", "rule": "reject"})
    wait(lambda: admin.depth(f"{q}.dlq") == 2)
    listed = cli.run("dlq", "list", "-o", "json")
    assert listed.rc == 0, listed
    validate(listed.json())
    items = listed.json()["items"]
    first = next(i for i in items if i["payload"]["id"] == "poison")
    assert first["error_kind"] == "fatal" and first["headers"]["tenant"] == "acme"
    shown = cli.run("dlq", "inspect", first["id"])
    assert shown.rc == 0 and "rejected in queue cl2.orders" in shown.stdout and "acme" in shown.stdout

    refused = cli.run("dlq", "redrive", "--all")  # a bulk redrive: no TTY, no --yes
    assert refused.rc == 2 and "without --yes" in refused.stderr
    assert admin.depth(f"{q}.dlq") == 2
    fix.touch()
    done = cli.run("dlq", "redrive", first["id"], "--yes", "-o", "json")
    assert done.rc == 0, done
    validate(done.json())
    assert done.json()["succeeded"] == [first["id"]]
    worker.wait_for(lambda rows: "poison" in worker.processed_ids())

    refused = cli.run("dlq", "purge", "--all")
    assert refused.rc == 2 and admin.depth(f"{q}.dlq") == 1
    purged = cli.run("dlq", "purge", "--all", "--yes", "-o", "json")
    assert purged.rc == 0 and len(purged.json()["succeeded"]) == 1
    assert cli.run("dlq", "list", "-o", "json").json()["items"] == [] and admin.depth(f"{q}.dlq") == 0
    assert cli.run("dlq", "inspect", first["id"]).rc == 3

    setup = cli.run("rabbitmq", "dlq", "setup", "cl2.orders")
    assert setup.rc == 0 and "already dead-letters" in setup.stdout


@pytest.mark.slow
def test_redrive_killed_midway_moves_every_message_exactly_once(cli, rabbit, admin, tmp_path):
    """SIGKILL `pipelinectl dlq redrive` during a large redrive, run it again, and count both sides."""
    q = admin.pipeline("cl3.orders")
    _context(cli, rabbit, "cl3.")
    n = 3000
    import pika

    for i in range(n):
        admin.channel.basic_publish(f"{q}.dlx", q, json.dumps({"id": f"m{i}"}).encode(), pika.BasicProperties(
            delivery_mode=2, headers={"x-death": [{"queue": q, "reason": "rejected", "count": 1, "exchange": "",
                                                   "routing-keys": [q]}], "x-first-death-queue": q,
                                      "x-first-death-reason": "rejected"}))
    assert admin.depth(f"{q}.dlq") == n
    proc = subprocess.Popen([executable(), "dlq", "redrive", "--all", "--yes"], env=cli.env(), cwd=cli.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait(lambda: admin.depth(q) >= 500 or proc.poll() is not None, timeout=60, step=0.02)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.5)  # RabbitMQ notices the closed connection, rolls back, requeues
    moved_first = admin.depth(q)
    assert 0 < moved_first < n and moved_first + admin.depth(f"{q}.dlq") == n  # nothing lost, nothing doubled

    again = cli.run("dlq", "redrive", "--all", "--yes", "-o", "json", timeout=180)
    assert again.rc == 0, again
    assert len(again.json()["succeeded"]) == n - moved_first  # pipelinectl's count ...
    assert admin.depth(f"{q}.dlq") == 0 and admin.depth(q) == n  # ... and RabbitMQ's
    ids = [json.loads(body)["id"] for _props, body in admin.drain(q)]
    assert sorted(ids) == sorted(f"m{i}" for i in range(n))  # every message exactly once
    listed = cli.run("dlq", "list", "-o", "json")
    assert listed.json()["items"] == []


def test_replay_dry_run_changes_nothing_and_unsupported_verbs(cli, rabbit, admin):
    q = admin.pipeline("cl4.orders")
    admin.declare("cl4.log", **{"x-queue-type": "stream"})
    for i in range(4):
        admin.publish("cl4.log", {"id": i})
    _context(cli, rabbit, "cl4.")
    no_stream = cli.run("replay", "--from-offset", "0", "--to-offset", "2", "-s", q, "--yes")
    assert no_stream.rc == 7 and "'replay' is not supported by the rabbitmq driver" in no_stream.stderr
    assert "stream" in no_stream.stderr
    _context(cli, rabbit, "cl4.", "--set", "replay_stream=cl4.log")
    plan = cli.run("replay", "--from-offset", "0", "--to-offset", "4", "-s", q, "--dry-run", "-o", "json")
    assert plan.rc == 0, plan
    assert admin.depth(q) == 0
    job = cli.run("replay", "--from-offset", "0", "--to-offset", "4", "-s", q, "--yes", "-o", "json")
    assert job.rc == 0, job
    validate(job.json())
    assert (job.json()["total"], job.json()["replayed"]) == (4, 4) and admin.depth(q) == 4
    for args, verb, why in ((("saga", "list"), "saga list", "no sagas"), (("drain", q), "drain", "no draining state"),
                            (("replay", "list"), "replay list", "keeps no replay jobs")):
        result = cli.run(*args)
        assert result.rc == 7 and f"'{verb}' is not supported by the rabbitmq driver" in result.stderr, result
        assert why in result.stderr and result.stderr.count("\n") <= 2


def test_knobs_and_saga_admin_exit_7_and_change_nothing(cli, rabbit, admin):
    q = admin.pipeline("cl6.orders")
    _context(cli, rabbit, "cl6.")
    assert_knobs_unsupported(cli, "rabbitmq", q)
    doc = cli.run("status", "-o", "json").json()
    [pipeline] = doc["items"] if "items" in doc else [doc]
    [stage] = pipeline["stages"]
    assert (stage["name"], stage["state"], stage.get("rate_limit")) == (q, "running", None)


def test_wrong_credentials_exit_5_and_the_token_is_never_printed(cli, rabbit, admin):
    admin.pipeline("cl5.orders")
    _context(cli, rabbit, "cl5.", password="wrong-secret-999")
    denied = cli.run("-v", "status")
    assert denied.rc == 5, denied
    assert "refused the credentials" in denied.stderr
    assert "wrong-secret-999" not in denied.output and rabbit.password not in denied.output.replace("guest@", "")
    listed = cli.run("-v", "dlq", "list")
    assert listed.rc == 5 and "wrong-secret-999" not in listed.output
    # the management API takes the credentials, AMQP (another user, named in amqp_url) refuses them
    cli.set_context("a", rabbit.management_url, token=rabbit.password, pipeline="/", extra_args=(
        "--driver", "rabbitmq", "--set", f"user={rabbit.user}", "--set", "queue_prefix=cl5.",
        "--set", f"amqp_url=amqp://nobody@127.0.0.1:{rabbit.amqp_port}"))
    amqp = cli.run("-v", "dlq", "list")
    assert amqp.rc == 5 and "RabbitMQ refused the credentials" in amqp.stderr, amqp
    assert rabbit.password not in amqp.output.replace("guest", "")


def test_unreachable_is_reported_within_two_seconds(cli, rabbit, admin):
    from pipelinectl.testing import BlackHole, free_port

    admin.pipeline("cl6.orders")

    refused = free_port()
    _context(cli, rabbit, "cl6.", url=f"http://127.0.0.1:{refused}")
    result = cli.run("status")
    assert result.rc == 6 and "cannot reach" in result.stderr and result.seconds < 3.5, result
    with BlackHole() as port:
        _context(cli, rabbit, "cl6.", url=f"http://127.0.0.1:{port}")
        hung = cli.run("status")
        assert hung.rc == 6 and hung.seconds < 3.5, hung
    # the management API answers, AMQP does not: the AMQP side says so as fast
    cli.set_context("a", rabbit.management_url, token=rabbit.password, pipeline="/", extra_args=(
        "--driver", "rabbitmq", "--set", f"user={rabbit.user}", "--set", f"amqp_url=amqp://127.0.0.1:{refused}",
        "--set", "queue_prefix=cl6."))
    amqp = cli.run("dlq", "list")
    assert amqp.rc == 6 and "cannot reach RabbitMQ" in amqp.stderr and amqp.seconds < 3.5, amqp
    assert "Traceback" not in amqp.stderr and "pika" not in amqp.stderr  # one error, not pika's own log lines
    with BlackHole() as port:
        cli.set_context("a", rabbit.management_url, token=rabbit.password, pipeline="/", extra_args=(
            "--set", f"amqp_url=amqp://127.0.0.1:{port}"))
        hung = cli.run("dlq", "list")
        assert hung.rc == 6 and "connect timed out" in hung.stderr and hung.seconds < 3.5, hung
