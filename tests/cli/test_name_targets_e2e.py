"""What `-o name` prints is accepted back by every verb that takes a target (the README tells operators to
take IDs from it): `saga/ID`, `dlqitem/ID`, `replayjob/ID`, `stage/NAME`, `pipeline/NAME`, against a real plane.
A prefix of the wrong kind is a usage error naming both kinds, before anything is sent.
"""

from __future__ import annotations

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)


def first_name(plane: Plane, *args: str) -> str:
    def probe() -> str | None:
        result = plane.run(*args, "-o", "name")
        assert result.rc == 0, result
        return next(iter(result.stdout.split()), None)

    return plane.wait_for(f"a name from {' '.join(args)}", probe, timeout=60)


def test_saga_names_work_in_every_saga_verb(plane: Plane) -> None:
    name = first_name(plane, "saga", "list", "--status", "stuck")
    saga_id = name.split("/", 1)[1]
    assert name == f"saga/{saga_id}"
    shown = plane.run("saga", "inspect", name, "-o", "json")
    assert shown.rc == 0, shown
    assert shown.json()["id"] == saga_id
    assert plane.run("saga", "show", name).rc == 0
    for verb in (("retry",), ("force-fail", "--reason", "names"), ("force-complete", "--reason", "names")):
        result = plane.run("saga", *verb, name, "--dry-run", "-o", "json")
        assert result.rc == 0, result
        assert result.json()["target"]["saga"] == saga_id and result.json()["outcome"]["result"]["id"] == saga_id
    assert plane.run("wait", name, "--for", "saga=stuck", "--for-timeout", "5s").rc == 0


def test_dlq_item_names_work_in_inspect_redrive_and_purge(plane: Plane) -> None:
    name = first_name(plane, "dlq", "list")
    item_id = name.split("/", 1)[1]
    assert name == f"dlqitem/{item_id}"
    shown = plane.run("dlq", "inspect", name, "-o", "json")
    assert shown.rc == 0, shown
    assert shown.json()["id"] == item_id
    for verb in ("redrive", "purge"):
        result = plane.run("dlq", verb, name, "--dry-run", "-o", "json")
        assert result.rc == 0, result
        assert result.json()["target"]["items"] == [item_id]
    assert item_id in plane.dlq_ids(), "dry runs changed nothing"
    stage = shown.json()["stage"]
    by_stage = plane.run("dlq", "list", "--stage", f"stage/{stage}", "-o", "json")  # a filter takes it too
    assert by_stage.rc == 0 and item_id in [i["id"] for i in by_stage.json()["items"]], by_stage
    counted = plane.run("wait", "--for", "dlq>=1", "--stage", f"stage/{stage}", "--for-timeout", "5s")
    assert counted.rc == 0, counted


def test_replay_job_names_work_in_show_cancel_and_wait(plane: Plane) -> None:
    started = plane.run("replay", "--from-offset", "0", "--to-offset", "3", "--yes", "-o", "name")
    assert started.rc == 0, started
    name = started.stdout.strip()
    job_id = name.split("/", 1)[1]
    assert name == f"replayjob/{job_id}"
    shown = plane.run("replay", "show", name, "-o", "json")
    assert shown.rc == 0, shown
    assert shown.json()["id"] == job_id
    assert plane.run("wait", name, "--for", "replay=completed", "--for-timeout", "60s").rc == 0
    cancel = plane.run("replay", "cancel", name)
    assert cancel.rc == 4 and "completed" in cancel.stderr, cancel  # found (not exit 3): it had finished


def test_stage_and_pipeline_names_work_in_stage_verbs_and_status(plane: Plane) -> None:
    paused = plane.run("pause", "stage/notify", "-o", "name")
    assert paused.rc == 0 and paused.stdout == "stage/notify\n", paused
    try:
        assert plane.stage("notify")["state"] == "paused"
        assert plane.run("wait", "stage/notify", "--for", "state=paused", "--for-timeout", "5s").rc == 0
        assert plane.run("scale", "stage/notify", "--parallelism", "1", "--dry-run").rc == 0
        assert plane.run("drain", "stage/notify", "--dry-run").rc == 0
    finally:
        assert plane.run("resume", "stage/notify").rc == 0
    pipeline = first_name(plane, "status")
    assert pipeline == "pipeline/orders"
    status = plane.run("status", pipeline, "-o", "json")
    assert status.rc == 0 and status.json()["name"] == "orders", status
    replay_stage = plane.run("replay", "--from-offset", "0", "--to-offset", "3", "--stage", "stage/ship",
                             "--dry-run", "-o", "json")
    assert replay_stage.rc == 0 and replay_stage.json()["target"]["stage"] == "ship", replay_stage


def test_a_name_of_the_wrong_kind_is_refused_before_anything_is_sent(plane: Plane) -> None:
    for argv, words in (
        (("saga", "inspect", "dlqitem/dlq-1"), "'dlqitem/dlq-1' is a dlqitem, not a saga"),
        (("dlq", "inspect", "saga/saga-order-000001"), "'saga/saga-order-000001' is a saga, not a dlqitem"),
        (("replay", "show", "stage/ship"), "'stage/ship' is a stage, not a replayjob"),
        (("pause", "saga/x"), "'saga/x' is a saga, not a stage"),
    ):
        result = plane.run(*argv)
        assert result.rc == 2, result
        assert words in result.stderr, result
    assert not [line for line in plane.cli.audit_lines() if line["verb"] == "pause" and "saga" in line["target"]]
