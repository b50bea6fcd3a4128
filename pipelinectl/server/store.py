"""SQLite (WAL) state of the control plane: the one place durable state lives, and every SQL statement.

Every state change of the runtime is a transaction here, so a SIGKILL at any
instant leaves a consistent picture that a restart resumes from.
`synchronous=NORMAL` under WAL survives a process crash (not a power cut),
which is the promise the server makes.

The rest of the server speaks to the database only through the methods of
`Store`, grouped by table below. Callers decide which of them form one
transaction: `with store.tx(): ...` commits at once (operator verbs), and
`store.later(part)` joins a group commit (the per-item moves of the stages):
every part queued within `GROUP_WINDOW` of the first runs, in order, in one
transaction, and each is told once it is committed. Many items per
commit instead of one is what lets the runtime keep up with its workers (each
commit writes its pages to the WAL again); each part still commits entirely or
not at all, so a crash between two commits leaves every item where the last
commit put it, to be handled again after the restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
# A group commits this long after its first part was queued: long enough for the many items that
# finish close together to share one commit, short next to any stage's work. At GROUP_MAX parts it
# commits at once, which bounds how long one commit (and the bookkeeping after it) holds the loop.
GROUP_WINDOW = 0.001
GROUP_MAX = 64
log = logging.getLogger("pipelinectl.server")

SCHEMA = """
CREATE TABLE IF NOT EXISTS input_log(
  pipeline TEXT NOT NULL, "offset" INTEGER NOT NULL, key TEXT NOT NULL, payload TEXT, ts REAL NOT NULL,
  PRIMARY KEY (pipeline, "offset"));
CREATE INDEX IF NOT EXISTS input_log_ts ON input_log(pipeline, ts);
CREATE TABLE IF NOT EXISTS work(
  id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL,
  "offset" INTEGER, payload TEXT, origin TEXT NOT NULL, first_seen REAL NOT NULL);
