"""Plans end to end: `VERB --dry-run -o yaml`, then `pipelinectl apply`, the installed executable against a real plane.

A plan applied changes exactly what it said; a plan whose preconditions changed meanwhile (someone
scaled, paused, redrove an item, retried a saga) changes nothing and exits 4; an edited plan exits 2;
the same plan applied twice acts once; a plan made on one context is refused on another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)
from tests.support.cli import validate_output

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def make_plan(plane: Plane, *argv: str, fmt: str = "yaml") -> tuple[Path, dict[str, Any]]:
    """Run a verb's dry run as a plan; the document is checked against the output schema and saved to a file."""
    result = plane.run(*argv, "--dry-run", "-o", fmt)
    assert result.rc == 0, result
    doc = yaml.safe_load(result.stdout)
    validate_output(doc)
    assert doc["kind"] == "Plan" and doc["hash"].startswith("sha256:"), doc
    assert "dry run:" in result.stderr and "nothing was changed" in result.stderr
    path = plane.cli.root / f"plan-{doc['hash'][7:19]}.{fmt}"
    path.write_text(result.stdout)
    return path, doc


def apply_lines(plane: Plane, digest: str) -> list[dict[str, Any]]:
    return [line for line in plane.cli.audit_lines() if line.get("plan") == digest]


def test_a_scale_plan_names_action_target_and_preconditions_and_apply_does_exactly_that(plane: Plane) -> None:
    before = {s["name"]: s for s in plane.get("")["stages"]}
    ship = before["ship"]
    goal = 3 if ship["parallelism"] != 3 else 4
    path, plan = make_plan(plane, "scale", "stage/ship", "--parallelism", str(goal))
    assert plan["action"] == {"verb": "scale", "arguments": {"parallelism": goal}}
    assert plan["target"] == {"context": "admin", "driver": "http", "pipeline": "orders", "stage": "ship"}
    assert plan["preconditions"] == [{"object": "stage/ship", "expect": {
        "version": ship["version"], "state": ship["state"], "parallelism": ship["parallelism"]}}]
    assert plan["outcome"]["result"]["kind"] == "Stage" and plan["outcome"]["result"]["parallelism"] == goal
    assert plane.stage("ship")["parallelism"] == ship["parallelism"], "making a plan changes nothing"

    applied = plane.run("apply", str(path))
    assert applied.rc == 0, applied
    assert f"stage orders/ship: parallelism {goal} (was {ship['parallelism']})" in applied.stdout
    after = {s["name"]: s for s in plane.get("")["stages"]}
    assert after["ship"]["parallelism"] == goal and after["ship"]["version"] == ship["version"] + 1
    for name, stage in before.items():  # nothing else moved
        if name != "ship":
            assert (after[name]["parallelism"], after[name]["state"]) == (stage["parallelism"], stage["state"])
    (line,) = apply_lines(plane, plan["hash"])
    assert (line["verb"], line["target"], line["arguments"]["parallelism"]) == ("scale", "orders/ship", goal)


def test_a_plan_made_stale_by_a_scale_meanwhile_changes_nothing_and_exits_4(plane: Plane) -> None:
    current = plane.stage("charge")
    path, plan = make_plan(plane, "scale", "charge", "--parallelism", str(current["parallelism"] + 1))
    other = current["parallelism"] + 2
    assert plane.run("scale", "charge", "--parallelism", str(other)).rc == 0  # someone else, in between
    stale = plane.run("apply", str(path))
    assert stale.rc == 4, stale
    assert (f"stage charge is at version {current['version'] + 1}, the plan was made at {current['version']}"
            in stale.stderr)
    assert f"stage charge is at parallelism {other}, the plan was made at {current['parallelism']}" in stale.stderr
    assert "nothing was changed" in stale.stderr
    assert plane.stage("charge")["parallelism"] == other
    assert apply_lines(plane, plan["hash"]) == []


def test_a_plan_made_stale_by_a_pause_meanwhile_changes_nothing(plane: Plane) -> None:
    assert plane.stage("notify")["state"] == "running"
    path, plan = make_plan(plane, "drain", "notify")
    assert plane.run("pause", "notify").rc == 0
    try:
        stale = plane.run("apply", str(path))
        assert stale.rc == 4, stale
        assert "stage notify is at state paused, the plan was made at running" in stale.stderr
        assert plane.stage("notify")["state"] == "paused"
        assert apply_lines(plane, plan["hash"]) == []
    finally:
        assert plane.run("resume", "notify").rc == 0


