"""A flaky network between the CLI and a real plane (tests/support/faultproxy.py).

Reads ride out drops, resets, 503s and 429s inside --timeout; a write whose
answer was lost is retried with the same idempotency key and lands once;
past the deadline the CLI says so in one line and exits 6 (unavailable).
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.plane import PIPELINE, api, dlq_ids, stage, start_quiet_plane, use_context
from tests.support.cli import CliEnv
from tests.support.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    server = start_quiet_plane(tmp_path_factory.mktemp("plane"), seed_dlq=1200)  # > 2 pages of 500
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


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


DRY = '"dry_run":true'  # faults spare the dry-run plan a verb sends first and hit the real write
READS = {
    "status": ("status", "-o", "json"),
    "dlq list": ("dlq", "list", "-o", "json"),
    "saga list": ("saga", "list", "-o", "json"),
}


@pytest.mark.parametrize("argv", READS.values(), ids=READS.keys())
def test_reads_succeed_through_drops_resets_503_and_429(operator, proxy, argv):
    proxy.add(Fault("drop"), Fault("reset"), Fault("status", status=503),
              Fault("status", status=429, retry_after=1))
    started = time.monotonic()
    result = operator.run(*argv, "--timeout", "25")
    assert result.rc == 0, result
    assert "Traceback" not in result.output
    data = result.json()
    assert data.get("items") is not None or data.get("kind"), data
    assert proxy.pending() == 0, "every injected fault was hit"
    actions = [seen.action for seen in proxy.log]
    assert actions[:4] == ["drop", "reset", "status", "status"], actions
    assert "pass" in actions
    # Retry-After: 1 was honoured: the request after the 429 came at least 1 s later
    after_429 = proxy.log[4].at - proxy.log[3].at
    assert after_429 >= 0.95, after_429
    assert time.monotonic() - started < 25


def test_a_hung_attempt_is_abandoned_and_retried_inside_the_deadline(operator, proxy):
    proxy.add(Fault("hang", delay=60))
    result = operator.run("dlq", "list", "-o", "json", "--timeout", "15")
    assert result.rc == 0, result
    assert [s.action for s in proxy.log][:2] == ["hang", "pass"]


def test_streamed_list_survives_faults_between_pages_without_gaps_or_repeats(operator, proxy, plane):
    """A reset on page 2 and a 503 on page 3 of `dlq list -o jsonl`: each page is retried with its token."""
    pages = f"GET /v1/pipelines/{PIPELINE}/dlq?"
    proxy.add(Fault("pass", match=pages), Fault("reset", match=pages), Fault("pass", match=pages),
              Fault("status", status=503, match=pages))
    expected = dlq_ids(plane)
    assert len(expected) > 1000
    result = operator.run("dlq", "list", "-o", "jsonl", "--timeout", "30")
    assert result.rc == 0, result
    listed = [item["id"] for item in result.jsonl()]
    assert listed == expected, "every item once, in order"
    assert proxy.pending() == 0
    assert [s.action for s in proxy.requests(pages)][:4] == ["pass", "reset", "pass", "status"]


def test_write_whose_answer_was_lost_is_applied_once(operator, proxy, plane):
    before = stage(plane, "charge")
    target = before["parallelism"] % before["max_parallelism"] + 1
    proxy.add(Fault("lose_response", match=f"POST /v1/pipelines/{PIPELINE}/stages/charge/scale"))
    result = operator.run("scale", "charge", "--parallelism", str(target), "--timeout", "20")
    assert result.rc == 0, result
    posts = proxy.requests(f"POST /v1/pipelines/{PIPELINE}/stages/charge/scale")
    assert [p.action for p in posts] == ["lose_response", "pass"]
    keys = {p.header("idempotency-key") for p in posts}
    assert len(keys) == 1 and None not in keys, "the retry carried the same Idempotency-Key"
    after = stage(plane, "charge")
    assert after["parallelism"] == target
    assert after["version"] == before["version"] + 1, "applied exactly once"


def test_replay_whose_answer_was_lost_creates_one_job(operator, proxy, plane):
    with api(plane, "viewer") as client:
        jobs_before = {j["id"] for j in client.get(f"/v1/pipelines/{PIPELINE}/replays").json()["items"]}
    real = f"POST /v1/pipelines/{PIPELINE}/replays$"
    proxy.add(Fault("lose_response", match=real, unless_body=DRY), Fault("reset", match=real, unless_body=DRY))
    result = operator.run("replay", "--from-offset", "0", "--to-offset", "3", "--yes", "-o", "json",
                          "--timeout", "20")
    assert result.rc == 0, result
    posts = [p for p in proxy.requests(real[:-1]) if DRY.encode() not in p.body.replace(b" ", b"")]
    assert [p.action for p in posts] == ["lose_response", "reset", "pass"]
    assert len({p.header("idempotency-key") for p in posts}) == 1, "one key on every retry"
    with api(plane, "viewer") as client:
        jobs_after = {j["id"] for j in client.get(f"/v1/pipelines/{PIPELINE}/replays").json()["items"]}
    assert len(jobs_after - jobs_before) == 1, (jobs_before, jobs_after)


def test_redrive_whose_answer_was_lost_moves_each_item_once(operator, proxy, plane):
    ids = [i for i in dlq_ids(plane)][:3]
    assert len(ids) == 3
    validate_before = stage(plane, "validate")
    real = f"POST /v1/pipelines/{PIPELINE}/dlq/redrive$"
    proxy.add(Fault("lose_response", match=real, unless_body=DRY))
    result = operator.run("dlq", "redrive", *ids, "--yes", "-o", "json", "--timeout", "20")
    assert result.rc == 0, result
    body = result.json()
    assert sorted(body["succeeded"]) == sorted(ids), body
    assert not set(ids) & set(dlq_ids(plane))
    posts = [p for p in proxy.requests(real[:-1]) if DRY.encode() not in p.body.replace(b" ", b"")]
    assert [p.action for p in posts] == ["lose_response", "pass"]
    assert posts[0].header("idempotency-key") == posts[1].header("idempotency-key")
    validate_after = stage(plane, "validate")
    # each redriven item entered the stage once: processed + failed + queued grew by 3, not 6
    def seen(s):
        return s["processed"] + s["failed"] + s["queue_depth"] + s["in_flight"]
    deadline = time.monotonic() + 10
    while seen(validate_after) - seen(validate_before) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        validate_after = stage(plane, "validate")
    time.sleep(0.5)
    validate_after = stage(plane, "validate")
    assert seen(validate_after) - seen(validate_before) == 3, (validate_before, validate_after)


def _sagas(plane, *statuses: str) -> list[str]:
    with api(plane, "viewer") as client:
        items = client.get(f"/v1/pipelines/{PIPELINE}/sagas", params={"page_size": 1000}).json()["items"]
    return [s["id"] for s in items if s["status"] in statuses]


def _events(plane, saga_id: str, kind: str) -> int:
    with api(plane, "viewer") as client:
        saga = client.get(f"/v1/pipelines/{PIPELINE}/sagas/{saga_id}").json()
    return sum(1 for e in saga["events"] if e["type"] == kind)


@pytest.mark.parametrize("verb, statuses, event, role", [
    ("retry", ("failed",), "retry", "operator"),
    ("force-fail", ("stuck",), "force_fail", "admin"),
])
def test_saga_verb_whose_answer_was_lost_acts_once(tmp_path, plane, proxy, verb, statuses, event, role):
    deadline = time.monotonic() + 120
    while not (candidates := _sagas(plane, *statuses)):  # the demo makes them; never skip, wait for one
        assert time.monotonic() < deadline, f"the demo made no saga in {statuses} within 120s"
        time.sleep(0.5)
    saga_id = candidates[0]
    cli = CliEnv(tmp_path / role)
    use_context(cli, "flaky", proxy.url, plane.tokens[role])
    before = _events(plane, saga_id, event)
    real = f"POST /v1/pipelines/{PIPELINE}/sagas/{saga_id}/{verb}$"
    proxy.add(Fault("lose_response", match=real, unless_body=DRY))
    result = cli.run("saga", verb, saga_id, "--reason", "fault drill", "--yes", "--timeout", "20")
    assert result.rc == 0, result
    posts = [p for p in proxy.requests(real[:-1]) if DRY.encode() not in p.body.replace(b" ", b"")]
    assert [p.action for p in posts] == ["lose_response", "pass"], posts
    assert posts[0].header("idempotency-key") == posts[1].header("idempotency-key")
    assert _events(plane, saga_id, event) == before + 1, "the plane recorded the verb once"


def _every_write(plane) -> dict[str, tuple[str, ...]]:
    ids = dlq_ids(plane)
    stuck = _sagas(plane, "stuck")
    # (replay cancel is left out: a short demo replay finishes before it could be cancelled)
    verbs = {
        "pause": ("pause", "notify"),
        "resume": ("resume", "notify"),
        "drain": ("drain", "notify"),
        "scale": ("scale", "notify", "--parallelism", "2"),
        "replay": ("replay", "--from-offset", "0", "--to-offset", "2", "--yes"),
        "dlq redrive": ("dlq", "redrive", ids[-1], "--yes"),
        "dlq purge": ("dlq", "purge", ids[-2], "--yes"),
    }
    if stuck:
        verbs["saga force-complete"] = ("saga", "force-complete", stuck[-1], "--reason", "fault drill", "--yes")
    return verbs


def test_every_write_whose_answer_was_lost_is_replayed_not_redone(tmp_path, plane, proxy):
    """Each mutating verb: answer lost once; the retry carries the same key and the plane answers from its
    idempotency store (Idempotent-Replayed: true) instead of acting again."""
    cli = CliEnv(tmp_path)
    use_context(cli, "flaky-admin", proxy.url, plane.tokens["admin"])
    for name, argv in _every_write(plane).items():
        proxy.reset_log()
        proxy.clear()
        proxy.add(Fault("lose_response", match="POST", unless_body=DRY))
        result = cli.run(*argv, "--timeout", "20")
        assert result.rc == 0, (name, result)
        writes = [s for s in proxy.requests("POST") if DRY.encode() not in s.body.replace(b" ", b"")]
        assert [w.action for w in writes] == ["lose_response", "pass"], (name, writes)
        first, retry = writes
        assert first.header("idempotency-key") and first.header("idempotency-key") == retry.header("idempotency-key")
        assert retry.answer_status is not None and retry.answer_status < 300, (name, retry.answer_head)
        assert (retry.answer_header("idempotent-replayed") or "").lower() == "true", (name, retry.answer_head)


def test_past_the_deadline_exit_6_in_one_line(operator, proxy):
    proxy.add(Fault("hang", delay=60, times=None))
    started = time.monotonic()
    result = operator.run("dlq", "list", "--timeout", "2")
    spent = time.monotonic() - started
    assert result.rc == 6, result
    line = _one_error_line(result.stderr)
    assert "2s" in line or "deadline" in line or "timed out" in line, line
    assert spent < 8, spent
    assert result.stdout == ""


def test_persistent_503_gives_up_inside_the_deadline_with_exit_6(operator, proxy):
    proxy.add(Fault("status", status=503, times=None))
    started = time.monotonic()
    result = operator.run("dlq", "list", "--timeout", "4")
    assert result.rc == 6, result
    assert time.monotonic() - started < 10
    line = _one_error_line(result.stderr)
    assert "503" in line or "unavailable" in line.lower() or "injected" in line, line
    assert len([s for s in proxy.log if s.action == "status"]) >= 2, "it retried before giving up"


def test_retry_after_past_the_deadline_fails_fast(operator, proxy):
    proxy.add(Fault("status", status=429, retry_after=120, times=None))
    started = time.monotonic()
    result = operator.run("dlq", "list", "--timeout", "5")
    assert result.rc == 6, result
    assert time.monotonic() - started < 5, "it did not sleep into a Retry-After past its deadline"
    line = _one_error_line(result.stderr)
    assert "120" in line, line


def test_unreachable_plane_exit_6(tmp_path, plane):
    from tests.support.faultproxy import free_port

    cli = CliEnv(tmp_path)
    use_context(cli, "gone", f"http://127.0.0.1:{free_port()}", plane.tokens["viewer"])
    result = cli.run("dlq", "list", "--timeout", "3")
    assert result.rc == 6, result
    line = _one_error_line(result.stderr)
    assert "refused" in line or "cannot reach" in line, line
