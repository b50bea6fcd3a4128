"""A finite pipeline for the crash tests: N inputs, deterministic failures, slow enough to kill mid-way.

CRASH_TOTAL inputs; CRASH_SCALE multiplies every stage's simulated I/O and
CRASH_PARALLELISM (if set) is every stage's initial parallelism, so a fast
variant moves many items per group commit.
"""

from __future__ import annotations

import asyncio
import os

from pipelinectl.server import Pipeline, StageDef, TransientError, ValidationError

TOTAL = int(os.environ.get("CRASH_TOTAL", "300"))
SCALE = float(os.environ.get("CRASH_SCALE", "1"))
PARALLELISM = os.environ.get("CRASH_PARALLELISM")


def build() -> Pipeline:
    p = Pipeline("counted")

    @p.source
    async def numbers(start: int):  # noqa: ANN202
        for n in range(start, TOTAL):
            yield f"k-{n:05d}", {"n": n}

    attempts: dict[str, int] = {}

    async def a(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.002 * SCALE)
        if item.payload["n"] % 10 == 7:
            raise ValidationError("poison")
        return item.payload

    async def b(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.01 * SCALE)
        attempts[item.key] = attempts.get(item.key, 0) + 1
        if item.payload["n"] % 6 == 1 and attempts[item.key] < 2:
            raise TransientError("flaky once")
        return item.payload

    async def c(item):  # noqa: ANN001, ANN202
        await asyncio.sleep(0.05 * SCALE)
        return item.payload

    def width(default: int) -> int:
        return int(PARALLELISM) if PARALLELISM else default

    p.add_stage(StageDef("a", a, parallelism=width(2), max_parallelism=64, capacity=20))
    p.add_stage(StageDef("b", b, parallelism=width(2), max_parallelism=64, capacity=20))
    p.add_stage(StageDef("c", c, parallelism=width(1), max_parallelism=64, capacity=20))
    return p
