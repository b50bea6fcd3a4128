"""status's views: what counts as failing, what counts as a change, what the plain table shows."""

from __future__ import annotations

from pipelinectl.cli.status import FAILING_ERROR_RATE, _change_key, health, plain_view
from pipelinectl.model import Pipeline, Stage


def stage(**kw):
    return Stage(pipeline="orders", name=kw.pop("name", "parse"), **kw)


def test_failing_is_a_running_stage_over_the_threshold():
    assert health(stage(error_rate=FAILING_ERROR_RATE)) == "failing"
    assert health(stage(error_rate=FAILING_ERROR_RATE / 2)) == "running"
    assert health(stage(state="paused", error_rate=0.9)) == "paused", "a paused stage is shown as paused"
    assert health(stage(state="draining")) == "draining"


def test_throughput_wobble_is_not_a_change_but_state_and_depth_are():
    base = stage(throughput=10.0, queue_depth=3)
    assert _change_key(base) == _change_key(stage(throughput=11.5, queue_depth=3))
    assert _change_key(base) != _change_key(stage(throughput=10.0, queue_depth=4))
    assert _change_key(base) != _change_key(stage(state="paused", throughput=10.0, queue_depth=3))
    assert _change_key(base) == _change_key(stage(throughput=10.0, queue_depth=3, error_rate=0.01))
    assert _change_key(base) != _change_key(stage(throughput=10.0, queue_depth=3, error_rate=0.5)), "now failing"


def test_plain_view_shows_summary_and_every_stage():
    p = Pipeline(name="orders", dlq_size=7, sagas_in_flight=3, sagas_by_status={"running": 1, "stuck": 2},
                 input_offset=42, stages=[stage(name="parse", queue_capacity=100, queue_depth=5, throughput=2.5,
                                                error_rate=0.1, dlq_size=7),
                                          stage(name="ship", state="paused")])
    text = plain_view([p], wide=False, context="demo")
    lines = text.splitlines()
    assert lines[0] == ("PIPELINE orders   context demo · driver http · input offset 42 · DLQ 7 · "
                        "sagas in flight 3 (running 1, stuck 2)")
    assert lines[2].split() == ["parse", "failing", "1", "0", "5/100", "2.5/s", "-", "10.0%", "7"]
    assert lines[3].split()[:2] == ["ship", "paused"]
    assert "\x1b[" not in text
    wide = plain_view([p], wide=True, context=None)
    assert "PAUSED UNTIL" in wide and "(1-64)" in wide
