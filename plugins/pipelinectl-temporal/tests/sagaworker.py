"""A real Temporal worker running an order saga, for the plugin's integration tests.

reserve -> charge -> ship; on failure or cancellation the completed steps are
compensated in reverse (undo_ship, undo_charge, undo_reserve). Every activity
appends one JSON line to the effects file, so tests can check what really ran.

Per order (the workflow input):
  fail_at:  a step that fails for good (non-retryable): the saga compensates and fails.
            (Once `<effects dir>/fixed-<order>` exists it succeeds, so a reset can rerun it.)
  stuck_at: a step that keeps failing (retried forever) until the file
            `<effects dir>/fixed-<order>` exists: the saga is stuck until then.
  hold:     seconds `ship` sleeps (heartbeating), to catch a saga mid-flight.
  backoff:  seconds between attempts of a step (default 0.5-1 s), so a test can tell an
            operator's retry (attempt back to 1, now) from the server's own next attempt.

Run: python sagaworker.py --address HOST:PORT --namespace NS [--namespace NS2] --task-queue Q --effects FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

EFFECTS = Path(os.environ.get("SAGA_EFFECTS", "effects.jsonl"))


def _record(op: str, order: dict) -> None:
    with EFFECTS.open("a") as fh:
        fh.write(json.dumps({"op": op, "order": order["id"], "attempt": activity.info().attempt}) + "\n")


def _step(name: str, order: dict) -> None:
    fixed = (EFFECTS.parent / f"fixed-{order['id']}").exists()
    if order.get("stuck_at") == name and not fixed:
        _record(f"{name}-error", order)
        raise ApplicationError(f"{name} backend unavailable for order {order['id']}")
    if order.get("fail_at") == name and not fixed:
        _record(f"{name}-error", order)
        raise ApplicationError(f"{name} declined for order {order['id']}", non_retryable=True)
    _record(name, order)


@activity.defn
async def reserve(order: dict) -> None:
    _step("reserve", order)


@activity.defn
async def charge(order: dict) -> None:
    _step("charge", order)


@activity.defn
async def ship(order: dict) -> None:
    hold = float(order.get("hold", 0))
    while hold > 0:
        activity.heartbeat()
        await asyncio.sleep(0.2)
        hold -= 0.2
    _step("ship", order)


@activity.defn
async def undo_reserve(order: dict) -> None:
    _record("undo_reserve", order)


@activity.defn
async def undo_charge(order: dict) -> None:
    _record("undo_charge", order)


@activity.defn
async def undo_ship(order: dict) -> None:
    _record("undo_ship", order)


@activity.defn(name="step")
async def generic_step(name: str, order: dict) -> None:
    """One activity type for every forward step: the step is its first argument."""
    _step(name, order)


@activity.defn(name="compensate")
async def generic_compensate(name: str, order: dict) -> None:
    _record(f"compensate_{name}", order)


STEPS = [(reserve, undo_reserve), (charge, undo_charge), (ship, undo_ship)]
RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), backoff_coefficient=1.0,
                    maximum_interval=timedelta(seconds=1))


@workflow.defn(name="OrderSaga")
class OrderSaga:
    """The order saga; it opts into pipelinectl's `saga advance` (the update pipelinectl.advance)."""

    def __init__(self) -> None:
        self.current: str | None = None  # the activity running now
        self.advanced: dict[str, object] = {}  # step -> the result an operator gave

    @workflow.run
    async def run(self, order: dict) -> str:
        done = []
        handle = None
        try:
            retry = RETRY
            if order.get("backoff"):  # a long wait between attempts, as production policies have
                interval = timedelta(seconds=float(order["backoff"]))
                retry = RetryPolicy(initial_interval=interval, backoff_coefficient=1.0, maximum_interval=interval)
            for step, undo in STEPS:
                self.current = step.__name__
                handle = workflow.start_activity(
                    step, order, start_to_close_timeout=timedelta(seconds=30),
                    heartbeat_timeout=timedelta(seconds=5), retry_policy=retry)
                await workflow.wait_condition(lambda h=handle: h.done() or self.current in self.advanced)
                if not handle.done():  # an operator did this step by hand: stop trying it, go on
                    handle.cancel()
                    try:
                        await handle
                    except BaseException:  # its cancellation: expected
                        pass
                else:
                    await handle
                done.append(undo)
            self.current = None
            return "shipped"
        except BaseException:
            self.current = None
            if handle is not None and not handle.done():  # cancelled mid-step: stop that step first
                handle.cancel()
                try:
                    await handle
                except BaseException:
                    pass
            # Compensate in reverse, whether a step failed or the saga was cancelled.
            for undo in reversed(done):
                await workflow.execute_activity(undo, order, start_to_close_timeout=timedelta(seconds=30),
                                                retry_policy=RETRY)
            raise

    @workflow.update(name="pipelinectl.advance")
    def advance(self, request: dict) -> dict:
        """`pipelinectl saga advance`: the current step was done by hand (docs/plugins.md)."""
        self.advanced[self.current or request["activity_type"]] = request.get("result")
        return {"advanced": request["step"]}

    @advance.validator
    def validate_advance(self, request: dict) -> None:
        if self.current is None or request.get("activity_type") != self.current:
            raise ValueError(f"the current step is {self.current or 'none'}, not {request.get('step')}")


@workflow.defn(name="GenericSaga")
class GenericSaga:
    """The same order saga written with one generic `step` activity and one `compensate` activity.

    With `summaries` in the order, each activity carries a summary naming its step (as the
    Temporal UI shows it); without, only its first argument says which step it is.
    """

    @workflow.run
    async def run(self, order: dict) -> str:
        done: list[str] = []
        summaries = bool(order.get("summaries"))
        try:
            for name in ("reserve", "charge", "ship"):
                await workflow.execute_activity(
                    generic_step, args=[name, order], start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RETRY, summary=f"{name} order" if summaries else None)
                done.append(name)
            return "shipped"
        except BaseException:
            for name in reversed(done):
                await workflow.execute_activity(
                    generic_compensate, args=[name, order], start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=RETRY, summary=f"undo {name} order" if summaries else None)
            raise


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", action="append")
    parser.add_argument("--task-queue", default="orders")
    parser.add_argument("--effects", required=True)
    args = parser.parse_args()
    global EFFECTS
    EFFECTS = Path(args.effects)
    workers = []
    for namespace in args.namespace or ["default"]:
        client = await Client.connect(args.address, namespace=namespace)
        workers.append(Worker(client, task_queue=args.task_queue, workflows=[OrderSaga, GenericSaga],
                              activities=[reserve, charge, ship, undo_reserve, undo_charge, undo_ship,
                                          generic_step, generic_compensate]))
    print("worker ready", flush=True)
    await asyncio.gather(*(w.run() for w in workers))


if __name__ == "__main__":
    asyncio.run(main())
