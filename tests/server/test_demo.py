"""The demo left running reaches a steady state: what needs an operator stays within its caps.

Hours of the demo in seconds: its delays scaled down (`time_scale`) and its
input as one burst, in-process, on a real SQLite file.
"""

from __future__ import annotations

import asyncio

import pytest

from pipelinectl import model as m
from pipelinectl.server import Runtime
from pipelinectl.server.demo import Caps, build

CAPS = Caps(poison=4, declined=3, refused=3, stuck=3, failed=2)
# A DLQ entry shows once its move commits, one turn of the event loop after the handler
# raised: up to a stage's parallelism (2 for validate, charge, ship) may slip past a cap.
SLACK = 2


async def until(predicate, timeout: float = 120.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the demo did not settle"
        await asyncio.sleep(0.05)


def settled(rt: Runtime, total: int) -> bool:
    p = rt.pipeline("orders")
    view = p.view()
    busy = sum(s.queue_depth + s.in_flight for s in view.stages)
    active = sum(view.sagas_by_status.get(s, 0) for s in ("running", "compensating"))
    return view.input_offset == total and busy == 0 and active == 0


def outstanding(rt: Runtime) -> dict[str, int]:
    view = rt.pipeline("orders").view()
    dlq = {s.name: s.dlq_size for s in view.stages}
    return {"poison": dlq["validate"], "declined": dlq["charge"], "refused": dlq["ship"],
            "stuck": view.sagas_by_status.get("stuck", 0), "failed": view.sagas_by_status.get("failed", 0)}


def assert_within_caps(counts: dict[str, int]) -> None:
    for fault in ("poison", "declined", "refused"):
        assert getattr(CAPS, fault) <= counts[fault] <= getattr(CAPS, fault) + SLACK, (fault, counts)
    assert counts["stuck"] == CAPS.stuck and counts["failed"] == CAPS.failed, counts


@pytest.mark.slow
def test_the_demo_reaches_a_steady_state_and_refills_after_operator_action(tmp_path):
    # 2,500 orders: about 21 minutes of the demo at its default 2 orders/s. Uncapped, they
    # would leave about 300 DLQ items and 100 stuck sagas (every 17th, 41st, 23rd order; 1 in 21 sagas).
    first, second = 2500, 3500
    db = tmp_path / "demo.db"

    async def run_for_a_while() -> None:
        rt = Runtime([build(rate=1.0, burst=first, total=first, time_scale=0.01, caps=CAPS)], db)
        await rt.start()
        await until(lambda: settled(rt, first))
        assert_within_caps(outstanding(rt))
        # an operator clears the DLQ and retries the stuck sagas
        p = rt.pipeline("orders")
        p.dlq_purge(m.DLQFilter(pipeline="orders", all=True))
        for saga in p.sagas.list("stuck", None, 100, None)[0]:
            await p.sagas.retry(saga.id, "cleared by the test")
        await until(lambda: settled(rt, first))
        counts = outstanding(rt)
        assert counts["poison"] == counts["declined"] == counts["refused"] == counts["stuck"] == 0, counts
        await rt.stop(5)

    async def keep_running() -> None:  # the demo restarted: the source continues where it stopped
        rt = Runtime([build(rate=1.0, burst=second, total=second, time_scale=0.01, caps=CAPS)], db)
        await rt.start()
        await until(lambda: settled(rt, second))
        assert_within_caps(outstanding(rt))  # faults came back, up to the caps again
        await rt.stop(5)

    asyncio.run(run_for_a_while())
    asyncio.run(keep_running())
