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
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from .definition import (
    PersistentError,
    Pipeline,
    RetryPolicy,
    StageDef,
    Step,
    TransientError,
    ValidationError,
)

SKUS = ("sku-kettle", "sku-lamp", "sku-chair", "sku-desk", "sku-mug")


def order_number(key: str) -> int:
    return int(key.rsplit("-", 1)[-1])


def build(rate: float | None = None, burst: int = 40, total: int | None = None) -> Pipeline:
    """The demo pipeline; `rate` items/s after an initial `burst` (env PIPELINECTL_DEMO_RATE, default 2)."""
    rate = rate if rate is not None else float(os.environ.get("PIPELINECTL_DEMO_RATE", "2"))
    p = Pipeline("orders")

    @p.source
    async def orders(start: int):  # noqa: ANN202 - an async generator
        n = start
        while total is None or n < total:
            n += 1
            poison = n % 17 == 0
            yield f"order-{n:06d}", {
                "order": n,
                "sku": SKUS[n % len(SKUS)],
                "qty": 1 + n % 3,
                "amount_cents": -100 if poison else 1000 + (n * 37) % 9000,
                "customer": f"cust-{n % 97:03d}",
            }
            if n - start >= burst:
                await asyncio.sleep(1.0 / rate if rate > 0 else 3600)

    async def ingest(item: Any) -> Any:
        await asyncio.sleep(0.005)
        return {**item.payload, "received": True}

    async def validate(item: Any) -> Any:
        await asyncio.sleep(0.01)
        order = item.payload
        if order.get("amount_cents", 0) <= 0:
            raise ValidationError(f"amount_cents must be positive, got {order.get('amount_cents')}")
        if order.get("sku") not in SKUS:
            raise ValidationError(f"unknown sku {order.get('sku')!r}")
        return order

    async def charge(item: Any) -> Any:
        await asyncio.sleep(random.uniform(0.02, 0.08))
        n = order_number(item.key)
        if n % 41 == 0:
            raise PersistentError("payment declined by issuer (card_declined)")
        if random.random() < 0.15:
            raise TransientError("payments gateway timed out (HTTP 504)")
        if n % 3 == 0:
            await item.start_saga("order", f"saga-{item.key}", {"order": n, "sku": item.payload.get("sku")})
        return {**item.payload, "charge_id": f"ch-{n:06d}"}

    async def ship(item: Any) -> Any:
        await asyncio.sleep(random.uniform(0.05, 0.15))
        n = order_number(item.key)
        if n % 23 == 0 and item.origin == "input":
            raise PersistentError("carrier refused shipment: service region temporarily closed")
        return {**item.payload, "tracking": f"trk-{n:06d}"}

    async def notify(item: Any) -> Any:
        await asyncio.sleep(random.uniform(0.05, 0.2))
        return None

    fast = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0, budget=10.0)
    p.add_stage(StageDef("ingest", ingest, parallelism=1, max_parallelism=8, capacity=100))
    p.add_stage(StageDef("validate", validate, parallelism=2, max_parallelism=16, capacity=100))
    p.add_stage(StageDef("charge", charge, parallelism=2, max_parallelism=16, capacity=50, retry=fast))
    p.add_stage(StageDef("ship", ship, parallelism=2, max_parallelism=16, capacity=50))
    p.add_stage(StageDef("notify", notify, parallelism=1, max_parallelism=8, capacity=100))

    def case(ctx: Any) -> int:
        return int(ctx.data.get("order", 0)) // 3

    async def reserve(ctx: Any) -> dict:
        await asyncio.sleep(random.uniform(0.2, 0.6))
        return {"reservation": f"res-{ctx.saga_id}"}

    async def release(ctx: Any) -> None:
        await asyncio.sleep(0.1)

    async def pay(ctx: Any) -> dict:
        await asyncio.sleep(random.uniform(0.2, 0.6))
        if case(ctx) % 7 == 3 and ctx.retries == 0:
            raise TransientError("payments gateway unreachable (connection reset)")
        return {"payment": f"pay-{ctx.saga_id}"}

    async def refund(ctx: Any) -> None:
        await asyncio.sleep(0.1)
        if case(ctx) % 13 == 6 and ctx.retries == 0:
            raise PersistentError("refund rejected: payment already settled")

    async def dispatch(ctx: Any) -> dict:
        await asyncio.sleep(random.uniform(0.5, 3.0))
        if case(ctx) % 5 == 2 or case(ctx) % 13 == 6:
            raise PersistentError("no carrier accepts this address")
        return {"shipment": f"shp-{ctx.saga_id}"}

    p.saga("order", [
        Step("reserve", reserve, release),
        Step("charge", pay, refund, retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=1.0)),
        Step("ship", dispatch, None),
    ])
    return p
