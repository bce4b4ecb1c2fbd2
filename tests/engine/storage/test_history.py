"""The recording history index: edges, alternation, crash repair, backfill, retention, deletes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import HistoryEvent, HistoryTopic, RecordingConfig, Store, StoreReader
from tests.engine.storage.conftest import TEST_OPTIONS
from tests.engine.storage.helpers import AAC, FRAME_NS, H264, T0, audio, db, query, video
from tests.engine.storage.test_retention import OPTIONS as RETENTION_OPTIONS
from tests.engine.storage.test_retention import STEP, unit

S = NS_PER_SECOND
ALL = (0, (1 << 62))
Row = tuple[str, str, int, bool]


async def history(store: Store, recording: str = "Cam") -> list[Row]:
    return [
        (e.topic.name, e.track, e.utc_ns, e.value)
        for e in await store.history_page(recording, *ALL, limit=10_000)
    ]


def assert_invariants(rows: list[Row]) -> None:
    """EV-10/11: per track and per recording, values alternate from true in time order."""
    owners: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        owners.setdefault((row[0], row[1]), []).append(row)
    for seq in owners.values():
        assert [r[2] for r in seq] == sorted(r[2] for r in seq)
        assert [r[3] for r in seq] == [i % 2 == 0 for i in range(len(seq))]


async def record(store: Store, runs: list[tuple[int, int]], track: str = "VIDEO001") -> None:
    writer = await store.open_writer("Cam", track)
    for offset, frames in runs:
        for i in range(frames):
            writer.append(video(i, t0=T0 + offset), H264)
        writer.end_run("camera lost")
    await writer.close()


async def test_runs_become_alternating_edges(store: Store) -> None:
    await record(store, [(0, 50), (5 * S, 50)])
    rows = await history(store)
    end1, end2 = T0 + 49 * FRAME_NS, T0 + 5 * S + 49 * FRAME_NS
    assert rows == [
        ("RECORDING_STATE", "", T0, True),
        ("TRACK_STATE", "VIDEO001", T0, True),
        ("RECORDING_STATE", "", end1, False),
        ("TRACK_STATE", "VIDEO001", end1, False),
        ("RECORDING_STATE", "", T0 + 5 * S, True),
        ("TRACK_STATE", "VIDEO001", T0 + 5 * S, True),
        ("RECORDING_STATE", "", end2, False),
        ("TRACK_STATE", "VIDEO001", end2, False),
    ]
    [media] = [m for m in await store.track_media("Cam") if m.track == "VIDEO001"]
    assert [(s.start_ns, s.end_ns) for s in media.slices] == [(T0, end1), (T0 + 5 * S, end2)]


async def test_recording_state_is_the_union_of_overlapping_tracks(store: Store) -> None:
    # Audio starts 10 ms after and is written first: Recording/State moves back to video's start.
    writer = await store.open_writer("Cam", "AUDIO001")
    for i in range(100):
        writer.append(audio(i, t0=T0 + 10_000_000), AAC)
    await writer.close()
    await record(store, [(0, 25)])
    rows = await history(store)
    assert_invariants(rows)
    rec = [(r[2], r[3]) for r in rows if r[0] == "RECORDING_STATE"]
    audio_end = T0 + 10_000_000 + 99 * 1024 * S // 48_000
    assert rec == [(T0, True), (audio_end, False)]


async def test_open_run_has_only_its_true_edge(store: Store) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(10):
        writer.append(video(i), H264)
    await store.flush()
    assert await history(store) == [
        ("RECORDING_STATE", "", T0, True),
        ("TRACK_STATE", "VIDEO001", T0, True),
    ]
    assert await store.history_state("Cam", T0 + S) == (
        True,
        {"VIDEO001": True, "AUDIO001": False, "META001": False},
    )
    await writer.close()


async def test_crash_repair_closes_open_history_at_the_last_durable_frame(
    data_dir: Path, clock: FakeClock
) -> None:
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        await record(store, [(0, 30), (2 * S, 30)])
        expected = await history(store)
    # What a crash leaves: the last run open, its false edges never written.
    conn = db(data_dir)
    conn.execute("UPDATE run SET open = 1, end_reason = NULL WHERE id = (SELECT MAX(id) FROM run)")
    conn.execute("DELETE FROM history WHERE value = 0 AND utc_ns > ?", (T0 + 2 * S,))
    conn.close()
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        assert await history(store) == expected
        assert expected[-1] == ("TRACK_STATE", "VIDEO001", T0 + 2 * S + 29 * FRAME_NS, False)


async def test_history_is_backfilled_on_open(data_dir: Path, clock: FakeClock) -> None:
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        await record(store, [(0, 30), (2 * S, 30)])
        expected = await history(store)
    conn = db(data_dir)
    conn.execute("DROP TABLE history")  # an index written before the history existed
    conn.close()
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        assert await history(store) == expected
        # Restarting writes a new run; edges continue to alternate.
        await record(store, [(10 * S, 10)])
        rows = await history(store)
    assert_invariants(rows)
    assert len(rows) == len(expected) + 4


async def test_retention_prunes_and_moves_the_edge_to_the_new_data_from(
    data_dir: Path, clock: FakeClock
) -> None:
    hour = 3600 * S
    async with Store(data_dir, clock=clock, options=RETENTION_OPTIONS) as store:
        await store.create_recording(RecordingConfig(max_retention="PT1H"), token="Cam")
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(720):  # two hours, one frame every 10 s, 10-minute segments
            writer.append(unit(i, T0), H264)
        await writer.close()
        clock.advance(2 * hour + 30 * 60 * S)
        deleted = await store.sweep()
        assert deleted
        [media] = [m for m in await store.track_media("Cam") if m.track == "VIDEO001"]
        rows = await history(store)
        assert media.earliest_ns is not None and media.earliest_ns > T0
        assert rows == [
            ("RECORDING_STATE", "", media.earliest_ns, True),
            ("TRACK_STATE", "VIDEO001", media.earliest_ns, True),
            ("RECORDING_STATE", "", T0 + 719 * STEP, False),
            ("TRACK_STATE", "VIDEO001", T0 + 719 * STEP, False),
        ]
        # Everything goes: so does the history.
        clock.advance(2 * hour)
        await store.sweep()
        assert await history(store) == []
    assert query(data_dir, "SELECT COUNT(*) FROM history") == [(0,)]


async def test_deleting_a_track_or_recording_removes_its_history(store: Store) -> None:
    writer = await store.open_writer("Cam", "AUDIO001")
    for i in range(200):
        writer.append(audio(i, t0=T0 + 2 * S), AAC)
    await writer.close()
    await record(store, [(0, 25)])
    await store.delete_track("Cam", "AUDIO001")
    rows = await history(store)
    assert_invariants(rows)
    assert {r[1] for r in rows} == {"", "VIDEO001"}
    assert [(r[2], r[3]) for r in rows if r[0] == "RECORDING_STATE"] == [
        (T0, True),
        (T0 + 24 * FRAME_NS, False),
    ]
    topics = await store.history_page(
        "Cam", *ALL, topics=(HistoryTopic.TRACK_STATE,), descending=True
    )
    assert [e.utc_ns for e in topics] == [T0 + 24 * FRAME_NS, T0]
    await store.delete_recording("Cam")
    await store.create_recording(RecordingConfig(), token="Cam")
    assert await history(store) == []


async def test_equal_history_page_asks_share_one_read_per_revision(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent equal asks → one read; after a write (new revision) the next ask reads anew."""
    await record(store, [(0, 50)])
    reads: list[str] = []
    real_page = StoreReader.history_page

    def counting(reader: StoreReader, recording: str, *args: Any, **kw: Any) -> Any:
        reads.append(recording)
        return real_page(reader, recording, *args, **kw)

    monkeypatch.setattr(StoreReader, "history_page", counting)
    ask = [("Cam", ALL[0], ALL[1], None)]
    topics = (HistoryTopic.RECORDING_STATE, HistoryTopic.TRACK_STATE)

    async def pages() -> list[list[HistoryEvent]]:
        return await store.history_pages(ask, descending=False, topics=topics, limit=100)

    first = await asyncio.gather(*(pages() for _ in range(20)))
    assert reads == ["Cam"] and all(p == first[0] for p in first)
    assert len(first[0][0]) == 4
    first[0][0].clear()  # a caller's list is its own: the shared read stays intact
    assert await pages() == first[1] and reads == ["Cam"]
    # Another ask is its own read; a write makes the next equal ask read again.
    await store.history_pages(ask, descending=True, topics=topics, limit=100)
    assert reads == ["Cam", "Cam"]
    await record(store, [(5 * S, 50)])
    again = await pages()
    assert len(reads) == 3 and len(again[0]) == 8
