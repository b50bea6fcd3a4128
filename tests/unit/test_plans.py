"""The plan document on its own: its hash, reading it back, naming what changed, and what the http driver
sends while one is applied (httpx.MockTransport; the end-to-end proof is tests/cli/test_plans_e2e.py)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import yaml

from pipelinectl.cli.plans import Precondition, differences, load, seal
from pipelinectl.drivers.http import HttpControlPlane
from pipelinectl.errors import UsageError
from pipelinectl.output import Renderer
from pipelinectl.plane import Connection, applying_plan, current_plan
from tests.support.cli import validate_output


def a_plan(**changes: object) -> dict:
    plan = {
        "kind": "Plan", "format": 1, "created_at": "2026-05-01T12:00:00Z", "created_by": "ops",
        "action": {"verb": "pause", "arguments": {"until": "2026-05-01T14:00:00Z"}},
        "target": {"context": "prod", "driver": "http", "pipeline": "orders", "stage": "charge"},
        "preconditions": [{"object": "stage/charge", "expect": {"version": 5, "state": "running", "parallelism": 2}}],
        "outcome": {"summary": "pause orders/charge would leave it paused (was running)", "result": None},
        **changes,
    }
    plan["hash"] = seal(plan)
    return plan


def test_the_hash_covers_every_field_and_not_their_order():
    plan = a_plan()
    assert plan["hash"].startswith("sha256:") and len(plan["hash"]) == 7 + 64
    assert seal(dict(reversed(list(plan.items())))) == plan["hash"]
    assert seal({**plan, "hash": "anything"}) == plan["hash"], "the hash is over everything but itself"
    for key, value in (("created_by", "mallory"), ("target", {**plan["target"], "context": "staging"}),
                       ("action", {"verb": "pause", "arguments": {}})):
        assert seal({**plan, key: value}) != plan["hash"], key
    validate_output(plan)


@pytest.mark.parametrize("fmt", ["json", "yaml", "jsonl"])
def test_a_plan_printed_in_any_machine_format_reads_back_with_its_hash(fmt: str):
    plan = a_plan(outcome={"summary": "x: 'quoted' and ünïcode", "result": {"kind": "Stage", "throughput": 0.1,
                                                                          "paused_until": "2026-05-01T14:00:00Z"}})
    out = io.StringIO()
    Renderer(fmt, stream=out).emit(plan)
    assert load(out.getvalue(), "plan.yaml") == plan


@pytest.mark.parametrize("text, says", [
    ("contexts: [1, 2\n", "not valid YAML or JSON"),
    ("- a\n", "is not a plan (a document of kind Plan)"),
    ("kind: Stage\nname: charge\n", "is not a plan"),
])
def test_what_is_not_a_plan_is_refused(text: str, says: str):
    with pytest.raises(UsageError, match=r".*") as info:
        load(text, "plan.yaml")
    assert says in info.value.message


def test_an_edited_plan_is_refused_whatever_was_edited():
    plan = a_plan()
    for edit in ({"action": {"verb": "pause", "arguments": {}}},
                 {"preconditions": []},
                 {"hash": "sha256:" + "0" * 64},
                 {"created_at": "2026-05-01"}):
        with pytest.raises(UsageError) as info:
            load(yaml.safe_dump({**plan, **edit}), "plan.yaml")
        assert "hash does not match its content" in info.value.message
    dated = yaml.safe_dump(plan).replace("created_at: '2026-05-01T12:00:00Z'", "created_at: 2026-05-01T12:00:00Z")
    with pytest.raises(UsageError):  # unquoted, YAML reads a date: a hand edit, refused, not a crash
        load(dated, "plan.yaml")


def test_a_plan_of_another_format_or_without_its_parts_is_refused():
    with pytest.raises(UsageError) as info:
        load(json.dumps(a_plan(format=2)), "plan.json")
    assert "plan format 2 is not one this pipelinectl reads" in info.value.message
    with pytest.raises(UsageError) as info:
        load(json.dumps(a_plan(preconditions="none")), "plan.json")
    assert "lacks an action, a target or its preconditions" in info.value.message


def test_differences_name_each_field_that_changed():
    planned = a_plan()["preconditions"]
    same = [Precondition("stage/charge", {"version": 5, "state": "running", "parallelism": 2})]
    assert differences(planned, same) == []
    moved = [Precondition("stage/charge", {"version": 7, "state": "paused", "parallelism": 2})]
    assert differences(planned, moved) == ["stage charge is at version 7, the plan was made at 5",
                                           "stage charge is at state paused, the plan was made at running"]
    assert differences([{"object": "saga/s-1", "expect": {"current_step": "charge"}}],
                       [Precondition("saga/s-1", {"current_step": None})]) == \
        ["saga s-1 is at current step none, the plan was made at charge"]
    assert differences(planned, []) == ["stage charge is not there any more"]


def _driver(seen: list[httpx.Request]) -> HttpControlPlane:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"kind": "Stage", "pipeline": "orders", "name": "charge", "version": 6})

    connection = Connection(context="prod", driver="http", url="http://plane.test:8765")
    return HttpControlPlane(connection, transport=httpx.MockTransport(handler))


def test_under_a_plan_writes_carry_its_hash_and_keys_derived_from_it_reads_do_not():
    seen: list[httpx.Request] = []
    plane = _driver(seen)
    digest = a_plan()["hash"]
    assert current_plan() is None
    with applying_plan(digest):
        assert current_plan() == digest
        plane.get_stage("orders", "charge")
        plane.scale("orders", "charge", 4, expected_version=5)
        plane.scale("orders", "charge", 4, expected_version=5)
        plane.scale("orders", "charge", 4, dry_run=True)
    assert current_plan() is None
    read, first, again, dry = seen
    assert "pipelinectl-plan" not in read.headers and "idempotency-key" not in read.headers
    assert first.headers["pipelinectl-plan"] == digest == dry.headers["pipelinectl-plan"]
    assert first.headers["idempotency-key"].startswith("plan-")
    assert first.headers["idempotency-key"] == again.headers["idempotency-key"], "one request, one key"
    assert dry.headers["idempotency-key"] != first.headers["idempotency-key"], "another request, another key"
    with applying_plan(a_plan(created_by="someone else")["hash"]):
        plane.scale("orders", "charge", 4, expected_version=5)
    assert seen[-1].headers["idempotency-key"] != first.headers["idempotency-key"], "another plan, another key"


def test_outside_a_plan_each_write_has_a_fresh_key_and_no_plan_header():
    seen: list[httpx.Request] = []
    plane = _driver(seen)
    plane.pause("orders", "charge")
    plane.pause("orders", "charge")
    assert all("pipelinectl-plan" not in r.headers for r in seen)
    assert seen[0].headers["idempotency-key"] != seen[1].headers["idempotency-key"]
