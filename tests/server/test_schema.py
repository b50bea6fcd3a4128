"""The OpenAPI document is the contract: checked in == generated == served, and the server keeps it.

The fuzz run (schemathesis, bounded examples per operation) sends generated
valid and invalid requests to a real demo server as admin and checks: no 5xx,
status codes, content types and bodies as documented.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from pipelinectl.server.openapi import render

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_openapi_is_generated():
    checked_in = (ROOT / "docs" / "openapi.json").read_text()
    assert checked_in == render(), "regenerate: python -m pipelinectl.server.openapi > docs/openapi.json"


def test_served_openapi_equals_generated(demo_server):
    served = httpx.get(demo_server.url + "/v1/openapi.json").json()
    assert served == json.loads(render())
    assert served["openapi"].startswith("3.1")
    for path, item in served["paths"].items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
            if path != "/v1/healthz":
                assert {"400", "401", "403", "404", "500"} <= set(op["responses"]), (method, path)


SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def real_ids(srv) -> dict[str, str]:
    """Path parameters that exist, so generated requests reach the handlers, not only the 404 path."""
    base = srv.url + "/v1/pipelines/orders"
    headers = srv.headers("admin")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dlq = httpx.get(base + "/dlq", headers=headers).json()["items"]
        sagas = httpx.get(base + "/sagas", headers=headers).json()["items"]
        if dlq and sagas:
            break
        time.sleep(0.5)
    job = httpx.post(base + "/replays", json={"from_offset": 0, "to_offset": 5}, headers=headers).json()
    return {"pipeline": "orders", "stage": "ship", "item_id": dlq[0]["id"], "saga_id": sagas[0]["id"],
            "job_id": job["id"]}


@pytest.fixture(scope="module")
def known(demo_server) -> dict[str, str]:
    return real_ids(demo_server)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_api_conforms_to_its_document(operation, demo_server, known):
    headers = demo_server.headers("admin")
    params = {p.name: known[p.name] for p in operation.path_parameters}
    strategies = [
        (operation.as_strategy(), 6),  # random names: the not-found paths
        (operation.as_strategy(path_parameters=params), 12),  # real names: the handlers
        (operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=params), 8),  # invalid input: 4xx
    ]
    if not any(x.items for x in (operation.path_parameters, operation.query, operation.headers, operation.body)):
        strategies.pop()  # nothing to make invalid
    for strategy, examples in strategies:

        @given(case=strategy)
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            # positive_data_acceptance is left out on purpose: business rules (a parallelism outside the
            # stage's range, an empty DLQ selection, a half-open replay range) reject schema-valid input
            # with a documented 400.
            case.call_and_validate(base_url=demo_server.url, headers=headers, timeout=20,
                                   excluded_checks=[positive_data_acceptance])

        check()
