"""saga list / inspect / force-fail / retry / force-complete: the installed executable against a real server.

The demo's order saga gets stuck (a payment that keeps failing transiently) for one case in seven;
stuck sagas wait for an operator, so they are stable targets.
"""

from __future__ import annotations

import pytest

from tests.cli.verbs_e2e import Plane, plane_fixture  # noqa: F401  (the plane fixture)

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

OPERATOR_EVENTS = {"force_fail", "force_complete", "retry"}


def stuck(plane: Plane, n: int = 1) -> list[str]:
    return plane.wait_for(f"{n} stuck saga(s)", lambda: (ids := [s["id"] for s in plane.sagas("stuck")])
                          and len(ids) >= n and ids, timeout=60)


def terminal(plane: Plane) -> str:
    return plane.wait_for("a completed saga", lambda: [s["id"] for s in plane.sagas("completed")])[0]


def operator_events(plane: Plane, saga_id: str) -> list[str]:
    return [e["type"] for e in plane.saga(saga_id)["events"] if e["type"] in OPERATOR_EVENTS]


def test_list_in_every_format(plane: Plane) -> None:
    stuck(plane)
    as_json = plane.run("saga", "list", "--status", "stuck", "-o", "json")
    assert as_json.rc == 0, as_json
    assert as_json.json()["kind"] == "SagaList"
    for saga in as_json.json()["items"]:
        plane.validate(saga, "Saga")
        assert saga["status"] == "stuck"
    table = plane.run("saga", "list", "--definition", "order", "--limit", "5")
    assert table.rc == 0 and table.stdout.splitlines()[0].split()[:3] == ["ID", "DEFINITION", "STATUS"]
    assert len(table.stdout.splitlines()) <= 6
    jsonl = plane.run("saga", "list", "-o", "jsonl", "--limit", "3")
    assert len(jsonl.jsonl()) == 3
    names = plane.run("saga", "list", "--status", "stuck", "-o", "name")
    assert all(line.startswith("saga/") for line in names.stdout.split())
    query = plane.run("saga", "list", "--query", "status = 'stuck'")
    assert query.rc == 7 and "not supported by the http driver" in query.stderr


def test_inspect_shows_header_timeline_and_events(plane: Plane) -> None:
    saga_id = stuck(plane)[0]
    result = plane.run("saga", "inspect", saga_id)
    assert result.rc == 0, result
    out = result.stdout
    assert f"Saga {saga_id}" in out and "Status:          stuck" in out
    assert out.index("Steps") < out.index("Events")
    assert "saga_stuck" in out and "charge" in out
    as_json = plane.run("saga", "show", saga_id, "-o", "json")
    plane.validate(as_json.json(), "Saga")
    assert as_json.json()["steps"] and as_json.json()["events"]


def test_force_fail_off_a_terminal_refuses_then_acts_with_yes(plane: Plane) -> None:
    saga_id = stuck(plane)[0]
    refused = plane.run("saga", "force-fail", saga_id, "--reason", "drill")
    assert refused.rc == 2, refused
    assert f"refusing to force-fail saga '{saga_id}' (order, stuck at step charge) in pipeline 'orders' on " \
           "context 'admin' without --yes (no terminal to ask on)" in refused.stderr
    assert plane.saga(saga_id)["status"] == "stuck" and operator_events(plane, saga_id) == []
    dry = plane.run("saga", "force-fail", saga_id, "--reason", "drill", "--dry-run")
    assert dry.rc == 0, dry
    # what would happen, as the plane answers it: not the current status
    assert dry.stdout.startswith(f"dry run: force-fail saga '{saga_id}' (order, stuck at step charge) would "
                                 "compensate reserve (in reverse), then end compensated; it would be compensating "
                                 "(now stuck); nothing was changed"), dry
    as_json = plane.run("saga", "force-fail", saga_id, "--reason", "drill", "--dry-run", "-o", "json")
    answer = as_json.json()["outcome"]["result"]  # the plan carries the plane's answer
    assert answer["status"] == "compensating" and answer["details"]["status_before"] == "stuck"
    for verb, status in ((("retry",), "running"), (("force-complete", "--reason", "drill"), "completed")):
        other = plane.run("saga", *verb, saga_id, "--dry-run")
        assert other.rc == 0 and f"it would be {status} (now stuck)" in other.stdout, other
    assert operator_events(plane, saga_id) == [] and plane.saga(saga_id)["status"] == "stuck"
    done = plane.run("saga", "force-fail", saga_id, "--reason", "drill", "--yes", "-o", "json")
    assert done.rc == 0, done
    plane.validate(done.json(), "Saga")
    assert operator_events(plane, saga_id) == ["force_fail"]
    entry = plane.cli.audit_lines()[-1]
    assert entry["verb"] == "saga force-fail" and entry["target"] == f"orders/{saga_id}"
    assert entry["arguments"]["reason"] == "drill"


def test_retry_runs_without_prompt_and_force_complete_needs_yes(plane: Plane) -> None:
    retried, completed = stuck(plane, 2)[:2]
    result = plane.run("saga", "retry", retried, "--reason", "gateway back")
    assert result.rc == 0, result
    assert f"saga {retried}: " in result.stdout and "(was stuck" in result.stdout
    assert operator_events(plane, retried) == ["retry"]
    refused = plane.run("saga", "force-complete", completed, "--reason", "done by hand", "-o", "yaml")
    assert refused.rc == 2 and "without --yes in -o yaml mode" in refused.stderr
    done = plane.run("saga", "force-complete", completed, "--reason", "done by hand", "--yes")
    assert done.rc == 0, done
    assert plane.saga(completed)["status"] == "completed"
    assert operator_events(plane, completed) == ["force_complete"]


def test_force_fail_needs_admin(plane: Plane) -> None:
    saga_id = stuck(plane)[0]
    result = plane.run("--context", "operator", "saga", "force-fail", saga_id, "--reason", "x", "--yes")
    assert result.rc == 5, result
    assert operator_events(plane, saga_id) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("saga", "inspect", "saga-nope"), 3, "saga-nope"),
        (("saga", "force-fail", "saga-nope", "--reason", "x", "--yes"), 3, "saga-nope"),
        (("saga", "force-fail", "{stuck}", "--yes"), 2, "saga force-fail needs --reason"),
        (("saga", "force-complete", "{terminal}", "--reason", "x", "--yes"), 4, ""),
        (("saga", "force-fail", "{stuck}", "--reason", "x", "--terminate", "--yes"), 7,
         "'saga force-fail --terminate' is not supported by the http driver"),
        (("saga", "retry", "--query", "status = 'stuck'", "--yes"), 7, "not supported by the http driver"),
        (("saga", "retry", "{stuck}", "--event-id", "3"), 7, "not supported by the http driver"),
        (("saga", "list", "--status", "glum"), 2, "invalid value for --status: 'glum'"),
    ],
)
def test_refused_input_changes_nothing(plane: Plane, args: tuple[str, ...], code: int, message: str) -> None:
    ids = {"{stuck}": stuck(plane)[0], "{terminal}": terminal(plane)}
    args = tuple(ids.get(a, a) for a in args)
    touched = [a for a in args if a in ids.values()]
    before = {s: (plane.saga(s)["status"], operator_events(plane, s)) for s in touched}
    audit = len(plane.cli.audit_lines())
    result = plane.run(*args)
    assert result.rc == code, result
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {s: (plane.saga(s)["status"], operator_events(plane, s)) for s in touched} == before
    assert plane.cli.audit_lines()[audit:] == []
