"""Recovery on open: what a crash leaves behind is put right; schema versions; the LOCK file."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from app.core.errors import StorageError
from app.core.time import FakeClock
from app.engine.storage import (
    JobConfig,
    JobMode,
    JobState,
    RecordingConfig,
    RecordingStatus,
    Store,
    check,
    integrity,
    layout,
    schema,
)
from tests.engine.storage.conftest import TEST_OPTIONS
from tests.engine.storage.helpers import H264, T0, db, index_of, payload, query, video

END = T0 + 10**12


async def _record(data_dir: Path, clock: FakeClock, count: int = 40) -> None:
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(count):
            writer.append(video(i), H264)


def _crash(data_dir: Path) -> tuple[int, Path]:
    """Turn the cleanly closed store into what a kill during recording leaves: the last
    segment unsealed and its run open. Returns that segment's id and file."""
    conn = db(data_dir)
    seg_id, run_id, rec_id, track_id, seq = conn.execute(
        "SELECT s.id, s.run_id, t.recording_id, s.track_id, s.seq FROM segment s "
        "JOIN track t ON t.id = s.track_id ORDER BY s.id DESC LIMIT 1"
    ).fetchone()
    conn.execute("UPDATE segment SET sealed = 0 WHERE id = ?", (seg_id,))
    conn.execute("UPDATE run SET open = 1 WHERE id = ?", (run_id,))
    conn.execute("UPDATE recording SET status = 'Recording'")
    conn.close()
    return seg_id, data_dir / layout.segment_relpath(rec_id, track_id, run_id, seq)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _offsets(data_dir: Path, seg_id: int) -> list[tuple[int, int]]:
    return [
        (r[0], r[1])
        for r in query(
            data_dir,
            "SELECT file_offset, size FROM frame WHERE segment_id = ? ORDER BY id",
            (seg_id,),
        )
    ]


async def _frames_after_reopen(data_dir: Path, clock: FakeClock) -> tuple[list[int], Store]:
    store = Store(data_dir, clock=clock, options=TEST_OPTIONS)
    await store.open()
    frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END)]
    assert all(f.data == payload(index_of(f.data)) for f in frames)
    await store.close()
    return [index_of(f.data) for f in frames], store


async def test_rows_past_a_truncated_segment_are_dropped(data_dir: Path, clock: FakeClock) -> None:
    await _record(data_dir, clock)
    seg_id, path = _crash(data_dir)
    offsets = _offsets(data_dir, seg_id)
    cut = offsets[37][0] + 5  # frame 37 half written, 38 and 39 missing
    os.truncate(path, cut)

    indexes, store = await _frames_after_reopen(data_dir, clock)
    assert indexes == list(range(37))
    assert [(p.kind, p.frames, p.repaired) for p in store.recovery] == [
        (integrity.SHORT_FILE, 3, True),
        (integrity.TRAILING_BYTES, 0, True),
        (integrity.OPEN_RUN, 0, True),
    ]
    assert path.stat().st_size == offsets[36][0] + offsets[36][1]
    assert query(data_dir, "SELECT open, end_reason FROM run") == [(0, integrity.RECOVERED_REASON)]
    assert query(data_dir, "SELECT sealed, frame_count FROM segment") == [(1, 37)]
    assert query(data_dir, "SELECT status FROM recording") == [(RecordingStatus.STOPPED.value,)]
    assert check(data_dir, deep=True).ok


async def test_bytes_beyond_the_index_are_truncated(data_dir: Path, clock: FakeClock) -> None:
    await _record(data_dir, clock)
    _seg_id, path = _crash(data_dir)
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(payload(40)[:700])  # a frame written but never indexed

    indexes, store = await _frames_after_reopen(data_dir, clock)
    assert indexes == list(range(40))
    assert [p.kind for p in store.recovery] == [integrity.TRAILING_BYTES, integrity.OPEN_RUN]
    assert "700 bytes after the last indexed frame" in store.recovery[0].detail
    assert path.stat().st_size == size
    assert check(data_dir).ok


