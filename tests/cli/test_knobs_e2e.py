"""limit / disable / enable / replay --skipped: the installed executable against a real reference server."""

from __future__ import annotations

import pytest
import yaml

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)
from tests.support.cli import validate_output

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def test_limit_sets_shows_and_clears_a_rate_limit_live(plane: Plane) -> None:
    before = len(plane.cli.audit_lines())
    result = plane.run("limit", "charge", "--rate", "3000/m")
    assert result.rc == 0, result
    assert result.stdout.strip() == "stage orders/charge: rate limit 3000/m, burst 50 (was none)"
    assert plane.stage("charge")["rate_limit"] == {"kind": "RateLimit", "rate": "3000/m", "per_second": 50.0,
                                                   "burst": 50}
    table = plane.run("status")
    header, *rows = table.stdout.splitlines()[1:]
    assert "LIMIT" in header.split()
    (charge,) = [row for row in rows if row.split()[:1] == ["charge"]]
    assert "3000/m" in charge.split()
    wide = plane.run("status", "-o", "wide")
    assert "3000/m burst 50" in wide.stdout
    doc = plane.run("status", "-o", "json").json()
    validate_output(doc)
    (stage,) = [s for s in doc["items"][0]["stages"] if s["name"] == "charge"]
    assert stage["rate_limit"]["rate"] == "3000/m"
    again = plane.run("limit", "stage=charge", "--rate", "3000/m")
    assert again.rc == 0 and "(no change)" in again.stdout
    cleared = plane.run("limit", "charge", "--clear", "-o", "json")
    assert cleared.rc == 0, cleared
    plane.validate(cleared.json(), "Stage")
    assert cleared.json()["rate_limit"] is None and plane.stage("charge")["rate_limit"] is None
    lines = plane.cli.audit_lines()[before:]
    assert [(line["verb"], line["arguments"].get("rate"), line["arguments"].get("clear")) for line in lines] == [
        ("limit", "3000/m", None), ("limit", "3000/m", None), ("limit", None, True)]


@pytest.mark.parametrize("argv", [
    ("limit", "charge", "--rate", "0/s"),
    ("limit", "charge", "--rate", "-5/s"),
    ("limit", "charge", "--rate", "fast"),
    ("limit", "charge", "--rate", "5/d"),
    ("limit", "charge", "--rate", "5/s", "--burst", "0"),
    ("limit", "charge", "--clear", "--rate", "5/s"),
    ("limit", "charge"),
    ("disable", "charge"),
    ("disable", "charge", "--reason", "   "),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(plane: Plane, argv: tuple[str, ...]) -> None:
    before = plane.stage("charge")
    result = plane.run(*argv)
    assert result.rc == 2, result
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result
    after = plane.stage("charge")
    assert (after["version"], after["state"], after["rate_limit"]) == (before["version"], before["state"],
                                                                     before["rate_limit"])


def test_dry_runs_say_what_would_happen_and_change_nothing(plane: Plane) -> None:
    before = plane.stage("ship")
    limited = plane.run("limit", "ship", "--rate", "5/s", "--dry-run")
    assert limited.rc == 0, limited
    assert limited.stdout.startswith("dry run: limit orders/ship would leave it rate limit 5/s, burst 5")
    disabled = plane.run("disable", "ship", "--reason", "drill", "--dry-run")
    assert disabled.rc == 0 and "would leave it disabled (drill)" in disabled.stdout, disabled
    assert plane.stage("ship")["version"] == before["version"] and plane.stage("ship")["state"] == before["state"]


def test_disable_bypasses_then_enable_and_replay_skipped_processes_them_once(plane: Plane) -> None:
    disabled = plane.run("disable", "notify", "--reason", "mail relay down, INC-7")
    assert disabled.rc == 0, disabled
    assert "disabled (mail relay down, INC-7) (was running)" in disabled.stdout
    assert "replay --skipped notify" in disabled.stderr
    bypassed = plane.wait_for("items to bypass notify", lambda: plane.stage("notify")["bypassed"] >= 3)
    assert bypassed
    status = plane.run("status")
    assert any(line.split()[:2] == ["notify", "disabled"] for line in status.stdout.splitlines())
    assert "notify is disabled: mail relay down, INC-7" in status.stdout
    refused = plane.run("pause", "notify")
    assert refused.rc == 4 and "enable it first" in refused.stderr, refused
    too_early = plane.run("replay", "--skipped", "notify", "--yes")
    assert too_early.rc == 4 and "still disabled" in too_early.stderr, too_early

    enabled = plane.run("enable", "notify")
    assert enabled.rc == 0, enabled
    assert "running (was disabled (mail relay down, INC-7))" in enabled.stdout
    count = plane.stage("notify")["bypassed"]
    assert f"{count} items went past 'notify'" in enabled.stderr
    processed = plane.stage("notify")["processed"]

    planned = plane.run("replay", "--skipped", "notify", "--dry-run")
    assert planned.rc == 0, planned
    assert f"would send {count} items that stage 'notify'" in planned.stdout and "nothing was changed" in planned.stdout
    assert plane.stage("notify")["bypassed"] == count
    refused = plane.run("replay", "--skipped", "notify")  # off a terminal: --yes or nothing
    assert refused.rc == 2 and plane.stage("notify")["bypassed"] == count, refused

    done = plane.run("replay", "--skipped", "notify", "--yes", "--wait", "-o", "json")
    assert done.rc == 0, done
    job = done.json()
    plane.validate(job, "ReplayJob")
    assert (job["state"], job["source"], job["total"], job["replayed"] + job["skipped"]) == (
        "completed", "skipped", count, count)
    assert plane.stage("notify")["bypassed"] == 0
    plane.wait_for("the replayed items to be processed", lambda: plane.stage("notify")["processed"] >= processed + job["replayed"])
    second = plane.run("replay", "--skipped", "notify", "--yes")
    assert second.rc == 0 and "nothing to replay" in second.stdout, second


def test_limit_and_disable_plans_apply_exactly_and_go_stale(plane: Plane) -> None:
    made = plane.run("limit", "validate", "--rate", "7/s", "--dry-run", "-o", "yaml")
    assert made.rc == 0, made
    plan = yaml.safe_load(made.stdout)
    validate_output(plan)
    assert plan["action"] == {"verb": "limit", "arguments": {"rate": "7/s", "burst": 7}}
    path = plane.cli.root / "limit-plan.yaml"
    path.write_text(made.stdout)
    assert plane.stage("validate")["rate_limit"] is None
    applied = plane.run("apply", str(path))
    assert applied.rc == 0, applied
    assert plane.stage("validate")["rate_limit"]["rate"] == "7/s"
    assert plane.run("apply", str(path)).rc == 4  # the version moved on: stale, nothing changed
    assert plane.run("limit", "validate", "--clear").rc == 0

    made = plane.run("disable", "validate", "--reason", "planned", "--dry-run", "-o", "json")
    assert made.rc == 0, made
    path.write_text(made.stdout)
    assert plane.run("scale", "validate", "3").rc == 0  # meanwhile: the plan no longer holds
    stale = plane.run("apply", str(path))
    assert stale.rc == 4 and plane.stage("validate")["state"] == "running", stale