def test_the_same_plan_applied_twice_acts_once(plane: Plane) -> None:
    path, plan = make_plan(plane, "pause", "validate", "--until", "+2h", fmt="json")
    until = plan["action"]["arguments"]["until"]
    assert until.endswith("Z") and "+" not in until, "a relative --until becomes the time it meant"
    try:
        first = plane.run("apply", "-f", str(path))
        assert first.rc == 0, first
        paused = plane.stage("validate")
        assert paused["state"] == "paused" and paused["paused_until"] == until
        again = plane.run("apply", str(path))
        assert again.rc == 4, again
        assert "this plan was applied at" in again.stderr  # the local audit log says when
        assert plane.stage("validate")["version"] == paused["version"]
        assert len(apply_lines(plane, plan["hash"])) == 1
    finally:
        assert plane.run("resume", "validate").rc == 0


def test_a_replay_plan_applied_twice_starts_one_job(plane: Plane) -> None:
    """The replay's preconditions still hold after it ran: the Idempotency-Key derived from the plan stops it."""
    plane.wait_for("20 input items", lambda: plane.get("")["input_offset"] >= 20)
    path, plan = make_plan(plane, "replay", "--from-offset", "0", "--to-offset", "20", "--stage", "notify")
    assert plan["target"]["stage"] == "notify"
    assert plan["action"]["arguments"] == {"from_offset": 0, "to_offset": 20}
    assert plan["preconditions"] == [{"object": "pipeline/orders", "expect": {"items_in_range": 20}}]
    jobs = {j["id"] for j in plane.replays()}
    refused = plane.run("apply", str(path))  # a replay asks first: off a terminal it needs --yes, as the verb does
    assert refused.rc == 2 and "without --yes" in refused.stderr, refused
    first = plane.run("apply", str(path), "--yes")
    assert first.rc == 0, first
    (job,) = [j for j in plane.replays() if j["id"] not in jobs]
    again = plane.run("apply", str(path), "--yes")
    assert again.rc == 4, again
    assert "already applied" in again.stderr
    assert [j["id"] for j in plane.replays() if j["id"] not in jobs] == [job["id"]]
    lines = apply_lines(plane, plan["hash"])
    assert [line["result"].split()[0] for line in lines] == ["job", "already"]


def test_a_purge_plan_names_its_items_and_a_redrive_meanwhile_makes_it_stale(plane: Plane) -> None:
    ids = plane.wait_for("three dead letters", lambda: (found := plane.dlq_ids()) and len(found) >= 3 and found)[:3]
    path, plan = make_plan(plane, "dlq", "purge", *ids)
    assert sorted(plan["target"]["items"]) == sorted(ids)
    assert plan["preconditions"] == [{"object": "dlq/orders", "expect": {"items": 3}}]
    assert plane.run("dlq", "redrive", ids[0]).rc == 0  # someone redrives one item meanwhile
    stale = plane.run("apply", str(path), "--yes")
    assert stale.rc == 4, stale
    assert ids[0] in stale.stderr and "the plan no longer holds" in stale.stderr
    still = plane.dlq_ids()
    assert ids[1] in still and ids[2] in still, "the other items of the stale plan stay"
    assert apply_lines(plane, plan["hash"]) == []


def test_a_redrive_plan_by_filter_acts_on_the_planned_items_only_read_from_stdin(plane: Plane) -> None:
    stage = plane.wait_for("a stage with dead letters",
                           lambda: next((s["name"] for s in plane.get("")["stages"] if s["dlq_size"]), None))
    planned = plane.run("dlq", "redrive", "--stage", stage, "--dry-run", "-o", "json")
    assert planned.rc == 0, planned
    plan = planned.json()
    items = plan["target"]["items"]
    assert items and plan["target"]["selection"] == f"stage={stage}"
    applied = plane.run("apply", "-f", "-", "--yes", input=planned.stdout)
    assert applied.rc == 0, applied
    gone = set(items) - set(plane.dlq_ids())
    assert gone == set(items)
    (line,) = apply_lines(plane, plan["hash"])
    assert line["verb"] == "dlq redrive" and line["arguments"]["ids"] == items


