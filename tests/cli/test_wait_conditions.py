"""`wait --for` conditions, parsed strictly and evaluated, without a plane."""

from __future__ import annotations

import pytest

from pipelinectl.cli.wait import parse_condition, wait_target
from pipelinectl.errors import UsageError


@pytest.mark.parametrize("text, observed, holds", [
    ("state=paused", "paused", True),
    ("state==paused", "running", False),
    ("state!=running", "draining", True),
    ("queue_depth<=10", 10, True),
    ("queue_depth<=10", 11, False),
    ("in_flight<1", 0, True),
    ("dlq>=1", 0, False),
    ("dlq > 2", 3, True),
    ("dlq=0", 0, True),
    ("saga=compensated", "compensated", True),
    ("replay=completed", "running", False),
    ("queue_depth<=10", None, False),  # nothing observed yet never holds
])
def test_conditions_hold(text, observed, holds):
    assert parse_condition(text).holds(observed) is holds


@pytest.mark.parametrize("text, message", [
    ("paused", "is not a condition"),
    ("", "is not a condition"),
    ("queue=3", "unknown condition 'queue'"),
    ("state<=paused", "takes = or !="),
    ("state=sleeping", "'sleeping' is not a state"),
    ("saga=done", "'done' is not a saga"),
    ("replay=finished", "'finished' is not a replay"),
    ("dlq>=-1", "whole number"),
    ("dlq>=1.5", "whole number"),
    ("in_flight<=lots", "whole number"),
])
def test_malformed_conditions(text, message):
    with pytest.raises(UsageError, match=message) as caught:
        parse_condition(text)
    assert caught.value.message.startswith("--for: ")
    assert "\n" not in caught.value.one_line()


def test_targets():
    assert wait_target("stage/charge", "stage") == "charge"
    assert wait_target("stage=charge", "stage") == "charge"
    assert wait_target("charge", "stage") == "charge"
    assert wait_target("saga/saga-order-000042", "saga") == "saga-order-000042"
    assert wait_target("job/replay-1", "replay") == "replay-1"
    assert wait_target(None, "dlq") is None
    with pytest.raises(UsageError, match="'saga/x' is a saga, not a stage"):
        wait_target("saga/x", "stage")


def test_failing_is_a_state_to_wait_for_as_status_shows_it():
    from pipelinectl.cli.wait import observed_state
    from pipelinectl.model import Stage

    failing = Stage(pipeline="o", name="charge", state="running", error_rate=0.5)
    healthy = Stage(pipeline="o", name="charge", state="running", error_rate=0.0)
    assert parse_condition("state=failing").holds(observed_state(failing, "failing"))
    assert not parse_condition("state=failing").holds(observed_state(healthy, "failing"))
    assert parse_condition("state!=failing").holds(observed_state(healthy, "failing"))
    # a failing stage is still running: waiting for running after a resume is not held up by its errors
    assert parse_condition("state=running").holds(observed_state(failing, "running"))
    with pytest.raises(UsageError, match="choose from running, paused, draining, disabled, failing"):
        parse_condition("state=sleeping")
