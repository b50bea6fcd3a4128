"""replay, replay list / show / cancel: the installed executable against a real reference server."""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def test_replay_by_offset_refused_off_a_terminal_then_runs_with_yes_and_wait(plane: Plane) -> None:
    plane.wait_for("20 input items", lambda: plane.get("")["input_offset"] >= 20)
    jobs = len(plane.replays())
    refused = plane.run("replay", "--from-offset", "0", "--to-offset", "20", "--stage", "validate")
    assert refused.rc == 2, refused
    assert "refusing to replay offsets 0..20 of pipeline 'orders' into stage 'validate': " in refused.stderr
    assert "already processed, skipped) on context 'admin' without --yes (no terminal to ask on)" in refused.stderr
    assert len(plane.replays()) == jobs
    done = plane.run("replay", "--from-offset", "0", "--to-offset", "20", "--stage", "validate", "--yes", "--wait",
                     "--poll", "0.2", "-o", "json")
    assert done.rc == 0, done
    job = done.json()
    plane.validate(job, "ReplayJob")
    assert job["state"] == "completed" and job["total"] == 20
    assert job["replayed"] + job["skipped"] == 20
    assert done.stderr == ""  # piped: no progress bar, nothing but the result
    assert job["id"] in [j["id"] for j in plane.replays()]
    entry = plane.cli.audit_lines()[-1]
    assert entry["verb"] == "replay" and entry["result"].startswith(f"job {job['id']} ") and entry["request_id"]


def test_replay_by_time_dry_run_changes_nothing(plane: Plane) -> None:
    jobs = len(plane.replays())
    result = plane.run("replay", "--from=-1h", "--to=now", "--dry-run")
    assert result.rc == 0, result
    assert result.stdout.startswith("dry run: replay would send ")
    as_json = plane.run("replay", "--from", "2026-01-01", "--to", "2030-01-01", "--dry-run", "-o", "json")
    answer = as_json.json()["outcome"]["result"]  # the plan carries the plane's answer
    assert answer["state"] == "planned"
    plane.validate(answer, "ReplayJob")
    assert len(plane.replays()) == jobs


def test_list_show_cancel(plane: Plane) -> None:
    plane.run("pause", "ingest")  # a paused target stage keeps a replay running long enough to cancel it
    try:
        started = plane.run("replay", "--from-offset", "0", "--to-offset", "30", "--stage", "ingest", "--yes",
                            "-o", "json")
        assert started.rc == 0, started
        job_id = started.json()["id"]
        listed = plane.run("replay", "list", "-o", "json")
        assert job_id in [j["id"] for j in listed.json()["items"]]
        for item in listed.json()["items"]:
            plane.validate(item, "ReplayJob")
        table = plane.run("replay", "list")
        assert table.stdout.splitlines()[0].split()[:3] == ["ID", "STAGE", "STATE"]
        shown = plane.run("replay", "show", job_id)
        assert f"Replay job {job_id}" in shown.stdout and "Range:    offsets 0..30" in shown.stdout
        cancelled = plane.run("replay", "cancel", job_id)
        if cancelled.rc == 0:
            assert f"replay job {job_id}: cancelled" in cancelled.stdout
            assert plane.get(f"/replays/{job_id}")["state"] == "cancelled"
        else:  # it finished first: the plane says so, exit 4
            assert cancelled.rc == 4 and "only pending or running jobs can be cancelled" in cancelled.stderr
        assert plane.cli.audit_lines()[-1]["verb"] == "replay cancel"
    finally:
        plane.run("resume", "ingest")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("replay",), 2, "replay needs a range"),
        (("replay", "--from=2026-05-02", "--to=2026-05-01", "--yes"), 2, "must be after --from"),
        (("replay", "--from=2026-05-01", "--yes"), 2, "--to is required with --from"),
        (("replay", "--from=someday", "--to=now", "--yes"), 2, "--from: 'someday' is not a time"),
        (("replay", "--from-offset", "9", "--to-offset", "3", "--yes"), 2, "must be after --from-offset"),
        (("replay", "--from-offset", "0", "--to-offset", "3", "--stage", "nope", "--yes"), 3, "unknown stage 'nope'"),
        (("replay", "show", "replay-nope"), 3, "replay-nope"),
        (("replay", "cancel", "replay-nope"), 3, "replay-nope"),
        (("--context", "viewer", "replay", "--from-offset", "0", "--to-offset", "3", "--yes"), 5, ""),
    ],
)
def test_refused_input_changes_nothing(plane: Plane, args: tuple[str, ...], code: int, message: str) -> None:
    jobs = [j["id"] for j in plane.replays()]
    audit = len(plane.cli.audit_lines())
    result = plane.run(*args)
    assert result.rc == code, result
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert [j["id"] for j in plane.replays()] == jobs
    assert plane.cli.audit_lines()[audit:] == []


