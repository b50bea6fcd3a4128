"""Shared set-up for the reliability tests and the benchmarks: a real plane, contexts, seeded DLQ items.

The plane is the reference server (tests/support/server.py) running the demo
pipeline `orders` with its source stopped after the first burst
(PIPELINECTL_DEMO_RATE=0), so its state holds still while a test compares
before and after.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.cli import CliEnv
from tests.support.server import RunningServer, start_server

PIPELINE = "orders"
QUIET = {"PIPELINECTL_DEMO_RATE": "0"}


def start_quiet_plane(tmp: Path, *, seed_dlq: int = 0, seed_stage: str = "validate") -> RunningServer:
    """A real server over its own SQLite file; `seed_dlq` extra DLQ items are written before it starts."""
    tmp.mkdir(parents=True, exist_ok=True)
    db = tmp / "state.db"
    if seed_dlq:
        seed(db, seed_dlq, stage=seed_stage)
    server = start_server(tmp, env=QUIET, db=db)
    settle(server)
    return server


def seed(db: Path, count: int, *, stage: str = "validate", pipeline: str = PIPELINE, batch: int = 20_000) -> None:
    """Insert `count` synthetic dead-letter items straight into the plane's SQLite store.

    Uses the store's own schema (pipelinectl.server.store), so the server reads
    them exactly as it reads items its stages dead-lettered.
    """
    from pipelinectl.server.store import Store

    Store(db).close()  # creates the schema
    conn = sqlite3.connect(db)
    t = time.time()
    payload = json.dumps({"order": 0, "sku": "sku-x", "qty": 1, "amount_cents": -100, "customer": "cust-000"})
    try:
        for start in range(0, count, batch):
            rows = [(pipeline, stage, f"seed-{n:07d}", None, payload, "validation",
                     "amount_cents must be positive", 1, t, t + n * 1e-6, "{}", json.dumps({"origin": "seed"}))
                    for n in range(start, min(count, start + batch))]
            conn.executemany(
                'INSERT INTO dlq(pipeline, stage, key, "offset", payload, error_kind, message, attempts, '
                "first_seen, last_seen, headers, details) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            conn.commit()
    finally:
        conn.close()


def api(server: RunningServer, role: str = "admin") -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers(role), timeout=30)


def settle(server: RunningServer, timeout: float = 20.0) -> None:
    """Wait until the demo's first burst has gone through (no stage busy, queues empty)."""
    deadline = time.monotonic() + timeout
    last = None
    with api(server, "viewer") as client:
        while time.monotonic() < deadline:
            stages = client.get(f"/v1/pipelines/{PIPELINE}").json()["stages"]
            busy = sum(s["in_flight"] + s["queue_depth"] for s in stages)
            snapshot = [(s["name"], s["processed"], s["failed"]) for s in stages]
            if busy == 0 and snapshot == last:
                return
            last = snapshot
            time.sleep(0.3)


def stage(server: RunningServer, name: str) -> dict[str, Any]:
    with api(server, "viewer") as client:
        return client.get(f"/v1/pipelines/{PIPELINE}/stages/{name}").json()


def dlq_ids(server: RunningServer) -> list[str]:
    out: list[str] = []
    token = None
    with api(server, "viewer") as client:
        while True:
            page = client.get(f"/v1/pipelines/{PIPELINE}/dlq",
                              params={"page_size": 1000, **({"page_token": token} if token else {})}).json()
            out += [item["id"] for item in page["items"]]
            token = page.get("next_page_token")
            if not token:
                return out


def use_context(cli: CliEnv, name: str, url: str, token: str | None, *, pipeline: str | None = PIPELINE,
                extra: dict[str, Any] | None = None, current: bool = True) -> None:
    """Add a context by writing the config file (the token in an env var the context names)."""
    path = cli.config_path
    data: dict[str, Any] = {"contexts": {}}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or data
    body: dict[str, Any] = {"url": url}
    if pipeline:
        body["pipeline"] = pipeline
    if token is not None:
        var = "PLANE_TOKEN_" + "".join(c if c.isalnum() else "_" for c in name).upper()
        cli.extra_env[var] = token
        body["token-env"] = var
    body.update(extra or {})
    data.setdefault("contexts", {})[name] = body
    if current or not data.get("current-context"):
        data["current-context"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o600)
