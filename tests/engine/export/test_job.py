"""The export job: store → numbered MP4 parts that FFmpeg plays frame-exact; lock and cancel."""

from __future__ import annotations

import asyncio
import datetime
import fractions
import itertools
import mmap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from cryptography import x509

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.core.media import AccessUnit, Codec, TimeSource, TrackKind
from app.core.time import NS_PER_MS, NS_PER_SECOND, NS_PER_US, FakeClock
from app.engine.export import (
    ExportCancelledError,
    ExportProgress,
    ExportRequest,
    chunks,
    export_recording,
    job,
    parts,
)
from app.engine.export.keys import self_signed_signer
from app.engine.storage import RecordingConfig, Store, StoredFrame, StoreOptions
from app.formats.bmff import box as bx
from app.formats.bmff.mp4 import to_ticks
from app.formats.oef import meta as oef
from app.formats.oef.report import VALID_TRUSTED
from app.formats.oef.verify import verify_file
from app.formats.stamp import read_stamp
from tests.engine.media_checks import stored_frames
from tests.formats.bmff import layout, streams
from tests.formats.bmff.streams import FRAME_NS, GOP, T0

OPTIONS = StoreOptions(segment_max_duration_ns=NS_PER_SECOND, flush_interval_s=0.05)
EXPORTED_AT = T0 + 7 * 86_400 * NS_PER_SECOND
END = T0 + 3600 * NS_PER_SECOND


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "data", clock=FakeClock(T0), options=OPTIONS) as s:
        await s.create_recording(
            RecordingConfig(name="Gate", address="rtsp://gate.example/stream"), token="Gate"
        )
        yield s


async def record(
    store: Store,
    codec: Codec = Codec.H264,
    *,
    frames: int = 40,
    gap_at: int | None = None,
    audio: bool = False,
) -> list[int]:
    """Record stamped video (stamp = wall; a gap before frame `gap_at`); walls."""
    stream = streams.video(codec, frames, gap_at=gap_at)
    writer = await store.open_writer("Gate", "VIDEO001")
    walls = []
    for i, unit in enumerate(stream.units):
        if i == gap_at:
            writer.end_run("camera lost")
        wall = streams.capture_ns(i, gap_at=gap_at)
        walls.append(wall)
        writer.append(
            AccessUnit(unit.data, i * 3600, wall, unit.keyframe, TimeSource.LOCAL_CAPTURE),
            stream.params,
        )
    await writer.close()
    if audio:
        sound = streams.aac(40)
        aw = await store.open_writer("Gate", "AUDIO001")
        for k, unit in enumerate(sound.units):
            wall = T0 + k * 64 * NS_PER_MS
            aw.append(
                AccessUnit(unit.data, k * 1024, wall, True, TimeSource.RECEIVE_TIME), sound.params
            )
        await aw.close()
    return walls


def request(tmp_path: Path, start: int = T0, end: int = END, **kw: object) -> ExportRequest:
    return ExportRequest("Gate", start, end, tmp_path / "out" / "gate.mp4", operator="Ann", **kw)  # type: ignore[arg-type]


async def run_export(store: Store, req: ExportRequest, **kw: object) -> job.ExportResult:
    req.out_path.parent.mkdir(parents=True, exist_ok=True)
    uuids = (bytes([n]) * 16 for n in itertools.count(1))
    return await export_recording(
        store,
        req,
        clock=FakeClock(EXPORTED_AT),
        new_uuid=lambda: next(uuids),
        **kw,  # type: ignore[arg-type]
    )


