"""Bulk reads for export: byte-bounded pages, one read per run of frames, short segment files."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from app.core.errors import StorageError
from app.core.time import NS_PER_SECOND
from app.engine.storage import Store, StoredFrame, StoreReader, layout, reader
from app.engine.storage.schema import connect
from tests.engine.storage.helpers import AAC, H264, T0, audio, index_of, payload, video

END = T0 + 3600 * NS_PER_SECOND


async def record(store: Store, frames: int = 130) -> None:
    """Video over three 2 s segments (sizes 200..2000 bytes) and interleaved audio."""
    vw = await store.open_writer("Cam", "VIDEO001")
    aw = await store.open_writer("Cam", "AUDIO001")
    for i in range(frames):
        vw.append(video(i), H264)
        aw.append(audio(i), AAC)
    await vw.close()
    await aw.close()


async def all_pages(store: Store, track: str, **kw: int) -> list[list[StoredFrame]]:
    pages: list[list[StoredFrame]] = []
    after = None
    while page := await store.read_frame_page("Cam", track, T0, END, after=after, **kw):
        pages.append(page)
        after = page[-1].ref
    return pages


@pytest.mark.parametrize(("limit", "max_bytes"), [(7, 10**9), (1000, 5_000), (1000, 1)])
async def test_pages_tile_the_range_within_their_bounds(
    store: Store, limit: int, max_bytes: int
) -> None:
    await record(store)
    expected = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END)]
    pages = await all_pages(store, "VIDEO001", limit=limit, max_bytes=max_bytes)
    assert [f for page in pages for f in page] == expected
    assert [index_of(f.data) for page in pages for f in page] == list(range(130))
    assert [f.to_access_unit() for page in pages for f in page] == [video(i) for i in range(130)]
    for page, following in itertools.pairwise(pages):
        size = sum(len(f.data) for f in page)
        # Only the frame count or the byte budget ends a page early.
        by_count = len(page) == limit
        by_bytes = size <= max_bytes < size + len(following[0].data)
        alone = len(page) == 1 and size > max_bytes
        assert by_count or by_bytes or alone
    assert all(len(page) <= limit for page in pages)
    if max_bytes == 1:
        assert all(len(page) == 1 for page in pages)  # a frame larger than the budget comes alone


async def test_a_page_ends_before_the_frame_that_would_exceed_the_budget(store: Store) -> None:
    await record(store, frames=20)
    sizes = [len(payload(i)) for i in range(20)]
    budget = sum(sizes[:5]) + sizes[5] - 1
    page = await store.read_frame_page("Cam", "VIDEO001", T0, END, limit=100, max_bytes=budget)
    assert [index_of(f.data) for f in page] == [0, 1, 2, 3, 4]
    page = await store.read_frame_page("Cam", "VIDEO001", T0, END, limit=100, max_bytes=budget + 1)
    assert [index_of(f.data) for f in page] == [0, 1, 2, 3, 4, 5]


async def test_one_read_per_run_of_consecutive_frames(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await record(store)
    reads: list[tuple[int, int]] = []
    pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        reads.append((size, offset))
        return pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END, page=200)]
    # 2 s segments rotate at keyframes: frames 0-49, 50-99, 100-129 — one read each.
    assert [size for size, _ in reads] == [
        sum(len(payload(i)) for i in range(a, b)) for a, b in ((0, 50), (50, 100), (100, 130))
    ]
    assert {offset for _, offset in reads} == {24}  # right after each segment's header
    reads.clear()
    with StoreReader.open(data_dir) as direct:
        # Every other frame: no two follow each other, so one read per frame, same bytes.
        picked = [f.ref for f in frames[::2]]
        assert direct.read_data(picked) == [f.data for f in frames[::2]]
        assert len(reads) == len(picked)
        reads.clear()
        # A budget per read: runs are split, bytes unchanged.
        monkeypatch.setattr(reader, "MAX_READ_BYTES", 3000)
        assert direct.read_data([f.ref for f in frames]) == [f.data for f in frames]
        assert all(size <= 3000 for size, _ in reads)  # frames are ≤ 2000 bytes
        assert sum(size for size, _ in reads) == sum(len(f.data) for f in frames)


async def test_a_short_segment_file_names_the_cut_frame(store: Store, data_dir: Path) -> None:
    await record(store, frames=40)
    frames = [f async for f in store.read_frames("Cam", "VIDEO001", T0, END)]
    victim = frames[30].ref
    path = next((data_dir / "media").rglob(f"*/{victim.run_id}-1.seg"))
    os.truncate(path, victim.offset + 10)
    with StoreReader.open(data_dir) as direct:
        with pytest.raises(StorageError, match=rf"ends inside frame {victim.id} \(10 of "):
            direct.read_data([f.ref for f in frames[:40]])
        # Frames before the cut still read, in one piece.
        assert direct.read_data([f.ref for f in frames[:30]]) == [f.data for f in frames[:30]]
    with pytest.raises(StorageError, match="custos check"):
        await store.read_frame_page("Cam", "VIDEO001", T0, END, limit=100)


async def test_keyset_pages_do_not_rescan_from_the_start(store: Store, data_dir: Path) -> None:
    """Each page seeks to its `after` key: the query's lower bound is that key, not `start`."""
    await record(store, frames=60)
    conn = connect(data_dir / layout.DB_FILE, readonly=True)
    try:
        direct = StoreReader(conn, data_dir)
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        first = direct.frames("Cam", "AUDIO001", T0, END, limit=10)
        second = direct.frames("Cam", "AUDIO001", T0, END, after=first[-1], limit=10)
        conn.set_trace_callback(None)
    finally:
        conn.close()
    assert [r.wall_ns for r in first + second] == [audio(i).wall_ns for i in range(20)]
    page_query = [s for s in statements if "FROM frame f" in s][-1]
    assert f"f.wall_ns >= {first[-1].wall_ns}" in page_query
