"""Dead letters end to end: a real consumer rejects, RabbitMQ dead-letters, pipelinectl peeks, redrives, purges."""

from __future__ import annotations

import pytest
from pipelinectl_rabbitmq.driver import dlq_setup
from pipelinectl_rabbitmq.testing import wait

from pipelinectl.plugin_api import DLQFilter, NotFoundError, UnsupportedError, UsageError


def _get(admin, queue: str):
    """basic.get, waiting a moment for a message that a quorum queue has confirmed but not yet applied."""
    import time

    deadline = time.time() + 5
    while True:
        got = admin.channel.basic_get(queue)
        if got[0] is not None or time.time() > deadline:
            return got
        time.sleep(0.05)


def _dlq(driver, **kw) -> list:
    return list(driver.dlq_list(DLQFilter(pipeline="/", all=True, **kw)))


def test_poison_is_listed_without_loss_and_processed_after_redrive(admin, driver_for, workers, tmp_path):
    q = admin.pipeline("dl1.orders")
    admin.declare("dl1.other")  # another stage: its messages are not this DLQ's business
    driver = driver_for("/", queue_prefix="dl1.")
    fix = tmp_path / "fixed"
    worker = workers(q, tmp_path / "w.jsonl", fix_file=fix)
    admin.publish(q, {"id": "good", "rule": "ok"})
    admin.publish(q, {"id": "bad1", "rule": "reject"}, message_id="k-1", headers={"tenant": "acme"})
    admin.publish(q, {"id": "bad2", "rule": "reject"})
    worker.wait_for(lambda rows: len(worker.rows("rejected")) == 2)
    wait(lambda: admin.depth(f"{q}.dlq") >= 2)
    depth = admin.depth(f"{q}.dlq")

    items = _dlq(driver)
    assert admin.depth(f"{q}.dlq") == depth  # listing removed nothing
    by_id = {i.payload["id"]: i for i in items if isinstance(i.payload, dict)}
    bad1 = by_id["bad1"]
    assert (bad1.stage, bad1.error_kind, bad1.attempts, bad1.key) == (q, "fatal", 1, "k-1")
    assert bad1.details["reason"] == "rejected" and bad1.details["original_queue"] == q
    assert bad1.details["x_death"][0]["queue"] == q and bad1.details["x_death"][0]["count"] == 1
    assert bad1.first_seen is not None and bad1.headers["tenant"] == "acme"
    assert "rejected in queue dl1.orders" in bad1.message
    again = {i.id for i in _dlq(driver)}
    assert again == {i.id for i in items}  # ids are stable across reads

    shown = driver.dlq_show("/", bad1.id)
    assert shown.payload == {"id": "bad1", "rule": "reject"} and shown.details["properties"]["message_id"] == "k-1"
    assert admin.depth(f"{q}.dlq") == depth
    with pytest.raises(NotFoundError):
        driver.dlq_show("/", "0000000000000000")
    assert driver.dlq_count(DLQFilter(pipeline="/", all=True)) == depth
    assert driver.dlq_count(DLQFilter(pipeline="/", error_kind="fatal")) == 2
    assert driver.dlq_count(DLQFilter(pipeline="/", stage=q)) == depth
    assert _dlq(driver, error_kind="validation") == []

    plan = driver.dlq_redrive(DLQFilter(pipeline="/", error_kind="fatal"), dry_run=True)
    assert sorted(plan.matched) == sorted([by_id["bad1"].id, by_id["bad2"].id]) and plan.succeeded == []
    assert admin.depth(f"{q}.dlq") == depth and worker.processed_ids().count("bad1") == 0

    fix.touch()
    result = driver.dlq_redrive(DLQFilter(pipeline="/", error_kind="fatal"))
    assert sorted(result.succeeded) == sorted(plan.matched) and result.failed == {}
    worker.wait_for(lambda rows: {"bad1", "bad2"} <= set(worker.processed_ids()))
    redriven = {r["id"]: r["redrive_of"] for r in worker.rows("processed") if r["redrive_of"]}
    assert redriven == {"bad1": f"{q}.dlq:{by_id['bad1'].id}", "bad2": f"{q}.dlq:{by_id['bad2'].id}"}
    assert admin.depth(f"{q}.dlq") == depth - 2
    assert sorted(worker.processed_ids()).count("bad1") == 1


