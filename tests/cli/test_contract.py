"""One contract, two planes: the in-memory fake (tests/cli/verbs_fake.py) and the real reference server.

The verb unit tests trust the fake to behave like the server. Each scenario here runs
the same commands against both and asserts the same outcome: exit codes, the machine
output's kinds and keys, and what a refusal says. A scenario that passes on the server
and fails on the fake means the fake has drifted and the unit tests prove less than they
claim; the other way round, the command or the server has a bug.

The scenarios look their targets up (`status -o json`) instead of naming demo data, so
both planes can answer them; they leave the plane as they found it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)
from tests.cli.verbs_fake import Harness, fake_fixture  # noqa: F401  (the fake fixture)

pytestmark = pytest.mark.slow  # half of it starts the real server

Run = Callable[..., Any]  # (*argv) -> a result with rc, stdout, stderr and json()

STAGE_KEYS = {"kind", "pipeline", "name", "state", "parallelism", "min_parallelism", "max_parallelism", "in_flight",
              "queue_depth", "queue_capacity", "processed", "failed", "throughput", "error_rate", "errors_by_kind",
              "dlq_size", "paused_until", "rate_limit", "disabled_reason", "bypassed", "version", "details"}


@pytest.fixture(params=["fake", "server"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """`run(*argv)`: the CLI against the fake (in-process) or the real server (the installed executable)."""
    if request.param == "fake":
        harness: Harness = request.getfixturevalue("fake")
        yield harness
    else:
        plane: Plane = request.getfixturevalue("plane")
        yield plane.run


def _one_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, result
    return lines[0]


def _stages(run: Run) -> list[dict[str, Any]]:
    listed = run("status", "orders", "-o", "json")
    assert listed.rc == 0, listed
    pipeline = listed.json()
    assert pipeline["kind"] == "Pipeline" and pipeline["name"] == "orders"
    return pipeline["stages"]


def test_status_has_the_documented_shape(run: Run) -> None:
    everything = run("status", "-o", "json")
    assert everything.rc == 0, everything
    assert everything.json()["kind"] == "PipelineList"
    assert "orders" in [p["name"] for p in everything.json()["items"]]
    stages = _stages(run)
    assert stages and all(set(s) == STAGE_KEYS and s["kind"] == "Stage" for s in stages), stages
    missing = run("status", "no-such-pipeline", "-o", "json")
    assert missing.rc == 3 and "no-such-pipeline" in _one_line(missing), missing


def test_pause_is_idempotent_and_resume_undoes_it(run: Run) -> None:
    stage = next(s for s in _stages(run) if s["state"] == "running")["name"]
    try:
        first = run("pause", stage, "-o", "json")
        assert first.rc == 0 and first.json()["state"] == "paused", first
        again = run("pause", stage, "-o", "json")
        assert again.rc == 0 and again.json()["state"] == "paused", again
        shown = {s["name"]: s for s in _stages(run)}[stage]
        assert shown["state"] == "paused"
    finally:
        resumed = run("resume", stage, "-o", "json")
    assert resumed.rc == 0 and resumed.json()["state"] == "running", resumed


def test_a_dry_run_changes_nothing(run: Run) -> None:
    stage = next(s for s in _stages(run) if s["state"] == "running")
    planned = run("pause", stage["name"], "--dry-run", "-o", "json")
    assert planned.rc == 0 and planned.json()["kind"] == "Plan", planned
    assert planned.json()["outcome"]["result"]["state"] == "paused", planned
    assert {s["name"]: s for s in _stages(run)}[stage["name"]]["state"] == "running"


@pytest.mark.parametrize("argv, code, says", [
    (("pause", "no-such-stage"), 3, "unknown stage 'no-such-stage'"),
    (("scale", "{stage}", "--parallelism", "100000"), 2, "parallelism"),
    (("dlq", "inspect", "no-such-item"), 3, "no-such-item"),
    (("saga", "inspect", "no-such-saga"), 3, "no-such-saga"),
    (("replay", "show", "no-such-job"), 3, "no-such-job"),
    (("dlq", "purge", "--all", "-o", "json"), 2, "without --yes"),
    (("replay", "--from-offset", "5", "--to-offset", "2", "--dry-run"), 2, "must be after --from-offset"),
])
def test_refusals_agree(run: Run, argv: tuple[str, ...], code: int, says: str) -> None:
    stage = _stages(run)[0]
    refused = run(*(a.format(stage=stage["name"]) for a in argv))
    assert refused.rc == code, refused
    assert says in _one_line(refused), refused
    assert {s["name"]: s for s in _stages(run)}[stage["name"]]["parallelism"] == stage["parallelism"]


def test_lists_have_kinds_and_items(run: Run) -> None:
    for argv, kind in ((("dlq", "list"), "DLQItemList"), (("saga", "list"), "SagaList"),
                       (("replay", "list"), "ReplayJobList")):
        listed = run(*argv, "-o", "json")
        assert listed.rc == 0, listed
        assert listed.json()["kind"] == kind and isinstance(listed.json()["items"], list), listed
    dead = run("dlq", "list", "-o", "json").json()["items"]
    assert dead, "both planes hold dead letters"
    shown = run("dlq", "inspect", dead[0]["id"], "-o", "json")
    assert shown.rc == 0 and shown.json()["kind"] == "DLQItem" and shown.json()["id"] == dead[0]["id"], shown
    assert set(shown.json()) >= {"id", "pipeline", "stage", "error_kind", "message", "attempts", "payload"}


def test_a_replay_dry_run_is_planned_and_names_its_stage(run: Run) -> None:
    planned = run("replay", "--from-offset", "0", "--to-offset", "1", "--dry-run", "-o", "json")
    assert planned.rc == 0, planned
    assert planned.json()["kind"] == "Plan" and planned.json()["target"]["stage"], planned
    job = planned.json()["outcome"]["result"]
    assert job["kind"] == "ReplayJob" and job["state"] == "planned" and job["stage"], job
    assert (job["from_offset"], job["to_offset"]) == (0, 1)
