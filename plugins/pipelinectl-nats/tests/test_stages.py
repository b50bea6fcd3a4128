"""status, pause/resume and scale against a real nats-server and a real worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from pipelinectl.plugin_api import NotFoundError, SagaFilter, StaleVersionError, UnsupportedError, UsageError

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it


def _setup(admin, stream: str, consumer: str = "parse", **config) -> None:
    admin.add_stream(stream, [f"{stream.lower()}.>"])
    admin.add_consumer(stream, consumer, filter_subject=f"{stream.lower()}.in", **config)


def test_status_maps_stream_and_consumer(admin, driver_for):
    _setup(admin, "ST1", max_ack_pending=7, max_deliver=4, ack_wait=int(3e9))
    for i in range(5):
        admin.publish("st1.in", {"id": str(i)})
    [pipeline] = driver_for("ST1").status()
    assert pipeline.name == "ST1" and pipeline.driver == "nats"
    assert pipeline.input_offset == 6
    assert pipeline.details["subjects"] == ["st1.>"]
    [stage] = pipeline.stages
    assert (stage.name, stage.state, stage.parallelism, stage.queue_depth, stage.in_flight) == ("parse", "running", 7, 5, 0)
    assert stage.details["max_deliver"] == 4 and stage.details["ack_wait_seconds"] == 3.0
    assert stage.details["filter_subjects"] == ["st1.in"]
    assert stage.details["dlq"].startswith("not set up")
    assert stage.to_dict()["kind"] == "Stage"


def test_unknown_pipeline_and_stage_are_not_found(admin, driver_for):
    _setup(admin, "ST2")
    driver = driver_for()
    with pytest.raises(NotFoundError, match="pipeline 'NOPE' not found"):
        driver.get_stage("NOPE", "parse")
    with pytest.raises(NotFoundError, match="stage 'nope' not found in pipeline 'ST2'"):
        driver.pause("ST2", "nope")
    with pytest.raises(UsageError, match="not a valid consumer name"):
        driver.pause("ST2", "a.b")


def test_sagas_and_drain_are_unsupported(driver_for):
    driver = driver_for("X")
    with pytest.raises(UnsupportedError, match="not supported by the nats driver"):
        driver.saga_list(SagaFilter(pipeline="X"))
    with pytest.raises(UnsupportedError):
        driver.drain("X", "parse")


def test_paused_stage_receives_nothing_until_resumed(admin, driver_for, workers, tmp_path):
    _setup(admin, "ST3")
    worker = workers("ST3", "parse", tmp_path / "w.jsonl")
    driver = driver_for("ST3")
    admin.publish("st3.in", {"id": "before"})
    worker.wait_for(lambda rows: any(r.get("id") == "before" for r in rows))

    stage = driver.pause("ST3", "parse")
    assert stage.state == "paused" and stage.paused_until is None and stage.details["pause_indefinite"]
    for i in range(5):
        admin.publish("st3.in", {"id": f"p{i}"})
    time.sleep(2.0)
    assert worker.processed_ids() == ["before"]
    status = driver.get_stage("ST3", "parse")
    assert status.state == "paused" and status.queue_depth == 5

    assert driver.resume("ST3", "parse").state == "running"
    worker.wait_for(lambda rows: len([r for r in rows if r["action"] == "processed"]) == 6)
    assert sorted(worker.processed_ids()) == sorted(["before"] + [f"p{i}" for i in range(5)])


def test_pause_until_shows_remaining_and_expires(admin, driver_for, workers, tmp_path):
    _setup(admin, "ST4")
    driver = driver_for("ST4")
    until = datetime.now(UTC) + timedelta(seconds=3)
    stage = driver.pause("ST4", "parse", until=until)
    assert stage.state == "paused"
    assert abs((stage.paused_until - until).total_seconds()) < 0.01
    assert 0 < stage.details["pause_remaining_seconds"] <= 3
    worker = workers("ST4", "parse", tmp_path / "w.jsonl")
    admin.publish("st4.in", {"id": "held"})
    time.sleep(1.0)
    assert worker.processed_ids() == []
    worker.wait_for(lambda rows: worker.processed_ids() == ["held"], timeout=10)
    assert time.time() >= until.timestamp() - 0.05
    assert driver.get_stage("ST4", "parse").state == "running"


def test_pause_refuses_past_until_and_dry_run_changes_nothing(admin, driver_for):
    _setup(admin, "ST5")
    driver = driver_for("ST5")
    with pytest.raises(UsageError, match="in the past"):
        driver.pause("ST5", "parse", until=datetime.now(UTC) - timedelta(minutes=1))
    planned = driver.pause("ST5", "parse", dry_run=True)
    assert planned.state == "paused"
    assert admin.consumer("ST5", "parse").get("paused") in (None, False)


def test_scale_sends_full_config_and_changes_only_max_ack_pending(admin, driver_for):
    _setup(admin, "ST6", max_ack_pending=10, max_deliver=5, ack_wait=int(7e9), description="parser",
           backoff=[int(1e9), int(2e9)], metadata={"team": "orders"}, max_waiting=64, inactive_threshold=0)
    driver = driver_for("ST6")
    before = admin.consumer("ST6", "parse")["config"]
    stage = driver.scale("ST6", "parse", 3)
    after = admin.consumer("ST6", "parse")["config"]
    assert stage.parallelism == 3 and after["max_ack_pending"] == 3
    strip = lambda c: {k: v for k, v in c.items() if k not in ("max_ack_pending", "metadata")}  # noqa: E731
    assert strip(after) == strip(before)
    user_meta = lambda c: {k: v for k, v in c["metadata"].items() if not k.startswith("_nats")}  # noqa: E731
    assert user_meta(after) == user_meta(before) == {"team": "orders"}


def test_scale_refuses_invalid_values_and_changes_nothing(admin, driver_for):
    admin.add_stream("ST7", ["st7.>"], consumer_limits={"max_ack_pending": 20})
    admin.add_consumer("ST7", "parse", filter_subject="st7.in", max_ack_pending=5)
    driver = driver_for("ST7")
    for bad in (0, -1, True, 2.5):
        with pytest.raises(UsageError, match="whole number >= 1"):
            driver.scale("ST7", "parse", bad)
    with pytest.raises(UsageError, match="exceeds the stream's consumer limit max_ack_pending=20"):
        driver.scale("ST7", "parse", 21)
    stage = driver.get_stage("ST7", "parse")
    assert stage.max_parallelism == 20
    with pytest.raises(StaleVersionError):
        driver.scale("ST7", "parse", 6, expected_version=stage.version + 1)
    assert admin.consumer("ST7", "parse")["config"]["max_ack_pending"] == 5
    assert driver.scale("ST7", "parse", 6, expected_version=stage.version).parallelism == 6


def test_scale_is_observed_in_real_processing(admin, driver_for, workers, tmp_path):
    _setup(admin, "ST8", max_ack_pending=1)
    worker = workers("ST8", "parse", tmp_path / "w.jsonl", delay=0.25)
    driver = driver_for("ST8")
    for i in range(4):
        admin.publish("st8.in", {"id": f"a{i}"})
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 4)
    assert max(r["inflight"] for r in worker.rows("processed")) == 1

    driver.scale("ST8", "parse", 4)
    for i in range(8):
        admin.publish("st8.in", {"id": f"b{i}"})
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 12)
    peak = max(r["inflight"] for r in worker.rows("processed") if r["id"].startswith("b"))
    assert 2 <= peak <= 4


def test_scale_above_the_server_limit_is_refused_by_the_server(server_factory, tmp_path, driver_for):
    """A limit only the server knows (its jetstream config): its refusal comes back as a usage error."""
    conf = tmp_path / "limits.conf"
    conf.write_text("jetstream { limits { max_ack_pending: 50 } }\n")
    srv = server_factory("-c", str(conf))
    driver = driver_for("LIM", url=srv.url)
    run, api = driver.link.run, driver.link.api
    run(api("STREAM.CREATE.LIM", {"name": "LIM", "subjects": ["lim.>"]}))
    run(api("CONSUMER.CREATE.LIM.parse", {"stream_name": "LIM", "config": {
        "durable_name": "parse", "ack_policy": "explicit", "max_ack_pending": 10}}))
    with pytest.raises(UsageError) as err:
        driver.scale("LIM", "parse", 100)
    text = err.value.one_line()
    assert "refused max_ack_pending=100" in text and "exceeds system limit of 50" in text and "nothing was changed" in text
    assert driver.get_stage("LIM", "parse").parallelism == 10
    assert driver.scale("LIM", "parse", 50).parallelism == 50


def test_a_context_may_name_several_streams(admin, driver_for):
    admin.add_stream("MS1", ["ms1.>"])
    admin.add_stream("MS2", ["ms2.>"])
    driver = driver_for("MS1, MS2")
    assert [p.name for p in driver.status()] == ["MS1", "MS2"]
    with pytest.raises(UsageError, match="choose one pipeline"):
        driver.pause("MS1,MS2", "parse")