def decoded(path: Path) -> tuple[list[int], list[int]]:
    """(video pts in 90 kHz ticks, stamped capture ns) of every frame of the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == fractions.Fraction(1, 90_000)
        pts, stamps = [], []
        for packet in container.demux(stream):
            if not packet.size:
                continue
            assert packet.pts is not None
            pts.append(packet.pts)
            for frame in packet.decode():
                stamps.append(read_stamp(frame.to_ndarray(format="gray")).capture_us * NS_PER_US)
    return pts, stamps


def file_meta(path: Path) -> tuple[list[bytes], oef.Sumi, list[tuple[int, int]], oef.Suep]:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        top = list(bx.iter_boxes(buf))
        meta = top[-1]
        kids = {b.type: b for b in bx.children(buf, meta, skip=4)}
        assert list(kids) == [b"hdlr", b"suep", b"sumi", b"cstb", b"ipro"]
        return (
            [b.type for b in top],
            oef.parse_sumi(bx.payload(buf, kids[b"sumi"])),
            oef.parse_cstb(bx.payload(buf, kids[b"cstb"])),
            oef.parse_suep(bx.payload(buf, kids[b"suep"])),
        )


@pytest.mark.parametrize("codec", [Codec.H264, Codec.H265, Codec.JPEG])
async def test_every_frame_plays_at_its_stored_wall_clock(
    store: Store, tmp_path: Path, codec: Codec
) -> None:
    walls = await record(store, codec, frames=30)
    result = await run_export(store, request(tmp_path))
    (part,) = result.parts
    assert part.path == tmp_path / "out" / "gate.mp4"
    assert sorted(p.name for p in part.path.parent.iterdir()) == ["gate.mp4"]
    pts, stamps = decoded(part.path)
    stored = [f.ref.wall_ns for f in stored_frames(store.data_dir, "Gate")]
    assert stored == walls
    assert stamps == walls  # every frame, in order, each showing its own capture time
    assert pts == [to_ticks(w, walls[0], 90_000) for w in walls]
    assert (part.start_ns, result.start_ns, result.frames) == (walls[0], walls[0], 30)
    top, sumi, cstb, suep = file_meta(part.path)
    assert top[:2] == [b"ftyp", b"moov"] and top[-1] == b"meta"
    assert cstb == [(1, walls[0])]
    assert (sumi.part_uuid, sumi.predecessor_uuid, sumi.successor_uuid) == (bytes([1]) * 16,) * 3
    assert sumi.start_ns == walls[0] and sumi.duration_ns == 30 * FRAME_NS
    assert suep.operator == "Ann" and suep.export_time_ns == EXPORTED_AT
    assert [(t.track_id, t.name, t.url) for t in suep.tracks] == [
        (1, "Gate", "rtsp://gate.example/stream")
    ]


async def test_start_snaps_to_keyframe_and_audio_is_cut_with_it(
    store: Store, tmp_path: Path
) -> None:
    walls = await record(store, frames=40, audio=True)
    start = walls[GOP + 3]  # mid-GOP: the export starts at the keyframe before it
    result = await run_export(store, request(tmp_path, start, walls[35]))
    assert result.start_ns == walls[GOP]
    assert [(t.token, t.frames) for t in result.tracks] == [
        ("VIDEO001", 25),
        ("AUDIO001", sum(walls[GOP] <= T0 + k * 64 * NS_PER_MS < walls[35] for k in range(40))),
    ]
    path = result.parts[0].path
    pts, stamps = decoded(path)
    assert stamps == walls[GOP:35]
    assert pts == [to_ticks(w, walls[GOP], 90_000) for w in walls[GOP:35]]
    f = layout.read(path.read_bytes())
    audio_walls = [T0 + k * 64 * NS_PER_MS for k in range(40)]
    kept = [w for w in audio_walls if walls[GOP] <= w < walls[35]]
    assert [s.decode_ticks for s in f.samples[2]] == [to_ticks(w, walls[GOP], 16_000) for w in kept]
    # The last frame lasts until the first frame after the export (read beyond the end).
    assert f.samples[1][-1].duration == 3600
    assert file_meta(path)[2] == [(1, walls[GOP]), (2, walls[GOP])]


async def test_a_gap_stays_a_gap(store: Store, tmp_path: Path) -> None:
    walls = await record(store, frames=40, gap_at=20)
    result = await run_export(store, request(tmp_path))
    (part,) = result.parts
    pts, stamps = decoded(part.path)
    assert stamps == walls
    assert pts == [to_ticks(w, walls[0], 90_000) for w in walls]
    assert pts[20] - pts[19] == 3600 + streams.GAP_NS * 90_000 // NS_PER_SECOND
    assert part.gaps == ((walls[19] + FRAME_NS, walls[20]),)
    f = layout.read(part.path.read_bytes())
    assert f.samples[1][19].duration == 3600  # not stretched over the gap


async def test_split_parts_chain_and_play_back_to_back(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walls = await record(store, frames=80, gap_at=50)
    monkeypatch.setattr(job, "MIN_PART_SIZE_LIMIT", 1)
    monkeypatch.setattr(job, "META_RESERVE_BYTES", 1024)
    sizes = [len(u.data) for u in streams.video(Codec.H264, 80).units]
    limit = max(sum(sizes[i : i + GOP]) for i in range(0, 80, GOP)) * 2 + 4000
    result = await run_export(store, request(tmp_path, part_size_limit=limit))
    names = [p.path.name for p in result.parts]
    assert len(names) >= 3
    assert names == ["gate.mp4"] + [f"gate-{i:03d}.mp4" for i in range(2, len(names) + 1)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    all_stamps, uuids = [], [p.uuid for p in result.parts]
    for i, part in enumerate(result.parts):
        assert part.path.stat().st_size == part.size <= limit
        pts, stamps = decoded(part.path)
        assert pts[0] == 0 and stamps[0] == part.start_ns
        assert walls.index(stamps[0]) % GOP == 0  # every part starts at a keyframe
        all_stamps += stamps
        _, sumi, cstb, _ = file_meta(part.path)
        assert sumi.part_uuid == uuids[i]
        assert sumi.predecessor_uuid == uuids[max(i - 1, 0)]
        assert sumi.successor_uuid == uuids[min(i + 1, len(uuids) - 1)]
        assert cstb == [(1, part.start_ns)]
    assert all_stamps == walls


async def test_progress_is_monotonic_and_the_lock_is_released(store: Store, tmp_path: Path) -> None:
    await record(store, frames=40, audio=True)
    seen: list[ExportProgress] = []
    result = await run_export(
        store, request(tmp_path, end=T0 + 2 * NS_PER_SECOND), progress=seen.append
    )
    assert len(seen) >= 4
    for a, b in itertools.pairwise(seen):
        assert a.position_ns <= b.position_ns and a.frames <= b.frames and a.bytes <= b.bytes
        assert a.fraction <= b.fraction
    assert seen[-1].fraction == 1.0 and seen[-1].frames == result.frames
    assert await store.evidence_locks("Gate") == []
    kept = await run_export(
        store, request(tmp_path / "again", end=T0 + NS_PER_SECOND, keep_evidence_lock=True)
    )
    (lock,) = await store.evidence_locks("Gate")
    assert (lock.id, lock.start_ns, lock.end_ns) == (kept.evidence_lock, T0, T0 + NS_PER_SECOND)


async def test_cancel_leaves_no_file(store: Store, tmp_path: Path) -> None:
    await record(store, frames=40)
    cancel = asyncio.Event()

    def on_progress(p: ExportProgress) -> None:
        cancel.set()

    with pytest.raises(ExportCancelledError, match="cancelled"):
        await run_export(store, request(tmp_path), progress=on_progress, cancel=cancel)
    assert list((tmp_path / "out").iterdir()) == []
    assert await store.evidence_locks("Gate") == []


async def test_task_cancellation_and_errors_leave_no_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record(store, frames=40)
    started = asyncio.Event()

    def on_progress(p: ExportProgress) -> None:
        started.set()

    task = asyncio.create_task(run_export(store, request(tmp_path), progress=on_progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "out").iterdir()) == []

    def broken_seal(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(parts.PartFile, "seal", broken_seal)
    with pytest.raises(OSError, match="disk full"):
        await run_export(store, request(tmp_path))
    assert list((tmp_path / "out").iterdir()) == []
    assert await store.evidence_locks("Gate") == []


async def test_refusals(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await record(store, frames=30)
    with pytest.raises(ConfigError, match="range is empty"):
        await run_export(store, request(tmp_path, start=T0, end=T0))
    with pytest.raises(NotFoundError, match="no media"):
        await run_export(store, request(tmp_path, start=END, end=END + NS_PER_SECOND))
    with pytest.raises(NotFoundError, match="no track 'VIDEO009'"):
        await run_export(store, request(tmp_path, tracks=("VIDEO009",)))
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "gate.mp4").write_bytes(b"evidence")
    with pytest.raises(ConflictError, match="exists already"):
        await run_export(store, request(tmp_path))
    assert (tmp_path / "out" / "gate.mp4").read_bytes() == b"evidence"
    monkeypatch.setattr(job, "MIN_PART_SIZE_LIMIT", 1)
    with pytest.raises(LimitError, match="does not fit the part size limit"):
        await run_export(store, request(tmp_path / "small", part_size_limit=2000))
    assert list((tmp_path / "small" / "out").iterdir()) == []


CERT_START = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


async def test_signed_parts_verify(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    walls = await record(store, frames=40, audio=True)
    monkeypatch.setattr(job, "MIN_PART_SIZE_LIMIT", 1)
    monkeypatch.setattr(job, "META_RESERVE_BYTES", 8192)
    # Valid long before the footage's fake-clock time, so a pinned certificate is trusted.
    signer = self_signed_signer("Custos test exporter", key_bits=2048, not_before=CERT_START)
    size = sum(len(u.data) for u in streams.video(Codec.H264, 40).units)
    result = await run_export(
        store, request(tmp_path, part_size_limit=size, signer=signer, note="case 17")
    )
    assert len(result.parts) >= 2
    cert = x509.load_der_x509_certificate(signer.cert_der)
    for part in result.parts:
        report = verify_file(part.path, [cert])
        assert report.verdict == VALID_TRUSTED, report.reasons
        assert report.start_ns == part.start_ns
        assert report.operator == "Ann" and len(report.instances) == 1
    assert decoded(result.parts[0].path)[1][0] == walls[0]


# ---------------------------------------------------------------- input chunks and read-ahead


async def test_chunks_merge_by_wall_clock_and_cut_at_primary_keyframes(store: Store) -> None:
    """Audio at a keyframe's instant goes after it, into the next chunk (track order breaks
    ties); the video's leading non-keyframes are skipped."""
    vw = await store.open_writer("Gate", "VIDEO001")
    aw = await store.open_writer("Gate", "AUDIO001")
    params = streams.video(Codec.H264, 10).params
    sound = streams.aac(4).params
    for i in range(10):
        wall = T0 + i * 100 * NS_PER_MS
        vw.append(AccessUnit(bytes([i]) * 10, i, wall, i % 4 == 1, TimeSource.CAMERA_NTP), params)
        aw.append(AccessUnit(bytes([i]) * 3, i, wall, True, TimeSource.CAMERA_NTP), sound)
    await vw.close()
    await aw.close()
    inputs = [
        chunks.TrackInput(1, "VIDEO001", TrackKind.VIDEO, T0),
        chunks.TrackInput(2, "AUDIO001", TrackKind.AUDIO, T0),
    ]
    got = [c async for c in chunks.read_chunks(store, "Gate", inputs, END)]
    order = [[(tid, s.data[0]) for tid, s in c.samples] for c in got]
    assert order == [
        [(2, 0)],  # audio before the first keyframe; video frame 0 precedes it and is dropped
        [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3), (1, 4), (2, 4)],
        [(1, 5), (2, 5), (1, 6), (2, 6), (1, 7), (2, 7), (1, 8), (2, 8)],
        [(1, 9), (2, 9)],
    ]
    assert [c.first.data[0] for c in got] == [0, 1, 5, 9]
    assert [c.size for c in got] == [3, 52, 52, 13]
    assert [c.samples[0][1].wall_ns for c in got] == [
        T0 + k * 100 * NS_PER_MS for k in (0, 1, 5, 9)
    ]


