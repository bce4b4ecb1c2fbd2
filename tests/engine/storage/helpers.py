"""Synthetic media and index access shared by the storage tests."""

from __future__ import annotations

import random
import sqlite3
import struct
from pathlib import Path
from typing import Any

from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_MS, NS_PER_SECOND
from app.engine.storage import layout

#: FakeClock's default "now": 2026-01-01T00:00:00Z.
T0 = 1_767_225_600 * NS_PER_SECOND
FRAME_NS = 40 * NS_PER_MS  # 25 fps
GOP = 25

H264 = CodecParams(
    Codec.H264,
    90_000,
    1280,
    720,
    parameter_sets=(b"\x67\x64\x00\x1f\xac", b"\x68\xee\x3c\x80"),
)
H264_RESIZED = CodecParams(
    Codec.H264, 90_000, 640, 360, parameter_sets=(b"\x67\x64\x00\x1e", b"\x68\xee\x3c")
)
AAC = CodecParams(Codec.AAC, 48_000, sample_rate=48_000, channels=1, audio_config=b"\x11\x88")


def payload(index: int, size: int | None = None) -> bytes:
    """Deterministic bytes of frame `index` (a length-prefixed fake NAL unit)."""
    if size is None:
        size = 200 + (index * 7919) % 1800
    body = random.Random(index).randbytes(size - 8)
    return struct.pack(">I", size - 4) + struct.pack(">I", index) + body


def index_of(data: bytes) -> int:
    return int(struct.unpack_from(">I", data, 4)[0])


def video(
    index: int,
    *,
    t0: int = T0,
    gop: int = GOP,
    size: int | None = None,
    source: TimeSource = TimeSource.CAMERA_NTP,
) -> AccessUnit:
    """Frame `index` of a 25 fps stream starting at t0, a keyframe every `gop` frames."""
    return AccessUnit(
        payload(index, size), index * 3600, t0 + index * FRAME_NS, index % gop == 0, source
    )


def audio(index: int, *, t0: int = T0) -> AccessUnit:
    """AAC frame `index` (1024 samples at 48 kHz)."""
    return AccessUnit(
        payload(index, 300),
        index * 1024,
        t0 + index * 1024 * NS_PER_SECOND // 48_000,
        True,
        TimeSource.RECEIVE_TIME,
    )


def db(data_dir: Path) -> sqlite3.Connection:
    """A raw connection to a closed store's index, for tests that corrupt or inspect it."""
    conn = sqlite3.connect(data_dir / layout.DB_FILE, isolation_level=None)
    return conn


def query(data_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = db(data_dir)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def segment_files(data_dir: Path) -> list[str]:
    """Every file under media/, relative to the data directory, sorted."""
    media = data_dir / layout.MEDIA_DIR
    return sorted(p.relative_to(data_dir).as_posix() for p in media.rglob("*") if p.is_file())


def segment_paths(data_dir: Path) -> dict[int, Path]:
    """Segment id → file, from the index."""
    rows = query(
        data_dir,
        "SELECT s.id, t.recording_id, s.track_id, s.run_id, s.seq FROM segment s "
        "JOIN track t ON t.id = s.track_id ORDER BY s.id",
    )
    return {r[0]: data_dir / layout.segment_relpath(*r[1:]) for r in rows}
