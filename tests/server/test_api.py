"""The control-plane API over real HTTP against the demo server (subprocess, free port, temp SQLite)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pipelinectl.model import DLQItem, Pipeline, ReplayJob, Saga, Stage
from pipelinectl.testing import eventually

pytestmark = pytest.mark.slow  # a real server or engine, end to end: `pytest -m 'not slow'` skips it

ERROR_KEYS = {"code", "message", "detail", "cause"}


def until(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    return eventually(predicate, timeout=timeout, interval=every)


def pipeline_of(client: httpx.Client) -> httpx.Response:
    return client.get(str(client.base_url).rstrip("/"))


def stage(client: httpx.Client, name: str) -> dict:
    r = client.get(f"/stages/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code
    assert "Traceback" not in r.text and ".py" not in r.text and "SELECT" not in r.text
    assert r.headers.get("x-request-id")
    return body


def test_health_and_request_ids(demo_server):
    r = httpx.get(demo_server.url + "/v1/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": r.json()["version"], "auth": True}
    assert r.headers["x-request-id"]
    r = httpx.get(demo_server.url + "/v1/pipelines", headers={"X-Request-Id": "my-req-1", **demo_server.headers()})
    assert r.headers["x-request-id"] == "my-req-1"
    assert_error(httpx.get(demo_server.url + "/v1/nope"), 404, "NOT_FOUND")
    assert_error(httpx.get(demo_server.url + "/v1/pipelines"), 401, "UNAUTHENTICATED")


def test_a_405_allows_every_method_of_the_path(demo_server):
    """Allow lists the methods the document gives the path, whichever route the router tried first."""
    doc = httpx.get(demo_server.url + "/v1/openapi.json").json()
    concrete = {"{pipeline}": "orders", "{stage}": "ship", "{job_id}": "replay-x", "{item_id}": "dlq-1",
                "{saga_id}": "saga-x"}
    for template, item in doc["paths"].items():
        path = template
        for name, value in concrete.items():
            path = path.replace(name, value)
        documented = {method.upper() for method in item}
        served = {method.upper() for other, them in doc["paths"].items()  # /dlq/redrive is also /dlq/{item_id}
                  if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", other), path) for method in them}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - served:
            r = httpx.request(method, demo_server.url + path, headers=demo_server.headers())
            assert_error(r, 405, "INVALID_ARGUMENT")
            assert set(r.headers["allow"].replace(" ", "").split(",")) == documented, (method, path, r.headers)


def test_pipeline_and_stage_shapes(admin):
    r = pipeline_of(admin)
    assert r.status_code == 200
    p = Pipeline.from_dict(r.json())
    assert [s.name for s in p.stages] == ["ingest", "validate", "charge", "ship", "notify"]
    assert p.kind == "Pipeline" and p.input_offset > 0
    r = admin.get("/stages/charge")
    st = Stage.from_dict(r.json())
    assert r.headers["etag"] == f'"{st.version}"'
    assert st.queue_capacity == 50 and st.min_parallelism <= st.parallelism <= st.max_parallelism
    assert_error(admin.get("/stages/nope"), 404, "NOT_FOUND")
    assert_error(httpx.get(str(admin.base_url).replace("/orders", "/nope"), headers=admin.headers), 404, "NOT_FOUND")


def test_validation_errors_are_400_with_error_body(admin):
    assert_error(admin.post("/stages/charge/scale", json={"parallelism": "many"}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post("/stages/charge/scale", json={}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post("/stages/charge/scale", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "INVALID_ARGUMENT")
    assert_error(admin.get("/dlq", params={"page_size": 0}), 400, "INVALID_ARGUMENT")
    assert_error(admin.get("/dlq", params={"page_token": "garbage"}), 400, "INVALID_ARGUMENT")
    assert_error(admin.get("/dlq", params={"error_kind": "cosmic"}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post("/dlq/purge", json={}), 400, "INVALID_ARGUMENT")
    typo = assert_error(admin.post("/stages/charge/pause?dryrun=true"), 400, "INVALID_ARGUMENT")  # not ignored
    assert "dry_run" in typo["detail"]["allowed"]
    assert stage(admin, "charge")["state"] == "running"
    assert_error(admin.post("/dlq/redrive", json={"bogus": 1}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post("/replays", json={"from_offset": 5}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post("/replays", json={"from_offset": 1, "to_offset": 2, "from_time": "2026-01-01T00:00:00Z"}),
                 400, "INVALID_ARGUMENT")


def test_every_time_the_api_reads_is_rfc3339_never_a_bare_number(admin):
    """pydantic alone reads 12 or "12" as Unix time: a typo would select from 1970 on, so it is refused."""
    before = stage(admin, "charge")
    dlq_total = admin.get("/dlq").json()["total"]
    for value in ("12", "1.5e9"):
        assert_error(admin.get("/dlq", params={"since": value}), 400, "INVALID_ARGUMENT")
        assert_error(admin.get("/dlq", params={"until": value}), 400, "INVALID_ARGUMENT")
    for number in (12, 1.5e9):
        assert_error(admin.post("/dlq/redrive", json={"since": number}), 400, "INVALID_ARGUMENT")
        assert_error(admin.post("/dlq/purge", json={"until": number}), 400, "INVALID_ARGUMENT")
        assert_error(admin.post("/replays", json={"from_time": number, "to_time": number + 60}), 400,
                     "INVALID_ARGUMENT")
        assert_error(admin.post("/stages/charge/pause", json={"until": number}), 400, "INVALID_ARGUMENT")
    assert stage(admin, "charge")["version"] == before["version"]
    assert admin.get("/dlq").json()["total"] >= dlq_total  # nothing redriven or purged
    assert admin.get("/dlq", params={"since": "2026-01-01T00:00:00Z"}).status_code == 200


@pytest.mark.parametrize("headers", [{"If-Match": "null"}, {"If-Match": ""}, {"If-Match": '"3'}, {"If-Match": "v3"},
                                     {"If-Match": '"1234567890123456789"'}])
def test_if_match_must_be_a_version_as_documented(admin, headers):
    assert_error(admin.post("/stages/charge/resume", headers=headers), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("value", ['"7"', "W/\"7\"", "7", "*"])
def test_if_match_forms_the_document_allows(admin, value):
    current = stage(admin, "charge")["version"]
    r = admin.post("/stages/charge/resume", json={"dry_run": True}, headers={"If-Match": value.replace("7", str(current))})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("token", ["", "s", "garbage", "s12x", "s" + "1" * 23, "s\u0663", "\u0663",
                                   "s9177653200289242071475"])  # past SQLite's integers: was a 500
def test_page_token_must_be_one_the_server_gave(admin, token):
    for path in ("/dlq", "/sagas"):
        assert_error(admin.get(path, params={"page_token": token}), 400, "INVALID_ARGUMENT")


def test_rules_beyond_the_schema_are_422(admin):
    """Well-formed requests that break a rule a schema cannot state: 422 INVALID_ARGUMENT, nothing changed."""
    before = stage(admin, "charge")
    body = assert_error(admin.post("/stages/charge/scale", json={"parallelism": 999}), 422, "INVALID_ARGUMENT")
    assert body["detail"]["max_parallelism"] == 16
    assert_error(admin.post("/stages/charge/pause", json={"until": "2001-01-01T00:00:00Z"}), 422, "INVALID_ARGUMENT")
    assert_error(admin.post("/replays", json={"from_offset": 5, "to_offset": 2}), 422, "INVALID_ARGUMENT")
    assert_error(admin.post("/replays", json={"from_offset": 5, "to_offset": 5}), 422, "INVALID_ARGUMENT")
    assert stage(admin, "charge")["version"] == before["version"]


def test_pause_stops_taking_items_and_resume_continues(admin):
    before = stage(admin, "validate")
    r = admin.post("/stages/validate/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused"
    assert r.json()["version"] == before["version"] + 1
    until(lambda: stage(admin, "validate")["in_flight"] == 0, 10)
    frozen = stage(admin, "validate")["processed"] + stage(admin, "validate")["failed"]
    time.sleep(1.5)  # the source keeps producing: the queue grows, nothing is taken
    now = stage(admin, "validate")
    assert now["processed"] + now["failed"] == frozen
    assert now["queue_depth"] > 0
    again = admin.post("/stages/validate/pause")  # idempotent verb: no-op, same version
    assert again.status_code == 200 and again.json()["version"] == now["version"]
    r = admin.post("/stages/validate/resume")
    assert r.json()["state"] == "running"
    until(lambda: stage(admin, "validate")["processed"] > now["processed"], 10)


def test_drain_empties_the_queue_then_pauses(admin):
    admin.post("/stages/notify/pause")
    until(lambda: stage(admin, "notify")["queue_depth"] >= 3, 30)
    assert admin.post("/stages/notify/drain").json()["state"] == "paused"  # drain of a paused stage: no-op
    admin.post("/stages/notify/resume")
    r = admin.post("/stages/notify/drain")
    assert r.status_code == 200 and r.json()["state"] == "draining"
    assert stage(admin, "ship")["state"] == "running"
    drained = until(lambda: (s := stage(admin, "notify"))["state"] == "paused" and s, 30)
    assert drained["in_flight"] == 0 and drained["details"]["paused_reason"] == "drained"
    time.sleep(1.0)  # paused after the drain: upstream may queue again, but nothing more is taken
    assert stage(admin, "notify")["processed"] == drained["processed"]
    assert admin.post("/stages/notify/resume").json()["state"] == "running"


def test_scale_is_live_and_versioned(admin):
    st = stage(admin, "ship")
    r = admin.post("/stages/ship/scale", json={"parallelism": 5}, headers={"If-Match": f'"{st["version"]}"'})
    assert r.status_code == 200, r.text
    assert r.json()["parallelism"] == 5 and r.json()["version"] == st["version"] + 1
    until(lambda: stage(admin, "ship")["details"]["workers"] == 5, 5)
    stale = assert_error(admin.post("/stages/ship/scale", json={"parallelism": 2},
                                    headers={"If-Match": f'"{st["version"]}"'}), 412, "ABORTED")
    assert stale["detail"]["current_version"] == st["version"] + 1
    assert stale["detail"]["current"]["parallelism"] == 5
    assert "parallelism 5" in stale["message"]  # the loser of a race learns the value, not only the version
    assert stage(admin, "ship")["parallelism"] == 5
    r = admin.post("/stages/ship/scale", json={"parallelism": 1})
    assert r.json()["parallelism"] == 1
    until(lambda: stage(admin, "ship")["details"]["workers"] == 1, 10)
    dry = admin.post("/stages/ship/scale?dry_run=true", json={"parallelism": 3})
    assert dry.json()["parallelism"] == 3 and dry.json()["details"]["dry_run"] is True
    assert stage(admin, "ship")["parallelism"] == 1
    admin.post("/stages/ship/scale", json={"parallelism": 2})


def test_idempotency_key_acts_once(admin):
    key = str(uuid.uuid4())
    v0 = stage(admin, "charge")["version"]
    first = admin.post("/stages/charge/scale", json={"parallelism": 3}, headers={"Idempotency-Key": key})
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    second = admin.post("/stages/charge/scale", json={"parallelism": 3}, headers={"Idempotency-Key": key})
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert stage(admin, "charge")["version"] == v0 + 1
    assert_error(admin.post("/stages/charge/scale", json={"parallelism": 4}, headers={"Idempotency-Key": key}),
                 422, "INVALID_ARGUMENT")
    admin.post("/stages/charge/scale", json={"parallelism": 2})
    # a retried replay start returns the same job (201) instead of starting a second one
    key = str(uuid.uuid4())
    body = {"stage": "notify", "from_offset": 0, "to_offset": 3}
    a = admin.post("/replays", json=body, headers={"Idempotency-Key": key})
    b = admin.post("/replays", json=body, headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    jobs = [j for j in admin.get("/replays").json()["items"] if j["stage"] == "notify" and j["to_offset"] == 3]
    assert len(jobs) == 1


def test_dlq_list_paginates_filters_and_shows(admin):
    until(lambda: admin.get("/dlq").json()["total"] >= 3, 30)
    listing = admin.get("/dlq").json()
    assert listing["kind"] == "DLQItemList"
    seen, token = [], None
    while True:
        page = admin.get("/dlq", params={"page_size": 2, **({"page_token": token} if token else {})}).json()
        seen += [i["id"] for i in page["items"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) >= listing["total"]
    poison = admin.get("/dlq", params={"error_kind": "validation"}).json()
    assert poison["items"] and all(i["error_kind"] == "validation" and i["stage"] == "validate" for i in poison["items"])
    item = DLQItem.from_dict(admin.get(f"/dlq/{poison['items'][0]['id']}").json())
    assert item.payload["amount_cents"] < 0 and item.attempts == 1 and item.first_seen and item.last_seen
    assert item.key and item.offset is not None and item.message
    assert_error(admin.get("/dlq/dlq-999999999"), 404, "NOT_FOUND")


def test_redrive_moves_items_back_and_removes_them_once_accepted(admin):
    items = until(lambda: admin.get("/dlq", params={"stage": "ship"}).json()["items"], 60)
    ids = [i["id"] for i in items]
    keys = {i["key"] for i in items}
    dry = admin.post("/dlq/redrive", json={"ids": ids, "dry_run": True}).json()
    assert dry["dry_run"] and set(dry["matched"]) == set(ids) and not dry["succeeded"]
    assert admin.get(f"/dlq/{ids[0]}").status_code == 200
    shipped_before = stage(admin, "ship")["processed"]
    r = admin.post("/dlq/redrive", json={"ids": ids + ["dlq-424242424"]})
    result = r.json()
    assert set(result["succeeded"]) == set(ids) and result["failed"] == {"dlq-424242424": "not found"}
    for i in ids:
        assert admin.get(f"/dlq/{i}").status_code == 404
    # the carrier outage is over on redrive: the items pass ship and never return to the DLQ
    until(lambda: stage(admin, "ship")["processed"] >= shipped_before + len(ids), 30)
    time.sleep(0.5)
    again = {i["key"] for i in admin.get("/dlq", params={"stage": "ship", "page_size": 1000}).json()["items"]}
    assert not (again & keys)


def test_purge_needs_selection_and_admin_removes(admin, demo_server):
    items = until(lambda: admin.get("/dlq", params={"error_kind": "validation"}).json()["items"], 30)
    target = items[0]["id"]
    op = httpx.post(f"{demo_server.url}/v1/pipelines/orders/dlq/purge", json={"ids": [target]},
                    headers=demo_server.headers("operator"))
    assert_error(op, 403, "PERMISSION_DENIED")
    assert admin.post("/dlq/purge", json={"ids": [target], "dry_run": True}).json()["matched"] == [target]
    assert admin.get(f"/dlq/{target}").status_code == 200
    r = admin.post("/dlq/purge", json={"ids": [target]})
    assert r.json()["succeeded"] == [target]
    assert admin.get(f"/dlq/{target}").status_code == 404


def test_replay_dry_run_job_progress_and_idempotent_skip(admin):
    until(lambda: pipeline_of(admin).json()["input_offset"] > 40, 30)
    plan = admin.post("/replays", json={"from_offset": 0, "to_offset": 30, "dry_run": True})
    assert plan.status_code == 200
    planned = ReplayJob.from_dict(plan.json())
    assert planned.state == "planned" and planned.total == 30 and planned.skipped > 0
    assert admin.get(f"/replays/{planned.id}").status_code == 404  # a plan is not stored
    r = admin.post("/replays", json={"stage": "validate", "from_offset": 0, "to_offset": 30})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    done = until(lambda: (j := admin.get(f"/replays/{job_id}").json())["state"] == "completed" and j, 30)
    assert done["replayed"] + done["skipped"] == 30
    assert done["skipped"] >= planned.skipped  # already applied: not processed twice
    assert job_id in [j["id"] for j in admin.get("/replays").json()["items"]]
    assert_error(admin.post(f"/replays/{job_id}/cancel"), 409, "FAILED_PRECONDITION")
    # offsets clip to the log
    clipped = admin.post("/replays", json={"from_offset": 0, "to_offset": 10**12, "dry_run": True}).json()
    assert clipped["to_offset"] == pipeline_of(admin).json()["input_offset"] or clipped["to_offset"] <= 10**12


def test_replay_cancel_stops_a_running_job(admin):
    admin.post("/stages/ship/pause")
    try:
        until(lambda: stage(admin, "ship")["queue_depth"] >= 50, 60)  # ship's queue full: replays into it wait
        r = admin.post("/replays", json={"stage": "ship", "from_offset": 0, "to_offset": 200})
        job_id = r.json()["id"]
        time.sleep(0.5)
        assert admin.get(f"/replays/{job_id}").json()["state"] in ("pending", "running")
        c = admin.post(f"/replays/{job_id}/cancel")
        assert c.status_code == 200 and c.json()["state"] == "cancelled"
        time.sleep(0.3)
        assert admin.get(f"/replays/{job_id}").json()["state"] == "cancelled"
    finally:
        admin.post("/stages/ship/resume")


def test_saga_stuck_retry_completes(admin):
    stuck = until(lambda: admin.get("/sagas", params={"status": "stuck"}).json()["items"], 60)
    sid = stuck[0]["id"]
    assert stuck[0]["steps"] == [] and stuck[0]["current_step"] == "charge"
    full = Saga.from_dict(admin.get(f"/sagas/{sid}").json())
    assert full.steps[0].status == "completed" and full.events[-1].type == "saga_stuck"
    r = admin.post(f"/sagas/{sid}/retry", json={"reason": "gateway back"})
    assert r.status_code == 200 and r.json()["status"] == "running"
    done = until(lambda: (s := admin.get(f"/sagas/{sid}").json())["status"] == "completed" and s, 30)
    assert [s["status"] for s in done["steps"]] == ["completed"] * 3
    assert any(e["type"] == "retry" and e["message"] == "gateway back" for e in done["events"])
    assert_error(admin.post(f"/sagas/{sid}/retry", json={}), 409, "FAILED_PRECONDITION")


def test_saga_compensation_and_operator_verbs(admin):
    compensated = until(lambda: admin.get("/sagas", params={"status": "compensated"}).json()["items"], 60)
    s = admin.get(f"/sagas/{compensated[0]['id']}").json()
    assert [st["status"] for st in s["steps"]] == ["compensated", "compensated", "failed"]
    types = [e["type"] for e in s["events"]]
    assert types.index("step_compensated") > types.index("step_failed")
    assert_error(admin.post(f"/sagas/{s['id']}/force-fail", json={"reason": "x"}), 409, "FAILED_PRECONDITION")
    # force-fail a stuck saga: completed steps compensate in reverse
    stuck = until(lambda: admin.get("/sagas", params={"status": "stuck"}).json()["items"], 60)
    sid = stuck[0]["id"]
    assert_error(admin.post(f"/sagas/{sid}/force-fail", json={}), 400, "INVALID_ARGUMENT")
    assert_error(admin.post(f"/sagas/{sid}/force-fail", json={"reason": "   "}), 400, "INVALID_ARGUMENT")
    dry = admin.post(f"/sagas/{sid}/force-fail", json={"reason": "INC-1", "dry_run": True}).json()
    # a dry run answers the saga as the action would leave it, and says what it would do
    assert dry["status"] == "compensating" and dry["details"]["status_before"] == "stuck"
    assert dry["details"]["dry_run"] is True and dry["details"]["compensate"] == ["reserve"]
    assert dry["details"]["would"] == "compensate reserve (in reverse), then end compensated"
    assert admin.get(f"/sagas/{sid}").json()["status"] == "stuck", "a dry run changes nothing"
    r = admin.post(f"/sagas/{sid}/force-fail", json={"reason": "INC-1 customer cancelled"})
    assert r.status_code == 200
    final = until(lambda: (x := admin.get(f"/sagas/{sid}").json())["status"] == "compensated" and x, 15)
    assert final["steps"][0]["status"] == "compensated" and final["last_error"].startswith("force-failed")
    assert final["steps"][2]["status"] == "skipped"  # never started: not "still to come"
    # force-complete a saga that is not finished
    other = until(lambda: [x for x in admin.get("/sagas", params={"status": "stuck"}).json()["items"]
                           if x["id"] != sid] or admin.get("/sagas", params={"status": "running"}).json()["items"], 60)
    oid = other[0]["id"]
    dry = admin.post(f"/sagas/{oid}/force-complete", json={"reason": "shipped by hand", "dry_run": True}).json()
    assert dry["status"] == "completed" and dry["details"]["status_before"] == other[0]["status"]
    assert dry["details"]["would"].startswith("skip ") and dry["details"]["would"].endswith("and mark it completed")
    r = admin.post(f"/sagas/{oid}/force-complete", json={"reason": "shipped by hand"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert any(st["status"] == "skipped" for st in r.json()["steps"])
    assert_error(admin.get("/sagas/nope"), 404, "NOT_FOUND")


def test_saga_list_filters_and_pagination(admin):
    until(lambda: admin.get("/sagas").json()["total"] >= 4, 60)
    total = admin.get("/sagas").json()["total"]
    seen, token = [], None
    while True:
        page = admin.get("/sagas", params={"page_size": 3, **({"page_token": token} if token else {})}).json()
        seen += [s["id"] for s in page["items"]]
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) >= total
    assert admin.get("/sagas", params={"definition": "nope"}).json()["total"] == 0
    assert_error(admin.get("/sagas", params={"status": "weird"}), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("path", ["/v1/openapi.json"])
def test_openapi_served_without_auth(demo_server, path):
    r = httpx.get(demo_server.url + path)
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")


def test_saga_failed_compensation_is_retried_by_operator(admin):
    failed = until(lambda: admin.get("/sagas", params={"status": "failed"}).json()["items"], 90)
    sid = failed[0]["id"]
    s = admin.get(f"/sagas/{sid}").json()
    assert "compensation_failed" in [st["status"] for st in s["steps"]]
    assert s["events"][-1]["type"] == "saga_failed"
    dry = admin.post(f"/sagas/{sid}/retry", json={"dry_run": True}).json()
    assert dry["status"] == "compensating" and dry["details"]["status_before"] == "failed"
    assert dry["details"]["would"] == "resume compensation"
    r = admin.post(f"/sagas/{sid}/retry", json={"reason": "refund fixed"})
    assert r.status_code == 200 and r.json()["status"] == "compensating"
    done = until(lambda: (x := admin.get(f"/sagas/{sid}").json())["status"] == "compensated" and x, 15)
    assert [st["status"] for st in done["steps"]] == ["compensated", "compensated", "failed"]


def test_oversized_body_is_refused(admin):
    big = {"ids": ["dlq-1" * 1000] * 300}
    assert_error(admin.post("/dlq/purge", json=big), 413, "INVALID_ARGUMENT")


def test_replay_by_time_and_dlq_time_filters(admin):
    until(lambda: admin.get("/dlq").json()["total"] >= 1, 30)
    everything = admin.post("/replays", json={"from_time": "2000-01-01T00:00:00Z", "to_time": "2100-01-01T00:00:00Z",
                                              "dry_run": True}).json()
    offset = pipeline_of(admin).json()["input_offset"]
    assert everything["state"] == "planned" and everything["from_offset"] == 0
    assert everything["total"] == everything["to_offset"] and everything["total"] <= offset
    assert everything["from_time"] == "2000-01-01T00:00:00Z"
    nothing = admin.post("/replays", json={"from_time": "2000-01-01T00:00:00Z", "to_time": "2000-01-02T00:00:00Z",
                                           "dry_run": True}).json()
    assert nothing["total"] == 0
    assert_error(admin.post("/replays", json={"from_time": "2026-01-02T00:00:00Z", "to_time": "2026-01-01T00:00:00Z"}),
                 422, "INVALID_ARGUMENT")
    total = admin.get("/dlq").json()["total"]
    assert admin.get("/dlq", params={"since": "2000-01-01T00:00:00Z"}).json()["total"] == total
    assert admin.get("/dlq", params={"since": "2100-01-01T00:00:00Z"}).json()["total"] == 0
    assert admin.get("/dlq", params={"until": "2000-01-01T00:00:00Z"}).json()["total"] == 0
