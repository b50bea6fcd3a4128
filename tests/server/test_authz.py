"""Every endpoint x every role: 401 without/with a bad token, 403 below the role docs/api.md names, else allowed."""

from __future__ import annotations

import httpx
import pytest

ROLES = ("viewer", "operator", "admin")
P = "/v1/pipelines/orders"

# (method, path template, body, minimum role) -- the table of docs/api.md
MATRIX = [
    ("GET", "/v1/pipelines", None, "viewer"),
    ("GET", P, None, "viewer"),
    ("GET", P + "/stages/charge", None, "viewer"),
    ("POST", P + "/stages/charge/pause", {"dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/resume", {"dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/drain", {"dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/scale", {"parallelism": 2, "dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/limit", {"rate": "5/s", "dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/disable", {"reason": "r", "dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/enable", {"dry_run": True}, "operator"),
    ("POST", P + "/stages/charge/replay-skipped", {"dry_run": True}, "operator"),
    ("POST", P + "/replays", {"from_offset": 0, "to_offset": 1, "dry_run": True}, "operator"),
    ("GET", P + "/replays", None, "viewer"),
    ("GET", P + "/replays/replay-none", None, "viewer"),
    ("POST", P + "/replays/replay-none/cancel", None, "operator"),
    ("GET", P + "/dlq", None, "viewer"),
    ("GET", P + "/dlq/dlq-1", None, "viewer"),
    ("POST", P + "/dlq/redrive", {"all": True, "dry_run": True}, "operator"),
    ("POST", P + "/dlq/purge", {"all": True, "dry_run": True}, "admin"),
    ("GET", P + "/sagas", None, "viewer"),
    ("GET", P + "/sagas/saga-none", None, "viewer"),
    ("POST", P + "/sagas/saga-none/force-fail", {"reason": "r", "dry_run": True}, "admin"),
    ("POST", P + "/sagas/saga-none/retry", {"reason": "r", "dry_run": True}, "operator"),
    ("POST", P + "/sagas/saga-none/force-complete", {"reason": "r", "dry_run": True}, "admin"),
    ("POST", P + "/sagas/saga-none/cancel", {"reason": "r", "dry_run": True}, "admin"),
    ("POST", P + "/sagas/saga-none/advance", {"reason": "r", "step": "charge", "dry_run": True}, "admin"),
    ("GET", "/v1/audit", None, "viewer"),
]


def template(path: str) -> str:
    parts = path.split("/")
    names = {3: "{pipeline}"}
    if len(parts) > 5 and parts[4] == "stages":
        names[5] = "{stage}"
    if len(parts) > 5 and parts[4] == "replays":
        names[5] = "{job_id}"
    if len(parts) > 5 and parts[4] == "dlq" and parts[5] not in ("redrive", "purge"):
        names[5] = "{item_id}"
    if len(parts) > 5 and parts[4] == "sagas":
        names[5] = "{saga_id}"
    return "/".join(names.get(i, p) for i, p in enumerate(parts))


def test_matrix_covers_every_documented_operation(demo_server):
    doc = httpx.get(demo_server.url + "/v1/openapi.json").json()
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item
                  if path != "/v1/healthz"}
    covered = {(method, template(path)) for method, path, _, _ in MATRIX}
    assert covered == documented


@pytest.mark.parametrize("method,path,body,needed", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_roles(demo_server, method, path, body, needed):
    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, demo_server.url + path, json=body, headers=headers, timeout=15)

    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        r = call(headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["code"] == "UNAUTHENTICATED"
    for role in ROLES:
        r = call(demo_server.headers(role))
        if ROLES.index(role) < ROLES.index(needed):
            assert r.status_code == 403, (role, r.text)
            assert r.json()["code"] == "PERMISSION_DENIED"
            assert demo_server.tokens[role] not in r.text
        else:
            assert r.status_code not in (401, 403), (role, r.text)
            assert r.status_code < 500, (role, r.text)


def test_health_needs_no_token(demo_server):
    assert httpx.get(demo_server.url + "/v1/healthz").status_code == 200


def test_auth_is_checked_before_the_body(demo_server):
    r = httpx.post(demo_server.url + P + "/stages/charge/scale", json={"parallelism": "x"})
    assert r.status_code == 401
    r = httpx.post(demo_server.url + P + "/dlq/purge", json={}, headers=demo_server.headers("operator"))
    assert r.status_code == 403


@pytest.mark.parametrize("method,path,body,needed", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_auth_is_checked_before_the_query(demo_server, method, path, body, needed):
    """An unknown query parameter tells nobody unauthenticated which parameters exist."""
    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, demo_server.url + path, params={"bogus": "1"}, json=body, headers=headers,
                             timeout=15)

    anonymous = call({})
    assert anonymous.status_code == 401, anonymous.text
    assert "allowed" not in anonymous.text
    below = ROLES[ROLES.index(needed) - 1] if needed != "viewer" else None
    if below is not None:
        assert call(demo_server.headers(below)).status_code == 403
    allowed = call(demo_server.headers(needed))
    assert allowed.status_code == 400, allowed.text
    assert "bogus" in allowed.json()["message"] and allowed.json()["detail"]["allowed"] is not None


def test_health_refuses_an_unknown_query_parameter(demo_server):
    r = httpx.get(demo_server.url + "/v1/healthz", params={"bogus": "1"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_ARGUMENT"
