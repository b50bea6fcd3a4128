"""The `pipelinectl` executable, as an operator runs it, against real Temporal.

Each test runs the installed console script in a subprocess with an isolated
home whose context uses `driver: temporal`, and checks the outcome on the
server and in the worker's side effects.
"""

from __future__ import annotations

import pytest
import yaml

from pipelinectl.testing import CliEnv, eventually

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

NS = "sagas"


@pytest.fixture
def cli(tmp_path, temporal, worker) -> CliEnv:
    env = CliEnv(tmp_path)
    env.config_path.parent.mkdir(parents=True, exist_ok=True)
    env.config_path.write_text(yaml.safe_dump({
        "current-context": "t",
        "contexts": {"t": {"driver": "temporal", "url": temporal.http_url, "namespace": NS, "pipeline": NS,
                           "settings": {"task_queues": "orders"}}},
    }))
    env.config_path.chmod(0o600)
    return env


def wait_for(check, timeout: float = 30, what: str = "condition"):
    eventually(check, timeout=timeout, what=what)


def test_list_and_inspect(cli, temporal, worker, uid):
    temporal.start_saga(NS, f"{uid}-ok", {"id": f"{uid}-ok"})
    temporal.start_saga(NS, f"{uid}-fail", {"id": f"{uid}-fail", "fail_at": "charge"})
    temporal.wait_status(NS, f"{uid}-fail", {"FAILED"})
    temporal.wait_status(NS, f"{uid}-ok", {"COMPLETED"})
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}' AND ExecutionStatus != 'Running'", 2)

    result = cli.run("saga", "list", "--query", f"WorkflowId STARTS_WITH '{uid}'", "-o", "json")
    assert result.rc == 0, result
    listed = {s["id"]: s["status"] for s in result.json()["items"]}
    assert listed == {f"{uid}-ok": "completed", f"{uid}-fail": "failed"}

    result = cli.run("saga", "list", "--status", "failed", "--query", f"WorkflowId STARTS_WITH '{uid}'")
    assert result.rc == 0, result
    assert f"{uid}-fail" in result.stdout and f"{uid}-ok" not in result.stdout

    result = cli.run("saga", "inspect", f"{uid}-fail", "-o", "json")
    assert result.rc == 0, result
    saga = result.json()
    assert [s["name"] for s in saga["steps"]] == ["reserve", "charge", "undo_reserve"]
    assert worker.effects_of(f"{uid}-fail") == ["reserve", "charge-error", "undo_reserve"]
    assert saga["steps"][0]["compensation"] == "compensated"

    result = cli.run("saga", "inspect", f"{uid}-fail")
    assert result.rc == 0, result
    for text in ("Steps", "undo_reserve", "charge declined", "ActivityTaskFailed"):
        assert text in result.stdout

    counted = cli.run("temporal", "count", "--query", f"WorkflowId STARTS_WITH '{uid}'", "-o", "json")
    assert counted.rc == 0, counted
    assert counted.json()["total"] == 2
    assert counted.json()["by_temporal_status"] == {"Completed": 1, "Failed": 1}

    result = cli.run("saga", "inspect", "no-such-saga")
    assert result.rc == 3 and "not found" in result.stderr


def test_force_fail_confirms_then_compensates(cli, temporal, worker, uid):
    saga_id = f"{uid}-cancel"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    wait_for(lambda: "charge" in worker.effects_of(saga_id), what="charge to run")

    refused = cli.run("saga", "force-fail", saga_id, "--reason", "customer cancelled")
    assert refused.rc == 2 and "--yes" in refused.stderr
    assert temporal.status_of(NS, saga_id) == "RUNNING"

    done = cli.run("saga", "force-fail", saga_id, "--reason", "customer cancelled", "--yes")
    assert done.rc == 0, done
    waited = cli.run("wait", f"saga/{saga_id}", "--for", "saga=compensated", "--for-timeout", "30s")
    assert waited.rc == 0, waited  # the runbook's next line works on Temporal too
    assert temporal.status_of(NS, saga_id) == "CANCELED"
    assert worker.effects_of(saga_id)[-2:] == ["undo_charge", "undo_reserve"]
    assert any(line["verb"] == "saga force-fail" for line in cli.audit_lines())

    again = cli.run("saga", "force-fail", saga_id, "--reason", "twice", "--yes")
    assert again.rc == 4, again


