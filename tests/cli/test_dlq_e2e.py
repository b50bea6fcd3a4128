"""dlq list / inspect / redrive / purge: the installed executable against a real reference server."""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture
def dead(plane: Plane) -> list[str]:
    """At least three dead letters of the validate stage (the demo makes them continuously)."""
    return plane.wait_for("three validation dead letters",
                          lambda: (ids := plane.dlq_ids(stage="validate")) and len(ids) >= 3 and ids)


def test_list_in_every_format_matches_the_plane(plane: Plane, dead: list[str]) -> None:
    as_json = plane.run("dlq", "list", "--stage", "validate", "-o", "json")
    assert as_json.rc == 0, as_json
    doc = as_json.json()
    assert doc["kind"] == "DLQItemList"
    for item in doc["items"]:
        plane.validate(item, "DLQItem")
    assert set(dead) <= {i["id"] for i in doc["items"]}
    assert {i["stage"] for i in doc["items"]} == {"validate"}
    table = plane.run("dlq", "list", "--stage", "validate", "--error-kind", "validation", "--since", "-1h")
    assert table.rc == 0 and table.stdout.splitlines()[0].split()[:3] == ["ID", "STAGE", "KIND"]
    assert dead[0] in table.stdout
    names = plane.run("dlq", "list", "--stage", "validate", "-o", "name")
    assert f"dlqitem/{dead[0]}" in names.stdout.split()
    yaml_out = plane.run("dlq", "list", "--limit", "1", "-o", "yaml")
    assert yaml_out.rc == 0 and "kind: DLQItemList" in yaml_out.stdout


def test_jsonl_limit_streams_exactly_n_lines(plane: Plane, dead: list[str]) -> None:
    result = plane.run("dlq", "list", "-o", "jsonl", "--limit", "2")
    assert result.rc == 0, result
    docs = result.jsonl()
    assert len(docs) == 2
    for doc in docs:
        plane.validate(doc, "DLQItem")


def test_inspect_and_show(plane: Plane, dead: list[str]) -> None:
    table = plane.run("dlq", "inspect", dead[0])
    assert table.rc == 0, table
    assert f"DLQ item {dead[0]}" in table.stdout and "Payload:" in table.stdout and "Stage:      validate" in table.stdout
    shown = plane.run("dlq", "show", dead[0], "-o", "json")
    plane.validate(shown.json(), "DLQItem")
    assert shown.json()["id"] == dead[0]
    missing = plane.run("dlq", "inspect", "dlq-999999")
    assert missing.rc == 3 and "dlq-999999" in missing.stderr


def test_redrive_one_then_bulk_needs_yes_off_a_terminal(plane: Plane, dead: list[str]) -> None:
    first, second, third = dead[:3]
    one = plane.run("dlq", "redrive", first)
    assert one.rc == 0, one
    assert "1 item redriven from pipeline 'orders' (context 'admin')" in one.stdout
    assert first not in plane.dlq_ids()
    refused = plane.run("dlq", "redrive", second, third)
    assert refused.rc == 2, refused
    assert f"refusing to redrive 2 DLQ items of pipeline 'orders' ({second}, {third}) on context 'admin' " \
           "without --yes (no terminal to ask on)" in refused.stderr
    assert {second, third} <= set(plane.dlq_ids())
    done = plane.run("dlq", "redrive", second, third, "--yes", "-o", "json")
    assert done.rc == 0, done
    plane.validate(done.json(), "BulkResult")
    assert sorted(done.json()["succeeded"]) == sorted([second, third])
    assert not {second, third} & set(plane.dlq_ids())
    verbs = [line for line in plane.cli.audit_lines() if line["verb"] == "dlq redrive"]
    assert [v["result"] for v in verbs[-2:]] == ["succeeded=1 failed=0", "succeeded=2 failed=0"]


def test_purge_with_filters_dry_run_then_yes(plane: Plane) -> None:
    plane.wait_for("a persistent dead letter", lambda: plane.dlq_ids(error_kind="persistent"))
    dry = plane.run("dlq", "purge", "--error-kind", "persistent", "--dry-run", "-o", "json")
    assert dry.rc == 0, dry
    planned = dry.json()["target"]["items"]
    assert planned and dry.json()["outcome"]["result"]["dry_run"] is True
    assert "dry run" in dry.stderr
    assert set(planned) <= set(plane.dlq_ids())
    machine = plane.run("dlq", "purge", "--error-kind", "persistent", "-o", "json")
    assert machine.rc == 2 and "without --yes in -o json mode" in machine.stderr
    assert set(planned) <= set(plane.dlq_ids())
    done = plane.run("dlq", "purge", "--error-kind", "persistent", "--yes")
    assert done.rc == 0, done
    assert not set(planned) & set(plane.dlq_ids())


