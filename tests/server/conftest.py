"""Fixtures: a real control plane (subprocess, free port, temp SQLite) shared by a module's tests."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import RunningServer, start_server


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """The demo pipeline with auth on (tokens for viewer, operator, admin)."""
    srv = start_server(tmp_path_factory.mktemp("demo"))
    yield srv
    srv.stop()


@pytest.fixture()
def admin(demo_server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=demo_server.url + "/v1/pipelines/orders", headers=demo_server.headers("admin"),
                      timeout=15) as client:
        yield client