@pytest.mark.parametrize("file_bytes", [None, b"", b"CUSTOSEG\x00\x00"])
async def test_a_half_created_segment_disappears(
    data_dir: Path, clock: FakeClock, file_bytes: bytes | None
) -> None:
    await _record(data_dir, clock)
    _seg_id, path = _crash(data_dir)
    conn = db(data_dir)
    run_id, track_id = conn.execute("SELECT run_id, track_id FROM segment").fetchone()
    new_id = conn.execute(
        "INSERT INTO segment (run_id, seq, track_id, sealed, length, frame_count) "
        "VALUES (?, 2, ?, 0, 24, 0)",
        (run_id, track_id),
    ).lastrowid
    conn.close()
    new_path = path.with_name(f"{run_id}-2.seg")
    if file_bytes is not None:
        new_path.write_bytes(file_bytes)

    indexes, store = await _frames_after_reopen(data_dir, clock)
    assert indexes == list(range(40))
    assert integrity.EMPTY_SEGMENT in [p.kind for p in store.recovery]
    assert not new_path.exists()
    assert query(data_dir, "SELECT id FROM segment WHERE id = ?", (new_id,)) == []
    assert check(data_dir).ok


async def test_pending_deletions_are_finished(data_dir: Path, clock: FakeClock) -> None:
    await _record(data_dir, clock)
    leftover = data_dir / "media/1/1/99-1.seg"
    leftover.write_bytes(b"deleted by retention, unlink interrupted")
    conn = db(data_dir)
    conn.execute("INSERT INTO garbage (path) VALUES ('media/1/1/99-1.seg')")
    conn.close()

    _indexes, store = await _frames_after_reopen(data_dir, clock)
    assert [p.kind for p in store.recovery] == [integrity.PENDING_DELETE]
    assert not leftover.exists()
    assert query(data_dir, "SELECT * FROM garbage") == []


async def test_a_sealed_segment_is_left_to_check(data_dir: Path, clock: FakeClock) -> None:
    """A crash cannot damage a sealed segment; recovery does not scan them (check does)."""
    await _record(data_dir, clock, count=60)  # two segments, both sealed by the clean close
    first = query(data_dir, "SELECT s.id FROM segment s ORDER BY s.id LIMIT 1")[0][0]
    path = next(iter(sorted((data_dir / "media/1/1").iterdir())))
    os.truncate(path, path.stat().st_size - 10)

    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as opened:
        assert opened.recovery == []
    report = check(data_dir)
    assert [(p.kind, p.segment_id, p.frames) for p in report.problems] == [
        (integrity.SHORT_FILE, first, 1),
        (integrity.TRAILING_BYTES, first, 0),
    ]


async def test_runtime_states_are_reset(data_dir: Path, clock: FakeClock) -> None:
    async with Store(data_dir, clock=clock) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        job = await store.create_job(JobConfig("Cam", JobMode.ACTIVE))
        await store.set_job_state(job.token, JobState.ACTIVE)
    conn = db(data_dir)
    conn.execute("UPDATE recording SET status = 'Recording'")
    conn.close()
    async with Store(data_dir, clock=clock) as store:
        assert (await store.recording("Cam")).status is RecordingStatus.STOPPED
        assert (await store.job(job.token)).state is JobState.IDLE
        assert (await store.job(job.token)).config.mode is JobMode.ACTIVE


async def test_a_stale_lock_is_taken_over_and_logged(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(data_dir / layout.LOCK_FILE, b"4242\n")
    with caplog.at_level(logging.WARNING, logger="app.engine.storage.layout"):
        async with Store(data_dir):
            assert (data_dir / layout.LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert "previous owner (pid 4242) did not shut down cleanly" in caplog.text
    assert (data_dir / layout.LOCK_FILE).read_text() == ""


async def test_an_index_from_a_newer_custos_is_refused(data_dir: Path) -> None:
    async with Store(data_dir):
        pass
    conn = db(data_dir)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(StorageError, match="schema version 99, newer than this Custos"):
        await Store(data_dir).open()
    with pytest.raises(StorageError, match="schema version 99"):
        check(data_dir)


async def test_upgrades_run_in_order(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Store(data_dir):
        pass
    steps: list[int] = []

    def v1_to_v2(conn: sqlite3.Connection) -> None:
        steps.append(1)
        conn.execute("ALTER TABLE recording ADD COLUMN note TEXT")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema.UPGRADES, 1, v1_to_v2)
    async with Store(data_dir):
        pass
    assert steps == [1]
    assert query(data_dir, "SELECT version FROM schema_version") == [(2,)]
    assert ("note",) in [(r[1],) for r in query(data_dir, "PRAGMA table_info(recording)")]