def test_a_saga_plan_is_stale_once_the_saga_moved_on(plane: Plane) -> None:
    saga_id = plane.wait_for("a stuck saga", lambda: [s["id"] for s in plane.sagas("stuck")], timeout=60)[0]
    saga = plane.saga(saga_id)
    path, plan = make_plan(plane, "saga", "force-fail", f"saga/{saga_id}", "--reason", "carrier outage")
    assert plan["target"]["saga"] == saga_id and plan["action"]["arguments"] == {"reason": "carrier outage"}
    assert plan["preconditions"] == [{"object": f"saga/{saga_id}",
                                      "expect": {"status": "stuck", "current_step": saga["current_step"]}}]
    assert plane.run("saga", "force-complete", saga_id, "--reason", "done by hand", "--yes").rc == 0
    stale = plane.run("apply", str(path), "--yes")
    assert stale.rc == 4, stale
    assert "the plan no longer holds" in stale.stderr and f"'{saga_id}' is completed" in stale.stderr
    assert plane.saga(saga_id)["status"] == "completed"
    assert apply_lines(plane, plan["hash"]) == []


def test_a_saga_plan_applied_runs_the_verb(plane: Plane) -> None:
    saga_id = plane.wait_for("a stuck saga", lambda: [s["id"] for s in plane.sagas("stuck")], timeout=60)[0]
    path, plan = make_plan(plane, "saga", "force-fail", saga_id, "--reason", "refund it")
    applied = plane.run("apply", str(path), "--yes")
    assert applied.rc == 0, applied
    assert plane.saga(saga_id)["status"] in ("compensating", "compensated")
    (line,) = apply_lines(plane, plan["hash"])
    assert line["verb"] == "saga force-fail" and line["arguments"]["reason"] == "refund it"


def test_an_edited_plan_is_refused_with_exit_2_and_changes_nothing(plane: Plane) -> None:
    current = plane.stage("ship")
    path, plan = make_plan(plane, "scale", "ship", "--parallelism", str(current["parallelism"] + 1))
    text = path.read_text()
    edited = text.replace(f"parallelism: {current['parallelism'] + 1}\n", "parallelism: 16\n", 1)
    assert edited != text
    path.write_text(edited)
    refused = plane.run("apply", str(path))
    assert refused.rc == 2, refused
    assert "hash does not match its content" in refused.stderr
    assert plane.stage("ship")["parallelism"] == current["parallelism"]
    assert apply_lines(plane, plan["hash"]) == []
    not_a_plan = plane.run("apply", "-f", "-", input="kind: Stage\nname: ship\n")
    assert not_a_plan.rc == 2 and "is not a plan" in not_a_plan.stderr


def test_a_plan_is_refused_on_another_context_unless_context_names_its_own(plane: Plane) -> None:
    current = plane.stage("notify")
    path, plan = make_plan(plane, "--context", "operator", "scale", "notify",
                           "--parallelism", str(current["parallelism"] + 1))
    assert plan["target"]["context"] == "operator"
    elsewhere = plane.run("apply", str(path))  # the current context is admin
    assert elsewhere.rc == 2, elsewhere
    assert "made on context 'operator'" in elsewhere.stderr and "--context operator" in elsewhere.stderr
    assert plane.stage("notify")["version"] == current["version"]
    there = plane.run("apply", str(path), "--context", "operator")
    assert there.rc == 0, there
    assert plane.stage("notify")["parallelism"] == current["parallelism"] + 1


def test_apply_dry_run_checks_the_plan_and_changes_nothing(plane: Plane) -> None:
    current = plane.stage("validate")
    path, plan = make_plan(plane, "scale", "validate", "--parallelism", str(current["parallelism"] + 1))
    checked = plane.run("apply", str(path), "--dry-run")
    assert checked.rc == 0, checked
    assert "still holds" in checked.stdout and "nothing was changed" in checked.stdout
    assert plane.stage("validate")["version"] == current["version"]


def test_scale_expect_current_refuses_a_mismatch_with_exit_4_and_goes_into_the_plan(plane: Plane) -> None:
    current = plane.stage("ship")
    n = current["parallelism"]
    wrong = plane.run("scale", "ship", "--parallelism", str(n + 1), "--expect-current", str(n + 5))
    assert wrong.rc == 4, wrong
    assert f"runs parallelism {n}, not {n + 5}" in wrong.stderr
    assert plane.stage("ship")["version"] == current["version"]
    path, plan = make_plan(plane, "scale", "ship", "--parallelism", str(n + 1), "--expect-current", str(n))
    assert plan["action"]["arguments"] == {"parallelism": n + 1, "expect_current": n}
    right = plane.run("scale", "ship", "--parallelism", str(n + 1), "--current-replicas", str(n))
    assert right.rc == 0, right
    assert plane.stage("ship")["parallelism"] == n + 1
    stale = plane.run("apply", str(path))
    assert stale.rc == 4 and f"runs parallelism {n + 1}, not {n}" in stale.stderr, stale
