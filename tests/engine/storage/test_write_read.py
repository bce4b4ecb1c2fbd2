"""Recording and reading back: exact bytes and times, file layout, runs, params, overload."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import sqlite3
import struct
from pathlib import Path

import pytest

from app.core.errors import ConfigError, ConflictError, NotFoundError
from app.core.media import TimeSource
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import (
    FrameRef,
    RecordingConfig,
    RecordingStatus,
    Store,
    StoreOptions,
    check,
    flush,
    layout,
)
from app.engine.storage.writer import OVERLOAD_REASON
from tests.engine.storage.conftest import TEST_OPTIONS
from tests.engine.storage.helpers import (
    AAC,
    FRAME_NS,
    H264,
    H264_RESIZED,
    T0,
    audio,
    index_of,
    payload,
    query,
    segment_files,
    video,
)

END = T0 + 3600 * NS_PER_SECOND


async def test_round_trip_exact_bytes_times_and_layout(store: Store, data_dir: Path) -> None:
    vw = await store.open_writer("Cam", "VIDEO001")
    aw = await store.open_writer("Cam", "AUDIO001")
    for i in range(120):
        vw.append(video(i), H264)
    for i in range(60):
        aw.append(audio(i), AAC)
    await vw.close()
    await aw.close()

    frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END)]
    assert [f.to_access_unit() for f in frames] == [video(i) for i in range(120)]
    sounds = [f async for f in store.read_frames("Cam", "AUDIO001", T0, END)]
    assert [f.to_access_unit() for f in sounds] == [audio(i) for i in range(60)]
    assert {f.ref.time_source for f in sounds} == {TimeSource.RECEIVE_TIME}

    # 2 s segments rotate at the first keyframe after 2 s: frames 0-49, 50-99, 100-119.
    by_segment: dict[int, list[int]] = {}
    for f in frames:
        by_segment.setdefault(f.ref.segment_id, []).append(index_of(f.data))
    assert list(by_segment.values()) == [
        list(range(50)),
        list(range(50, 100)),
        list(range(100, 120)),
    ]
    run = frames[0].ref.run_id
    video_files = [p for p in segment_files(data_dir) if p.startswith("media/1/1/")]
    assert video_files == [f"media/1/1/{run}-{seq}.seg" for seq in (1, 2, 3)]
    for seq, (segment_id, indexes) in enumerate(by_segment.items(), start=1):
        raw = (data_dir / f"media/1/1/{run}-{seq}.seg").read_bytes()
        header = b"CUSTOSEG" + struct.pack(">IIQ", 1, 0, segment_id)
        assert raw == header + b"".join(payload(i) for i in indexes)
    # Offsets are contiguous from the end of the 24-byte header.
    first_segment = [f.ref for f in frames[:50]]
    assert first_segment[0].offset == layout.HEADER_SIZE == 24
    for prev, ref in itertools.pairwise(first_segment):
        assert ref.offset == prev.offset + prev.size


async def test_track_media_reports_slices_gaps_and_skipped_frames(store: Store) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(60):
        writer.append(video(i), H264)
    writer.end_run("camera lost")
    for i in range(90, 160):  # resumes mid-GOP: 90…99 cannot decode alone
        writer.append(video(i), H264)
    await writer.close()

    stats = writer.stats
    assert (stats.frames_written, stats.frames_skipped, stats.runs_started) == (120, 10, 2)
    media = (await store.track_media("Cam"))[0]
    assert media.track == "VIDEO001" and media.codec is not None and media.codec.value == "H264"
    assert (media.earliest_ns, media.latest_ns) == (T0, T0 + 159 * FRAME_NS)
    assert media.frame_count == 120
    assert media.bytes == sum(len(payload(i)) for i in [*range(60), *range(100, 160)])
    assert [(s.start_ns, s.end_ns, s.frame_count) for s in media.slices] == [
        (T0, T0 + 59 * FRAME_NS, 60),
        (T0 + 100 * FRAME_NS, T0 + 159 * FRAME_NS, 60),
    ]
    assert media.gaps == [(T0 + 59 * FRAME_NS, T0 + 100 * FRAME_NS)]


async def test_track_media_lists_empty_tracks(store: Store) -> None:
    medias = await store.track_media()
    assert [(m.track, m.frame_count, m.slices, m.codec) for m in medias] == [
        ("VIDEO001", 0, (), None),
        ("AUDIO001", 0, (), None),
        ("META001", 0, (), None),
    ]


async def test_keyframe_first_last_and_paged_ranges(store: Store) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(100):
        writer.append(video(i), H264)
    await writer.close()

    def index(ref: FrameRef | None) -> int | None:
        return None if ref is None else ref.media_ts // 3600

    async def key_before(n: int) -> int | None:
        return index(await store.keyframe_at_or_before("Cam", "VIDEO001", T0 + n * FRAME_NS))

    assert (await key_before(60), await key_before(50), await key_before(49)) == (50, 50, 25)
    assert await key_before(-1) is None
    assert index(await store.first_frame("Cam", "VIDEO001")) == 0
    assert index(await store.last_frame("Cam", "VIDEO001")) == 99
    assert await store.first_frame("Cam", "AUDIO001") is None

    # Half-open range [10, 37), delivered in pages of 4.
    start, end = T0 + 10 * FRAME_NS, T0 + 37 * FRAME_NS
    refs = [r async for r in store.frames("Cam", "VIDEO001", start, end, page=4)]
    assert [r.media_ts // 3600 for r in refs] == list(range(10, 37))
    last = await store.last_frame("Cam", "VIDEO001")
    assert last is not None
    assert await store.read_frame(last) == payload(99)


async def test_codec_parameter_changes_are_recorded_per_frame(store: Store, data_dir: Path) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(100):
        writer.append(video(i), H264 if i < 50 else H264_RESIZED)
    await writer.close()

    refs = [r async for r in store.frames("Cam", "VIDEO001", T0, END)]
    assert len({r.run_id for r in refs}) == 1  # a parameter change does not interrupt the run
    assert await store.params_for_frame(refs[0]) == H264
    assert await store.params_for_frame(refs[49]) == H264
    assert await store.params_for_frame(refs[50]) == H264_RESIZED
    assert await store.params_for_frame(refs[99]) == H264_RESIZED
    changes = query(data_dir, "SELECT frame_id FROM param_change ORDER BY frame_id")
    assert changes == [(refs[0].id,), (refs[50].id,)]


async def test_wall_clock_stepping_back_starts_a_new_run(store: Store, data_dir: Path) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(50):
        writer.append(video(i), H264)
    for i in range(50):  # the camera's clock jumped back 10 s
        writer.append(video(i, t0=T0 - 10 * NS_PER_SECOND), H264)
    await writer.close()

    [media] = [m for m in await store.track_media("Cam") if m.track == "VIDEO001"]
    assert [s.frame_count for s in media.slices] == [50, 50]
    reasons = query(data_dir, "SELECT end_reason FROM run ORDER BY id")
    assert reasons == [("wall clock stepped back by 11960.000 ms",), (None,)]


async def test_recording_status_follows_the_runs(store: Store) -> None:
    assert (await store.recording("Cam")).status is RecordingStatus.INITIATED
    writer = await store.open_writer("Cam", "VIDEO001")
    writer.append(video(0), H264)
    await store.flush()
    assert (await store.recording("Cam")).status is RecordingStatus.RECORDING
    await writer.close()
    assert (await store.recording("Cam")).status is RecordingStatus.STOPPED


async def test_writer_misuse_is_refused(store: Store) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    with pytest.raises(ConflictError, match="already has a writer"):
        await store.open_writer("Cam", "VIDEO001")
    with pytest.raises(ConfigError, match="MPEG4-GENERIC data cannot go into Video track"):
        writer.append(audio(0), AAC)
    with pytest.raises(NotFoundError, match="no track 'VIDEO009'"):
        await store.open_writer("Cam", "VIDEO009")
    with pytest.raises(ConflictError, match="being recorded"):
        await store.delete_track("Cam", "VIDEO001")
    too_late = dataclasses.replace(video(0), wall_ns=1 << 63)
    with pytest.raises(ConfigError, match="out of the 64-bit range"):
        writer.append(too_late, H264)
    await writer.close()
    with pytest.raises(ConflictError, match="closed"):
        writer.append(video(0), H264)
    again = await store.open_writer("Cam", "VIDEO001")  # the track is free again
    await again.close()


async def test_overload_drops_whole_gops_and_records_the_gap(
    data_dir: Path, clock: FakeClock
) -> None:
    # No timed flush: while the test appends without yielding, nothing can become durable.
    options = StoreOptions(
        writer_buffer_limit_bytes=10_000, flush_interval_s=3600, flush_early_bytes=10**9
    )
    async with Store(data_dir, clock=clock, options=options) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(50):  # 25 frames fill the buffer; 25…49 (a whole GOP) are dropped
            writer.append(video(i, size=400), H264)
        assert writer.buffered_bytes == 10_000
        await store.flush()
        for i in range(50, 75):  # the buffer is empty again: recording resumes at keyframe 50
            writer.append(video(i, size=400), H264)
        await writer.close()
        stats = writer.stats
        assert (stats.frames_written, stats.frames_dropped, stats.bytes_dropped) == (50, 25, 10_000)
        [media] = [m for m in await store.track_media("Cam") if m.track == "VIDEO001"]
        assert [(s.start_ns, s.end_ns, s.frame_count) for s in media.slices] == [
            (T0, T0 + 24 * FRAME_NS, 25),
            (T0 + 50 * FRAME_NS, T0 + 74 * FRAME_NS, 25),
        ]
    assert query(data_dir, "SELECT end_reason FROM run ORDER BY id") == [
        (OVERLOAD_REASON,),
        (None,),
    ]
    assert check(data_dir).ok


async def test_write_error_ends_the_run_at_the_last_durable_frame(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(30):
        writer.append(video(i), H264)
    await store.flush()

    real_write = layout.write_all

    def half_then_enospc(fd: int, data: bytes) -> None:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout, "write_all", half_then_enospc)
    for i in range(30, 40):
        writer.append(video(i), H264)
    await store.flush()
    monkeypatch.setattr(layout, "write_all", real_write)
    for i in range(40, 80):
        writer.append(video(i), H264)
    await writer.close()

    stats = writer.stats
    assert (stats.frames_written, stats.frames_failed, stats.frames_skipped) == (60, 10, 10)
    assert stats.last_error is not None and "No space left on device" in stats.last_error
    refs = [r async for r in store.frames("Cam", "VIDEO001", T0, END)]
    assert [r.media_ts // 3600 for r in refs] == [*range(30), *range(50, 80)]
    reasons = query(data_dir, "SELECT end_reason FROM run ORDER BY id")
    assert reasons[0][0] is not None and "No space left on device" in reasons[0][0]
    await store.close()
    assert check(data_dir, deep=True).problems == []


async def test_index_error_truncates_bytes_no_row_points_to(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(30):
        writer.append(video(i), H264)
    await store.flush()
    real_commit = flush.Flusher._commit

    def failing_commit(self: flush.Flusher, plans: list[flush._Plan]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(flush.Flusher, "_commit", failing_commit)
    for i in range(30, 40):
        writer.append(video(i), H264)
    await store.flush()  # the bytes of 30…39 were written and fsynced, then the commit failed
    monkeypatch.setattr(flush.Flusher, "_commit", real_commit)
    await writer.close()

    assert writer.stats.frames_failed == 10
    refs = [r async for r in store.frames("Cam", "VIDEO001", T0, END)]
    assert len(refs) == 30
    [path] = segment_files(data_dir)
    assert (data_dir / path).stat().st_size == refs[-1].offset + refs[-1].size
    await store.close()
    assert check(data_dir).problems == []


async def test_readers_see_committed_prefixes_while_a_writer_appends(store: Store) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    done = asyncio.Event()
    seen: set[int] = set()

    async def produce() -> None:
        for i in range(300):
            writer.append(video(i), H264)
            if i % 20 == 19:
                await store.flush()
        await writer.close()
        done.set()

    async def read() -> None:
        while not done.is_set():
            frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END, page=64)]
            # Every read sees a whole prefix of what was appended, bytes intact.
            assert [index_of(f.data) for f in frames] == list(range(len(frames)))
            assert all(f.data == payload(index_of(f.data)) for f in frames)
            seen.add(len(frames))

    await asyncio.gather(produce(), read(), read())
    assert len(seen) >= 3, f"readers saw too few intermediate states: {sorted(seen)}"
    final = [r async for r in store.frames("Cam", "VIDEO001", T0, END)]
    assert len(final) == 300


async def test_data_survives_reopen_and_recording_resumes_in_a_new_run(
    data_dir: Path, clock: FakeClock
) -> None:
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        await store.create_recording(RecordingConfig(), token="Cam")
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(50):
            writer.append(video(i), H264)
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as store:
        assert store.recovery == []
        writer = await store.open_writer("Cam", "VIDEO001")
        for i in range(75, 100):
            writer.append(video(i), H264)
        await writer.close()
        frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END)]
        assert [index_of(f.data) for f in frames] == [*range(50), *range(75, 100)]
        assert len({f.ref.run_id for f in frames}) == 2
    assert check(data_dir, deep=True).ok


async def test_a_data_directory_has_one_owner(data_dir: Path) -> None:
    async with Store(data_dir):
        with pytest.raises(ConflictError, match="in use by process"):
            await Store(data_dir).open()
    async with Store(data_dir) as again:
        assert again.recovery == []
