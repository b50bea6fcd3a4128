"""Replay from a stream queue into a stage, by offset and by time; unsupported without a stream."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pipelinectl.plugin_api import NotFoundError, ReplayRequest, UnsupportedError, UsageError


def _next_second() -> datetime:
    """Sleep into the next whole second (plus a margin); return that second."""
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.05)
    return datetime.fromtimestamp(int(time.time()), UTC)


def _log(admin, name: str, n: int, prefix: str) -> None:
    for i in range(n):
        admin.publish(name, {"id": f"{prefix}{i}"})


def test_replay_by_offset_and_time_into_the_real_consumer(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("rp1.orders")
    admin.declare("rp1.log", **{"x-queue-type": "stream"})
    driver = driver_for("/", queue_prefix="rp1.", replay_stream="rp1.log")
    # stream offsets by time are whole seconds: each batch is written in a second of its own
    _log(admin, "rp1.log", 5, "a")
    middle = _next_second()
    _log(admin, "rp1.log", 3, "b")
    end = _next_second()
    _log(admin, "rp1.log", 2, "c")
    _next_second()  # the replays below begin in a later second than the last write

    plan = driver.replay(ReplayRequest(pipeline="/", stage=q, from_offset=1, to_offset=4, dry_run=True))
    assert (plan.state, plan.total, plan.replayed) == ("planned", 3, 0)
    assert admin.depth(q) == 0  # a dry run publishes nothing

    worker = workers(q, tmp_path / "w.jsonl")
    job = driver.replay(ReplayRequest(pipeline="/", stage=q, from_offset=1, to_offset=4))
    assert (job.state, job.total, job.replayed, job.skipped) == ("completed", 3, 3, 0)
    worker.wait_for(lambda rows: sorted(worker.processed_ids()) == ["a1", "a2", "a3"])
    rows = {r["id"]: r for r in worker.rows("processed")}
    assert rows["a1"]["replay_of"] == "rp1.log:1" and rows["a1"]["dedupe"] == "replay:/:rp1.log:1"

    by_time = driver.replay(ReplayRequest(pipeline="/", stage=q, from_time=middle, to_time=end))
    assert (by_time.total, by_time.replayed) == (3, 3)
    worker.wait_for(lambda rows: {"b0", "b1", "b2"} <= set(worker.processed_ids()))
    open_ended = driver.replay(ReplayRequest(pipeline="/", stage=q, from_time=end, dry_run=True))
    assert open_ended.total == 2, open_ended
    _next_second()
    _log(admin, "rp1.log", 1, "d")  # written in the second the next replay begins: still part of it
    same_second = driver.replay(ReplayRequest(pipeline="/", stage=q, from_time=end, dry_run=True))
    assert same_second.total == 3, same_second
    whole = driver.replay(ReplayRequest(pipeline="/", stage=q, from_offset=0, dry_run=True))
    assert whole.total == 11  # the stream was only read: it holds the 11 messages written to it


def test_replay_is_unsupported_without_a_stream(admin, driver_for):
    q = admin.pipeline("rp2.orders")
    admin.declare("rp2.classic")
    request = ReplayRequest(pipeline="/", stage=q, from_offset=0, to_offset=5)
    with pytest.raises(UnsupportedError, match="only a stream queue") as err:
        driver_for("/", queue_prefix="rp2.").replay(request)
    assert "'replay' is not supported by the rabbitmq driver" in err.value.one_line()
    with pytest.raises(UnsupportedError, match="is a classic queue, not a stream"):
        driver_for("/", queue_prefix="rp2.", replay_stream="rp2.classic").replay(request)
    with pytest.raises(NotFoundError, match="replay source 'rp2.none' not found"):
        driver_for("/", queue_prefix="rp2.", replay_stream="rp2.none").replay(request)
    driver = driver_for("/", queue_prefix="rp2.", replay_stream="rp2.classic")
    with pytest.raises(UsageError, match="range is empty"):
        driver.replay(ReplayRequest(pipeline="/", stage=q, from_offset=5, to_offset=5))
    with pytest.raises(UsageError, match="not both or neither"):
        driver.replay(ReplayRequest(pipeline="/", stage=q))
    with pytest.raises(NotFoundError):
        driver.replay(ReplayRequest(pipeline="/", stage="rp2.nope", from_offset=0))
