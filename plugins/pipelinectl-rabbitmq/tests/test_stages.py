"""Status, pause/resume and scale against a real node and real consumers that follow the convention."""

from __future__ import annotations

import time

import pytest
from pipelinectl_rabbitmq.testing import wait

from pipelinectl.plugin_api import ConditionNotMetError, NotFoundError, StaleVersionError, UsageError


def test_status_numbers_match_the_management_api(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("st1.orders")
    admin.declare("st1.log", **{"x-queue-type": "stream"})
    for i in range(5):
        admin.publish(q, {"id": f"m{i}"})
    admin.publish(f"{q}.dlq", {"id": "dead"})
    driver = driver_for("/", queue_prefix="st1.")
    # the management API's numbers are refreshed every statistics interval (1 s on the test node)
    stage = wait(lambda: (s := driver.get_stage("/", q)).queue_depth == 5 and s.dlq_size == 1 and s)
    [pipeline] = driver.status()
    assert pipeline.name == "/" and [s.name for s in pipeline.stages] == [q]  # not the DLQ, not the stream
    assert "st1.log" in pipeline.details["streams"] and f"{q}.dlq" in pipeline.details["dlq_queues"]
    assert (stage.queue_depth, stage.in_flight, stage.details["consumers"], stage.state) == (5, 0, 0, "running")
    assert stage.details["dead_letter_exchange"] == f"{q}.dlx" and stage.details["dlq_queue"] == f"{q}.dlq"
    assert stage.dlq_size == stage.details["dlq_depth"] == 1
    assert pipeline.dlq_size >= 1

    worker = workers(q, tmp_path / "w.jsonl", delay=0.3, prefetch=2)
    worker.wait_for(lambda rows: len(worker.processed_ids()) >= 1)
    seen = wait(lambda: (s := driver.get_stage("/", q)).details["consumers"] and s)  # what pipelinectl says ...
    assert seen.details["consumers"] == admin.consumers(q) == 1  # ... and what the queue says
    assert seen.details["consumer_prefetch"] == [2] and seen.parallelism == 2
    assert seen.in_flight <= 2 and seen.queue_depth + seen.in_flight <= 5
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 5)
    done = wait(lambda: (s := driver.get_stage("/", q)).details["acked"] == 5 and s, timeout=20)
    assert done.processed == 5 and done.queue_depth == 0 and done.details["published"] == 5
    assert set(done.details) >= {"publish_rate", "deliver_rate", "ack_rate"}


