"""What `pipelinectl apply` sends, seen by a proxy between the CLI and a real plane.

The plan's hash travels as `Pipelinectl-Plan` on the mutating requests of an apply (the plane's own
audit trail records it), their Idempotency-Keys are derived from it, so a write whose answer was lost
is retried with the same key and lands once, and a verb run outside `apply` sends neither.
"""

from __future__ import annotations

import pytest
import yaml

from tests.reliability.plane import PIPELINE, stage, start_quiet_plane, use_context
from tests.support.cli import CliEnv
from tests.support.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

DRY = '"dry_run":true'
SCALE = f"POST /v1/pipelines/{PIPELINE}/stages/charge/scale"


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    server = start_quiet_plane(tmp_path_factory.mktemp("plane"))
    yield server
    server.stop()


@pytest.fixture
def proxy(plane):
    with FaultProxy(int(plane.url.rsplit(":", 1)[1])) as p:
        yield p


@pytest.fixture
def operator(tmp_path, plane, proxy):
    cli = CliEnv(tmp_path)
    use_context(cli, "flaky", proxy.url, plane.tokens["operator"])
    return cli


def test_apply_sends_the_plan_hash_and_keys_derived_from_it_and_a_lost_answer_lands_once(operator, proxy, plane):
    before = stage(plane, "charge")
    goal = before["parallelism"] % before["max_parallelism"] + 1
    made = operator.run("scale", "charge", "--parallelism", str(goal), "--dry-run", "-o", "yaml")
    assert made.rc == 0, made
    plan = yaml.safe_load(made.stdout)
    assert all(seen.header("pipelinectl-plan") is None for seen in proxy.log), "making a plan is not applying it"
    (operator.root / "plan.yaml").write_text(made.stdout)

    proxy.add(Fault("lose_response", match=SCALE, unless_body=DRY))
    made_with = len(proxy.requests(SCALE))
    applied = operator.run("apply", "plan.yaml", "--timeout", "20")
    assert applied.rc == 0, applied
    writes = proxy.requests(SCALE)[made_with:]
    real = [seen for seen in writes if DRY.encode() not in seen.body.replace(b" ", b"")]
    assert [seen.action for seen in real] == ["lose_response", "pass"]
    assert {seen.header("pipelinectl-plan") for seen in writes} == {plan["hash"]}
    keys = {seen.header("idempotency-key") for seen in real}
    assert len(keys) == 1 and next(iter(keys)).startswith("plan-"), keys
    assert {seen.header("if-match") for seen in real} == {f'"{before["version"]}"'}
    after = stage(plane, "charge")
    assert after["parallelism"] == goal and after["version"] == before["version"] + 1, "applied exactly once"


def test_a_verb_outside_apply_sends_no_plan_header_and_a_fresh_key_each_time(operator, proxy, plane):
    for verb in ("pause", "resume"):
        assert operator.run(verb, "notify").rc == 0
    writes = proxy.requests(f"POST /v1/pipelines/{PIPELINE}/stages/notify/")
    assert len(writes) == 2 and all(seen.header("pipelinectl-plan") is None for seen in writes)
    keys = [seen.header("idempotency-key") for seen in writes]
    assert None not in keys and len(set(keys)) == 2 and not any(k.startswith("plan-") for k in keys)
