"""End-to-end support for the verb tests: a real reference server and the installed executable.

`plane` (module scope) starts `python -m pipelinectl.server --demo` on a free port with viewer,
operator and admin tokens, and a CliEnv whose current context is the admin one (contexts
`viewer` and `operator` exist too). `api` reads the plane directly over HTTP, so a test can
check the plane's state without going through the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelinectl.testing import eventually
from tests.support.cli import CliEnv, Result
from tests.support.server import RunningServer, start_server


@dataclass
class Plane:
    server: RunningServer
    cli: CliEnv

    def run(self, *args: str, **kwargs: Any) -> Result:
        return self.cli.run(*args, **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.server.url + "/v1/pipelines/orders" + path, params=params,
                             headers=self.server.headers("viewer"), timeout=10)
        response.raise_for_status()
        return response.json()

    def stage(self, name: str) -> dict[str, Any]:
        return self.get(f"/stages/{name}")

    def dlq_ids(self, **params: Any) -> list[str]:
        return [i["id"] for i in self.get("/dlq", page_size=1000, **params)["items"]]

    def saga(self, saga_id: str) -> dict[str, Any]:
        return self.get(f"/sagas/{saga_id}")

    def sagas(self, status: str) -> list[dict[str, Any]]:
        return self.get("/sagas", status=status, page_size=1000)["items"]

    def replays(self) -> list[dict[str, Any]]:
        return self.get("/replays")["items"]

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
        return eventually(probe, timeout=timeout, what=what, interval=0.2)

    def validate(self, document: Any, schema: str) -> None:
        """Check a machine-output document against the server's published OpenAPI component schema."""
        import jsonschema

        spec = self.openapi
        jsonschema.validate(document, {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]})

    @property
    def openapi(self) -> dict[str, Any]:
        if not hasattr(self, "_openapi"):
            self._openapi = httpx.get(self.server.url + "/v1/openapi.json", timeout=10).json()
        return self._openapi


@pytest.fixture(name="plane", scope="module")
def plane_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root: Path = tmp_path_factory.mktemp("verbs-e2e")
    try:  # stuck sagas come sooner at 6 items/s
        server = start_server(root / "server", env={"PIPELINECTL_DEMO_RATE": "6"})
    except RuntimeError:  # a loaded CI machine may miss the health deadline once; a second start must work
        server = start_server(root / "server-again", env={"PIPELINECTL_DEMO_RATE": "6"})
    try:
        cli = CliEnv(root / "user")
        for role in ("viewer", "operator"):
            cli.set_context(role, server.url, token=server.tokens[role], pipeline="orders", use=False)
        cli.set_context("admin", server.url, token=server.tokens["admin"], pipeline="orders")
        yield Plane(server, cli)
    finally:
        server.stop()