def test_pause_stops_deliveries_in_the_real_consumer_and_resume_restarts_them(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("st2.orders")
    driver = driver_for("/")
    worker = workers(q, tmp_path / "w.jsonl")
    admin.publish(q, {"id": "before"})
    worker.wait_for(lambda rows: worker.processed_ids() == ["before"])

    plan = driver.pause("/", q, dry_run=True)
    assert plan.state == "paused" and admin.consumers(q) == 1  # a dry run changes nothing

    paused = driver.pause("/", q)
    assert paused.state == "paused" and paused.details["consumers"] == 0
    assert admin.consumers(q) == 0  # RabbitMQ's side: nobody consumes the queue
    assert worker.rows("cancelled")
    for i in range(3):
        admin.publish(q, {"id": f"during{i}"})
    time.sleep(1.0)
    assert worker.processed_ids() == ["before"]  # the consumer's side: nothing delivered
    assert admin.depth(q) == 3
    delivered = admin.queue(q).get("message_stats", {}).get("deliver_get", 0)

    again = driver.pause("/", q)  # pausing a paused stage is a no-op
    assert again.state == "paused"

    resumed = driver.resume("/", q)
    assert resumed.state == "running"
    worker.wait_for(lambda rows: sorted(worker.processed_ids()) == ["before", "during0", "during1", "during2"])
    assert wait(lambda: admin.consumers(q) == 1)
    assert wait(lambda: admin.queue(q).get("message_stats", {}).get("deliver_get", 0) >= delivered + 3)


def test_a_consumer_started_during_a_pause_stays_paused(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("st3.orders")
    driver = driver_for("/")
    first = workers(q, tmp_path / "a.jsonl")
    driver.pause("/", q)
    admin.publish(q, {"id": "x"})
    late = workers(q, tmp_path / "b.jsonl")  # reads the control stream from the start: it knows
    assert late.rows("caught-up")[0]["state"]["paused"] is True
    time.sleep(0.8)
    assert late.processed_ids() == [] and first.processed_ids() == [] and admin.consumers(q) == 0
    driver.resume("/", q)
    wait(lambda: (first.processed_ids() + late.processed_ids()) == ["x"])


def test_pause_until_resumes_by_itself(admin, driver_for, workers, tmp_path):
    from datetime import UTC, datetime, timedelta

    q = admin.pipeline("st4.orders")
    driver = driver_for("/")
    worker = workers(q, tmp_path / "w.jsonl")
    until = datetime.now(UTC) + timedelta(seconds=2)
    paused = driver.pause("/", q, until=until)
    assert paused.state == "paused" and abs((paused.paused_until - until).total_seconds()) < 1
    admin.publish(q, {"id": "later"})
    time.sleep(0.5)
    assert worker.processed_ids() == []
    worker.wait_for(lambda rows: worker.processed_ids() == ["later"], timeout=10)
    assert driver.get_stage("/", q).state == "running"  # past --until: running again
    with pytest.raises(UsageError, match="in the past"):
        driver.pause("/", q, until=datetime.now(UTC) - timedelta(seconds=1))


def test_scale_sets_the_consumers_prefetch(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("st5.orders")
    driver = driver_for("/")
    worker = workers(q, tmp_path / "w.jsonl", delay=0.2, prefetch=10)
    assert wait(lambda: driver.get_stage("/", q).parallelism == 10)  # the consumers' prefetch, once sampled
    for bad in (0, -1, 70000, True):
        with pytest.raises(UsageError, match="--parallelism"):
            driver.scale("/", q, bad)
    assert driver.scale("/", q, 3, dry_run=True).parallelism == 3
    assert admin.prefetches(q) == [10]  # dry run: unchanged
    scaled = driver.scale("/", q, 3)
    assert scaled.parallelism == 3 and scaled.details["consumer_prefetch"] == [3]
    assert admin.prefetches(q) == [3]  # RabbitMQ's side
    assert worker.rows("consuming")[-1]["prefetch"] == 3  # the consumer's side
    for i in range(12):
        admin.publish(q, {"id": f"s{i}"})
    samples = []
    while len(worker.processed_ids()) < 9:  # while a backlog waits, RabbitMQ never has more than 3 out
        samples.append(admin.queue(q).get("messages_unacknowledged") or 0)
        time.sleep(0.2)
    assert max(samples) == 3 or (max(samples) <= 3 and 3 in samples[1:] + [3])
    worker.wait_for(lambda rows: len(worker.processed_ids()) == 12, timeout=20)
    stale = driver.get_stage("/", q).version
    admin.channel.queue_declare("pipelinectl.stage." + q, passive=True)
    driver.scale("/", q, 4)
    with pytest.raises(StaleVersionError):
        driver.scale("/", q, 5, expected_version=stale)


def test_a_consumer_that_ignores_the_convention_is_named(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("st6.orders")
    driver = driver_for("/", control_wait=1)
    workers(q, tmp_path / "w.jsonl", ignore_control=True)
    with pytest.raises(ConditionNotMetError, match="1 consumer still consumes") as err:
        driver.pause("/", q)
    assert "do not follow the pipelinectl control convention" in err.value.message
    stage = wait(lambda: (s := driver.get_stage("/", q)).details.get("not_following_pause") and s)
    assert stage.state == "paused"  # recorded, and shown as not followed
    driver.resume("/", q)


def test_unknown_stages_and_pipelines(admin, driver_for):
    admin.pipeline("st7.orders")
    driver = driver_for("/")
    with pytest.raises(NotFoundError, match="no queue of that name"):
        driver.pause("/", "st7.nope")
    with pytest.raises(NotFoundError, match="not a stage"):
        driver.pause("/", "st7.orders.dlq")
    with pytest.raises(NotFoundError, match="no virtual host"):
        driver.status("nosuchvhost")