def test_terminate(cli, temporal, worker, uid):
    saga_id = f"{uid}-term"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    wait_for(lambda: "charge" in worker.effects_of(saga_id), what="charge to run")
    result = cli.run("saga", "force-fail", saga_id, "--terminate", "--reason", "poison", "--yes", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["details"]["temporal_status"] == "Terminated"
    assert temporal.status_of(NS, saga_id) == "TERMINATED"
    assert not [op for op in worker.effects_of(saga_id) if op.startswith("undo")]


def test_retry_stuck_and_reset_to_event(cli, temporal, worker, uid):
    stuck = f"{uid}-stuck"
    temporal.start_saga(NS, stuck, {"id": stuck, "stuck_at": "ship", "backoff": 30})
    wait_for(lambda: "ship-error" in worker.effects_of(stuck), what="ship to fail")
    wait_for(lambda: temporal.describe(NS, stuck)["pendingActivities"][0].get("lastFailure"), what="its failure")
    worker.fix(stuck)
    result = cli.run("saga", "retry", stuck, "--reason", "carrier back")
    assert result.rc == 0, result
    temporal.wait_status(NS, stuck, {"COMPLETED"}, timeout=15)  # well before the 30 s backoff
    assert worker.records_of(stuck)[-1] == {"op": "ship", "order": stuck, "attempt": 1}

    failed = f"{uid}-failed"
    temporal.start_saga(NS, failed, {"id": failed, "fail_at": "ship"})
    temporal.wait_status(NS, failed, {"FAILED"})
    shown = cli.run("saga", "inspect", failed, "-o", "json").json()
    event = shown["details"]["reset_points"]["before_failed_step"]
    worker.fix(failed)
    result = cli.run("saga", "retry", failed, "--event-id", str(event), "-o", "json")
    assert result.rc == 0, result
    assert result.json()["details"]["reset_to_event"] == event
    temporal.wait_status(NS, failed, {"COMPLETED"}, timeout=15)


def test_batch_by_query(cli, temporal, worker, uid):
    ids = [f"{uid}-q{i}" for i in range(3)]
    for saga_id in ids:
        temporal.start_saga(NS, saga_id, {"id": saga_id, "hold": 60})
    temporal.wait_visible(NS, f"WorkflowId STARTS_WITH '{uid}-q' AND ExecutionStatus = 'Running'", 3)
    query = f"WorkflowId STARTS_WITH '{uid}-q' AND ExecutionStatus = 'Running'"

    plan = cli.run("saga", "force-fail", "--query", query, "--reason", "drill", "--dry-run", "-o", "json")
    assert plan.rc == 0, plan
    answer = plan.json()["outcome"]["result"]
    assert answer["total"] == 3 and answer["state"] == "planned"
    assert plan.json()["preconditions"][0]["expect"] == {"sagas_matching_query": 3}

    result = cli.run("apply", "-f", "-", "--yes", input=plan.stdout)  # the reviewed plan, exactly
    assert result.rc == 0, result
    assert "force-fail completed, 3 done, 0 failed of 3" in result.stdout  # followed until the batch ended
    for saga_id in ids:
        temporal.wait_status(NS, saga_id, {"CANCELED"})
        assert worker.effects_of(saga_id)[-2:] == ["undo_charge", "undo_reserve"]

    other = f"{uid}-t0"
    temporal.start_saga(NS, other, {"id": other, "hold": 60})
    temporal.wait_visible(NS, f"WorkflowId = '{other}' AND ExecutionStatus = 'Running'", 1)
    result = cli.run("saga", "force-fail", "--query", f"WorkflowId = '{other}'", "--terminate",
                     "--reason", "poison", "--yes", "-o", "json")
    assert result.rc == 0, result
    assert result.json()["action"] == "terminate" and result.json()["state"] == "completed"
    assert temporal.status_of(NS, other) == "TERMINATED"
    assert not [op for op in worker.effects_of(other) if op.startswith("undo")]


def test_retry_by_query_and_confirmation_on_a_terminal(cli, temporal, worker, uid):
    ids = [f"{uid}-s{i}" for i in range(2)]
    for saga_id in ids:
        temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "ship", "backoff": 30})
    for saga_id in ids:
        wait_for(lambda s=saga_id: "ship-error" in worker.effects_of(s), what="ship to fail")
        wait_for(lambda s=saga_id: temporal.describe(NS, s)["pendingActivities"][0].get("lastFailure"),
                 what="its failure")
        worker.fix(saga_id)
    query = f"WorkflowId STARTS_WITH '{uid}-s' AND ExecutionStatus = 'Running'"
    temporal.wait_visible(NS, query, 2)
    result = cli.run("saga", "retry", "--query", query, "--reason", "carrier back", "--yes")
    assert result.rc == 0, result
    for saga_id in ids:
        temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=20)
        assert worker.records_of(saga_id)[-1] == {"op": "ship", "order": saga_id, "attempt": 1}

    held = f"{uid}-ask"
    temporal.start_saga(NS, held, {"id": held, "hold": 60})
    wait_for(lambda: "charge" in worker.effects_of(held), what="charge to run")
    declined = cli.run_pty("saga", "force-fail", held, "--reason", "maybe", answers=[("[y/N]", "n")])
    assert declined.rc == 10, declined
    assert "context 't'" in declined.stdout
    assert temporal.status_of(NS, held) == "RUNNING"
    accepted = cli.run_pty("saga", "force-fail", held, "--reason", "yes really", answers=[("[y/N]", "y")])
    assert accepted.rc == 0, accepted
    temporal.wait_status(NS, held, {"CANCELED"})


