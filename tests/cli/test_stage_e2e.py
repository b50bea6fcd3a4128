"""pause / resume / drain / scale: the installed executable against a real reference server."""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def test_pause_resume_runbook_lines_change_the_plane_and_audit(plane: Plane) -> None:
    before = len(plane.cli.audit_lines())
    paused = plane.run("pause", "validate")
    assert paused.rc == 0, paused
    assert paused.stdout.strip() == "stage orders/validate: paused (was running)"
    assert plane.stage("validate")["state"] == "paused"
    again = plane.run("pause", "stage=validate")
    assert again.rc == 0 and "(no change)" in again.stdout
    resumed = plane.run("resume", "stage=validate")
    assert resumed.rc == 0, resumed
    assert plane.stage("validate")["state"] == "running"
    lines = plane.cli.audit_lines()[before:]
    assert [(line["verb"], line["target"], line["context"]) for line in lines] == [
        ("pause", "orders/validate", "admin"), ("pause", "orders/validate", "admin"),
        ("resume", "orders/validate", "admin")]
    assert all(line["request_id"] for line in lines)
    assert all(plane.server.tokens["admin"] not in str(line) for line in lines)


def test_pause_until_then_the_plane_resumes_by_itself_later(plane: Plane) -> None:
    result = plane.run("pause", "notify", "--until", "+1h", "-o", "json")
    assert result.rc == 0, result
    doc = result.json()
    plane.validate(doc, "Stage")
    assert doc["state"] == "paused" and doc["paused_until"].endswith("Z")
    assert plane.stage("notify")["paused_until"] == doc["paused_until"]
    assert plane.run("resume", "notify").rc == 0


@pytest.mark.parametrize("fmt", ["table", "wide", "json", "yaml", "jsonl", "name"])
def test_scale_in_every_output_format(plane: Plane, fmt: str) -> None:
    target = {"table": 3, "wide": 4, "json": 5, "yaml": 6, "jsonl": 7, "name": 2}[fmt]
    result = plane.run("scale", "ship", "--parallelism", str(target), "-o", fmt)
    assert result.rc == 0, result
    assert plane.stage("ship")["parallelism"] == target
    if fmt == "table":
        assert "stage orders/ship: parallelism 3 (was" in result.stdout
    elif fmt == "wide":
        assert "PARALLELISM" in result.stdout and "4 (1-16)" in result.stdout
    elif fmt == "json":
        plane.validate(result.json(), "Stage")
    elif fmt == "yaml":
        import yaml

        plane.validate(yaml.safe_load(result.stdout), "Stage")
    elif fmt == "jsonl":
        (doc,) = result.jsonl()
        plane.validate(doc, "Stage")
    else:
        assert result.stdout == "stage/ship\n"
    assert "\x1b[" not in result.stdout


def test_resize_alias_and_drain_dry_run(plane: Plane) -> None:
    assert plane.run("resize", "charge", "--parallelism", "4").rc == 0
    assert plane.stage("charge")["parallelism"] == 4
    before = plane.stage("charge")
    dry = plane.run("drain", "charge", "--dry-run")
    assert dry.rc == 0, dry
    assert dry.stdout.startswith("dry run: drain orders/charge would leave it draining")
    assert plane.stage("charge")["state"] == before["state"] == "running"
    assert plane.stage("charge")["version"] == before["version"]


def test_drain_then_the_stage_pauses_itself(plane: Plane) -> None:
    result = plane.run("drain", "notify")
    assert result.rc == 0, result
    assert "draining" in result.stdout or "paused" in result.stdout
    plane.wait_for("notify to finish draining", lambda: plane.stage("notify")["state"] == "paused")
    assert plane.run("resume", "notify").rc == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("pause", "nope"), 3, "unknown stage 'nope' in pipeline 'orders' (known stages: ingest, validate, charge, "
                               "ship, notify)"),
        (("scale", "ship", "--parallelism", "99"), 2, "--parallelism 99 is outside [1, 16] for stage 'ship'"),
        (("scale", "ship", "--parallelism", "-1"), 2, "--parallelism must not be negative, got -1"),
        (("pause", "ship", "--until", "later"), 2, "--until: 'later' is not a time"),
        (("pause", "ship", "--until", "-5m"), 2, "--until (-5m) is in the past"),
        (("pause", "ship", "-p", "payments"), 3, "payments"),
        (("--context", "viewer", "pause", "ship"), 5, ""),
    ],
)
def test_refused_input_one_line_exit_code_plane_unchanged(plane: Plane, args: tuple[str, ...], code: int,
                                                          message: str) -> None:
    stages = {name: plane.stage(name) for name in ("ship", "validate")}
    audit = len(plane.cli.audit_lines())
    result = plane.run(*args)
    assert result.rc == code, result
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""
    for name, before in stages.items():
        now = plane.stage(name)
        assert (now["state"], now["parallelism"], now["version"]) == \
            (before["state"], before["parallelism"], before["version"])
    # a refused input writes no audit line; a permission refusal by the plane is recorded as an error
    new = plane.cli.audit_lines()[audit:]
    if code == 5:
        assert len(new) == 1 and new[0]["result"].startswith("error: PERMISSION_DENIED")
    else:
        assert new == []
