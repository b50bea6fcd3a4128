"""saga list / inspect / force-fail / retry / force-complete against the in-memory plane."""

from __future__ import annotations

import pytest

from pipelinectl.errors import ExitCode
from tests.cli.verbs_fake import PLANES, Harness, NoSagaPlane, fake_fixture  # noqa: F401  (the fake fixture)


def test_list_filters_and_streams(fake: Harness) -> None:
    table = fake("saga", "list", "--status", "stuck")
    assert table.rc == 0, table
    assert "order-1" in table.stdout and "order-2" not in table.stdout
    jsonl = fake("saga", "list", "-o", "jsonl", "--limit", "1")
    assert [line.count('"kind":"Saga"') for line in jsonl.stdout.splitlines()] == [1]


def test_inspect_shows_header_steps_and_events(fake: Harness) -> None:
    result = fake("saga", "inspect", "order-1")
    assert result.rc == 0, result
    out = result.stdout
    assert out.index("Status:") < out.index("Steps") < out.index("Events")
    assert "Current step:    charge" in out
    assert "reserve" in out and "step_failed" in out and "card declined" in out
    as_json = fake("saga", "show", "order-1", "-o", "json").json()
    assert as_json["kind"] == "Saga"
    assert [s["name"] for s in as_json["steps"]] == ["reserve", "charge"]
    assert [e["type"] for e in as_json["events"]] == ["started", "step_failed"]


def test_inspect_table_shows_pending_activities_reset_points_and_details(fake: Harness) -> None:
    """What a driver puts in `details` (Temporal: pending activities, reset points) shows in the table too."""
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.plane.sagas["order-1"].details = {
        "temporal_status": "Running", "run_id": "run-abc",
        "pending_activities": [{"activity_id": "5", "type": "charge", "state": "scheduled", "attempt": 4,
                                "failed_attempts": 3, "last_failure": "gateway timeout", "next_retry": soon,
                                "paused": False}],
        "reset_points": {"first_workflow_task": 3, "before_failed_step": 9},
    }
    out = fake("saga", "inspect", "order-1").stdout
    assert out.index("Status:") < out.index("Pending activities") < out.index("Steps") < out.index("Reset points")
    row = next(line for line in out.splitlines() if line.startswith("5 "))
    assert row.split()[:4] == ["5", "charge", "scheduled", "4"]
    assert "gateway timeout" in row and "in 1m" in row
    assert any(line.split() == ["before", "failed", "step", "9"] for line in out.splitlines())
    assert "saga retry order-1 --event-id 9" in out  # the least drastic point: just before the failed step
    assert "run_id: run-abc" in out and "temporal_status: Running" in out
    plain = fake("saga", "inspect", "order-2").stdout
    assert "Pending activities" not in plain and "Reset points" not in plain and "Details" not in plain


def test_force_fail_needs_yes_off_a_terminal_then_acts_and_audits(fake: Harness) -> None:
    refused = fake("saga", "force-fail", "order-1", "--reason", "outage")
    assert refused.rc == ExitCode.USAGE, refused
    assert ("refusing to force-fail saga 'order-1' (order, stuck at step charge) in pipeline 'orders' "
            "on context 'test' without --yes") in refused.stderr
    assert fake.plane.sagas["order-1"].status == "stuck" and fake.audit() == []
    done = fake("saga", "force-fail", "order-1", "--reason", "outage", "--yes")
    assert done.rc == 0, done
    assert "saga order-1: compensated (was stuck" in done.stdout
    assert fake.plane.calls == [("saga_force_fail", ("order-1", {"reason": "outage", "terminate": False}))]
    (entry,) = fake.audit()
    assert entry["verb"] == "saga force-fail" and entry["arguments"]["reason"] == "outage"