def test_unsupported_verbs_exit_7_naming_driver_and_verb(cli, temporal, worker, uid):
    saga_id = f"{uid}-done"
    temporal.start_saga(NS, saga_id, {"id": saga_id})
    temporal.wait_status(NS, saga_id, {"COMPLETED"})
    result = cli.run("saga", "force-complete", saga_id, "--reason", "by hand", "--yes")
    assert result.rc == 7, result
    assert "temporal" in result.stderr and "force-complete" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    result = cli.run("dlq", "list")
    assert result.rc == 7, result
    assert "'dlq list' is not supported by the temporal driver" in result.stderr


def test_plugin_list_and_temporal_info(cli, temporal):
    result = cli.run("plugin", "list", "-o", "json")
    assert result.rc == 0, result
    temporal_driver = next(p for p in result.json()["items"] if p["name"] == "temporal" and p["type"] == "driver")
    assert temporal_driver["distribution"] == "pipelinectl-temporal" and temporal_driver["version"]
    assert "saga-batch" in temporal_driver["capabilities"] and temporal_driver["error"] is None

    result = cli.run("temporal", "info", "-o", "json")
    assert result.rc == 0, result
    info = result.json()
    import httpx

    assert info["server_version"] == httpx.get(f"{temporal.http_url}/api/v1/system-info").json()["serverVersion"]
    assert info["activity_api"] in ("workflow-scoped", "namespace-scoped")


