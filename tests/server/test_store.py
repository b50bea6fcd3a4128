"""The store's group commit on a real SQLite file: one transaction per turn, parts fail alone, order kept."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from pipelinectl.server.store import GROUP_MAX, Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    statements: list[str] = []
    s.db.set_trace_callback(statements.append)
    s.statements = statements  # type: ignore[attr-defined]
    yield s
    s.close()


def commits(store: Store) -> int:
    return sum(1 for sql in store.statements if sql.strip().upper() == "COMMIT")  # type: ignore[attr-defined]


def test_what_one_turn_queues_commits_in_one_transaction(store):
    async def scenario() -> list:
        done = [store.committed(lambda n=n: store.add_stage("p", f"s{n}", "running", 1)) for n in range(50)]
        return await asyncio.gather(*done)

    before = commits(store)
    asyncio.run(scenario())
    assert commits(store) - before == 1
    assert len([r for r in store.db.execute("SELECT name FROM stages")]) == 50


def test_a_failing_part_fails_alone_and_the_order_is_kept(store):
    results: list[tuple[str, str]] = []

    class AddStage:
        def __init__(self, label: str, name: str) -> None:
            self.label, self.name = label, name

        def run(self) -> None:
            store.add_stage("p", self.name, "running", 1)

        def done(self, error: BaseException | None) -> None:
            results.append((self.label, type(error).__name__ if error else "ok"))

    async def scenario() -> None:
        store.later(AddStage("a", "a"))
        store.later(AddStage("dup", "a"))  # primary key taken
        store.later(AddStage("b", "b"))
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert results == [("a", "ok"), ("dup", "IntegrityError"), ("b", "ok")]
    assert sorted(r[0] for r in store.db.execute("SELECT name FROM stages")) == ["a", "b"]


def test_a_transaction_commits_what_was_queued_before_it_first(store):
    async def scenario() -> None:
        store.committed(lambda: store.add_stage("p", "queued", "running", 1))
        with store.tx():  # sees the queued part, and commits after it
            assert store.stage_row("p", "queued") is not None
            store.save_stage_settings("p", "queued", state="paused", parallelism=1, version=2, paused_until=None,
                                      note=None, rate_limit=None)

    asyncio.run(scenario())
    assert store.stage_row("p", "queued")["state"] == "paused"


def test_counters_are_summed_into_one_write_per_stage(store):
    async def scenario() -> None:
        with store.tx():
            store.add_stage("p", "a", "running", 1)

        def move() -> None:
            store.count("p", "a", processed=1)

        await asyncio.gather(*(store.committed(move) for _ in range(20)))

    asyncio.run(scenario())
    assert store.stage_row("p", "a")["processed"] == 20
    updates = [sql for sql in store.statements if sql.startswith("UPDATE stages SET processed")]  # type: ignore[attr-defined]
    assert len(updates) == 1


def test_a_rolled_back_transaction_drops_its_counts(store):
    with store.tx():
        store.add_stage("p", "a", "running", 1)
    with pytest.raises(sqlite3.IntegrityError), store.tx():
        store.count("p", "a", processed=5)
        store.add_stage("p", "a", "running", 1)
    with store.tx():
        store.count("p", "a", failed=1)
    row = store.stage_row("p", "a")
    assert (row["processed"], row["failed"]) == (0, 1)


def test_input_offsets_stay_consecutive_across_groups_and_rollbacks(store):
    def append(key: str) -> int:
        offset = store.next_offset("p")
        store.append_input("p", offset, key, "{}", 1.0, "a")
        return offset

    async def scenario() -> list:
        first = await asyncio.gather(*(store.committed(lambda k=k: append(k)) for k in "abc"))
        with pytest.raises(RuntimeError), store.tx():
            append("lost")
            raise RuntimeError("rolled back")
        second = await asyncio.gather(*(store.committed(lambda k=k: append(k)) for k in "de"))
        return first + second

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]
    assert [r["key"] for r in store.inputs("p", 0, 100, 100)] == list("abcde")


def test_a_group_waits_its_window_and_a_full_group_goes_at_once(tmp_path):
    lone, full = Store(tmp_path / "lone.db", group_window=0.1), Store(tmp_path / "full.db", group_window=3600)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await lone.committed(lambda: lone.add_stage("p", "alone", "running", 1))
        waited = loop.time() - t0
        # a window of an hour: only reaching GROUP_MAX parts can commit these
        parts = [full.committed(lambda n=n: full.add_stage("p", f"s{n}", "running", 1)) for n in range(GROUP_MAX)]
        await asyncio.wait_for(asyncio.gather(*parts), 60)
        return waited

    try:
        assert asyncio.run(scenario()) >= 0.09  # a part alone waits for company
        assert full.db.execute("SELECT COUNT(*) FROM stages").fetchone()[0] == GROUP_MAX
    finally:
        lone.close()
        full.close()
