"""Time the RabbitMQ driver's DLQ and replay verbs against plain pika doing the same AMQP work, in one run.

    python plugins/pipelinectl-rabbitmq/bench/bench_rabbitmq.py [N]

Starts its own node (own ports and data dir, stopped at the end), fills a DLQ with N dead letters
and a stream with N messages, and prints, for each verb, the driver's time and the time of the
bare AMQP operations it is built on (the peer): peeking N messages with basic.get and giving them
back; moving N messages with publish + ack in transactions of 100; reading N stream messages and
publishing each with a confirm. The ratio is driver / peer.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelinectl_rabbitmq.driver import RabbitControlPlane  # noqa: E402
from pipelinectl_rabbitmq.testing import RabbitNode  # noqa: E402

from pipelinectl.plugin_api import Connection, DLQFilter, ReplayRequest  # noqa: E402


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def fill_dlq(ch, queue: str, n: int) -> None:
    death = {"x-death": [{"queue": queue, "reason": "rejected", "count": 1, "exchange": "", "routing-keys": [queue]}],
             "x-first-death-queue": queue, "x-first-death-reason": "rejected"}
    for i in range(n):
        ch.basic_publish("", f"{queue}.dlq", json.dumps({"id": i, "pad": "x" * 180}).encode(),
                         pika.BasicProperties(delivery_mode=2, headers=death))


def raw_peek(ch, queue: str) -> int:
    depth = ch.queue_declare(queue, passive=True).method.message_count
    for _ in range(depth):
        ch.basic_get(queue, auto_ack=False)
    ch.basic_recover(requeue=True)
    return depth


def raw_move(conn, source: str, target: str, n: int) -> None:
    ch = conn.channel()
    ch.tx_select()
    for i in range(n):
        method, props, body = ch.basic_get(source, auto_ack=False)
        ch.basic_publish("", target, body, props, mandatory=True)
        ch.basic_ack(method.delivery_tag)
        if (i + 1) % 100 == 0:
            ch.tx_commit()
    ch.tx_commit()
    ch.close()


def raw_stream_copy(conn, stream: str, target: str, n: int) -> None:
    reader, writer = conn.channel(), conn.channel()
    reader.basic_qos(prefetch_count=500)
    writer.confirm_delivery()
    seen = 0
    for method, props, body in reader.consume(stream, arguments={"x-stream-offset": "first"}):
        writer.basic_publish("", target, body, props, mandatory=True)
        reader.basic_ack(method.delivery_tag)
        seen += 1
        if seen == n:
            break
    reader.close()
    writer.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp, RabbitNode(Path(tmp)) as node:
        conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        ch = conn.channel()
        ch.confirm_delivery()
        for name in ("b.orders", "b.peer"):
            ch.queue_declare(f"{name}.dlq", durable=True)
            ch.queue_declare(name, durable=True, arguments={"x-dead-letter-exchange": "",
                                                            "x-dead-letter-routing-key": f"{name}.dlq"})
        ch.queue_declare("b.log", durable=True, arguments={"x-queue-type": "stream"})
        fill_dlq(ch, "b.orders", n)
        fill_dlq(ch, "b.peer", n)
        for i in range(n):
            ch.basic_publish("", "b.log", json.dumps({"id": i}).encode(), pika.BasicProperties(delivery_mode=2))
        driver = RabbitControlPlane(Connection(
            context="bench", driver="rabbitmq", url=node.management_url, pipeline="/", timeout=120,
            token=lambda: node.password, settings={"user": node.user, "amqp_url": f"amqp://127.0.0.1:{node.amqp_port}",
                                                  "queue_prefix": "b.orders", "replay_stream": "b.log"}))
        driver.progress = None
        everything = DLQFilter(pipeline="/", all=True)
        rows = []
        t, _ = timed(lambda: driver.status())
        rows.append(("status (1 stage)", t, None))
        t, items = timed(lambda: list(driver.dlq_list(everything)))
        assert len(items) == n
        peer, _ = timed(lambda: raw_peek(conn.channel(), "b.peer.dlq"))
        rows.append((f"dlq list, {n} items", t, peer))
        t, count = timed(lambda: driver.dlq_count(everything))
        rows.append(("dlq count", t, None))
        t, plan = timed(lambda: driver.replay(ReplayRequest(pipeline="/", stage="b.orders", from_offset=0, dry_run=True)))
        assert plan.total == n
        rows.append((f"replay --dry-run, {n} messages", t, None))
        t, job = timed(lambda: driver.replay(ReplayRequest(pipeline="/", stage="b.orders", from_offset=0)))
        assert job.replayed == n
        peer, _ = timed(lambda: raw_stream_copy(conn, "b.log", "b.peer", n))
        rows.append((f"replay, {n} messages", t, peer))
        t, result = timed(lambda: driver.dlq_redrive(everything))
        assert len(result.succeeded) == n, result.failed
        peer, _ = timed(lambda: raw_move(conn, "b.peer.dlq", "b.peer", n))
        rows.append((f"dlq redrive, {n} items", t, peer))
        driver.close()
        conn.close()
    print(f"RabbitMQ driver, N = {n} (payload ~200 bytes); peer = the same AMQP work with bare pika, same node, same run")
    print(f"{'verb':34} {'driver':>9} {'peer':>9} {'ratio':>7} {'rate':>14}")
    for name, t, peer in rows:
        ratio = f"{t / peer:.2f}x" if peer else "-"
        rate = f"{n / t:,.0f}/s" if "," in name or str(n) in name else ""
        print(f"{name:34} {t:8.3f}s {(f'{peer:.3f}s' if peer else '-'):>9} {ratio:>7} {rate:>14}")


if __name__ == "__main__":
    main()
