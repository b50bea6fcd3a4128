"""Two operators at once, through the real CLI against a real plane.

The fault proxy holds every write at a gate until both operators have read
the stage (or planned the redrive), then lets the writes race: the race
happens on every run, not by luck.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.plane import PIPELINE, api, dlq_ids, stage, start_quiet_plane, use_context
from tests.support.cli import CliEnv, Result
from tests.support.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

DRY = '"dry_run":true'


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    server = start_quiet_plane(tmp_path_factory.mktemp("plane"), seed_dlq=40)
    yield server
    server.stop()


@pytest.fixture
def proxy(plane):
    with FaultProxy(int(plane.url.rsplit(":", 1)[1])) as p:
        yield p


def _operators(tmp_path, plane, proxy, n: int = 2) -> list[CliEnv]:
    out = []
    for i in range(n):
        cli = CliEnv(tmp_path / f"op{i}")
        use_context(cli, "shared", proxy.url, plane.tokens["operator"])
        out.append(cli)
    return out


def _together(*calls, proxy: FaultProxy | None = None, gate: threading.Event | None = None,
              ready=lambda: True) -> list[Result]:
    """Run the CLI calls at once; open `gate` when `ready()` holds (both have read), or after 30 s."""
    barrier = threading.Barrier(len(calls))

    def go(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(go, call) for call in calls]
        if gate is not None:
            deadline = time.monotonic() + 30
            while not ready() and time.monotonic() < deadline and not all(f.done() for f in futures):
                time.sleep(0.02)
            gate.set()
        return [f.result() for f in futures]


def _gate_writes(proxy: FaultProxy) -> threading.Event:
    gate = threading.Event()
    proxy.add(Fault("pass", match="POST", unless_body=DRY, times=None, gate=gate))
    return gate


def _count(proxy: FaultProxy, method: str, suffix: str, dry: bool | None = None) -> int:
    n = 0
    for seen in proxy.requests(method):
        if not seen.path.split("?")[0].endswith(suffix):
            continue
        is_dry = DRY.encode() in seen.body.replace(b" ", b"")
        if dry is None or dry == is_dry:
            n += 1
    return n


def test_two_scales_of_one_stage_one_wins_the_other_conflicts(tmp_path, plane, proxy):
    alice, bob = _operators(tmp_path, plane, proxy)
    before = stage(plane, "ship")
    low, high = before["min_parallelism"], before["max_parallelism"]
    wants = {"alice": min(high, before["parallelism"] + 1) if before["parallelism"] < high else low,
             "bob": min(high, before["parallelism"] + 2) if before["parallelism"] + 2 <= high else low + 1}
    assert wants["alice"] != wants["bob"]
    # every real write waits at the gate until both operators have read the stage
    gate = _gate_writes(proxy)
    results = _together(
        lambda: alice.run("scale", "ship", "--parallelism", str(wants["alice"]), "--timeout", "40"),
        lambda: bob.run("scale", "ship", "--parallelism", str(wants["bob"]), "--timeout", "40"),
        gate=gate, ready=lambda: _count(proxy, "GET", "/stages/ship") >= 2 and _count(proxy, "POST", "/scale") >= 2,
    )
    posts = [s for s in proxy.log if s.method == "POST"]
    assert len(posts) == 2, proxy.log
    assert {p.header("if-match") for p in posts} == {f'"{before["version"]}"'}, "both sent the version they read"
    codes = sorted(r.rc for r in results)
    assert codes == [0, 4], results
    winner_name, loser = ("alice", results[1]) if results[0].rc == 0 else ("bob", results[0])
    after = stage(plane, "ship")
    assert after["parallelism"] == wants[winner_name], "the winner's value stands: no lost update"
    assert after["version"] == before["version"] + 1
    error = [line for line in loser.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, loser
    assert "Traceback" not in loser.output
    # the conflict names what is there now, so the operator can decide
    assert str(after["version"]) in error[0] or f"parallelism {after['parallelism']}" in error[0], error[0]


def test_conflict_message_names_the_current_parallelism(tmp_path, plane, proxy):
    """Stricter: the refused operator sees the current value, not only a version number."""
    alice, bob = _operators(tmp_path, plane, proxy)
    before = stage(plane, "charge")
    a, b = (before["min_parallelism"], before["min_parallelism"] + 1)
    if before["parallelism"] in (a, b):
        a, b = before["min_parallelism"] + 2, before["min_parallelism"] + 3
    gate = _gate_writes(proxy)
    results = _together(lambda: alice.run("scale", "charge", "--parallelism", str(a), "--timeout", "40"),
                        lambda: bob.run("scale", "charge", "--parallelism", str(b), "--timeout", "40"),
                        gate=gate, ready=lambda: _count(proxy, "POST", "/scale") >= 2)
    assert sorted(r.rc for r in results) == [0, 4], results
    loser = results[0] if results[0].rc == 4 else results[1]
    current = stage(plane, "charge")["parallelism"]
    assert f"parallelism {current}" in loser.stderr or f"parallelism={current}" in loser.stderr \
        or f"runs {current}" in loser.stderr, loser


def test_two_redrives_of_the_same_items_move_each_item_once(tmp_path, plane, proxy):
    alice, bob = _operators(tmp_path, plane, proxy)
    with api(plane, "operator") as client:  # hold redriven items in the stage's queue, where we can count them
        assert client.post(f"/v1/pipelines/{PIPELINE}/stages/validate/pause", json={}).status_code == 200
    try:
        ids = [i for i in dlq_ids(plane)][:20]
        assert len(ids) == 20
        queued_before = stage(plane, "validate")["queue_depth"]
        gate = _gate_writes(proxy)  # both plan (dry run) first; then their redrives race
        results = _together(
            lambda: alice.run("dlq", "redrive", *ids, "--yes", "-o", "json", "--timeout", "40"),
            lambda: bob.run("dlq", "redrive", *ids, "--yes", "-o", "json", "--timeout", "40"),
            gate=gate, ready=lambda: _count(proxy, "POST", "/dlq/redrive", dry=False) >= 2,
        )
        for r in results:
            assert r.rc in (0, 3, 4), r
            assert "Traceback" not in r.output
        succeeded = [set(r.json()["succeeded"]) if r.rc == 0 or r.stdout.strip() else set() for r in results]
        assert not succeeded[0] & succeeded[1], "no item was redriven by both"
        assert succeeded[0] | succeeded[1] == set(ids), results
        assert not set(ids) & set(dlq_ids(plane)), "every item left the DLQ"
        # the plane's side: each item entered the stage once
        assert stage(plane, "validate")["queue_depth"] - queued_before == len(ids)
        losers = [r for r in results if r.rc != 0]
        for r in losers:
            assert len([line for line in r.stderr.splitlines() if line.startswith("error:")]) == 1, r
    finally:
        with api(plane, "operator") as client:
            client.post(f"/v1/pipelines/{PIPELINE}/stages/validate/resume", json={})


def test_many_concurrent_redrives_over_the_api_each_item_once(plane):
    """The same race without the CLI, 8 clients at once on overlapping id sets."""
    with api(plane, "operator") as client:
        assert client.post(f"/v1/pipelines/{PIPELINE}/stages/ship/pause", json={}).status_code == 200
    ids = dlq_ids(plane)[:10]
    assert ids
    try:
        with api(plane, "operator") as client:
            assert client.post(f"/v1/pipelines/{PIPELINE}/stages/validate/pause", json={}).status_code == 200
        # measured once both stages are paused, so their queues can only grow by what the redrives add
        queued_before = stage(plane, "validate")["queue_depth"] + stage(plane, "ship")["queue_depth"]

        def redrive(_: int) -> list[str]:
            with api(plane, "operator") as client:
                answer = client.post(f"/v1/pipelines/{PIPELINE}/dlq/redrive", json={"ids": ids})
                assert answer.status_code == 200, answer.text
                return answer.json()["succeeded"]

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(redrive, range(8)))
        assert time.monotonic() - started < 30
        flat = [i for part in done for i in part]
        assert sorted(flat) == sorted(ids), done
        queued_after = stage(plane, "validate")["queue_depth"] + stage(plane, "ship")["queue_depth"]
        assert queued_after - queued_before == len(ids)
    finally:
        with api(plane, "operator") as client:
            client.post(f"/v1/pipelines/{PIPELINE}/stages/validate/resume", json={})
            client.post(f"/v1/pipelines/{PIPELINE}/stages/ship/resume", json={})
