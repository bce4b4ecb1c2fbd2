"""Retention: age limit, disk budget oldest-first across recordings, evidence locks, deletes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.core.errors import ConfigError, ConflictError, NotFoundError
from app.core.media import AccessUnit, TimeSource
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import (
    DeletedSegment,
    RecordingConfig,
    Store,
    StoreOptions,
    check,
    layout,
)
from tests.engine.storage.helpers import H264, T0, payload, segment_files

SECOND = NS_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
FRAME_BYTES = 500
#: One keyframe every 10 s; 10-minute segments hold 60 frames.
STEP = 10 * SECOND
SEGMENT_FRAMES = 60
SEGMENT_BYTES = SEGMENT_FRAMES * FRAME_BYTES
OPTIONS = StoreOptions(segment_max_duration_ns=10 * MINUTE, flush_interval_s=0.05)


def unit(i: int, start: int) -> AccessUnit:
    return AccessUnit(
        payload(i, FRAME_BYTES), i * 900_000, start + i * STEP, True, TimeSource.CAMERA_NTP
    )


async def record(
    store: Store, token: str, start: int, frames: int, retention: str = "PT0S"
) -> None:
    await store.create_recording(RecordingConfig(max_retention=retention), token=token)
    writer = await store.open_writer(token, "VIDEO001")
    for i in range(frames):
        writer.append(unit(i, start), H264)
    await writer.close()


def segment(token: str, start: int, k: int, reason: str) -> DeletedSegment:
    """The k-th segment of a recording that started at `start`."""
    first = start + k * SEGMENT_FRAMES * STEP
    return DeletedSegment(
        token,
        "VIDEO001",
        first,
        first + (SEGMENT_FRAMES - 1) * STEP,
        SEGMENT_FRAMES,
        SEGMENT_BYTES,
        reason,
    )


async def test_maximum_retention_time_deletes_old_segments_except_locked(
    tmp_path: Path, clock: FakeClock
) -> None:
    start = T0 - 3 * HOUR  # 18 segments of 10 minutes, the newest ending 10 s before now
    async with Store(tmp_path / "d", clock=clock, options=OPTIONS) as store:
        await record(store, "Old", start, 18 * SEGMENT_FRAMES, retention="PT60M")
        await record(store, "Keep", start, 18 * SEGMENT_FRAMES, retention="PT0S")
        lock = await store.add_evidence_lock(
            "Old", start + 5 * MINUTE, start + 5 * MINUTE, "case 17"
        )

        deleted = await store.sweep()
        # Segments 0…11 end more than an hour ago; segment 0 overlaps the lock.
        assert deleted == [segment("Old", start, k, "max-retention") for k in range(1, 12)]
        assert await store.sweep() == []
        media = {m.recording: m for m in await store.track_media() if m.track == "VIDEO001"}
        assert [(s.start_ns, s.frame_count) for s in media["Old"].slices] == [
            (start, SEGMENT_FRAMES),
            (start + 12 * SEGMENT_FRAMES * STEP, 6 * SEGMENT_FRAMES),
        ]
        assert media["Keep"].frame_count == 18 * SEGMENT_FRAMES

        # A shorter retention takes effect at the next sweep (RC-05.1); the lock still holds.
        await store.set_recording_config("Old", RecordingConfig(max_retention="PT30M"))
        deleted = await store.sweep()
        assert deleted == [segment("Old", start, k, "max-retention") for k in range(12, 15)]
        await store.remove_evidence_lock(lock.id)
        assert await store.sweep() == [segment("Old", start, 0, "max-retention")]
    files = [p for p in segment_files(tmp_path / "d") if p.startswith("media/1/")]
    assert len(files) == 3
    assert check(tmp_path / "d").ok


async def test_disk_budget_deletes_oldest_first_across_recordings_never_locked(
    tmp_path: Path, clock: FakeClock
) -> None:
    a_start, b_start = T0 - 2 * HOUR, T0 - 2 * HOUR + 5 * MINUTE
    data_dir = tmp_path / "d"
    async with Store(data_dir, clock=clock, options=OPTIONS) as store:
        await record(store, "A", a_start, 4 * SEGMENT_FRAMES)
        await record(store, "B", b_start, 4 * SEGMENT_FRAMES)
        # A's second segment is evidence: the budget must find its bytes elsewhere.
        a1 = segment("A", a_start, 1, "")
        await store.add_evidence_lock("A", a1.end_ns, a1.end_ns + HOUR, "incident")
        total = 8 * (SEGMENT_BYTES + layout.HEADER_SIZE)
        deleted = await store.sweep(budget_bytes=total - 3 * SEGMENT_BYTES)
        assert deleted == [
            segment("A", a_start, 0, "disk-budget"),
            segment("B", b_start, 0, "disk-budget"),
            segment("B", b_start, 1, "disk-budget"),
        ]
        remaining = await store.track_media()
        assert sum(m.bytes for m in remaining) == 5 * SEGMENT_BYTES
        assert {(m.recording, m.earliest_ns) for m in remaining if m.track == "VIDEO001"} == {
            ("A", a1.start_ns),
            ("B", b_start + 2 * SEGMENT_FRAMES * STEP),
        }
    assert len(segment_files(data_dir)) == 5
    assert check(data_dir).ok


async def test_budget_never_deletes_a_segment_being_written(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with Store(tmp_path / "d", clock=clock, options=OPTIONS) as store:
        await record(store, "Done", T0 - HOUR, 2 * SEGMENT_FRAMES)
        await store.create_recording(RecordingConfig(), token="Live")
        writer = await store.open_writer("Live", "VIDEO001")
        for i in range(10):
            writer.append(unit(i, T0), H264)
        await store.flush()
        with caplog.at_level(logging.WARNING, logger="app.engine.storage.retention"):
            deleted = await store.sweep(budget_bytes=1)
        assert [(d.recording, d.reason) for d in deleted] == [("Done", "disk-budget")] * 2
        assert "cannot be met" in caplog.text
        last = await store.last_frame("Live", "VIDEO001")
        assert last is not None and await store.read_frame(last) == payload(9, FRAME_BYTES)
        await writer.close()


async def test_evidence_locks_are_listed_validated_and_block_deletion(
    tmp_path: Path, clock: FakeClock
) -> None:
    data_dir = tmp_path / "d"
    async with Store(data_dir, clock=clock, options=OPTIONS) as store:
        await record(store, "Cam", T0 - HOUR, SEGMENT_FRAMES)
        lock = await store.add_evidence_lock("Cam", T0 - HOUR, T0 - HOUR + MINUTE, "case 4711")
        assert (lock.recording, lock.reason, lock.created_ns) == ("Cam", "case 4711", T0)
        assert await store.evidence_locks() == [lock]
        assert await store.evidence_locks("Cam") == [lock]
        with pytest.raises(ConfigError, match=r"ends .* before it starts"):
            await store.add_evidence_lock("Cam", T0, T0 - 1, "backwards")
        with pytest.raises(NotFoundError, match="no recording 'Nope'"):
            await store.add_evidence_lock("Nope", T0, T0, "x")
        with pytest.raises(ConflictError, match="evidence-locked data"):
            await store.delete_track("Cam", "VIDEO001")
        with pytest.raises(ConflictError, match="has 1 evidence lock"):
            await store.delete_recording("Cam")
        await store.remove_evidence_lock(lock.id)
        with pytest.raises(NotFoundError, match=f"no evidence lock {lock.id}"):
            await store.remove_evidence_lock(lock.id)
        await store.delete_recording("Cam")
        assert await store.recordings() == []
    assert segment_files(data_dir) == []
    assert check(data_dir).ok
