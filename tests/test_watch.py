"""The shared watch engine, in process: lines per change, JSON lines, removals, the end when the target is gone."""

from __future__ import annotations

import io
import json
import re

import pytest

from pipelinectl.errors import NotFoundError, UnavailableError
from pipelinectl.model import Saga, Stage
from pipelinectl.watch import watch
from tests.support.cli import validate_output


def scripted(*snapshots):
    """A fetch that returns each snapshot in turn; an exception instance is raised instead."""
    queue = list(snapshots)

    def fetch():
        value = queue.pop(0)
        if isinstance(value, BaseException):
            raise value
        return value

    return fetch


def stage(state="running", depth=0, throughput=0.0):
    return Stage(pipeline="orders", name="charge", state=state, queue_depth=depth, throughput=throughput)


def test_jsonl_one_line_per_change_and_end_when_target_gone(capsys):
    out = io.StringIO()
    fetch = scripted(
        [stage()],
        [stage(throughput=9.5)],           # a rate wobble is not a change
        [stage(state="paused")],
        [stage(state="paused")],
        NotFoundError("pipeline 'orders' not found"),
    )
    code = watch(fetch, output="jsonl", interval=0, stream=out, live=False)
    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["kind"], d["state"]) for d in lines] == [("Stage", "running"), ("Stage", "paused")]
    assert "watch ended: pipeline 'orders' not found" in capsys.readouterr().err


def test_none_means_gone_and_removed_objects_are_said():
    out = io.StringIO()
    a = Saga(id="s1", pipeline="orders", definition="order", status="running")
    b = Saga(id="s2", pipeline="orders", definition="order", status="stuck")
    fetch = scripted([a, b], [b], None)
    assert watch(fetch, output="jsonl", interval=0, stream=out, live=False) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["id"] for d in lines] == ["s1", "s2", "s1"]
    assert lines[2] == {"kind": "Saga", "removed": True, "pipeline": "orders", "id": "s1"}
    for line in lines:
        validate_output(line)  # the documented shapes, the removal marker included (docs/output.md)


def test_only_new_shows_each_object_once_in_text():
    out = io.StringIO()
    a = Saga(id="s1", pipeline="orders", definition="order", status="running")
    a2 = Saga(id="s1", pipeline="orders", definition="order", status="completed")
    b = Saga(id="s2", pipeline="orders", definition="order", status="stuck")
    fetch = scripted([a], [a2, b], [], None)
    watch(fetch, output="table", interval=0, stream=out, live=False, only_new=True)
    text = out.getvalue().splitlines()
    assert len(text) == 2
    assert "saga/s1 " in text[0] and "status=running" in text[0]
    assert "saga/s2 " in text[1] and "status=stuck" in text[1]


def test_an_outage_is_said_once_with_when_it_began_and_when_it_ended(capsys):
    out = io.StringIO()
    blip = UnavailableError("connection refused")
    later = UnavailableError("connection refused (gave up after 3 attempts in 0.4s)")  # same outage, other timing
    fetch = scripted([stage()], blip, later, [stage(depth=5)], None)
    watch(fetch, output="jsonl", interval=0, stream=out, live=False)
    depths = [json.loads(line)["queue_depth"] for line in out.getvalue().splitlines()]
    assert depths == [0, 5]
    err = capsys.readouterr().err.splitlines()
    down = [line for line in err if "unreachable since" in line]
    assert len(down) == 1 and re.fullmatch(r"warning: control plane unreachable since \d\d:\d\d:\d\dZ: "
                                           r"connection refused; still watching", down[0]), err
    assert len([line for line in err if "answers again" in line]) == 1, err


def test_other_refresh_failures_are_said_once_per_kind(capsys):
    from pipelinectl.errors import PermissionDeniedError

    denied = PermissionDeniedError("role viewer may not read sagas")
    fetch = scripted([stage()], denied, denied, [stage(depth=2)], None)
    watch(fetch, output="jsonl", interval=0, stream=io.StringIO(), live=False)
    assert capsys.readouterr().err.count("warning: refresh failed: role viewer may not read sagas") == 1


def test_a_plane_down_at_the_start_is_an_outage_to_wait_through_not_the_end(capsys):
    out = io.StringIO()
    fetch = scripted(UnavailableError("cannot reach control plane"), UnavailableError("cannot reach"), [stage()], None)
    assert watch(fetch, output="jsonl", interval=0, stream=out, live=False) == 0
    assert [json.loads(line)["state"] for line in out.getvalue().splitlines()] == ["running"]
    err = capsys.readouterr().err
    assert err.count("unreachable since") == 1 and "answers again" in err


def test_the_live_view_says_since_when_the_plane_is_unreachable():
    out = io.StringIO()
    fetch = scripted([stage()], UnavailableError("connection refused"), None)
    watch(fetch, output="table", interval=0, stream=out, live=True)
    assert re.search(r"unreachable since \d\d:\d\d:\d\dZ", out.getvalue())
    assert "charge" in out.getvalue(), "the last view stays on screen"


def test_units_make_the_lines_of_a_snapshot():
    from pipelinectl.model import Pipeline

    out = io.StringIO()
    snapshot = [Pipeline(name="orders", stages=[stage(), Stage(pipeline="orders", name="ship")])]
    changed = [Pipeline(name="orders", stages=[stage(state="paused"), Stage(pipeline="orders", name="ship")])]
    watch(scripted(snapshot, changed, None), output="jsonl", interval=0, stream=out, live=False,
          units=lambda pipelines: [s for p in pipelines for s in p.stages])
    assert [(d["name"], d["state"]) for d in map(json.loads, out.getvalue().splitlines())] == [
        ("charge", "running"), ("ship", "running"), ("charge", "paused")]


def test_first_fetch_error_is_the_commands_error():
    with pytest.raises(NotFoundError):
        watch(scripted(NotFoundError("no such stage")), output="jsonl", interval=0, stream=io.StringIO(), live=False)


def test_ctrl_c_exits_130_as_the_exit_code_table_says():
    out = io.StringIO()

    def sleep(_):
        raise KeyboardInterrupt

    assert watch(scripted([stage()]), output="jsonl", stream=out, live=False, sleep=sleep) == 130
    assert out.getvalue().count("\n") == 1
    assert watch(scripted([stage()]), output="table", stream=io.StringIO(), live=True, sleep=sleep) == 130


def test_live_view_redraws_in_place():
    out = io.StringIO()
    fetch = scripted([stage()], [stage(state="paused")], None)
    assert watch(fetch, output="table", interval=0, stream=out, live=True) == 0
    text = out.getvalue()
    assert "running" in text and "paused" in text
    assert "\x1b[" in text  # cursor movement: the view was redrawn, not appended as lines


def test_a_plane_that_answers_only_to_refuse_ends_the_outage(capsys):
    from pipelinectl.errors import UnauthenticatedError

    fetch = scripted([stage()], UnavailableError("down"), UnauthenticatedError("unknown token"), None)
    watch(fetch, output="jsonl", interval=0, stream=io.StringIO(), live=False)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err[:3]] == ["warning", "watch", "warning"], err
    assert "answers again" in err[1] and "refresh failed: unknown token" in err[2]