def test_purge_needs_admin(plane: Plane, dead: list[str]) -> None:
    result = plane.run("--context", "operator", "dlq", "purge", dead[0], "--yes")
    assert result.rc == 5, result
    assert dead[0] in plane.dlq_ids()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("dlq", "redrive", "--yes"), 2, "nothing selected: dlq redrive needs item IDs, --all, or a filter"),
        (("dlq", "purge", "--yes"), 2, "nothing selected: dlq purge needs item IDs"),
        (("dlq", "redrive", "dlq-999999", "--yes"), 3, "DLQ item not found in pipeline 'orders': dlq-999999"),
        (("dlq", "purge", "--stage", "nope", "--yes"), 3, "unknown stage 'nope'"),
        (("dlq", "purge", "--error-kind", "weird", "--yes"), 2, "invalid value for --error-kind: 'weird'"),
        (("dlq", "purge", "--since", "2026-05-02", "--until", "2026-05-01", "--yes"), 2, "must be after --since"),
        (("dlq", "redrive", "--since", "whenever", "--yes"), 2, "--since: 'whenever' is not a time"),
    ],
)
def test_refused_selection_changes_nothing(plane: Plane, dead: list[str], args: tuple[str, ...], code: int,
                                           message: str) -> None:
    audit = len(plane.cli.audit_lines())
    result = plane.run(*args)
    assert result.rc == code, result
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert set(dead) <= set(plane.dlq_ids())
    assert plane.cli.audit_lines()[audit:] == []


def test_jsonl_limit_asks_the_plane_for_one_small_page(plane: Plane, dead: list[str]) -> None:
    result = plane.run("dlq", "list", "-o", "jsonl", "--limit", "3", "-v")
    assert result.rc == 0, result
    assert len(result.jsonl()) == 3
    pages = [line for line in result.stderr.splitlines() if line.startswith("> GET") and "/dlq" in line]
    assert len(pages) == 1 and "page_size=3" in pages[0], result.stderr
    assert plane.server.tokens["admin"] not in result.stderr


def test_watch_streams_new_dead_letters_until_ctrl_c(plane: Plane, dead: list[str]) -> None:
    """Piped jsonl: what is there, then each new item once; SIGINT (Ctrl-C) ends it with 130."""
    import json
    import signal
    import subprocess
    import time

    from tests.support.cli import executable

    proc = subprocess.Popen([executable(), "dlq", "list", "--watch", "--interval", "0.3", "-o", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plane.cli.env(),
                            cwd=plane.cli.root)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["kind"] == "DLQItem"
        known = set(plane.dlq_ids())
        deadline = time.monotonic() + 30
        seen = [first["id"]]
        while time.monotonic() < deadline:  # the demo keeps dead-lettering: wait for one that is new
            item = json.loads(proc.stdout.readline())
            seen.append(item["id"])
            if item["id"] not in known:
                break
        else:
            raise AssertionError("no new dead letter was streamed")
        assert len(seen) == len(set(seen)), "an item was printed twice"
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(10)
    assert rc == 130, proc.stderr.read()


def test_bulk_dry_runs_print_a_count_and_a_sample_and_json_lists_all(plane: Plane) -> None:
    from pipelinectl.cli.dlq import SAMPLE

    plane.wait_for(f"more than {SAMPLE} dead letters", lambda: len(plane.dlq_ids()) > SAMPLE, timeout=120)
    for verb in ("purge", "redrive"):
        table = plane.run("dlq", verb, "--all", "--dry-run")
        assert table.rc == 0, table
        lines = table.stdout.splitlines()
        count = int(lines[0].split(f"dry run: {verb} would act on ")[1].split()[0])
        assert count > SAMPLE
        ids = [line.strip() for line in lines[1:] if line.startswith("  dlq-")]
        assert len(ids) == SAMPLE, table
        assert lines[-1] == f"  ... and {count - SAMPLE} more (-o json lists them all)", table
        as_json = plane.run("dlq", verb, "--all", "--dry-run", "-o", "json")
        matched = as_json.json()["target"]["items"]
        assert len(matched) >= count and set(ids) <= set(matched)  # the demo may have added some in between
        wide = plane.run("dlq", verb, "--all", "--dry-run", "-o", "wide")
        assert len([line for line in wide.stdout.splitlines() if line.startswith("  dlq-")]) == SAMPLE
    assert len(plane.dlq_ids()) >= count, "dry runs change nothing"
