"""The demo pipeline "orders": ingest -> validate -> charge -> ship -> notify, plus an order saga.

Faults are injected deterministically by order number, so that within seconds
of start every verb has something real to act on:
- poison orders (every 17th) fail validation and land in the DLQ;
- the payments dependency is flaky (about 15% transient errors, retried);
  every 41st card is declined (persistent, DLQ);
- every 23rd shipment is refused while the carrier's region is closed; a redrive
  or replay of it succeeds (the outage is over by then);
- every 3rd order runs the saga reserve -> charge -> ship; of those, some fail
  at ship and compensate (refund, release), some get stuck at charge until an
  operator retries, and some fail while compensating (status failed).

What needs an operator is capped (`Caps`), so a demo left running for days
reaches a steady state instead of growing without bound: while the DLQ holds
its cap of an injected fault, or as many sagas are stuck (or failed) as the cap
allows, the next order that would have met that fault goes through instead.
Once an operator redrives, purges or retries, faults come back up to the caps.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from typing import Any

from .definition import (
    PersistentError,
    Pipeline,
    RetryPolicy,
    StageDef,
    StatusReader,
    Step,
    TransientError,
    ValidationError,
)

SKUS = ("sku-kettle", "sku-lamp", "sku-chair", "sku-desk", "sku-mug")


def order_number(key: str) -> int:
    return int(key.rsplit("-", 1)[-1])


@dataclass(frozen=True)
class Caps:
    """The most of each injected fault the demo lets pile up (DLQ entries per stage, sagas per status)."""

    poison: int = 25  # validate: amount_cents must be positive
    declined: int = 15  # charge: card declined, or the gateway failing past the retries
    refused: int = 15  # ship: carrier region closed
    stuck: int = 10  # sagas stuck at charge
    failed: int = 5  # sagas whose refund fails while compensating


@dataclass
class Faults:
    """Decides, from the plane's own status, whether the next fault may be injected.

    `pending` holds faults already decided but not yet visible in the status
    (a poison order still queued before validate, a saga still retrying its way
    to stuck), so the caps hold even while those are on their way.
    """

    caps: Caps
    status: StatusReader | None = None
    pending: dict[str, set[str]] = field(default_factory=lambda: {"poison": set(), "stuck": set()})

    def allow(self, fault: str) -> bool:
        if self.status is None:
            return True
        view = self.status()
        if fault in ("stuck", "failed"):
            seen = view.sagas_by_status.get(fault, 0)
        else:
            stage = {"poison": "validate", "declined": "charge", "refused": "ship"}[fault]
            seen = next(s.dlq_size for s in view.stages if s.name == stage)
        return seen + len(self.pending.get(fault, ())) < getattr(self.caps, fault)


def build(rate: float | None = None, burst: int = 40, total: int | None = None, *, time_scale: float = 1.0,
          caps: Caps = Caps()) -> Pipeline:
    """The demo pipeline; `rate` items/s after an initial `burst` (env PIPELINECTL_DEMO_RATE, default 2).

    `time_scale` multiplies every simulated delay (tests run the demo's hours in seconds).
    """
    rate = rate if rate is not None else float(os.environ.get("PIPELINECTL_DEMO_RATE", "2"))
    p = Pipeline("orders")
    faults = Faults(caps)

    @p.on_start
    def read_status(status: StatusReader) -> None:
        faults.status = status

    def pause(low: float, high: float | None = None) -> Any:
        return asyncio.sleep((low if high is None else random.uniform(low, high)) * time_scale)

    def policy(**kw: Any) -> RetryPolicy:
        kw["base_delay"] *= time_scale
        kw["max_delay"] *= time_scale
        return RetryPolicy(**kw)

    @p.source
    async def orders(start: int):  # noqa: ANN202 - an async generator
        n = start
        while total is None or n < total:
            n += 1
            key = f"order-{n:06d}"
            poison = n % 17 == 0 and faults.allow("poison")
            if poison:
                faults.pending["poison"].add(key)
            yield key, {
                "order": n,
                "sku": SKUS[n % len(SKUS)],
                "qty": 1 + n % 3,
                "amount_cents": -100 if poison else 1000 + (n * 37) % 9000,
                "customer": f"cust-{n % 97:03d}",
            }
            if n - start >= burst:
                await asyncio.sleep(1.0 / rate if rate > 0 else 3600)

    async def ingest(item: Any) -> Any:
        await pause(0.005)
        return {**item.payload, "received": True}

    async def validate(item: Any) -> Any:
        await pause(0.01)
        order = item.payload
        faults.pending["poison"].discard(item.key)
        if order.get("amount_cents", 0) <= 0:
            raise ValidationError(f"amount_cents must be positive, got {order.get('amount_cents')}")
        if order.get("sku") not in SKUS:
            raise ValidationError(f"unknown sku {order.get('sku')!r}")
        return order

    fast = policy(max_attempts=4, base_delay=0.1, max_delay=1.0, budget=10.0)

    async def charge(item: Any) -> Any:
        await pause(0.02, 0.08)
        n = order_number(item.key)
        if n % 41 == 0 and faults.allow("declined"):
            raise PersistentError("payment declined by issuer (card_declined)")
        # flaky: retried; a last attempt fails only while the DLQ has room for it
        if random.random() < 0.15 and (item.attempt < fast.max_attempts or faults.allow("declined")):
            raise TransientError("payments gateway timed out (HTTP 504)")
        if n % 3 == 0:
            await item.start_saga("order", f"saga-{item.key}", {"order": n, "sku": item.payload.get("sku")})
        return {**item.payload, "charge_id": f"ch-{n:06d}"}

    async def ship(item: Any) -> Any:
        await pause(0.05, 0.15)
        n = order_number(item.key)
        if n % 23 == 0 and item.origin == "input" and faults.allow("refused"):
            raise PersistentError("carrier refused shipment: service region temporarily closed")
        return {**item.payload, "tracking": f"trk-{n:06d}"}

    async def notify(item: Any) -> Any:
        await pause(0.05, 0.2)
        return None

    p.add_stage(StageDef("ingest", ingest, parallelism=1, max_parallelism=8, capacity=100))
    p.add_stage(StageDef("validate", validate, parallelism=2, max_parallelism=16, capacity=100))
    p.add_stage(StageDef("charge", charge, parallelism=2, max_parallelism=16, capacity=50, retry=fast))
    p.add_stage(StageDef("ship", ship, parallelism=2, max_parallelism=16, capacity=50))
    p.add_stage(StageDef("notify", notify, parallelism=1, max_parallelism=8, capacity=100))

    def case(ctx: Any) -> int:
        return int(ctx.data.get("order", 0)) // 3

    async def reserve(ctx: Any) -> dict:
        await pause(0.2, 0.6)
        return {"reservation": f"res-{ctx.saga_id}"}

    async def release(ctx: Any) -> None:
        await pause(0.1)

    pay_retry = policy(max_attempts=3, base_delay=0.2, max_delay=1.0)

    async def pay(ctx: Any) -> dict:
        await pause(0.2, 0.6)
        stuck = faults.pending["stuck"]
        if case(ctx) % 7 == 3 and ctx.retries == 0 and (ctx.saga_id in stuck or faults.allow("stuck")):
            stuck.add(ctx.saga_id)
            if ctx.attempt >= pay_retry.max_attempts:
                stuck.discard(ctx.saga_id)  # the saga turns stuck as this attempt fails: the status shows it now
            raise TransientError("payments gateway unreachable (connection reset)")
        return {"payment": f"pay-{ctx.saga_id}"}

    async def refund(ctx: Any) -> None:
        await pause(0.1)
        if case(ctx) % 13 == 6 and ctx.retries == 0 and faults.allow("failed"):
            raise PersistentError("refund rejected: payment already settled")

    async def dispatch(ctx: Any) -> dict:
        await pause(0.5, 3.0)
        if case(ctx) % 5 == 2 or case(ctx) % 13 == 6:
            raise PersistentError("no carrier accepts this address")
        return {"shipment": f"shp-{ctx.saga_id}"}

    p.saga("order", [
        Step("reserve", reserve, release),
        Step("charge", pay, refund, retry=pay_retry),
        Step("ship", dispatch, None),
    ])
    return p
