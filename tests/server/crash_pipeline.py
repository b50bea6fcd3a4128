"""A finite pipeline for the crash test: N inputs, deterministic failures, slow enough to kill mid-way."""

from __future__ import annotations

import asyncio
import os

from pipelinectl.server import Pipeline, StageDef, TransientError, ValidationError

TOTAL = int(os.environ.get("CRASH_TOTAL", "300"))


def build() -> Pipeline:
    p = Pipeline("counted")

    @p.source
    async def numbers(start: int):  # noqa: ANN202
        for n in range(start, TOTAL):
            yield f"k-{n:05d}", {"n": n}

    attempts: dict[str, int] = {}

    async def a(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.002)
        if item.payload["n"] % 10 == 7:
            raise ValidationError("poison")
        return item.payload

    async def b(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.01)
        attempts[item.key] = attempts.get(item.key, 0) + 1
        if item.payload["n"] % 6 == 1 and attempts[item.key] < 2:
            raise TransientError("flaky once")
        return item.payload

    async def c(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.05)
        return item.payload

    p.add_stage(StageDef("a", a, parallelism=2, capacity=20))
    p.add_stage(StageDef("b", b, parallelism=2, capacity=20))
    p.add_stage(StageDef("c", c, parallelism=1, max_parallelism=8, capacity=20))
    return p
