"""Plans for every mutating verb, on the in-memory plane (the real plane's proof is test_plans_e2e.py).

Each verb's --dry-run -o json is a Plan the output schema accepts, and `apply` of it makes exactly the
call the verb makes; a changed precondition names the change; a verb registers its plan builder once
and apply finds it by the plan's verb.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelinectl.cli import plans
from tests.cli.verbs_fake import Harness, fake_fixture  # noqa: F401  (the fake fixture)
from tests.support.cli import validate_output

VERBS = {
    "pause": (("pause", "parse", "--until", "+1h"), "pause"),
    "resume": (("resume", "parse"), "resume"),
    "drain": (("drain", "parse"), "drain"),
    "scale": (("scale", "parse", "--parallelism", "5", "--expect-current", "2"), "scale"),
    "replay": (("replay", "--from-offset", "0", "--to-offset", "10", "--stage", "enrich"), "replay"),
    "replay --skipped": (("replay", "--skipped", "enrich"), "replay_skipped"),
    "limit": (("limit", "parse", "--rate", "50/s", "--burst", "5"), "limit"),
    "limit --clear": (("limit", "parse", "--clear"), "limit"),
    "disable": (("disable", "parse", "--reason", "vendor outage"), "disable"),
    "enable": (("enable", "parse"), "enable"),
    "dlq redrive": (("dlq", "redrive", "--stage", "parse"), "dlq_redrive"),
    "dlq purge": (("dlq", "purge", "dlq-1", "dlq-2"), "dlq_purge"),
    "saga force-fail": (("saga", "force-fail", "order-1", "--reason", "refund"), "saga_force_fail"),
    "saga retry": (("saga", "retry", "saga/order-1"), "saga_retry"),
    "saga force-complete": (("saga", "force-complete", "order-1", "--reason", "by hand"), "saga_force_complete"),
    "saga cancel": (("saga", "cancel", "order-1", "--reason", "called off"), "saga_cancel"),
    "saga advance": (("saga", "advance", "order-1", "--step", "charge", "--result", '{"paid": true}',
                      "--reason", "paid by phone"), "saga_advance"),
    "saga force-fail --query": (("saga", "force-fail", "--query", "stuck", "--reason", "drill"), "saga_batch"),
    "saga cancel --query": (("saga", "cancel", "--query", "stuck", "--reason", "drill"), "saga_batch"),
    "saga advance --query": (("saga", "advance", "--query", "stuck", "--step", "charge", "--reason", "drill"),
                             "saga_advance"),
}


def plan_of(fake: Harness, *argv: str) -> dict[str, Any]:
    made = fake(*argv, "--dry-run", "-o", "json")
    assert made.rc == 0, made
    plan = made.json()
    validate_output(plan)
    return plan


@pytest.mark.parametrize("name", VERBS)
def test_every_mutating_verb_plans_and_apply_makes_exactly_its_call(fake: Harness, name: str) -> None:
    argv, call = VERBS[name]
    if name == "resume":
        fake.plane.stages["parse"].state = "paused"
    if name == "enable":
        fake.plane.stages["parse"].state = "disabled"
    if name == "limit --clear":
        from pipelinectl.model import RateLimit

        fake.plane.stages["parse"].rate_limit = RateLimit(rate="5/s", per_second=5.0, burst=5)
    plan = plan_of(fake, *argv)
    assert plan["action"]["verb"] == name.split(" --")[0]
    assert plan["target"]["context"] == "test" and plan["target"]["driver"] == "fake"
    assert plan["preconditions"], "every verb relies on something it read"
    assert fake.plane.calls == [], "planning changes nothing"
    applied = fake("apply", "-f", "-", "--yes", stdin=json.dumps(plan))
    assert applied.rc == 0, applied
    assert [c[0] for c in fake.plane.calls] == [call] * len(fake.plane.calls) and fake.plane.calls
    lines = fake.audit()
    assert lines and all(line["plan"] == plan["hash"] for line in lines)
    again = fake("apply", "-f", "-", "--yes", stdin=json.dumps(plan))
    if name not in ("replay", "saga force-fail --query", "saga cancel --query"):  # those read the same after acting: see the e2e tests
        assert again.rc == 4, again
        assert len(fake.plane.calls) == len([c for c in fake.plane.calls if c[0] == call])


def test_a_saga_plan_names_the_status_that_changed(fake: Harness) -> None:
    plan = plan_of(fake, "saga", "force-complete", "order-1", "--reason", "by hand")
    fake.plane.sagas["order-1"].status = "running"  # retried by someone meanwhile
    stale = fake("apply", "-f", "-", "--yes", stdin=json.dumps(plan))
    assert stale.rc == 4, stale
    assert "saga order-1 is at status running, the plan was made at stuck" in stale.stderr
    assert fake.plane.calls == []


def test_a_batch_plan_is_stale_when_the_query_matches_another_count(fake: Harness) -> None:
    plan = plan_of(fake, "saga", "retry", "--query", "stuck")
    assert plan["target"]["query"] == "stuck"
    assert plan["preconditions"] == [{"object": "pipeline/orders", "expect": {"sagas_matching_query": 1}}]
    fake.plane.sagas["order-2"].status = "stuck"
    stale = fake("apply", "-f", "-", "--yes", stdin=json.dumps(plan))
    assert stale.rc == 4, stale
    assert "pipeline orders is at sagas matching query 2, the plan was made at 1" in stale.stderr
    assert fake.plane.calls == []


def test_apply_keeps_the_verbs_confirmation_rules(fake: Harness) -> None:
    plan = plan_of(fake, "dlq", "purge", "dlq-1")
    refused = fake("apply", "-f", "-", stdin=json.dumps(plan))  # a purge always asks: no terminal, no --yes
    assert refused.rc == 2 and "without --yes" in refused.stderr, refused
    assert fake.plane.calls == []
    pause = plan_of(fake, "pause", "parse")
    assert fake("apply", "-f", "-", stdin=json.dumps(pause)).rc == 0, "a runbook verb does not ask"


def test_a_plan_for_a_verb_nobody_registered_is_refused(fake: Harness) -> None:
    plan = plan_of(fake, "resume", "parse")
    plan["action"]["verb"] = "frobnicate"
    plan["hash"] = plans.seal(plan)
    refused = fake("apply", "-f", "-", stdin=json.dumps(plan))
    assert refused.rc == 2 and "cannot apply a plan for 'frobnicate'" in refused.stderr, refused


def test_a_verb_gets_plans_by_registering_one_builder(fake: Harness) -> None:
    """What a verb added later does: register a builder beside itself; apply dispatches on the plan's verb."""
    done: list[tuple[str, bool]] = []

    @plans.builder("stage nudge")
    def plan_nudge(session, verb, target, arguments):  # type: ignore[no-untyped-def]
        stage = session.plane.get_stage("orders", target["stage"])
        return plans.Draft(target={"pipeline": "orders", "stage": stage.name}, arguments=dict(arguments),
                           preconditions=[plans.Precondition(f"stage/{stage.name}", {"version": stage.version})],
                           summary=f"nudge {stage.name}", result=None,
                           perform=lambda yes: done.append((stage.name, yes)))

    try:
        from pipelinectl.cli.options import GlobalOptions
        from pipelinectl.cli.session import Session

        session = Session(GlobalOptions(output="json"))
        plan = plans.document(session, "stage nudge", plan_nudge(session, "stage nudge", {"stage": "parse"}, {}))
        validate_output(plan)
        applied = fake("apply", "-f", "-", "--yes", stdin=json.dumps(plan))
        assert applied.rc == 0, applied
        assert done == [("parse", True)]
        fake.plane.stages["parse"].version += 1
        assert fake("apply", "-f", "-", stdin=json.dumps(plan)).rc == 4
    finally:
        plans._BUILDERS.pop("stage nudge", None)
