"""Quick reads: small queries on the event loop's connection, anything else on a read thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest

from app.core.errors import ConflictError, StorageError
from app.engine.storage import Store, StoreReader

#: Counts to n in SQLite: about 0.1 s per 10^6 on a small CPU, far over the quick-read budget.
COUNT_TO = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) " + (
    "SELECT count(*) FROM c"
)


def count_to(n: int, threads: list[str]) -> Any:
    def query(reader: StoreReader) -> int:
        threads.append(threading.current_thread().name)
        return int(reader._conn.execute(COUNT_TO, (n,)).fetchone()[0])

    return query


async def test_a_small_read_runs_on_the_loop(store: Store) -> None:
    threads: list[str] = []
    assert await store._quick_read(count_to(10, threads)) == 10
    assert threads == [threading.current_thread().name]
    assert [r.token for r in await store.recordings()] == ["Cam"]


async def test_a_long_read_is_interrupted_and_finished_on_a_read_thread(store: Store) -> None:
    """The loop is held about one budget; the answer is the same; the ticker keeps ticking."""
    threads: list[str] = []
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    try:
        assert await store._quick_read(count_to(3_000_000, threads)) == 3_000_000
    finally:
        done.set()
        await ticking
    loop_thread = threading.current_thread().name
    assert threads[0] == loop_thread and len(threads) == 2
    assert threads[1].startswith("custos-storage-read")
    # The read thread took its time (hundreds of ms) while the loop went on ticking.
    assert len(gaps) > 5 and max(gaps) < 0.1, max(gaps)


async def test_a_busy_database_goes_to_a_read_thread_without_waiting(store: Store) -> None:
    threads: list[str] = []

    def busy_once(reader: StoreReader) -> str:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise exc
        return "read"

    assert await store._quick_read(busy_once) == "read"
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("custos-storage-read")


async def test_other_database_errors_are_storage_errors_and_not_retried(store: Store) -> None:
    calls = 0

    def broken(reader: StoreReader) -> None:
        nonlocal calls
        calls += 1
        reader._conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StorageError, match="no_such_table"):
        await store._quick_read(broken)
    assert calls == 1
    # The loop's connection is fine afterwards (no transaction left open, no handler left set).
    threads: list[str] = []
    assert await store._quick_read(count_to(5, threads)) == 5


async def test_quick_reads_need_an_open_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_state", "stopping")
    with pytest.raises(ConflictError, match="not open"):
        await store._quick_read(count_to(1, []))
