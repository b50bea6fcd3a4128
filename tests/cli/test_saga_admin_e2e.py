"""saga cancel / saga advance / audit: the installed executable against a real server.

The `trips` pipeline (tests/server/saga_admin_pipeline.py) starts sagas that wait at `approve` after
two completed steps; tokens named viewer, operator and admin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import CliEnv, validate_output
from tests.support.server import RunningServer, start_server
from tests.support.server import eventually as wait

pytestmark = pytest.mark.slow

PIPELINE = "tests.server.saga_admin_pipeline:build"


@pytest.fixture(name="env", scope="module")
def env_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, CliEnv]]:
    root: Path = tmp_path_factory.mktemp("saga-admin")
    server = start_server(root / "server", demo=False, pipelines=(PIPELINE,), env={"TRIPS": "6"})
    try:
        cli = CliEnv(root / "user")
        for role in ("viewer", "operator"):
            cli.set_context(role, server.url, token=server.tokens[role], pipeline="trips", use=False)
        cli.set_context("admin", server.url, token=server.tokens["admin"], pipeline="trips")
        yield server, cli
    finally:
        server.stop()


def saga(server: RunningServer, sid: str) -> dict:
    return httpx.get(f"{server.url}/v1/pipelines/trips/sagas/{sid}", headers=server.headers("viewer"),
                     timeout=10).json()



def at_approve(server: RunningServer, sid: str) -> None:
    wait(f"{sid} at approve", lambda: saga(server, sid).get("current_step") == "approve")


def test_cancel_confirms_dry_runs_then_compensates(env: tuple[RunningServer, CliEnv]) -> None:
    server, cli = env
    sid = "saga-trip-0"
    at_approve(server, sid)
    refused = cli.run("saga", "cancel", sid, "--reason", "called off")
    assert refused.rc == 2 and "without --yes" in refused.stderr, refused
    missing = cli.run("saga", "cancel", sid, "--yes")
    assert missing.rc == 2 and "needs --reason" in missing.stderr
    dry = cli.run("saga", "cancel", sid, "--reason", "called off", "--dry-run")
    assert dry.rc == 0, dry
    assert "would stop, compensate hotel, flight (in reverse), then end cancelled" in dry.stdout
    assert saga(server, sid)["status"] == "running"
    done = cli.run("saga", "cancel", sid, "--reason", "called off", "--yes", "-o", "json")
    assert done.rc == 0, done
    validate_output(done.json())
    final = wait("cancelled", lambda: (s := saga(server, sid))["status"] == "cancelled" and s)
    assert [e["step"] for e in final["events"] if e["type"] == "step_compensated"] == ["hotel", "flight"]
    again = cli.run("saga", "cancel", sid, "--reason", "twice", "--yes")
    assert again.rc == 4, again
    viewer = cli.run("saga", "cancel", "saga-trip-1", "--reason", "x", "--yes", "--context", "viewer")
    assert viewer.rc == 5, viewer


def test_advance_refuses_bad_input_then_applies_a_plan_once(env: tuple[RunningServer, CliEnv], tmp_path: Path) -> None:
    server, cli = env
    sid = "saga-trip-2"
    at_approve(server, sid)
    bad = cli.run("saga", "advance", sid, "--step", "approve", "--result", "{not json", "--reason", "x", "--yes")
    assert bad.rc == 2 and bad.stderr.count("\n") <= 2 and "invalid --result: not JSON" in bad.stderr, bad
    wrong = cli.run("saga", "advance", sid, "--step", "car", "--reason", "x", "--yes")
    assert wrong.rc == 4 and "not the current step" in wrong.stderr, wrong
    assert saga(server, sid)["current_step"] == "approve"
    plan = cli.run("saga", "advance", sid, "--step", "approve", "--result", '{"approved_by": "ops"}',
                   "--reason", "approved by phone", "--dry-run", "-o", "yaml")
    assert plan.rc == 0, plan
    path = tmp_path / "advance.yaml"
    path.write_text(plan.stdout)
    applied = cli.run("apply", str(path), "--yes")
    assert applied.rc == 0, applied
    final = wait("completed", lambda: (s := saga(server, sid))["status"] == "completed" and s)
    assert final["details"]["data"]["approved_by"] == "ops" and "car" in final["details"]["data"]
    twice = cli.run("apply", str(path), "--yes")
    assert twice.rc == 4, twice  # the saga moved on: the plan no longer holds
    import yaml

    digest = yaml.safe_load(plan.stdout)["hash"]
    entries = cli.run("audit", "--verb", "saga advance", "--target", f"saga/{sid}", "-o", "json").json()["items"]
    assert [(e["actor"], e["plan"]) for e in entries] == [("admin", digest)]


def test_audit_lists_streams_and_filters_for_a_viewer(env: tuple[RunningServer, CliEnv]) -> None:
    server, cli = env
    at_approve(server, "saga-trip-4")
    for verb in ("pause", "resume"):
        result = cli.run(verb, "book", "--context", "operator")
        assert result.rc == 0, result
    assert cli.run("saga", "cancel", "saga-trip-4", "--reason", "audit test", "--yes").rc == 0
    as_json = cli.run("audit", "--context", "viewer", "-o", "json")
    assert as_json.rc == 0, as_json
    document = as_json.json()
    validate_output(document)
    actors = {(e["actor"], e["verb"]) for e in document["items"]}
    assert {("operator", "pause"), ("operator", "resume"), ("admin", "saga cancel")} <= actors
    lines = cli.run("audit", "--context", "viewer", "-o", "jsonl", "--actor", "operator", "--limit", "1").jsonl()
    assert [(e["kind"], e["verb"]) for e in lines] == [("AuditEntry", "pause")]
    table = cli.run("audit", "--since", "-1h", "--target", "book")
    assert table.rc == 0 and table.stdout.split()[:4] == ["TIME", "ACTOR", "VERB", "TARGET"], table
    assert cli.run("audit", "--since", "later").rc == 2
    local = cli.run("audit", "--local", "--verb", "saga cancel", "-o", "json")
    assert local.rc == 0, local
    mine = local.json()["items"]
    assert mine and all(e["id"].startswith("local-") and e["details"]["context"] in ("admin",) for e in mine)
    assert {e["target"] for e in mine} >= {"saga-trip-4"}


def test_audit_on_a_driver_without_a_trail_is_unsupported(env: tuple[RunningServer, CliEnv]) -> None:
    _, cli = env
    assert cli.run("config", "set-context", "nats", "--driver", "nats", "--url", "nats://127.0.0.1:1").rc == 0
    result = cli.run("audit", "--context", "nats")
    assert result.rc == 7, result
    assert "not supported by the nats driver" in result.stderr
    assert json.loads(cli.run("audit", "--context", "nats", "--local", "-o", "json").stdout)["kind"] == "AuditEntryList"
