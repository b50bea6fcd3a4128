"""A pipeline for the saga admin tests: each input starts a `trip` saga that waits at `approve`.

trip: flight -> hotel -> approve -> car. `approve` waits (an hour) for an operator: `saga advance`
records it done and the saga goes on with `car`; `saga cancel` compensates hotel, then flight.
"""

from __future__ import annotations

import asyncio
import os

from pipelinectl.server import Pipeline, StageDef, Step

TOTAL = int(os.environ.get("TRIPS", "4"))


def build() -> Pipeline:
    p = Pipeline("trips")

    @p.source
    async def bookings(start: int):  # noqa: ANN202
        for n in range(start, TOTAL):
            yield f"trip-{n}", {"n": n}

    async def book(item):  # noqa: ANN001, ANN202
        await item.start_saga("trip", f"saga-{item.key}", {"n": item.payload["n"]})
        return item.payload

    async def done(name: str, ctx):  # noqa: ANN001, ANN202
        return {name: f"{name}-{ctx.saga_id}"}

    async def undo(ctx):  # noqa: ANN001, ANN202
        return None

    async def approve(ctx):  # noqa: ANN001, ANN202
        await asyncio.sleep(3600)

    async def flight(ctx):  # noqa: ANN001, ANN202
        return await done("flight", ctx)

    async def hotel(ctx):  # noqa: ANN001, ANN202
        return await done("hotel", ctx)

    async def car(ctx):  # noqa: ANN001, ANN202
        return await done("car", ctx)

    p.add_stage(StageDef("book", book))
    p.saga("trip", [Step("flight", flight, undo), Step("hotel", hotel, undo), Step("approve", approve, None),
                    Step("car", car, undo)])
    return p
