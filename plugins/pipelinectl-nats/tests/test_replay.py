"""replay by sequence and by time: a temporary reader, republish with Nats-Msg-Id dedupe."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pipelinectl.plugin_api import NotFoundError, ReplayRequest, UnavailableError, UsageError

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def _pipeline(admin, stream: str) -> None:
    admin.add_stream(stream, [f"{stream.lower()}.>"], duplicate_window=int(120e9))
    admin.add_consumer(stream, "parse", filter_subject=f"{stream.lower()}.in")


def test_replayed_range_is_processed_again_exactly_once(admin, driver_for, workers, tmp_path):
    _pipeline(admin, "RP1")
    worker = workers("RP1", "parse", tmp_path / "w.jsonl")
    for i in range(1, 11):
        admin.publish("rp1.in", {"id": f"m{i}"}, headers={"Nats-Msg-Id": f"orig-{i}", "Trace": f"t{i}"})
    admin.publish("rp1.other", {"id": "not-for-this-stage"})
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 10)
    driver = driver_for("RP1")

    plan = driver.replay(ReplayRequest(pipeline="RP1", stage="parse", from_offset=3, to_offset=8, dry_run=True))
    assert (plan.state, plan.total, plan.replayed, plan.from_offset, plan.to_offset) == ("planned", 5, 0, 3, 8)
    assert admin.stream("RP1")["state"]["last_seq"] == 11  # a dry run publishes nothing

    job = driver.replay(ReplayRequest(pipeline="RP1", stage="parse", from_offset=3, to_offset=8))
    assert (job.state, job.total, job.replayed, job.skipped) == ("completed", 5, 5, 0)
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 15)
    replays = [r for r in worker.rows("processed") if r["replay_of"]]
    assert sorted(r["id"] for r in replays) == [f"m{i}" for i in range(3, 8)]
    assert sorted(r["replay_of"] for r in replays) == sorted(f"RP1:{i}" for i in range(3, 8))

    import base64

    from pipelinectl_nats.link import decode_headers

    copy = admin.api("STREAM.MSG.GET.RP1", {"last_by_subj": "rp1.in"})["message"]
    headers = decode_headers(base64.b64decode(copy["hdrs"]))
    assert headers == {"Trace": "t7", "Nats-Msg-Id": "pipelinectl-replay:RP1:7", "Pipelinectl-Replay-Of": "RP1:7"}
    assert base64.b64decode(copy["data"]) == b'{"id": "m7"}'

    again = driver.replay(ReplayRequest(pipeline="RP1", stage="parse", from_offset=3, to_offset=8))
    assert (again.total, again.replayed, again.skipped) == (5, 0, 5)
    time.sleep(1.0)
    assert len(worker.processed_ids()) == 15  # inside the duplicate window: nothing twice
    assert admin.consumer_names("RP1") == ["parse"]  # the temporary readers are gone


def test_open_ended_replay_stops_at_the_end_it_saw(admin, driver_for):
    _pipeline(admin, "RP2")
    for i in range(1, 6):
        admin.publish("rp2.in", {"id": f"m{i}"})
    job = driver_for("RP2").replay(ReplayRequest(pipeline="RP2", stage="parse", from_offset=4))
    assert (job.total, job.replayed, job.from_offset, job.to_offset) == (2, 2, 4, 6)
    assert admin.stream("RP2")["state"]["last_seq"] == 7  # it did not chase its own copies


def test_replay_by_time(admin, driver_for):
    _pipeline(admin, "RP3")
    for i in range(1, 4):
        admin.publish("rp3.in", {"id": f"old{i}"})
    time.sleep(0.3)
    start = datetime.now(UTC)
    for i in range(1, 4):
        admin.publish("rp3.in", {"id": f"new{i}"})
    time.sleep(0.3)
    end = datetime.now(UTC)
    admin.publish("rp3.in", {"id": "later"})
    job = driver_for("RP3").replay(ReplayRequest(pipeline="RP3", from_time=start, to_time=end))
    assert (job.stage, job.total, job.replayed, job.from_offset, job.to_offset) == ("parse", 3, 3, 4, 7)


def test_replay_validation(admin, driver_for):
    _pipeline(admin, "RP4")
    driver = driver_for("RP4")
    with pytest.raises(UsageError, match="not both or neither"):
        driver.replay(ReplayRequest(pipeline="RP4"))
    with pytest.raises(UsageError, match="range is empty"):
        driver.replay(ReplayRequest(pipeline="RP4", from_offset=5, to_offset=5))
    with pytest.raises(NotFoundError):
        driver.replay(ReplayRequest(pipeline="RP4", stage="nope", from_offset=1))


def test_temporary_reader_is_removed_when_the_replay_fails(admin, driver_for):
    _pipeline(admin, "RP5")
    for i in range(3):
        admin.publish("rp5.in", {"id": str(i)})
    # republishing to a subject no stream captures cannot be acknowledged
    driver = driver_for("RP5", timeout=1.5, stage_subjects={"parse": "nowhere.in"}, request_timeout=0.5)
    with pytest.raises(UnavailableError):
        driver.replay(ReplayRequest(pipeline="RP5", stage="parse", from_offset=1))
    assert admin.consumer_names("RP5") == ["parse"]


def test_a_jetstream_domain_is_reached_on_its_own_api_prefix(server_factory, tmp_path, driver_for):
    conf = tmp_path / "domain.conf"
    conf.write_text("jetstream { domain: hub }\n")
    srv = server_factory("-c", str(conf))
    driver = driver_for("DOM", url=srv.url, domain="hub")
    traced: list[str] = []
    driver.link.connection.trace = traced.append
    run, api = driver.link.run, driver.link.api
    run(api("STREAM.CREATE.DOM", {"name": "DOM", "subjects": ["dom.>"]}))
    run(api("CONSUMER.CREATE.DOM.parse", {"stream_name": "DOM", "config": {
        "durable_name": "parse", "ack_policy": "explicit", "filter_subject": "dom.in"}}))
    for _ in range(3):
        run(driver.link.publish("dom.in", b"{}", {}))
    job = driver.replay(ReplayRequest(pipeline="DOM", stage="parse", from_offset=1))
    assert (job.total, job.replayed) == (3, 3)
    assert all(".API." not in line or "$JS.hub.API." in line for line in traced)
    wrong = driver_for("DOM", url=srv.url, domain="elsewhere", timeout=1.0, request_timeout=0.5)
    with pytest.raises(UnavailableError):
        wrong.status()