def _stable_plan(plane: Plane, *args: str) -> dict:
    """The plan of a range whose items are all through the pipeline (two dry runs in a row agree)."""
    def probe() -> dict | None:
        first, second = (plane.run("replay", *args, "--dry-run", "-o", "json").json()["outcome"]["result"]
                         for _ in range(2))
        return first if (first["total"], first["skipped"]) == (second["total"], second["skipped"]) else None

    return plane.wait_for("a stable replay plan", probe, timeout=60)


def test_the_dry_run_text_and_json_count_the_same_items(plane: Plane) -> None:
    plane.wait_for("40 input items", lambda: plane.get("")["input_offset"] >= 40)
    args = ("--from-offset", "0", "--to-offset", "10", "--stage", "charge")
    plan = _stable_plan(plane, *args)
    sent, skipped = plan["total"] - plan["skipped"], plan["skipped"]
    assert plan["total"] == 10 and skipped > 0, plan  # the demo processed them: a replay skips them by key
    text = plane.run("replay", *args, "--dry-run")
    assert text.rc == 0, text
    assert text.stdout.startswith(f"dry run: replay would send {sent} item{'s' if sent != 1 else ''} and skip "
                                  f"{skipped} already processed (10 in offsets 0..10) of pipeline 'orders' into "
                                  "stage 'charge'; nothing was changed"), text


def test_progress_and_replay_list_count_the_same_way(plane: Plane) -> None:
    plane.wait_for("40 input items", lambda: plane.get("")["input_offset"] >= 40)
    done = plane.run("replay", "--from-offset", "20", "--to-offset", "30", "--stage", "charge", "--yes", "--wait",
                     "--poll", "0.2", "-o", "json")
    assert done.rc == 0, done
    job = done.json()
    assert job["replayed"] + job["skipped"] == job["total"] == 10
    listed = plane.run("replay", "list")
    header = listed.stdout.splitlines()[0].split()
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(job["id"]))
    assert header[:7] == ["ID", "STAGE", "STATE", "RANGE", "PROGRESS", "REPLAYED", "SKIPPED"], listed
    # PROGRESS is done (replayed + skipped) of total, as the --wait progress bar counts it
    assert row[5:9] == ["10/10", str(job["replayed"]), str(job["skipped"]), row[8]], listed
    shown = plane.run("replay", "show", job["id"])
    assert f"Progress: 10/10 ({job['replayed']} replayed, {job['skipped']} skipped: already processed)" \
        in shown.stdout, shown
    on_tty = plane.cli.run_pty("replay", "--from-offset", "20", "--to-offset", "30", "--stage", "charge", "--yes",
                               "--wait", "--poll", "0.2", timeout=60)
    assert on_tty.rc == 0, on_tty
    assert "10/10" in on_tty.stdout, "the progress bar counts replayed + skipped of the total"
    assert "replayed, " in on_tty.stdout and "skipped (already processed) of 10" in on_tty.stdout


@pytest.mark.parametrize("mode", ["--dry-run", "--yes"])
def test_an_empty_range_is_refused_the_same_way_with_dry_run_and_yes(plane: Plane, mode: str) -> None:
    jobs = [j["id"] for j in plane.replays()]
    result = plane.run("replay", "--from", "2000-01-01", "--to", "2000-01-02", mode)
    assert result.rc == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: nothing to replay: the range holds no input items of pipeline 'orders' "
                                    "(--from 2000-01-01 --to 2000-01-02); nothing was changed"), result
    assert [j["id"] for j in plane.replays()] == jobs