DROP INDEX IF EXISTS work_stage;
CREATE TABLE IF NOT EXISTS applied(
  pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL,
  PRIMARY KEY (pipeline, stage, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dlq(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT,
  "offset" INTEGER, payload TEXT, error_kind TEXT NOT NULL, message TEXT NOT NULL, attempts INTEGER NOT NULL,
  first_seen REAL NOT NULL, last_seen REAL NOT NULL, headers TEXT NOT NULL DEFAULT '{}',
  details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS dlq_pipeline ON dlq(pipeline, seq);
CREATE INDEX IF NOT EXISTS dlq_key ON dlq(pipeline, stage, key, error_kind);
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
CREATE TABLE IF NOT EXISTS bypassed(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL,
  "offset" INTEGER, payload TEXT, origin TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS bypassed_stage ON bypassed(pipeline, stage, seq);
CREATE TABLE IF NOT EXISTS idempotency(
  key TEXT NOT NULL, principal TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
  body_hash TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (key, principal));
CREATE TABLE IF NOT EXISTS audit(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, actor TEXT NOT NULL, verb TEXT NOT NULL,
  pipeline TEXT, target TEXT NOT NULL, arguments TEXT NOT NULL DEFAULT '{}', reason TEXT, result TEXT,
  request_id TEXT, idempotency_key TEXT, plan TEXT);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
"""

# Columns added after a table first shipped: a database made by an older server gets them at open.
ADDED_COLUMNS = {
    "stages": {"rate_limit": "TEXT"},  # JSON of pipelinectl.model.RateLimit; NULL: no limit
    "replay_jobs": {"source": "TEXT NOT NULL DEFAULT 'range'"},  # 'range' | 'skipped' (the bypassed items)
}


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # built once: dumps runs for every item move


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def now() -> float:
    return time.time()


class Part(Protocol):
    """One all-or-nothing piece of a group commit (see `Store.later`).

    The hot paths pass small objects of their own rather than closures: a part
    lives until its group commits, and a closure with its cells would be many
    objects for the garbage collector to carry into older generations each time.
    """

    def run(self) -> Any: ...

    def done(self, error: BaseException | None) -> None: ...


class Call:
    """A part made of a function; its result goes to `future` once committed."""

    __slots__ = ("fn", "future", "result")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future) -> None:
        self.fn, self.future, self.result = fn, future, None

    def run(self) -> None:
        self.result = self.fn()

    def done(self, error: BaseException | None) -> None:
        if self.future.done():  # the waiter was cancelled (shutdown): the part is committed all the same
            return
        if error is None:
            self.future.set_result(self.result)
        else:
            self.future.set_exception(error)


def _done(part: Part, error: BaseException | None) -> None:
    try:
        part.done(error)
    except Exception:  # one part's bookkeeping must not cost the others theirs
        log.exception("after a group commit")


Row = sqlite3.Row


@dataclass(frozen=True)
class DLQQuery:
    """Which DLQ rows of a pipeline a list, redrive or purge means (all given conditions hold)."""

    pipeline: str
    seqs: tuple[int, ...] | None = None
    stage: str | None = None
    error_kind: str | None = None
    since: float | None = None  # on last_seen
    until: float | None = None

    def where(self) -> tuple[str, list[Any]]:
        where, args = ["pipeline=?"], [self.pipeline]
        if self.seqs is not None:
            where.append(f"seq IN ({','.join('?' * len(self.seqs))})")
            args += self.seqs
        for clause, value in (("stage=?", self.stage), ("error_kind=?", self.error_kind),
                              ("last_seen>=?", self.since), ("last_seen<?", self.until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return " AND ".join(where), args


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries a listing means (all given conditions hold)."""

    since: float | None = None
    until: float | None = None
    actor: str | None = None
    verb: str | None = None
    target: str | None = None
    pipeline: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        where, args = ["1=1"], []
        for clause, value in (("time>=?", self.since), ("time<?", self.until), ("actor=?", self.actor),
                              ("verb=?", self.verb), ("target=?", self.target), ("pipeline=?", self.pipeline)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return " AND ".join(where), args


class Store:
    """One connection, used from the event loop's thread; transactions nest."""

    def __init__(self, path: str | Path, group_window: float = GROUP_WINDOW) -> None:
        self.path = str(path)
        self.group_window = group_window
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, declaration in columns.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
        self._depth = 0
        self._batch: list[Part] = []
        self._flush_at: asyncio.TimerHandle | asyncio.Handle | None = None
        self._flush_soon = False  # _flush_at is a call at the next turn, not the window's timer
        self._counts: dict[tuple[str, str], list[Any]] = {}  # stage counters, written once per transaction
        self._log_end: dict[str, int] = {}  # next input offset per pipeline, known within a transaction
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
    def tx(self) -> Iterator[None]:
        """One transaction (nested calls join the outer one); what `later` queued commits first, in order."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._batch:
            self.flush()
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
            self._write_counts()
        except BaseException:
            self._depth = 0
            self._counts.clear()
            self._log_end.clear()
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._log_end.clear()
        self.db.execute("COMMIT")

    def later(self, part: Part, soon: bool = False) -> None:
        """Run `part.run()` (calls of this store's methods) in the next group commit, then `part.done(error)`.

        `done(None)` follows right after the transaction holding the part has
        committed; `done(error)` after the part failed alone: a group whose commit
        fails is rolled back and each part retried on its own, in order, so one bad
        part fails only itself. `soon`: someone is idle until this part commits, so
        the group commits at the next turn of the event loop instead of waiting out
        its window.
        """
        self._batch.append(part)
        if soon or len(self._batch) >= GROUP_MAX:
            if not self._flush_soon:
                if self._flush_at is not None:
                    self._flush_at.cancel()
                self._flush_at = asyncio.get_running_loop().call_soon(self.flush)
                self._flush_soon = True
        elif len(self._batch) == 1:
            self._flush_at = asyncio.get_running_loop().call_later(self.group_window, self.flush)

    def committed(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """`later` for a caller that awaits: the future holds `fn`'s result once it is committed."""
        part = Call(fn, asyncio.get_running_loop().create_future())
        self.later(part)
        return part.future

    def flush(self) -> None:
        """Commit what `later` queued, in one transaction, then tell each part, in order."""
        batch, self._batch = self._batch, []
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at, self._flush_soon = None, False
        if not batch:
            return
        try:
            with self.tx():
                for part in batch:
                    part.run()
        except Exception:
            for part in batch:
                try:
                    with self.tx():
                        part.run()
                except Exception as exc:
                    _done(part, exc)
                else:
                    _done(part, None)
            return
        for part in batch:
            _done(part, None)

    def close(self) -> None:
        try:
            self.flush()
        except sqlite3.Error:
            pass
        self._stop.set()
        self._checkpointer.join(5)
        try:
            self.db.close()
        except sqlite3.Error:
            pass

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        return self.db.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Row]:
        return self.db.execute(sql, tuple(args)).fetchall()

    def _scalar(self, sql: str, args: Iterable[Any] = ()) -> Any:
        row = self.db.execute(sql, tuple(args)).fetchone()
        return None if row is None else row[0]

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, tuple(args))

    # input_log: what entered a pipeline, by offset -----------------------------------------------------
    def next_offset(self, pipeline: str) -> int:
        """The offset the next input gets (read once per transaction: this connection alone appends)."""
        if self._depth and pipeline in self._log_end:
            return self._log_end[pipeline]
        last = self._scalar('SELECT MAX("offset") FROM input_log WHERE pipeline=?', (pipeline,))
        offset = 0 if last is None else last + 1
        if self._depth:
            self._log_end[pipeline] = offset
        return offset

    def append_input(self, pipeline: str, offset: int, key: str, payload: str, ts: float, stage: str) -> int:
        """Log an input and queue it at `stage`; returns the work id."""
        self._run('INSERT INTO input_log(pipeline, "offset", key, payload, ts) VALUES (?,?,?,?,?)',
                  (pipeline, offset, key, payload, ts))
        if self._depth:
            self._log_end[pipeline] = offset + 1
        return self.add_work(pipeline, stage, key, offset, payload, "input", ts)

    def inputs(self, pipeline: str, start: int, end: int, limit: int) -> list[Row]:
        return self._all('SELECT * FROM input_log WHERE pipeline=? AND "offset">=? AND "offset"<? '
                         'ORDER BY "offset" LIMIT ?', (pipeline, start, end, limit))

    def first_offset_at(self, pipeline: str, ts: float) -> int | None:
        return self._scalar('SELECT MIN("offset") FROM input_log WHERE pipeline=? AND ts>=?', (pipeline, ts))

    def count_inputs(self, pipeline: str, start: int, end: int, applied_at: str) -> tuple[int, int]:
        """How many inputs lie in [start, end), and how many of those stage `applied_at` already applied."""
        total = self._scalar('SELECT COUNT(*) FROM input_log WHERE pipeline=? AND "offset">=? AND "offset"<?',
                             (pipeline, start, end))
        done = self._scalar(
            'SELECT COUNT(*) FROM input_log i JOIN applied a ON a.pipeline=i.pipeline AND a.key=i.key AND a.stage=? '
            'WHERE i.pipeline=? AND i."offset">=? AND i."offset"<?', (applied_at, pipeline, start, end))
        return total, done

    # work: where each live item is (queued or in flight at one stage) ---------------------------------
    def add_work(self, pipeline: str, stage: str, key: str, offset: int | None, payload: str | None, origin: str,
                 first_seen: float) -> int:
        return self._run('INSERT INTO work(pipeline, stage, key, "offset", payload, origin, first_seen) '
                         "VALUES (?,?,?,?,?,?,?)", (pipeline, stage, key, offset, payload, origin, first_seen)).lastrowid

    def works(self, pipeline: str) -> list[Row]:
        return self._all('SELECT id, stage, key, "offset", payload, origin, first_seen FROM work '
                         "WHERE pipeline=? ORDER BY id", (pipeline,))

    def move_work(self, work_id: int, stage: str, payload: str | None) -> None:
        """Hand an item to the next stage; `payload` None keeps the stored one."""
        if payload is None:
            self._run("UPDATE work SET stage=? WHERE id=?", (stage, work_id))
        else:
            self._run("UPDATE work SET stage=?, payload=? WHERE id=?", (stage, payload, work_id))

    def drop_work(self, work_id: int) -> None:
        self._run("DELETE FROM work WHERE id=?", (work_id,))

    # applied: (stage, key) whose effect is committed, so nothing applies twice ---------------------------
    def is_applied(self, pipeline: str, stage: str, key: str) -> bool:
        return self._one("SELECT 1 FROM applied WHERE pipeline=? AND stage=? AND key=?", (pipeline, stage, key)) is not None

    def mark_applied(self, pipeline: str, stage: str, key: str, ts: float) -> bool:
        """Record the stage's effect for `key`; False if it was already recorded."""
        return self._run("INSERT OR IGNORE INTO applied(pipeline, stage, key, ts) VALUES (?,?,?,?)",
                         (pipeline, stage, key, ts)).rowcount == 1

    # stages: settings and counters ------------------------------------------------------------------------
    def stage_row(self, pipeline: str, stage: str) -> Row | None:
        return self._one("SELECT * FROM stages WHERE pipeline=? AND name=?", (pipeline, stage))

    def add_stage(self, pipeline: str, stage: str, state: str, parallelism: int) -> None:
        self._run("INSERT INTO stages(pipeline, name, state, parallelism, version) VALUES (?,?,?,?,1)",
                  (pipeline, stage, state, parallelism))

    def save_stage_settings(self, pipeline: str, stage: str, *, state: str, parallelism: int, version: int,
                            paused_until: float | None, note: str | None, rate_limit: str | None) -> None:
        self._run("UPDATE stages SET state=?, parallelism=?, version=?, paused_until=?, note=?, rate_limit=? "
                  "WHERE pipeline=? AND name=?",
                  (state, parallelism, version, paused_until, note, rate_limit, pipeline, stage))

    def count(self, pipeline: str, stage: str, *, processed: int = 0, failed: int = 0, skipped: int = 0,
              retries: int = 0, errors_by_kind: dict[str, int] | None = None) -> None:
        """Add to a stage's counters (and set its per-kind error counts when given), inside a transaction.

        The additions are summed and written once, when the transaction commits,
        instead of one UPDATE per item.
        """
        assert self._depth, "count() belongs inside a transaction"
        c = self._counts.setdefault((pipeline, stage), [0, 0, 0, 0, None])
        c[0] += processed
        c[1] += failed
        c[2] += skipped
        c[3] += retries
        if errors_by_kind is not None:
            c[4] = dumps(errors_by_kind)

    def _write_counts(self) -> None:
        for (pipeline, stage), (processed, failed, skipped, retries, kinds) in self._counts.items():
            self._run("UPDATE stages SET processed=processed+?, failed=failed+?, skipped=skipped+?, "
                      "retries=retries+?, errors_by_kind=COALESCE(?, errors_by_kind) WHERE pipeline=? AND name=?",
                      (processed, failed, skipped, retries, kinds, pipeline, stage))
        self._counts.clear()

    # dlq: dead letters --------------------------------------------------------------------------------------
    def dead_letter(self, pipeline: str, stage: str, key: str | None, offset: int | None, payload: str | None,
                    kind: str, message: str, attempts: int, first_seen: float, last_seen: float,
                    details: dict[str, Any]) -> int:
        """Dead-letter an item; returns its DLQ sequence number.

        A key already in the DLQ for the same stage and error kind keeps its one
        entry (id, first_seen): its attempts add up, and last_seen, message,
        payload and details become this failure's.
        """
        seq = None if key is None else self._scalar(
            "SELECT seq FROM dlq WHERE pipeline=? AND stage=? AND key=? AND error_kind=? ORDER BY seq LIMIT 1",
            (pipeline, stage, key, kind))
        if seq is not None:
            self._run('UPDATE dlq SET attempts=attempts+?, last_seen=?, message=?, payload=?, "offset"=?, details=? '
                      "WHERE seq=?", (attempts, last_seen, message, payload, offset, dumps(details), seq))
            return seq
        return self._run(
            'INSERT INTO dlq(pipeline, stage, key, "offset", payload, error_kind, message, attempts, first_seen, '
            "last_seen, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (pipeline, stage, key, offset, payload, kind, message, attempts, first_seen, last_seen, dumps(details)),
        ).lastrowid

    def dlq_count(self, pipeline: str, stage: str | None = None) -> int:
        if stage is None:
            return self._scalar("SELECT COUNT(*) FROM dlq WHERE pipeline=?", (pipeline,))
        return self._scalar("SELECT COUNT(*) FROM dlq WHERE pipeline=? AND stage=?", (pipeline, stage))

    def dlq_count_by_stage(self, pipeline: str) -> dict[str, int]:
        return dict(self._all("SELECT stage, COUNT(*) FROM dlq WHERE pipeline=? GROUP BY stage", (pipeline,)))

    def dlq_total(self, q: DLQQuery) -> int:
        where, args = q.where()
        return self._scalar(f"SELECT COUNT(*) FROM dlq WHERE {where}", args)

    def dlq_rows(self, q: DLQQuery, *, after: int = 0, limit: int) -> list[Row]:
        """Matching rows, oldest first, from sequence number `after` (exclusive)."""
        where, args = q.where()
        return self._all(f"SELECT * FROM dlq WHERE {where} AND seq>? ORDER BY seq LIMIT ?", [*args, after, limit])

    def dlq_row(self, pipeline: str, seq: int) -> Row | None:
        return self._one("SELECT * FROM dlq WHERE pipeline=? AND seq=?", (pipeline, seq))

    def drop_dead_letters(self, seqs: list[int]) -> None:
        self.db.executemany("DELETE FROM dlq WHERE seq=?", [(s,) for s in seqs])

    # bypassed: items a disabled stage passed on unprocessed, until `replay --skipped` processes them --------
    def record_bypass(self, pipeline: str, stage: str, key: str, offset: int | None, payload: str | None,
                      origin: str, ts: float) -> None:
        self._run('INSERT INTO bypassed(pipeline, stage, key, "offset", payload, origin, ts) VALUES (?,?,?,?,?,?,?)',
                  (pipeline, stage, key, offset, payload, origin, ts))

    def bypassed_count_by_stage(self, pipeline: str) -> dict[str, int]:
        return dict(self._all("SELECT stage, COUNT(*) FROM bypassed WHERE pipeline=? GROUP BY stage", (pipeline,)))

    def bypassed_last(self, pipeline: str, stage: str) -> int:
        """The newest record's sequence number (0: none): a replay of them goes up to it."""
        return self._scalar("SELECT COALESCE(MAX(seq), 0) FROM bypassed WHERE pipeline=? AND stage=?",
                            (pipeline, stage))

    def bypassed_counts(self, pipeline: str, stage: str, upto: int) -> tuple[int, int]:
        """How many records up to `upto`, and how many of their keys the stage has applied since."""
        row = self._one("SELECT COUNT(*), COUNT(a.key) FROM bypassed b LEFT JOIN applied a ON a.pipeline=b.pipeline "
                        "AND a.stage=b.stage AND a.key=b.key WHERE b.pipeline=? AND b.stage=? AND b.seq<=?",
                        (pipeline, stage, upto))
        return (row[0], row[1]) if row else (0, 0)

    def bypassed_rows(self, pipeline: str, stage: str, after: int, upto: int, limit: int) -> list[Row]:
        return self._all("SELECT * FROM bypassed WHERE pipeline=? AND stage=? AND seq>? AND seq<=? ORDER BY seq LIMIT ?",
                         (pipeline, stage, after, upto, limit))

    def drop_bypassed(self, seq: int) -> None:
        self._run("DELETE FROM bypassed WHERE seq=?", (seq,))

    # replay_jobs -----------------------------------------------------------------------------------------------
    def add_replay(self, row: dict[str, Any]) -> None:
        self._run(f"INSERT INTO replay_jobs({','.join(row)}) VALUES ({','.join('?' * len(row))})", list(row.values()))

    def replay_row(self, job_id: str, pipeline: str | None = None) -> Row | None:
        if pipeline is None:
            return self._one("SELECT * FROM replay_jobs WHERE id=?", (job_id,))
        return self._one("SELECT * FROM replay_jobs WHERE id=? AND pipeline=?", (job_id, pipeline))

    def replay_rows(self, pipeline: str, limit: int = 1000) -> list[Row]:
        return self._all("SELECT * FROM replay_jobs WHERE pipeline=? ORDER BY created_at DESC LIMIT ?",
                         (pipeline, limit))

    def active_replays(self, pipeline: str) -> list[str]:
        return [r["id"] for r in self._all("SELECT id FROM replay_jobs WHERE pipeline=? AND state IN "
                                           "('pending','running')", (pipeline,))]

    def replay_state(self, job_id: str) -> str | None:
        return self._scalar("SELECT state FROM replay_jobs WHERE id=?", (job_id,))

    def set_replay_state(self, job_id: str, state: str, *, only_from: str | None = None,
                         finished_at: float | None = None, error: str | None = None) -> None:
        sql, args = "UPDATE replay_jobs SET state=?", [state]
        if finished_at is not None:
            sql += ", finished_at=?"
            args.append(finished_at)
        if error is not None:
            sql += ", error=?"
            args.append(error)
        sql += " WHERE id=?"
        args.append(job_id)
        if only_from is not None:
            sql += " AND state=?"
            args.append(only_from)
        self._run(sql, args)

    def advance_replay(self, job_id: str, cursor: int, *, replayed: int = 0, skipped: int = 0) -> None:
        self._run("UPDATE replay_jobs SET replayed=replayed+?, skipped=skipped+?, cursor=? WHERE id=?",
                  (replayed, skipped, cursor, job_id))

    # sagas: the present (sagas, saga_steps) and the history (saga_events) ---------------------------------
    def add_saga(self, sid: str, pipeline: str, definition: str, data: Any, steps: list[str], t: float) -> bool:
        """Create a running saga with its pending steps; False (and nothing changed) if the id exists."""
        fresh = self._run(
            "INSERT OR IGNORE INTO sagas(id, pipeline, definition, status, data, started_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?)", (sid, pipeline, definition, "running", dumps(data), t, t)).rowcount == 1
        if fresh:
            self.db.executemany("INSERT INTO saga_steps(saga_id, idx, name, status) VALUES (?,?,?,'pending')",
                                [(sid, i, name) for i, name in enumerate(steps)])
        return fresh

    def saga_row(self, pipeline: str, sid: str) -> Row | None:
        return self._one("SELECT * FROM sagas WHERE id=? AND pipeline=?", (sid, pipeline))

    def update_saga(self, sid: str, **cols: Any) -> None:
        cols["updated_at"] = now()
        sets = ", ".join(f"{k}=?" for k in cols)
        self._run(f"UPDATE sagas SET {sets} WHERE id=?", [*cols.values(), sid])

    def saga_event(self, sid: str, type_: str, step: str | None = None, message: str | None = None) -> None:
        seq = self._scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM saga_events WHERE saga_id=?", (sid,))
        self._run("INSERT INTO saga_events(saga_id, seq, time, type, step, message) VALUES (?,?,?,?,?,?)",
                  (sid, seq, now(), type_, step, message))

    def saga_events(self, sid: str) -> list[Row]:
        return self._all("SELECT * FROM saga_events WHERE saga_id=? ORDER BY seq", (sid,))

    def saga_steps(self, sid: str, statuses: tuple[str, ...] | None = None, newest_first: bool = False) -> list[Row]:
        sql, args = "SELECT * FROM saga_steps WHERE saga_id=?", [sid]
        if statuses is not None:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += statuses
        return self._all(sql + (" ORDER BY idx DESC" if newest_first else " ORDER BY idx"), args)

    def update_saga_step(self, sid: str, idx: int, **cols: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in cols)
        self._run(f"UPDATE saga_steps SET {sets} WHERE saga_id=? AND idx=?", [*cols.values(), sid, idx])

    def start_saga_step(self, sid: str, idx: int, t: float) -> None:
        self._run("UPDATE saga_steps SET status='running', attempts=attempts+1, started_at=COALESCE(started_at, ?) "
                  "WHERE saga_id=? AND idx=?", (t, sid, idx))

    def update_saga_steps(self, sid: str, statuses: tuple[str, ...], *, from_idx: int = 0, **cols: Any) -> None:
        """Change every step of a saga that is in one of `statuses` (at index `from_idx` or later)."""
        sets = ", ".join(f"{k}=?" for k in cols)
        self._run(f"UPDATE saga_steps SET {sets} WHERE saga_id=? AND idx>=? "
                  f"AND status IN ({','.join('?' * len(statuses))})", [*cols.values(), sid, from_idx, *statuses])

    def claim_saga(self, sid: str, owner: str, lease_until: float, t: float) -> bool:
        """Take an active saga's lease if nobody alive holds it."""
        return self._run(
            "UPDATE sagas SET owner=?, lease_until=? WHERE id=? AND status IN ('running','compensating') "
            "AND (owner IS NULL OR owner=? OR lease_until<?)", (owner, lease_until, sid, owner, t)).rowcount == 1

    def renew_leases(self, owner: str, lease_until: float, sids: Iterable[str]) -> None:
        self.db.executemany("UPDATE sagas SET lease_until=? WHERE id=? AND owner=?",
                            [(lease_until, sid, owner) for sid in sids])

    def release_saga(self, sid: str, owner: str) -> None:
        self._run("UPDATE sagas SET owner=NULL WHERE id=? AND owner=?", (sid, owner))

    def adoptable_sagas(self, pipeline: str, owner: str, t: float, limit: int = 200) -> list[str]:
        """Active sagas nobody alive drives (or that `owner` itself holds)."""
        return [r["id"] for r in self._all(
            "SELECT id FROM sagas WHERE pipeline=? AND status IN ('running','compensating') "
            "AND (owner IS NULL OR lease_until<? OR owner=?) LIMIT ?", (pipeline, t, owner, limit))]

    def saga_count_by_status(self, pipeline: str) -> dict[str, int]:
        return dict(self._all("SELECT status, COUNT(*) FROM sagas WHERE pipeline=? GROUP BY status", (pipeline,)))

    def _saga_where(self, pipeline: str, status: str | None, definition: str | None) -> tuple[str, list[Any]]:
        where, args = ["pipeline=?"], [pipeline]
        for clause, value in (("status=?", status), ("definition=?", definition)):
            if value:
                where.append(clause)
                args.append(value)
        return " AND ".join(where), args

    def saga_total(self, pipeline: str, status: str | None, definition: str | None) -> int:
        where, args = self._saga_where(pipeline, status, definition)
        return self._scalar(f"SELECT COUNT(*) FROM sagas WHERE {where}", args)

    def saga_page(self, pipeline: str, status: str | None, definition: str | None, before: int,
                  limit: int) -> list[Row]:
        """Matching sagas, newest first, below row id `before`; each row carries its `rid`."""
        where, args = self._saga_where(pipeline, status, definition)
        return self._all(f"SELECT rowid AS rid, * FROM sagas WHERE {where} AND rowid<? ORDER BY rowid DESC LIMIT ?",
                         [*args, before, limit])

    # audit: the trail of state changes (pipelinectl.server.audit writes it) -----------------------------
    def add_audit(self, row: dict[str, Any]) -> int:
        """Append one entry; join the caller's transaction so the entry commits with the change it records."""
        assert self._depth, "add_audit() belongs inside the transaction of the change it records"
        return self._run(f"INSERT INTO audit({','.join(row)}) VALUES ({','.join('?' * len(row))})",
                         list(row.values())).lastrowid

    def audit_rows(self, q: AuditQuery, *, after: int = 0, limit: int, newest_first: bool = False) -> list[Row]:
        """Matching entries, oldest first, from sequence number `after` (exclusive); newest first, below
        `after` (0: from the newest)."""
        where, args = q.where()
        if newest_first:
            return self._all(f"SELECT * FROM audit WHERE {where} AND (?=0 OR seq<?) ORDER BY seq DESC LIMIT ?",
                             [*args, after, after, limit])
        return self._all(f"SELECT * FROM audit WHERE {where} AND seq>? ORDER BY seq LIMIT ?", [*args, after, limit])

    def audit_total(self, q: AuditQuery) -> int:
        where, args = q.where()
        return self._scalar(f"SELECT COUNT(*) FROM audit WHERE {where}", args)

    # idempotency: first answers to mutations, by Idempotency-Key -----------------------------------------
    def idempotent_answer(self, key: str, principal: str, newer_than: float) -> Row | None:
        return self._one("SELECT * FROM idempotency WHERE key=? AND principal=? AND created>?",
                         (key, principal, newer_than))

    def save_idempotent_answer(self, key: str, principal: str, method: str, path: str, body_hash: str,
                               status: int, body: str, t: float, expire_before: float) -> None:
        with self.tx():
            self._run("DELETE FROM idempotency WHERE created<?", (expire_before,))
            self._run("INSERT OR REPLACE INTO idempotency(key, principal, method, path, body_hash, status, body, "
                      "created) VALUES (?,?,?,?,?,?,?,?)", (key, principal, method, path, body_hash, status, body, t))