async def test_chunks_without_video_span_chunk_ns(store: Store) -> None:
    aw = await store.open_writer("Gate", "AUDIO001")
    sound = streams.aac(4).params
    for k in range(100):
        aw.append(AccessUnit(b"a", k, T0 + k * 64 * NS_PER_MS, True, TimeSource.CAMERA_NTP), sound)
    await aw.close()
    inputs = [chunks.TrackInput(1, "AUDIO001", TrackKind.AUDIO, T0)]
    got = [c async for c in chunks.read_chunks(store, "Gate", inputs, END)]
    starts = [c.samples[0][1].wall_ns - T0 for c in got]
    assert starts == [k * 64 * NS_PER_MS for k in (0, 32, 64, 96)]  # first frame ≥ 2 s later
    assert sum(len(c.samples) for c in got) == 100


async def test_read_ahead_is_one_bounded_page_per_track_and_stops_with_the_reader(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record(store, frames=80, audio=True)
    monkeypatch.setattr(chunks, "READ_PAGE_BYTES", 4000)
    requested: list[tuple[str, int]] = []
    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}
    page = store.read_frame_page

    async def counting_page(
        recording: str, track: str, start: int, end: int, **kw: Any
    ) -> list[StoredFrame]:
        requested.append((track, kw["max_bytes"]))
        in_flight[track] = in_flight.get(track, 0) + 1
        peak[track] = max(peak.get(track, 0), in_flight[track])
        try:
            return await page(recording, track, start, end, **kw)
        finally:
            in_flight[track] -= 1

    monkeypatch.setattr(store, "read_frame_page", counting_page)
    inputs = [
        chunks.TrackInput(1, "VIDEO001", TrackKind.VIDEO, T0),
        chunks.TrackInput(2, "AUDIO001", TrackKind.AUDIO, T0),
    ]
    source = chunks.read_chunks(store, "Gate", inputs, END)
    first = await anext(source)
    video = [s.data for track_id, s in first.samples if track_id == 1]
    assert video[0] == streams.video(Codec.H264, 80).units[0].data
    assert peak == {"VIDEO001": 1, "AUDIO001": 1}  # one read per track at a time
    assert {b for _, b in requested} == {4000}
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert pending  # the next pages are being read already
    await source.aclose()
    assert all(in_flight[t] == 0 for t in in_flight)  # read-ahead cancelled and awaited
    # The whole export reads each frame exactly once and writes what it read.
    requested.clear()
    result = await run_export(store, request(Path(store.data_dir).parent))
    assert result.frames == 80 + 40
    video_pages = [t for t, _ in requested if t == "VIDEO001"]
    sizes = [len(u.data) for u in streams.video(Codec.H264, 80).units]
    assert len(video_pages) >= sum(sizes) // 4000  # byte-bounded pages, plus the empty last


async def test_written_parts_are_handed_to_write_back_as_they_grow(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record(store, frames=40, audio=True)
    reference = await run_export(store, request(tmp_path / "a"))
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(parts, "WRITEBACK_BYTES", 1)
    monkeypatch.setattr(parts, "_start_writeback", lambda fd, off, n: ranges.append((off, n)))
    result = await run_export(store, request(tmp_path / "b"))
    assert result.parts[0].path.read_bytes() == reference.parts[0].path.read_bytes()
    assert len(ranges) >= 3  # one per chunk fed
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(ranges))  # contiguous, in order
    assert ranges[0][0] == 0 and ranges[-1][0] + ranges[-1][1] <= result.parts[0].size