def test_force_complete_and_retry(fake: Harness) -> None:
    retry = fake("saga", "retry", "order-1", "--event-id", "7")
    assert retry.rc == 0, retry
    assert fake.plane.calls[-1] == ("saga_retry", ("order-1", {"reason": None, "options": {"event_id": 7}}))
    complete = fake("saga", "force-complete", "order-1", "--reason", "done by hand", "--yes", "-o", "json")
    assert complete.rc == 0, complete
    assert complete.json()["status"] == "completed"
    assert [a["verb"] for a in fake.audit()] == ["saga retry", "saga force-complete"]


def test_wrong_status_is_refused_by_the_plan_before_any_prompt(fake: Harness) -> None:
    before = fake.snapshot()
    result = fake("saga", "force-fail", "order-2", "--reason", "x", tty=True, stdin="y\n")
    assert result.rc == ExitCode.CONFLICT, result
    assert "saga 'order-2' is completed" in result.stderr
    assert "Proceed?" not in result.stderr
    assert fake.snapshot() == before and fake.audit() == []


def test_dry_run_changes_nothing(fake: Harness) -> None:
    before = fake.snapshot()
    result = fake("saga", "force-fail", "order-1", "--reason", "x", "--dry-run")
    assert result.rc == 0, result
    assert result.stdout.startswith("dry run: force-fail saga 'order-1' (order, stuck at step charge) "
                                    "would leave it compensated")
    assert fake.snapshot() == before and fake.audit() == []


def test_query_batch_confirms_plans_and_follows_the_job(fake: Harness) -> None:
    refused = fake("saga", "retry", "--query", "status = 'stuck'")
    assert refused.rc == ExitCode.USAGE and "refusing to retry 1 saga matching" in refused.stderr
    done = fake("saga", "force-fail", "--query", "status = 'stuck'", "--reason", "drill", "--terminate", "--yes")
    assert done.rc == 0, done
    assert fake.plane.calls == [("saga_batch", ("terminate", "status = 'stuck'", "drill"))]
    assert "batch job batch-1: terminate completed, 1 done, 0 failed of 1" in done.stdout
    assert len(fake.audit()) == 1


def test_cancel_by_query_refuses_off_a_terminal_dry_runs_then_runs_one_batch(fake: Harness) -> None:
    before = fake.snapshot()
    refused = fake("saga", "cancel", "--query", "status = 'stuck'", "--reason", "called off")
    assert refused.rc == ExitCode.USAGE and "refusing to cancel 1 saga matching" in refused.stderr, refused
    dry = fake("saga", "cancel", "--query", "status = 'stuck'", "--reason", "called off", "--dry-run")
    assert dry.rc == 0 and "cancel would act on 1 saga matching" in dry.stdout, dry
    assert fake.snapshot() == before and fake.audit() == []
    done = fake("saga", "cancel", "--query", "status = 'stuck'", "--reason", "called off", "--yes")
    assert done.rc == 0, done
    assert fake.plane.calls == [("saga_batch", ("cancel", "status = 'stuck'", "called off"))]
    assert "batch job batch-1: cancel completed, 1 done, 0 failed of 1" in done.stdout
    assert [(e["verb"], e["arguments"]["matched"]) for e in fake.audit()] == [("saga cancel", 1)]


def _at_charge(fake: Harness, *ids: str) -> None:
    import copy

    for saga_id in ids:
        fake.plane.sagas[saga_id] = copy.deepcopy(fake.plane.sagas["order-1"])
        fake.plane.sagas[saga_id].id = saga_id


