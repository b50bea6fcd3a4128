"""The OpenAPI document is the contract: checked in == generated == served, and the server keeps it.

The fuzz run (schemathesis, bounded examples per operation) sends generated
valid and invalid requests to a real demo server as admin and checks: no 5xx,
status codes, content types and bodies as documented; invalid requests are
refused; and valid ones are accepted (schemathesis' positive-data check): a
request the document allows may only meet the refusals the document gives
valid data (404 for a name that does not exist, 409, 412, the operation's
422 rules), never a 400.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from pipelinectl.server.app import NOT_BLANK
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
            if "422" in op["responses"]:  # only the operation's own rules, in the error body; not FastAPI's shape
                assert op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
            if path != "/v1/healthz":
                assert {"400", "401", "403", "404", "500"} <= set(op["responses"]), (method, path)


# What a valid request may still meet, where the operation documents it: a name that does not exist,
# a state or version that moved on, a rule of the operation that no schema can state (its 422).
VALID_DATA_REFUSALS = {"404", "409", "412", "422", "429", "503"}


def positive_data_config(document: dict) -> schemathesis.Config:
    """Per operation: valid data is accepted (2xx) or meets one of its documented valid-data refusals."""
    operations = []
    for item in document["paths"].values():
        for op in item.values():
            expected = ["2xx", *sorted(VALID_DATA_REFUSALS & set(op["responses"]))]
            operations.append({"include-operation-id": op["operationId"],  # (include-* keys would be ORed)
                               "checks": {"positive_data_acceptance": {"expected-statuses": expected}}})
    return schemathesis.Config.from_dict({"operations": operations})


DOCUMENT = json.loads((ROOT / "docs" / "openapi.json").read_text())
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=positive_data_config(DOCUMENT))
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
            case.call_and_validate(base_url=demo_server.url, headers=headers, timeout=20)

        check()


def test_the_fuzz_checks_acceptance_against_each_operations_documented_refusals():
    by_label = {op.label: op for op in OPERATIONS}
    scale = SCHEMA.config.checks_config_for(operation=by_label["POST /v1/pipelines/{pipeline}/stages/{stage}/scale"])
    assert scale.positive_data_acceptance.enabled and scale.negative_data_rejection.enabled
    assert scale.positive_data_acceptance.expected_statuses == ["2xx", "404", "412", "422", "429", "503"]
    listing = SCHEMA.config.checks_config_for(operation=by_label["GET /v1/pipelines/{pipeline}/dlq"])
    assert listing.positive_data_acceptance.expected_statuses == ["2xx", "404", "429", "503"]


def test_not_blank_is_pythons_whitespace_exactly():
    """The reason pattern names the characters str.strip() removes (the rule the sagas apply)."""
    for char in map(chr, range(0x3001)):
        assert bool(re.fullmatch(NOT_BLANK, char)) == bool(char.strip()), hex(ord(char))
