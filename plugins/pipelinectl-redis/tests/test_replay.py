"""Replay: a rewind of the group where that is exact, a deduplicated republish where it is not."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pipelinectl_redis import conventions as cv
from pipelinectl_redis.testing import add_entries

from pipelinectl.plugin_api import ReplayRequest, UsageError


def _snapshot(admin, stream: str) -> tuple:
    """Everything a replay could change: the stream, its groups, the dedupe hashes."""
    groups = [(g["name"], g["last-delivered-id"], g["entries-read"], g["pending"]) for g in admin.xinfo_groups(stream)]
    dedupe = sorted(admin.scan_iter(match=f"pipelinectl:replayed:{{{stream}}}:*"))
    return admin.xlen(stream), admin.xinfo_stream(stream)["last-generated-id"], groups, dedupe


def _settled(admin, stream: str, timeout: float = 10.0) -> None:
    """Until every group has acked what it read: a worker logs an entry just before its XACK."""
    deadline = time.monotonic() + timeout
    while any(g["pending"] for g in admin.xinfo_groups(stream)):
        assert time.monotonic() < deadline, f"{stream}: entries still pending after {timeout}s"
        time.sleep(0.02)


def _consume(admin, stream: str, group: str, n: int) -> None:
    got = admin.xreadgroup(group, "c1", {stream: ">"}, count=n)
    admin.xack(stream, group, *[entry_id for entry_id, _ in got[0][1]])


def test_rewind_when_the_range_reaches_the_last_delivered_entry(admin, driver_for, workers, tmp_path):
    admin.xgroup_create("rp1:in", "parse", id="0", mkstream=True)
    admin.xgroup_create("rp1:in", "audit", id="0")
    worker = workers("rp1:in", "parse", tmp_path / "w.jsonl")
    ids = add_entries(admin, "rp1:in", 8)
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 8)
    _settled(admin, "rp1:in")
    driver = driver_for("rp1")
    before = _snapshot(admin, "rp1:in")

    plan = driver.replay_ids("rp1", "parse", ids[5], None, dry_run=True)
    assert plan.id.startswith("rewind-") and (plan.total, plan.state) == (3, "planned")
    assert _snapshot(admin, "rp1:in") == before  # the dry run changed nothing

    job = driver.replay_ids("rp1", "parse", ids[5], None)
    assert (job.total, job.replayed, job.state) == (3, 3, "completed")
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 11)
    assert worker.processed_ids()[8:] == ["e5", "e6", "e7"]
    assert admin.xlen("rp1:in") == 8  # nothing copied
    [parse] = [g for g in admin.xinfo_groups("rp1:in") if g["name"] == b"parse"]
    assert parse["lag"] == 0 and parse["entries-read"] == 8  # ENTRIESREAD kept the lag exact
    [audit] = [g for g in admin.xinfo_groups("rp1:in") if g["name"] == b"audit"]
    assert audit["last-delivered-id"] == b"0-0"  # the other group was not touched


def test_republish_when_the_range_ends_before_it_and_never_twice(admin, driver_for, workers, tmp_path):
    admin.xgroup_create("rp2:in", "parse", id="0", mkstream=True)
    admin.xgroup_create("rp2:in", "audit", id="0")
    always = tmp_path / "always-ok"
    always.touch()
    worker = workers("rp2:in", "parse", tmp_path / "w.jsonl")
    auditor = workers("rp2:in", "audit", tmp_path / "a.jsonl", consumer="a1", fix_file=always)
    ids = add_entries(admin, "rp2:in", 10)
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 10)
    auditor.wait_for(lambda rows: len(auditor.processed_ids()) == 10)
    _settled(admin, "rp2:in")
    driver = driver_for("rp2")
    before = _snapshot(admin, "rp2:in")

    plan = driver.replay_ids("rp2", "parse", ids[2], ids[6], dry_run=True)
    assert plan.id.startswith("republish-") and (plan.total, plan.skipped) == (4, 0)
    assert _snapshot(admin, "rp2:in") == before

    job = driver.replay_ids("rp2", "parse", ids[2], ids[6])
    assert (job.total, job.replayed, job.skipped) == (4, 4, 0)
    assert admin.xlen("rp2:in") == 14
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 14)
    copies = [r for r in worker.rows("processed") if r["replay_of"]]
    assert sorted(r["replay_of"] for r in copies) == sorted(ids[2:6])
    auditor.wait_for(lambda rows: len(auditor.rows("foreign")) == 4)
    assert len(auditor.processed_ids()) == 10  # the copies were for parse only

    # the same range again, and an overlapping one that also holds the copies: nothing twice
    again = driver.replay_ids("rp2", "parse", ids[2], ids[6], dry_run=True)
    assert (again.total, again.skipped) == (4, 4)
    assert (driver.replay_ids("rp2", "parse", ids[2], ids[6]).replayed, admin.xlen("rp2:in")) == (0, 14)
    wider = driver.replay_ids("rp2", "parse", ids[0], ids[8])
    assert (wider.total, wider.replayed, wider.skipped) == (8, 4, 4)
    assert admin.xlen("rp2:in") == 18
    seen = admin.hgetall("pipelinectl:replayed:{rp2:in}:parse")
    assert sorted(k.decode() for k in seen) == sorted(ids[0:8])
    assert admin.pttl("pipelinectl:replayed:{rp2:in}:parse") > 6 * 24 * 3600 * 1000


def test_replay_by_time_and_by_offset_milliseconds(admin, driver_for):
    admin.xgroup_create("rp3:in", "parse", id="0", mkstream=True)
    ids = add_entries(admin, "rp3:in", 5)
    _consume(admin, "rp3:in", "parse", 5)
    driver = driver_for("rp3")
    start = cv.id_time(ids[0])
    plan = driver.replay(ReplayRequest(pipeline="rp3", stage="parse", from_time=start,
                                       to_time=start - timedelta(seconds=-3600), dry_run=True))
    assert plan.id.startswith("rewind-") and plan.total == 5
    ms = cv.parse_id(ids[0])[0]
    by_offset = driver.replay(ReplayRequest(pipeline="rp3", stage="parse", from_offset=ms, to_offset=ms + 3600_000,
                                            dry_run=True))
    assert by_offset.total == 5 and by_offset.from_offset == ms


def test_nothing_to_replay_and_bad_ranges(admin, driver_for):
    admin.xgroup_create("rp4:in", "parse", id="0", mkstream=True)
    ids = add_entries(admin, "rp4:in", 3)
    driver = driver_for("rp4")
    plan = driver.replay_ids("rp4", "parse", ids[0], None, dry_run=True)
    assert plan.total == 0 and plan.id.startswith("none-")  # not delivered yet: it will be, without a replay
    with pytest.raises(UsageError, match="not a stream id"):
        driver.replay_ids("rp4", "parse", "yesterday", None)
    with pytest.raises(UsageError, match="range is empty"):
        driver.replay_ids("rp4", "parse", ids[2], ids[0])
    with pytest.raises(UsageError, match="not both or neither"):
        driver.replay(ReplayRequest(pipeline="rp4"))


def test_previous_id():
    assert cv.previous_id("5-3") == "5-2"
    assert cv.previous_id("5-0") == f"4-{2**64 - 1}"
    assert cv.previous_id("0-0") == "0-0"
    assert cv.previous_id("7") == f"6-{2**64 - 1}"
