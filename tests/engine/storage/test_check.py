"""check(): every kind of inconsistency is found; repair fixes what a crash can cause, only that."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.errors import ConflictError, NotFoundError
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import (
    RecordingConfig,
    Store,
    StoreReader,
    check,
    integrity,
    layout,
    list_recordings_report,
)
from tests.engine.storage.conftest import TEST_OPTIONS
from tests.engine.storage.helpers import (
    AAC,
    H264,
    T0,
    audio,
    db,
    index_of,
    payload,
    segment_paths,
    video,
)


async def _build(data_dir: Path) -> None:
    """Video: segments 1 (frames 0…49) and 2 (50…59); audio: segment 3."""
    async with Store(data_dir, clock=FakeClock(), options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(name="Gate"), token="Cam")
        vw = await store.open_writer("Cam", "VIDEO001")
        aw = await store.open_writer("Cam", "AUDIO001")
        for i in range(60):
            vw.append(video(i), H264)
            aw.append(audio(i), AAC)


def _sql(data_dir: Path, sql: str) -> None:
    conn = db(data_dir)
    conn.execute(sql)
    conn.close()


def _seg(data_dir: Path, segment_id: int) -> Path:
    return segment_paths(data_dir)[segment_id]


def _frame_offset(data_dir: Path, frame_id: int) -> int:
    conn = db(data_dir)
    offset = int(
        conn.execute("SELECT file_offset FROM frame WHERE id = ?", (frame_id,)).fetchone()[0]
    )
    conn.close()
    return offset


def _patch(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def missing_file(d: Path) -> None:
    _seg(d, 1).unlink()


def short_file(d: Path) -> None:
    path = _seg(d, 2)
    os.truncate(path, path.stat().st_size - 10)


def trailing_bytes(d: Path) -> None:
    with _seg(d, 2).open("ab") as f:
        f.write(b"\x00" * 100)


def orphan_files(d: Path) -> None:
    (d / "media/1/1/77-1.seg").write_bytes(b"CUSTOSEG")
    (d / "media/stray.txt").write_text("not ours")


def summary(d: Path) -> None:
    _sql(d, "UPDATE segment SET frame_count = frame_count + 1 WHERE id = 1")


def open_run(d: Path) -> None:
    _sql(d, "UPDATE run SET open = 1 WHERE id = 1")


def empty_run(d: Path) -> None:
    _sql(d, "INSERT INTO run (track_id, params_id, open, started_ns) VALUES (1, 1, 0, 0)")


def pending_delete(d: Path) -> None:
    (d / "media/1/1/50-1.seg").write_bytes(b"half deleted")
    _sql(d, "INSERT INTO garbage (path) VALUES ('media/1/1/50-1.seg')")


def overlap(d: Path) -> None:
    _sql(d, "UPDATE frame SET file_offset = file_offset - 1 WHERE id = 3")


def wall_order(d: Path) -> None:
    _sql(d, f"UPDATE frame SET wall_ns = wall_ns - {10 * NS_PER_SECOND} WHERE id = 20")


def bad_header(d: Path) -> None:
    _patch(_seg(d, 1), 0, b"NOTOURS!")


def flipped_byte(d: Path) -> None:
    _patch(_seg(d, 1), _frame_offset(d, 5) + 10, b"\xff")


REPAIRABLE: list[tuple[Callable[[Path], None], list[str]]] = [
    (missing_file, [integrity.MISSING_FILE]),
    (short_file, [integrity.SHORT_FILE, integrity.TRAILING_BYTES]),
    (trailing_bytes, [integrity.TRAILING_BYTES]),
    (orphan_files, [integrity.ORPHAN_FILE, integrity.ORPHAN_FILE]),
    (summary, [integrity.SEGMENT_SUMMARY]),
    (open_run, [integrity.OPEN_RUN]),
    (empty_run, [integrity.EMPTY_RUN]),
    (pending_delete, [integrity.PENDING_DELETE]),
]
REPORTED_ONLY: list[tuple[Callable[[Path], None], list[str], bool]] = [
    (overlap, [integrity.OVERLAP, integrity.UNINDEXED_BYTES], False),
    (wall_order, [integrity.WALL_CLOCK_ORDER], False),
    (bad_header, [integrity.BAD_HEADER], False),
    (flipped_byte, [integrity.CHECKSUM], True),
]


def _readable_frames(data_dir: Path) -> list[int]:
    """Indexes of the video frames still readable, each verified byte for byte."""
    with StoreReader.open(data_dir) as reader:
        frames = reader.frames_with_data("Cam", "VIDEO001", 0, 2**62, limit=1000)
    assert all(f.data == payload(index_of(f.data)) for f in frames)
    return [index_of(f.data) for f in frames]


async def test_a_clean_store_passes_with_counts(data_dir: Path) -> None:
    await _build(data_dir)
    report = check(data_dir, deep=True)
    assert report.ok and report.repaired_ok and not report.live
    assert (report.recordings, report.tracks, report.runs, report.segments, report.frames) == (
        1,
        3,
        2,
        3,
        120,
    )
    assert report.bytes == sum(len(payload(i)) for i in range(60)) + 60 * 300 + 3 * 24
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["ok"] is True and doc["problems"] == [] and doc["frames"] == 120
    assert report.to_text().endswith("no problems found")


@pytest.mark.parametrize(("corrupt", "kinds"), REPAIRABLE, ids=[c.__name__ for c, _ in REPAIRABLE])
async def test_repairable_problems_are_found_and_repaired(
    data_dir: Path, corrupt: Callable[[Path], None], kinds: list[str]
) -> None:
    await _build(data_dir)
    before = _readable_frames(data_dir)
    corrupt(data_dir)

    found = check(data_dir)
    assert [p.kind for p in found.problems] == kinds
    assert not found.ok and not found.repaired_ok
    assert not any(p.repaired for p in found.problems)

    repaired = check(data_dir, repair=True)
    assert [(p.kind, p.repaired) for p in repaired.problems] == [(k, True) for k in kinds]
    assert repaired.repaired_ok
    assert "[repaired]" in repaired.to_text()
    assert check(data_dir, deep=True).ok
    after = _readable_frames(data_dir)
    if corrupt is missing_file:
        assert after == list(range(50, 60))
    elif corrupt is short_file:
        assert after == list(range(59))
    else:
        assert after == before


@pytest.mark.parametrize(
    ("corrupt", "kinds", "deep"), REPORTED_ONLY, ids=[c.__name__ for c, _, _ in REPORTED_ONLY]
)
async def test_evidence_of_tampering_is_reported_never_repaired(
    data_dir: Path, corrupt: Callable[[Path], None], kinds: list[str], deep: bool
) -> None:
    await _build(data_dir)
    corrupt(data_dir)
    if deep:
        assert check(data_dir).ok  # only reading the bytes reveals it
    found = check(data_dir, deep=deep)
    assert [p.kind for p in found.problems] == kinds
    again = check(data_dir, repair=True, deep=deep)
    assert [(p.kind, p.repaired) for p in again.problems] == [(k, False) for k in kinds]
    assert not again.repaired_ok
    assert [p.kind for p in check(data_dir, deep=deep).problems] == kinds


async def test_a_store_in_use_is_checked_live_and_not_repaired(data_dir: Path) -> None:
    async with Store(data_dir, clock=FakeClock(), options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(80):
            writer.append(video(i), H264)
        await store.flush()
        for i in range(80, 90):
            writer.append(video(i), H264)
        report = await asyncio.to_thread(check, data_dir)
        assert report.live and report.ok and report.segments == 2
        with pytest.raises(ConflictError, match="stop it before repairing"):
            await asyncio.to_thread(check, data_dir, True)
        listing = await asyncio.to_thread(list_recordings_report, data_dir)
        assert listing[0]["tracks"][0]["frames"] >= 80
        await writer.close()
    assert check(data_dir, deep=True).ok


async def test_a_crashed_store_is_reported_as_such(data_dir: Path) -> None:
    await _build(data_dir)
    open_run(data_dir)
    _patch(data_dir / layout.LOCK_FILE, 0, b"31337\n")
    report = check(data_dir)
    assert report.unclean_shutdown
    assert [p.kind for p in report.problems] == [integrity.OPEN_RUN]
    assert "not closed cleanly" in report.to_text()
    assert not check(data_dir).unclean_shutdown  # check released the lock cleanly


def test_check_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="holds no Custos store"):
        check(tmp_path)


async def test_recordings_report_lists_tracks_with_utc_extent_and_gaps(data_dir: Path) -> None:
    async with Store(data_dir, clock=FakeClock(), options=TEST_OPTIONS) as store:
        await store.create_recording(
            RecordingConfig(source_id="urn:cam:1", name="Gate", content="North gate"),
            token="Gate",
        )
        writer = await store.open_writer("Gate", "VIDEO001")
        for i in range(25):
            writer.append(video(i), H264)
        writer.end_run("camera lost")
        for i in range(50, 75):
            writer.append(video(i), H264)
        await writer.close()
    [doc] = list_recordings_report(data_dir)
    assert {
        k: doc[k] for k in ("token", "status", "source_id", "name", "content", "max_retention")
    } == {
        "token": "Gate",
        "status": "Stopped",
        "source_id": "urn:cam:1",
        "name": "Gate",
        "content": "North gate",
        "max_retention": "PT0S",
    }
    video_doc, audio_doc, meta_doc = doc["tracks"]
    assert video_doc == {
        "token": "VIDEO001",
        "type": "Video",
        "description": "",
        "codec": "H264",
        "start": "2026-01-01T00:00:00.000Z",
        "end": "2026-01-01T00:00:02.960Z",
        "start_ns": T0,
        "end_ns": T0 + 74 * 40_000_000,
        "frames": 50,
        "bytes": sum(len(payload(i)) for i in [*range(25), *range(50, 75)]),
        "slices": [
            {"start": "2026-01-01T00:00:00.000Z", "end": "2026-01-01T00:00:00.960Z", "frames": 25},
            {"start": "2026-01-01T00:00:02.000Z", "end": "2026-01-01T00:00:02.960Z", "frames": 25},
        ],
        "gaps": [
            {
                "start": "2026-01-01T00:00:00.960Z",
                "end": "2026-01-01T00:00:02.000Z",
                "seconds": 1.04,
            }
        ],
    }
    assert (audio_doc["type"], audio_doc["frames"], audio_doc["start"]) == ("Audio", 0, None)
    assert (meta_doc["token"], meta_doc["type"]) == ("META001", "Metadata")
    json.dumps(doc)
