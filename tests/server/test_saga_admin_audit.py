"""Saga cancel and advance, and the audit trail, against the real server (subprocess, SQLite, SIGKILL).

The `trips` pipeline (saga_admin_pipeline.py) starts sagas that wait at `approve` with two completed
steps before it, so a cancel has two compensations to run in reverse and an advance has a next step.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningServer, start_server
from tests.support.server import eventually as wait

pytestmark = pytest.mark.slow

PIPELINE = "tests.server.saga_admin_pipeline:build"


def boot(tmp_path: Path, db: Path | None = None, port: int | None = None) -> RunningServer:
    return start_server(tmp_path, demo=False, pipelines=(PIPELINE,), db=db, port=port)


def call(srv: RunningServer, method: str, path: str, role: str = "admin", headers: dict | None = None,
         **kw) -> httpx.Response:
    return httpx.request(method, srv.url + path, headers={**srv.headers(role), **(headers or {})}, timeout=20, **kw)


def saga(srv: RunningServer, sid: str) -> dict:
    return call(srv, "GET", f"/v1/pipelines/trips/sagas/{sid}", "viewer").json()



def at_approve(srv: RunningServer, sid: str) -> dict:
    return wait(f"{sid} at approve", lambda: (s := saga(srv, sid)).get("current_step") == "approve"
                and s["status"] == "running" and s)


def audit(srv: RunningServer, role: str = "viewer", **params) -> list[dict]:
    response = call(srv, "GET", "/v1/audit", role, params={"page_size": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_cancel_compensates_in_reverse_and_ends_cancelled(tmp_path: Path) -> None:
    srv = boot(tmp_path)
    try:
        sid = "saga-trip-0"
        at_approve(srv, sid)
        dry = call(srv, "POST", f"/v1/pipelines/trips/sagas/{sid}/cancel", json={"reason": "drill", "dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["details"]["compensate"] == ["hotel", "flight"]
        assert saga(srv, sid)["status"] == "running" and audit(srv, verb="saga cancel") == []

        done = call(srv, "POST", f"/v1/pipelines/trips/sagas/{sid}/cancel", json={"reason": "trip called off"})
        assert done.status_code == 200, done.text
        final = wait("cancelled", lambda: (s := saga(srv, sid))["status"] == "cancelled" and s)
        compensated = [e["step"] for e in final["events"] if e["type"] == "step_compensated"]
        assert compensated == ["hotel", "flight"]  # completed steps, undone in reverse
        steps = {s["name"]: s for s in final["steps"]}
        assert steps["approve"]["status"] == "cancelled" and steps["car"]["status"] == "skipped"
        assert steps["flight"]["compensation"] == steps["hotel"]["compensation"] == "compensated"
        assert final["events"][-1]["type"] == "saga_cancelled"

        again = call(srv, "POST", f"/v1/pipelines/trips/sagas/{sid}/cancel", json={"reason": "twice"})
        assert again.status_code == 409 and again.json()["detail"]["status"] == "cancelled"
        [entry] = audit(srv, verb="saga cancel")
        assert entry["actor"] == "admin" and entry["target"] == sid and entry["reason"] == "trip called off"
        assert entry["request_id"] == done.headers["X-Request-Id"]
        listed = call(srv, "GET", "/v1/pipelines/trips/sagas", "viewer", params={"status": "cancelled"}).json()
        assert [s["id"] for s in listed["items"]] == [sid]
    finally:
        srv.stop()


def test_advance_records_the_step_and_continues_with_the_next(tmp_path: Path) -> None:
    srv = boot(tmp_path)
    try:
        sid = "saga-trip-1"
        at_approve(srv, sid)
        path = f"/v1/pipelines/trips/sagas/{sid}/advance"
        wrong = call(srv, "POST", path, json={"step": "car", "reason": "skip ahead"})
        assert wrong.status_code == 409, wrong.text
        assert wrong.json()["detail"]["current_step"] == "approve"
        denied = call(srv, "POST", path, "operator", json={"step": "approve", "reason": "x"})
        assert denied.status_code == 403
        assert saga(srv, sid)["current_step"] == "approve"

        ok = call(srv, "POST", path, json={"step": "approve", "reason": "approved on the phone",
                                           "result": {"approved_by": "ops-lead"}},
                  headers={"Idempotency-Key": "adv-1"})
        assert ok.status_code == 200, ok.text
        final = wait("completed", lambda: (s := saga(srv, sid))["status"] == "completed" and s)
        steps = {s["name"]: s["status"] for s in final["steps"]}
        assert steps == {"flight": "completed", "hotel": "completed", "approve": "completed", "car": "completed"}
        assert final["details"]["data"]["approved_by"] == "ops-lead"
        assert final["details"]["data"]["car"] == f"car-{sid}"  # the next step ran after the advance
        [advanced] = [e for e in final["events"] if e["type"] == "step_advanced"]
        assert advanced["step"] == "approve" and "advanced by operator admin" in advanced["message"]
        [entry] = audit(srv, verb="saga advance", target=sid)
        assert entry["actor"] == "admin" and entry["idempotency_key"] == "adv-1"
        assert entry["arguments"]["result"] == {"approved_by": "ops-lead"}
    finally:
        srv.stop()


def test_audit_names_each_token_survives_sigkill_and_records_recovery(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    srv = boot(tmp_path / "first", db=db)
    try:
        at_approve(srv, "saga-trip-2")
        at_approve(srv, "saga-trip-3")
        paused = call(srv, "POST", "/v1/pipelines/trips/stages/book/pause", "operator", json={})
        assert paused.status_code == 200, paused.text
        cancelled = call(srv, "POST", "/v1/pipelines/trips/sagas/saga-trip-2/cancel",
                         json={"reason": "duplicate"}, headers={"Pipelinectl-Plan": "sha256:" + "ab" * 32})
        assert cancelled.status_code == 200
        viewer = call(srv, "POST", "/v1/pipelines/trips/stages/book/resume", "viewer", json={})
        assert viewer.status_code == 403
        before = audit(srv)
        by = {e["verb"]: e for e in before}
        assert by["pause"]["actor"] == "operator" and by["pause"]["target"] == "book"
        assert by["saga cancel"]["actor"] == "admin" and by["saga cancel"]["plan"] == "sha256:" + "ab" * 32
        assert "resume" not in by  # refused: nothing changed, nothing recorded
        assert [e["verb"] for e in audit(srv, actor="operator")] == ["pause"]
        assert {e["actor"] for e in before} == {"operator", "admin"}
    finally:
        srv.kill()
    srv = boot(tmp_path / "second", db=db)
    try:
        after = audit(srv)
        assert after[:len(before)] == before  # every entry survived the SIGKILL, unchanged
        # The saga that was running at approve is adopted once the dead coordinator's lease runs out.
        recovered = wait("a saga recover entry", lambda: audit(srv, verb="saga recover"))
        assert {e["target"] for e in recovered} >= {"saga-trip-3"}
        assert all(e["actor"] == "system" and e["request_id"] is None for e in recovered)
    finally:
        srv.stop()


def test_audit_read_access_filters_and_pages(tmp_path: Path) -> None:
    srv = boot(tmp_path)
    try:
        for _ in range(3):
            for verb in ("pause", "resume"):
                assert call(srv, "POST", f"/v1/pipelines/trips/stages/book/{verb}", "operator", json={}).status_code == 200
        assert httpx.get(srv.url + "/v1/audit", timeout=10).status_code == 401
        seen, token = [], None
        while True:
            page = call(srv, "GET", "/v1/audit", "viewer", params={"page_size": 2, "target": "book",
                                                                   **({"page_token": token} if token else {})})
            assert page.status_code == 200
            body = page.json()
            assert body["total"] == 6 and len(body["items"]) <= 2
            seen += body["items"]
            token = body["next_page_token"]
            if not token:
                break
        assert [e["verb"] for e in seen] == ["pause", "resume"] * 3
        assert len({e["id"] for e in seen}) == 6
        assert audit(srv, since="2100-01-01T00:00:00Z") == []
        assert len(audit(srv, verb="pause", actor="operator")) == 3
        assert audit(srv, actor="admin") == []
        bad = call(srv, "GET", "/v1/audit", "viewer", params={"page_token": "nope"})
        assert bad.status_code == 400
    finally:
        srv.stop()


def test_audit_pages_newest_first_on_request(tmp_path: Path) -> None:
    """`order=newest` (the dashboard's audit view): the same entries, newest first, paged below each token."""
    srv = boot(tmp_path)
    try:
        for _ in range(3):
            for verb in ("pause", "resume"):
                assert call(srv, "POST", f"/v1/pipelines/trips/stages/book/{verb}", "operator", json={}).status_code == 200
        oldest_first = audit(srv, target="book")
        seen, token = [], None
        while True:
            page = call(srv, "GET", "/v1/audit", "viewer", params={"page_size": 4, "target": "book", "order": "newest",
                                                                   **({"page_token": token} if token else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["total"] == 6
            seen += body["items"]
            token = body["next_page_token"]
            if not token:
                break
        assert [e["id"] for e in seen] == [e["id"] for e in reversed(oldest_first)]
        assert len(seen) == 6
        assert call(srv, "GET", "/v1/audit", "viewer", params={"order": "sideways"}).status_code == 400
        assert call(srv, "GET", "/v1/audit", "viewer", params={"since": "12"}).status_code == 400  # RFC 3339 only
    finally:
        srv.stop()