def test_set_context_status_pause_resume_and_batches(tmp_path, temporal, worker, uid):
    env = CliEnv(tmp_path)
    made = env.run("config", "set-context", "tq", "--driver", "temporal", "--url", temporal.http_url,
                   "--namespace", NS, "--set", "task_queues=orders", "--use")
    assert made.rc == 0, made

    saga_id = f"{uid}-paused"
    temporal.start_saga(NS, saga_id, {"id": saga_id, "stuck_at": "reserve"})
    wait_for(lambda: temporal.describe(NS, saga_id).get("pendingActivities"), what="a pending activity")
    temporal.wait_visible(NS, f"WorkflowId = '{saga_id}'", 1)

    status = env.run("status", "-o", "json")
    assert status.rc == 0, status
    (pipeline,) = status.json()["items"]
    assert pipeline["name"] == NS and pipeline["driver"] == "temporal"
    assert [s["name"] for s in pipeline["stages"]] == ["orders"]
    assert pipeline["stages"][0]["details"]["workers"]
    assert pipeline["sagas_by_status"]["running"] >= 1

    paused = env.run("pause", saga_id)
    assert paused.rc == 0, paused
    assert temporal.describe(NS, saga_id)["pendingActivities"][0].get("paused") is True
    listed = env.run("saga", "list", "--query", f"WorkflowId = '{saga_id}'", "-o", "json")
    wait_for(lambda: env.run("saga", "list", "--status", "stuck", "--query", f"WorkflowId = '{saga_id}'",
                             "-o", "json").json()["items"], what="the paused saga to list as stuck")
    assert listed.rc == 0, listed

    worker.fix(saga_id)
    resumed = env.run("resume", saga_id)
    assert resumed.rc == 0, resumed
    temporal.wait_status(NS, saga_id, {"COMPLETED"}, timeout=15)

    batches = env.run("temporal", "batches", "-o", "json")
    assert batches.rc == 0, batches
    assert batches.json()["kind"] == "BatchJobList"


def test_cancel_advance_and_audit_from_history(cli, temporal, worker, uid):
    """saga cancel and saga advance through the CLI; `audit` reads them back from the histories,
    with the identity the driver sent (the context's `identity` setting)."""
    cli.run("config", "set-context", "t", "--set", "identity=ops-alice")
    stuck, held = f"{uid}-adv", f"{uid}-cxl"
    temporal.start_saga(NS, stuck, {"id": stuck, "stuck_at": "charge"})
    temporal.start_saga(NS, held, {"id": held, "hold": 60})
    wait_for(lambda: "charge" in worker.effects_of(held), what="charge to run")
    wait_for(lambda: cli.run("saga", "inspect", stuck, "-o", "json").json()["status"] == "stuck", what="stuck")

    bad = cli.run("saga", "advance", stuck, "--step", "charge", "--result", "[1,", "--reason", "x", "--yes")
    assert bad.rc == 2 and "invalid --result" in bad.stderr
    advanced = cli.run("saga", "advance", stuck, "--step", "charge", "--result", '{"receipt": "r-9"}',
                       "--reason", "charged by phone", "--yes")
    assert advanced.rc == 0, advanced
    temporal.wait_status(NS, stuck, {"COMPLETED"})
    assert worker.effects_of(stuck)[-1] == "ship"

    refused = cli.run("saga", "cancel", held, "--reason", "withdrawn")
    assert refused.rc == 2 and temporal.status_of(NS, held) == "RUNNING"
    cancelled = cli.run("saga", "cancel", held, "--reason", "withdrawn", "--yes")
    assert cancelled.rc == 0, cancelled
    temporal.wait_status(NS, held, {"CANCELED"})
    assert worker.effects_of(held)[-2:] == ["undo_charge", "undo_reserve"]

    trail = cli.run("audit", "--actor", "ops-alice", "--since", "-10m", "-o", "json")
    assert trail.rc == 0, trail
    mine = {(e["target"], e["verb"]) for e in trail.json()["items"]}
    assert {(stuck, "saga advance"), (held, "saga cancel")} <= mine
    [cancel] = [e for e in trail.json()["items"] if e["target"] == held and e["verb"] == "saga cancel"]
    assert cancel["reason"] == "withdrawn" and cancel["result"] == "WorkflowExecutionCancelRequested"
    [adv] = cli.run("audit", "--target", stuck, "--verb", "saga advance", "-o", "json").json()["items"]
    assert adv["arguments"] == {"step": "charge", "result": {"receipt": "r-9"}} and adv["actor"] == "ops-alice"
