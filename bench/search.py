"""bench/search: first page of FindEvents over 10 recordings × 1 year of history (~10^7 events).

Synthesizes the history straight into a store's index through `history.bulk_insert` (each
recording records in cycles: Recording/State, VIDEO001 and AUDIO001 Track/State true, then
false), then times FindEvents + the first GetEventSearchResults (100 results, start state
included) forward and backward over the whole year and over one day in the middle. Reference
measured in the same run: the bare SQLite query for one recording's first 100 rows on the same
index, so the figures read as a ratio to what the index alone costs. Target: first page ≤ 100 ms.

    .venv/bin/python -m bench.search [--recordings 10] [--events 10000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from app.core.time import NS_PER_SECOND, FakeClock, format_iso
from app.engine.search import EventFilter, SearchKind, SearchScope, SearchSessions
from app.engine.storage import HistoryTopic, RecordingConfig, Store, layout
from app.engine.storage import history as history_index
from app.engine.storage.schema import connect, transaction

YEAR_NS = 365 * 86_400 * NS_PER_SECOND
DAY_NS = 86_400 * NS_PER_SECOND
#: 2025-01-01T00:00:00Z
START_NS = 1_735_689_600 * NS_PER_SECOND
PAGE = 100
REPEATS = 5
_REC = HistoryTopic.RECORDING_STATE
_TRK = HistoryTopic.TRACK_STATE


def cycles(
    rec_id: int, tracks: tuple[int, int], count: int
) -> Iterator[tuple[int, int, HistoryTopic, int, bool]]:
    """`count` recording sessions spread over the year, each 6 events, in time order."""
    period = YEAR_NS // count
    video, audio = tracks
    for k in range(count):
        t = START_NS + k * period + (rec_id * 7919 % 1000) * 1_000_000
        end = t + period * 2 // 3
        yield rec_id, -rec_id, _REC, t, True
        yield rec_id, video, _TRK, t, True
        yield rec_id, audio, _TRK, t + 20_000_000, True
        yield rec_id, audio, _TRK, end - 20_000_000, False
        yield rec_id, -rec_id, _REC, end, False
        yield rec_id, video, _TRK, end, False


async def synthesize(data_dir: Path, recordings: int, events: int) -> None:
    async with Store(data_dir) as store:
        for i in range(recordings):
            await store.create_recording(RecordingConfig(name=f"Cam{i}"), token=f"REC_{i:03d}")
    conn = connect(data_dir / layout.DB_FILE)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # bulk load of throw-away data
        ids = conn.execute("SELECT id FROM recording ORDER BY id").fetchall()
        per = max(1, events // recordings // 6)
        for (rec_id,) in ids:
            tracks = conn.execute(
                "SELECT id FROM track WHERE recording_id = ? AND kind != 'Metadata' ORDER BY id",
                (rec_id,),
            ).fetchall()
            with transaction(conn):
                history_index.bulk_insert(conn, cycles(rec_id, (tracks[0][0], tracks[1][0]), per))
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def first_page(sessions: SearchSessions, start: int, end: int) -> tuple[float, int]:
    began = time.perf_counter()
    token = await sessions.find_events(start, end, SearchScope(), EventFilter(), True, None, 30)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=PAGE, wait_s=5)
    elapsed = time.perf_counter() - began
    await sessions.end_search(token)
    return elapsed * 1000, len(page.results)


def reference_ms(data_dir: Path) -> float:
    conn = connect(data_dir / layout.DB_FILE, readonly=True)
    try:
        times = []
        for _ in range(REPEATS):
            began = time.perf_counter()
            rows = history_index.page(
                conn,
                1,
                START_NS,
                START_NS + YEAR_NS,
                after=None,
                descending=False,
                topics=tuple(HistoryTopic),
                limit=PAGE,
            )
            times.append((time.perf_counter() - began) * 1000)
            assert len(rows) == PAGE
        return statistics.median(times)
    finally:
        conn.close()


async def measure(data_dir: Path) -> None:
    clock = FakeClock(START_NS + YEAR_NS)
    mid = START_NS + YEAR_NS // 2
    cases = [
        ("whole year, forward", START_NS, START_NS + YEAR_NS),
        ("whole year, backward", START_NS + YEAR_NS, START_NS),
        ("one day, forward", mid, mid + DAY_NS),
        ("one day, backward", mid + DAY_NS, mid),
    ]
    ref = reference_ms(data_dir)
    async with Store(data_dir, clock=clock) as store:
        total = await store.history_page("REC_000", START_NS, START_NS + YEAR_NS, limit=1)
        assert total, "no history synthesized"
        sessions = SearchSessions(store, clock=clock)
        print(f"reference: one recording's first {PAGE} rows from SQLite: {ref:.2f} ms")
        for name, start, end in cases:
            samples = [await first_page(sessions, start, end) for _ in range(REPEATS)]
            ms = statistics.median(s[0] for s in samples)
            got = samples[0][1]
            verdict = "ok" if ms <= 100 else "OVER TARGET"
            print(
                f"{name:<22} {format_iso(min(start, end))} … first page of {got} results: "
                f"median {ms:7.2f} ms, max {max(s[0] for s in samples):7.2f} ms "
                f"(×{ms / ref:.0f} reference) {verdict}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=10)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="reuse/keep the store in this directory")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="custos-bench-search-"))
    data_dir = work / "data"
    try:
        if not (data_dir / layout.DB_FILE).exists():
            began = time.perf_counter()
            asyncio.run(synthesize(data_dir, args.recordings, args.events))
            size = (data_dir / layout.DB_FILE).stat().st_size / 1e9
            print(
                f"synthesized ~{args.events:,} events for {args.recordings} recordings in "
                f"{time.perf_counter() - began:.0f} s (index {size:.2f} GB)"
            )
        asyncio.run(measure(data_dir))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
