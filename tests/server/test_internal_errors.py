"""An unexpected failure answers 500 INTERNAL with a request id and nothing internal (error-path unit test)."""

from __future__ import annotations

import asyncio

import httpx

from pipelinectl.server import Pipeline, Runtime, StageDef
from pipelinectl.server.app import create_app
from pipelinectl.server.auth import Authenticator
from pipelinectl.server.verbs import PipelineRuntime


def test_unexpected_exception_is_a_generic_500(tmp_path, monkeypatch):
    p = Pipeline("x")
    p.add_stage(StageDef("a", lambda item: asyncio.sleep(0)))

    def boom(self):
        raise RuntimeError("SELECT token FROM secrets -- /srv/app/pipelinectl/server/runtime.py line 1")

    monkeypatch.setattr(PipelineRuntime, "view", boom)
    app = create_app(Runtime([p], tmp_path / "x.db"), Authenticator(None))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://plane") as client:
            return await client.get("/v1/pipelines/x", headers={"X-Request-Id": "req-42"})

    r = asyncio.run(call())
    assert r.status_code == 500
    body = r.json()
    assert body == {"code": "INTERNAL", "message": "internal error; report the request id",
                    "detail": {"request_id": "req-42"}, "cause": None}
    assert r.headers["x-request-id"] == "req-42"
    assert "SELECT" not in r.text and "runtime.py" not in r.text
