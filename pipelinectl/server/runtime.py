"""The runtime: every pipeline of one server over one SQLite store, started and stopped together.

`start()` resumes whatever a crash left. The parts live in their own modules:
`definition` (what an author writes), `store` (every SQL statement),
`scheduler` (stages as worker pools), `verbs` (the API's verbs on one pipeline)
and `sagas`. Embedders import from `pipelinectl.server` (docs/embedding.md).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from pipelinectl.errors import NotFoundError

from .definition import Pipeline
from .store import Store
from .verbs import PipelineRuntime


class Runtime:
    """Runs pipelines over one SQLite database. `start()` resumes whatever a crash left."""

    def __init__(self, pipelines: list[Pipeline], db_path: str | Path) -> None:
        self.store = Store(db_path)
        self.instance = uuid.uuid4().hex
        self.stopping = False
        self.pipelines = {p.name: PipelineRuntime(self.store, p, self.instance, lambda: self.stopping)
                          for p in pipelines}
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        for p in self.pipelines.values():
            p.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="ticker")

    async def _tick(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            for p in self.pipelines.values():
                p.tick()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking items, let in-flight ones finish within `timeout`, then cancel the rest.

        Cancelled items keep their `work` row and are processed after the next start.
        """
        self.stopping = True
        tasks: list[asyncio.Task] = []
        for p in self.pipelines.values():
            tasks += p.stop()
        if self._ticker:
            self._ticker.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        self.store.close()

    def pipeline(self, name: str) -> PipelineRuntime:
        p = self.pipelines.get(name)
        if p is None:
            raise NotFoundError(f"pipeline {name!r} not found", detail={"pipelines": sorted(self.pipelines)})
        return p

    async def submit(self, pipeline: str, key: str, payload: Any) -> int:
        """Append an item to a pipeline's input log; returns its offset. Waits while the first stage is full."""
        return await self.pipeline(pipeline).ingest(key, payload)