def test_redrive_keeps_items_whose_target_cannot_take_them(admin, driver_for):
    q = admin.pipeline("dl2.orders")
    limited = admin.pipeline("dl2.limited", **{"x-max-length": 100})
    driver = driver_for("/", queue_prefix="dl2.")
    admin.publish(q, {"id": "a"})
    admin.publish(limited, {"id": "b"})
    for name in (q, limited):
        method, _props, _body = _get(admin, name)
        admin.channel.basic_reject(method.delivery_tag, requeue=False)
    wait(lambda: admin.depth(f"{q}.dlq") == 1 and admin.depth(f"{limited}.dlq") == 1)
    admin.channel.queue_delete(q)  # the original queue is gone; its DLQ stays
    admin.declare("dl2.holder", **{"x-dead-letter-exchange": f"{q}.dlx", "x-dead-letter-routing-key": q})
    result = driver.dlq_redrive(DLQFilter(pipeline="/", all=True))
    assert result.succeeded == [] and len(result.failed) == 2
    reasons = " | ".join(result.failed.values())
    assert "does not exist any more" in reasons and "has a length limit" in reasons and "item kept" in reasons
    assert admin.depth(f"{q}.dlq") == 1 and admin.depth(f"{limited}.dlq") == 1


def test_redrive_into_a_quorum_queue_and_purge(admin, driver_for):
    q = admin.pipeline("dl3.orders", **{"x-queue-type": "quorum"})
    driver = driver_for("/", queue_prefix="dl3.")
    for i in range(6):
        admin.publish(q, {"id": f"p{i}"})
    for _ in range(6):  # a confirmed publish to a quorum queue may reach basic.get a moment later
        method, _props, _body = _get(admin, q)
        admin.channel.basic_nack(method.delivery_tag, requeue=False)
    wait(lambda: admin.depth(f"{q}.dlq") == 6)
    items = _dlq(driver)
    assert [i.payload["id"] for i in items] == [f"p{i}" for i in range(6)], items  # queue order
    first = driver.dlq_redrive(DLQFilter(pipeline="/", ids=[items[0].id, items[1].id]))
    assert first.succeeded == [items[0].id, items[1].id], first
    # a quorum queue's count (queue.declare-ok) follows its log: it may trail a commit by a moment
    wait(lambda: admin.depth(q) == 2 and admin.depth(f"{q}.dlq") == 4, timeout=5)
    [(props, body)] = admin.drain(q)[:1]
    assert props.headers["x-pipelinectl-redrive-of"] == f"{q}.dlq:{items[0].id}"

    with pytest.raises(UsageError, match="needs ids or a filter"):
        driver.dlq_purge(DLQFilter(pipeline="/"))
    plan = driver.dlq_purge(DLQFilter(pipeline="/", all=True), dry_run=True)
    assert len(plan.matched) == 4 and admin.depth(f"{q}.dlq") == 4
    one = driver.dlq_purge(DLQFilter(pipeline="/", ids=[items[3].id]))
    assert one.succeeded == [items[3].id] and admin.depth(f"{q}.dlq") == 3, one
    left = [i.payload["id"] for i in _dlq(driver)]
    assert left == ["p2", "p4", "p5"], left  # the others, still in order
    rest = driver.dlq_purge(DLQFilter(pipeline="/", all=True))
    assert len(rest.succeeded) == 3 and admin.depth(f"{q}.dlq") == 0


