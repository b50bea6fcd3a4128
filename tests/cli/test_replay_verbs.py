"""replay (the group callback) and replay list / show / cancel against the in-memory plane."""

from __future__ import annotations

import pytest

from pipelinectl.errors import ExitCode
from tests.cli.verbs_fake import Harness, fake_fixture  # noqa: F401  (the fake fixture)


def test_replay_by_time_needs_yes_off_a_terminal_and_names_count_range_and_context(fake: Harness) -> None:
    refused = fake("replay", "--from=2026-05-01", "--to=2026-05-02", "--stage", "enrich")
    assert refused.rc == ExitCode.USAGE, refused
    assert ("refusing to replay 2026-05-01T00:00:00Z..2026-05-02T00:00:00Z of pipeline 'orders' into stage 'enrich': "
            "24 items (24 to send, 0 already processed, skipped) on context 'test' without --yes") in refused.stderr
    assert fake.plane.jobs == {} and fake.audit() == []
    done = fake("replay", "--from=2026-05-01", "--to=2026-05-02", "--stage", "enrich", "--yes", "-o", "json")
    assert done.rc == 0, done
    job = done.json()
    assert job["kind"] == "ReplayJob" and job["stage"] == "enrich"
    assert job["from_time"] == "2026-05-01T00:00:00Z" and job["to_time"] == "2026-05-02T00:00:00Z"
    (entry,) = fake.audit()
    assert entry["verb"] == "replay" and entry["result"] == f"job {job['id']} running"


def test_replay_by_offset_with_wait_follows_the_job(fake: Harness) -> None:
    result = fake("replay", "--from-offset", "10", "--to-offset", "40", "--yes", "--wait", "--poll", "0.05")
    assert result.rc == 0, result
    assert "completed: 30 replayed, 0 skipped (already processed) of 30" in result.stdout
    assert fake.plane.jobs["rpl-1"].state == "completed"


def test_wait_on_a_job_that_fails_is_exit_8(fake: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(pipeline: str, job_id: str):  # type: ignore[no-untyped-def]
        job = fake.plane.jobs[job_id]
        job.state, job.error = "failed", "input log truncated"
        return job

    monkeypatch.setattr(fake.plane, "replay_show", failing)
    result = fake("replay", "--from-offset", "0", "--to-offset", "5", "--yes", "--wait", "--poll", "0.05")
    assert result.rc == ExitCode.CONDITION_NOT_MET, result
    assert "replay job rpl-1 ended failed: input log truncated" in result.stderr


def test_dry_run_plans_and_changes_nothing(fake: Harness) -> None:
    result = fake("replay", "--from-offset", "0", "--to-offset", "10", "--dry-run")
    assert result.rc == 0, result
    assert result.stdout.startswith("dry run: replay would send 10 items and skip 0 already processed "
                                    "(10 in offsets 0..10) of pipeline 'orders' into stage 'parse'")
    as_json = fake("replay", "--from-offset", "0", "--to-offset", "10", "--dry-run", "-o", "json")
    assert as_json.json()["kind"] == "Plan" and as_json.json()["outcome"]["result"]["state"] == "planned"
    assert fake.plane.jobs == {} and fake.audit() == []


def test_list_show_cancel(fake: Harness) -> None:
    fake.plane.input_offset = 10**9  # a long job: still running when cancelled
    assert fake("replay", "--from-offset", "0", "--to-offset", "1000000", "--yes").rc == 0
    listed = fake("replay", "list", "-o", "json")
    assert [j["id"] for j in listed.json()["items"]] == ["rpl-1"]
    shown = fake("replay", "show", "rpl-1")
    assert "State:    running" in shown.stdout and "Range:    offsets 0..1000000" in shown.stdout
    cancelled = fake("replay", "cancel", "rpl-1")
    assert cancelled.rc == 0, cancelled
    assert "replay job rpl-1: cancelled (was running" in cancelled.stdout
    assert [a["verb"] for a in fake.audit()] == ["replay", "replay cancel"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("replay",), ExitCode.USAGE, "replay needs a range"),
        (("replay", "--from", "2026-05-02", "--to", "2026-05-01", "--yes"), ExitCode.USAGE,
         "--to (2026-05-01T00:00:00Z) must be after --from (2026-05-02T00:00:00Z)"),
        (("replay", "--from", "2026-05-01", "--yes"), ExitCode.USAGE, "--to is required with --from"),
        (("replay", "--from", "tuesday", "--to", "now", "--yes"), ExitCode.USAGE, "--from: 'tuesday' is not a time"),
        (("replay", "--from-offset", "5", "--to-offset", "2", "--yes"), ExitCode.USAGE,
         "--to-offset (2) must be after --from-offset (5)"),
        (("replay", "--from-offset", "-1", "--to-offset", "2", "--yes"), ExitCode.USAGE, "must be non-negative"),
        (("replay", "--from-offset", "1", "--yes"), ExitCode.USAGE, "--to-offset is required"),
        (("replay", "--from", "-2h", "--to", "now", "--from-offset", "1", "--to-offset", "2", "--yes"),
         ExitCode.USAGE, "not both"),
        (("replay", "--from", "-2h", "--to", "now", "--stage", "nope", "--yes"), ExitCode.NOT_FOUND,
         "unknown stage 'nope' in pipeline 'orders' (known stages: parse, enrich)"),
        (("replay", "show", "rpl-9"), ExitCode.NOT_FOUND, "replay job 'rpl-9' not found"),
        (("replay", "cancel", "rpl-9"), ExitCode.NOT_FOUND, "replay job 'rpl-9' not found"),
        (("replay", "--stage", "parse", "list"), ExitCode.USAGE, "replay options go with"),
    ],
)
def test_refused_input_changes_nothing(fake: Harness, args: tuple[str, ...], code: int, message: str) -> None:
    before = fake.snapshot()
    result = fake(*args)
    assert result.rc == code, result
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fake.snapshot() == before and fake.audit() == []


def test_help_shows_the_range_grammar_and_examples(fake: Harness) -> None:
    result = fake("replay", "--help")
    assert result.rc == 0, result
    assert "--from-offset" in result.stdout and "cancel" in result.stdout
    for sub in ("list", "show", "cancel"):
        sub_help = fake("replay", sub, "--help")
        assert sub_help.rc == 0 and f"pipelinectl replay {sub}" in sub_help.stdout


def test_audit_records_the_resolved_time_range(fake: Harness) -> None:
    assert fake("replay", "--from", "2026-05-01T10:00:00+02:00", "--to", "2026-05-01T12:00:00Z", "--yes").rc == 0
    (entry,) = fake.audit()
    assert entry["arguments"]["from_time"] == "2026-05-01T08:00:00Z"
    assert entry["arguments"]["to_time"] == "2026-05-01T12:00:00Z"
    assert entry["arguments"]["from"] == "2026-05-01T10:00:00+02:00"


def test_a_range_holding_no_items_is_refused_and_creates_no_job(fake: Harness) -> None:
    """A window outside the input log (a wrong date at 3 AM) is an error, not an empty job reported as completed."""
    before = fake.snapshot()
    result = fake("replay", "--from-offset", "900", "--to-offset", "910", "--wait", "--yes")
    assert result.rc == ExitCode.USAGE, result
    assert "nothing to replay" in result.stderr and "offsets 900..910" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.snapshot() == before and fake.audit() == []
    plan = fake("replay", "--from-offset", "900", "--to-offset", "910", "--dry-run")  # the same answer
    assert plan.rc == ExitCode.USAGE and plan.stderr == result.stderr and plan.stdout == "", plan
