"""SQLite (WAL) state of the control plane: the one place durable state lives.

Every state change of the runtime is one short transaction here, so a SIGKILL
at any instant leaves a consistent picture that a restart resumes from.
`synchronous=NORMAL` under WAL survives a process crash (not a power cut),
which is the promise the server makes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS input_log(
  pipeline TEXT NOT NULL, "offset" INTEGER NOT NULL, key TEXT NOT NULL, payload TEXT, ts REAL NOT NULL,
  PRIMARY KEY (pipeline, "offset"));
CREATE INDEX IF NOT EXISTS input_log_ts ON input_log(pipeline, ts);
CREATE TABLE IF NOT EXISTS work(
  id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL,
  "offset" INTEGER, payload TEXT, origin TEXT NOT NULL, first_seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS work_stage ON work(pipeline, stage, id);
CREATE TABLE IF NOT EXISTS applied(
  pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL,
  PRIMARY KEY (pipeline, stage, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dlq(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT,
  "offset" INTEGER, payload TEXT, error_kind TEXT NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL,
  first_seen REAL NOT NULL, last_seen REAL NOT NULL, headers TEXT NOT NULL DEFAULT '{}',
  details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS dlq_pipeline ON dlq(pipeline, seq);
CREATE TABLE IF NOT EXISTS stages(
  pipeline TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, parallelism INTEGER NOT NULL,
  version INTEGER NOT NULL, paused_until REAL, processed INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0, errors_by_kind TEXT NOT NULL DEFAULT '{}',
  skipped INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0, note TEXT,
  PRIMARY KEY (pipeline, name));
CREATE TABLE IF NOT EXISTS replay_jobs(
  id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, stage TEXT NOT NULL, state TEXT NOT NULL,
  from_offset INTEGER, to_offset INTEGER, from_time REAL, to_time REAL,
  start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL, cursor INTEGER NOT NULL,
  total INTEGER NOT NULL, replayed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL, finished_at REAL, error TEXT);
CREATE TABLE IF NOT EXISTS sagas(
  id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, definition TEXT NOT NULL, status TEXT NOT NULL,
  phase TEXT NOT NULL DEFAULT 'forward', current INTEGER NOT NULL DEFAULT 0, last_error TEXT,
  data TEXT NOT NULL DEFAULT '{}', retries INTEGER NOT NULL DEFAULT 0,
  started_at REAL NOT NULL, updated_at REAL NOT NULL, closed_at REAL, owner TEXT, lease_until REAL);
CREATE INDEX IF NOT EXISTS sagas_status ON sagas(pipeline, status);
CREATE TABLE IF NOT EXISTS saga_steps(
  saga_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, started_at REAL, finished_at REAL, error TEXT, compensation TEXT,
  PRIMARY KEY (saga_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS saga_events(
  saga_id TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, type TEXT NOT NULL, step TEXT,
  message TEXT, PRIMARY KEY (saga_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency(
  key TEXT NOT NULL, principal TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
  body_hash TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (key, principal));
"""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Store:
    """One connection, used from the event loop's thread; transactions nest."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        self._depth = 0
        # Checkpoints (the only fsyncs under synchronous=NORMAL) run on a thread with its own
        # connection, so the event loop never stalls on one.
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(1.0):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass
        finally:
            conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def all(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple | list = ()) -> sqlite3.Row | None:
        return self.db.execute(sql, args).fetchone()

    def scalar(self, sql: str, args: tuple | list = ()) -> Any:
        row = self.db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, args: tuple | list = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(5)
        try:
            self.db.close()
        except sqlite3.Error:
            pass


def now() -> float:
    return time.time()