def test_dlq_setup_creates_the_convention(admin, driver_for, workers, tmp_path):
    admin.declare("dl4.orders")
    admin.declare("dl4.policed")
    admin.node.api("PUT", "/api/policies/%2F/dl4-own", {"pattern": "^dl4\\.policed$", "definition": {"max-length": 1000},
                                                        "apply-to": "queues"})
    driver = driver_for("/", queue_prefix="dl4.")
    with pytest.raises(NotFoundError, match="has no dead-letter queue") as err:
        list(driver.dlq_list(DLQFilter(pipeline="/", stage="dl4.orders")))
    assert "rabbitmq dlq setup dl4.orders" in err.value.one_line()
    plan = dlq_setup(driver, "/", ["dl4.orders"], dry_run=True)
    assert plan["queues"][0]["action"] == "created" and admin.node.api("GET", "/api/policies/%2F") == [
        p for p in admin.node.api("GET", "/api/policies/%2F") if p["name"] != "pipelinectl-dlq-dl4.orders"]
    done = dlq_setup(driver, "/", ["dl4.orders"])
    assert done["queues"][0] == {"queue": "dl4.orders", "dlq": "dl4.orders.dlq", "policy": "pipelinectl-dlq-dl4.orders",
                                 "action": "created", "exchange": "pipelinectl.dlx"}
    with pytest.raises(UsageError, match="already has the policy 'dl4-own'"):
        dlq_setup(driver, "/", ["dl4.policed"])
    with pytest.raises(NotFoundError):
        dlq_setup(driver, "/", ["dl4.nope"])

    stage = wait(lambda: (s := driver.get_stage("/", "dl4.orders")).details["dead_letter_exchange"] and s)
    assert stage.details["dlq_queue"] == "dl4.orders.dlq" and stage.details["policy"] == "pipelinectl-dlq-dl4.orders"
    worker = workers("dl4.orders", tmp_path / "w.jsonl")
    admin.publish("dl4.orders", {"id": "x", "rule": "reject"})
    worker.wait_for(lambda rows: worker.rows("rejected"))
    [item] = wait(lambda: _dlq(driver, stage="dl4.orders"))
    assert item.details["dlq_queue"] == "dl4.orders.dlq" and item.error_kind == "fatal"
    assert dlq_setup(driver, "/", ["dl4.orders"])["queues"][0]["action"] == "unchanged"


def test_dlq_refusals(admin, driver_for):
    admin.declare("dl5.dead", **{"x-queue-type": "stream"})
    admin.declare("dl5.orders", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dl5.dead"})
    driver = driver_for("/", queue_prefix="dl5.")
    with pytest.raises(UnsupportedError, match="is a stream"):
        list(driver.dlq_list(DLQFilter(pipeline="/", all=True)))
    with pytest.raises(UsageError, match="unknown error kind"):
        list(driver.dlq_list(DLQFilter(pipeline="/", error_kind="weird")))


def test_expired_messages_are_transient(admin, driver_for):
    q = admin.pipeline("dl6.ttl", **{"x-message-ttl": 50})
    driver = driver_for("/", queue_prefix="dl6.")
    admin.publish(q, {"id": "old"})
    wait(lambda: admin.depth(f"{q}.dlq") == 1)
    [item] = _dlq(driver)
    assert (item.error_kind, item.details["reason"], item.stage) == ("transient", "expired", q)


def test_a_partial_read_gives_every_message_back_in_order(admin, driver_for):
    q = admin.pipeline("dl7.orders")
    for i in range(5):
        admin.publish(f"{q}.dlq", {"id": i})  # put there by hand: no x-death headers
    driver = driver_for("/", queue_prefix="dl7.")
    items = driver.dlq_list(DLQFilter(pipeline="/", all=True))
    first = next(items)
    assert admin.depth(f"{q}.dlq") == 4  # the one read is held (unacked) while the listing runs
    items.close()  # the listing ends early (a --limit, Ctrl-C): its channel closes, RabbitMQ requeues
    assert admin.depth(f"{q}.dlq") == 5
    assert "without x-death headers" in first.message
    assert [i.payload["id"] for i in _dlq(driver)] == [0, 1, 2, 3, 4]
    result = driver.dlq_redrive(DLQFilter(pipeline="/", ids=[first.id]))
    assert result.succeeded == [] and "original queue is unknown; item kept" in result.failed[first.id]
    assert admin.depth(f"{q}.dlq") == 5