def test_advance_by_query_acts_only_on_sagas_at_the_step_and_confirms_once(fake: Harness) -> None:
    _at_charge(fake, "order-3")
    before = fake.snapshot()
    argv = ("saga", "advance", "--query", "WorkflowType = 'order'", "--step", "charge", "--reason", "paid by phone")
    refused = fake(*argv)
    assert refused.rc == ExitCode.USAGE and "refusing to advance step charge of 2 sagas" in refused.stderr, refused
    dry = fake(*argv, "--dry-run")
    assert dry.rc == 0 and "advance step charge of 2 sagas" in dry.stdout, dry
    assert fake.snapshot() == before and fake.audit() == []
    asked = fake(*argv, tty=True, stdin="y\n")
    assert asked.rc == 0, asked
    assert asked.stderr.count("Proceed?") == 1  # one question for the batch, not one per saga
    assert sorted(c[1][0] for c in fake.plane.calls) == ["order-1", "order-3"]
    assert all(c[0] == "saga_advance" and c[1][1]["step"] == "charge" for c in fake.plane.calls)
    assert fake.plane.sagas["order-2"].status == "completed"  # not at the step: left alone
    assert sorted(e["target"] for e in fake.audit()) == ["orders/order-1", "orders/order-3"]
    none = fake(*argv, "--yes")
    assert none.rc == 0 and "is at step charge; nothing was changed" in none.stdout, none


def test_advance_by_query_goes_on_past_a_saga_that_moved_and_exits_conflict(fake: Harness) -> None:
    _at_charge(fake, "order-3")
    plane = fake.plane
    advance = plane.saga_advance

    def moved_meanwhile(pipeline, saga_id, step, reason, **kw):  # type: ignore[no-untyped-def]
        if saga_id == "order-1" and not kw.get("dry_run"):
            plane.sagas["order-1"].current_step = "ship"
        return advance(pipeline, saga_id, step, reason, **kw)

    plane.saga_advance = moved_meanwhile
    result = fake("saga", "advance", "--query", "q", "--step", "charge", "--reason", "by hand", "--yes")
    assert result.rc == ExitCode.CONFLICT, result
    assert "1 saga of 2 could not be advanced" in result.stderr
    assert [c[1][0] for c in plane.calls] == ["order-3"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("saga", "inspect", "order-9"), ExitCode.NOT_FOUND, "saga 'order-9' not found"),
        (("saga", "force-fail", "order-9", "--reason", "x", "--yes"), ExitCode.NOT_FOUND, "saga 'order-9' not found"),
        (("saga", "force-fail", "order-1", "--yes"), ExitCode.USAGE, "saga force-fail needs --reason"),
        (("saga", "force-fail", "order-1", "--reason", "  ", "--yes"), ExitCode.USAGE, "needs --reason"),
        (("saga", "force-complete", "order-1", "--yes"), ExitCode.USAGE, "saga force-complete needs --reason"),
        (("saga", "force-fail", "--reason", "x", "--yes"), ExitCode.USAGE, "needs a saga ID or --query"),
        (("saga", "retry", "order-1", "--query", "q"), ExitCode.USAGE, "not both"),
        (("saga", "retry", "--query", "q", "--event-id", "3", "--yes"), ExitCode.USAGE, "--event-id applies to one saga"),
        (("saga", "retry", "order-1", "--event-id", "0"), ExitCode.USAGE, "Invalid value for '--event-id'"),
        (("saga", "list", "--status", "sad"), ExitCode.USAGE, "invalid value for --status: 'sad'"),
    ],
)
def test_refused_input_changes_nothing(fake: Harness, args: tuple[str, ...], code: int, message: str) -> None:
    before = fake.snapshot()
    result = fake(*args)
    assert result.rc == code, result
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fake.snapshot() == before and fake.audit() == []


def test_a_driver_without_sagas_answers_exit_7(fake: Harness) -> None:
    PLANES["current"] = NoSagaPlane()
    for args in (("saga", "list"), ("saga", "inspect", "x"), ("saga", "retry", "x")):
        result = fake(*args)
        assert result.rc == ExitCode.UNSUPPORTED, result
        assert "is not supported by the nosaga driver" in result.stderr


def test_help_shows_examples(fake: Harness) -> None:
    for sub in ("list", "inspect", "force-fail", "retry", "force-complete", "cancel", "advance"):
        result = fake("saga", sub, "--help")
        assert result.rc == 0, result
        lines = [line.strip() for line in result.stdout.splitlines()]
        assert "Examples:" in lines
        assert any(line.startswith(f"pipelinectl saga {sub} ") for line in lines), result.stdout
