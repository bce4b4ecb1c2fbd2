"""Child process of test_crash: records synthetic video and audio in real time until killed.

    python -m tests.engine.storage.crash_writer DATA_DIR [--stall commit|create]

Prints "ready" once the first frames are durable. Every frame's bytes encode its sequence
number and wall clock, so the parent can verify each stored frame after the kill.

`--stall` freezes the write thread inside one of the two windows a crash must survive and
prints "stalled", so that the parent kills exactly there: `commit` after segment bytes are
fsynced but before their index rows commit (a later cycle, so the segment already holds
indexed frames); `create` after a new segment's row is committed but before its file exists.
"""

from __future__ import annotations

import asyncio
import random
import struct
import sys
import time
from pathlib import Path

from app.core.errors import ConflictError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND
from app.engine.storage import RecordingConfig, Store, StoreOptions, flush, layout

RECORDING = "Crash"
H264 = CodecParams(Codec.H264, 90_000, 640, 360, parameter_sets=(b"\x67\x42", b"\x68\xce"))
PCMU = CodecParams(Codec.PCMU, 8000, sample_rate=8000, channels=1)
#: Short segments, so that kills also land during segment rotation.
OPTIONS = StoreOptions(segment_max_duration_ns=NS_PER_SECOND)
#: For the commit stall: no rotation, so the stalled cycle appends to indexed segments.
LONG_SEGMENTS = StoreOptions()
TICK_S = 0.02  # 50 audio frames and 25 video frames per second


def crash_payload(seq: int, wall_ns: int, size: int) -> bytes:
    return struct.pack(">QQ", seq, wall_ns) + random.Random(seq * 31 + wall_ns).randbytes(size)


def video_size(seq: int) -> int:
    return 500 + (seq * 7919) % 20_000


def parse(data: bytes) -> tuple[int, int]:
    seq, wall_ns = struct.unpack_from(">QQ", data)
    return int(seq), int(wall_ns)


def _stall_on_call(owner: object, name: str, call: int) -> None:
    """Replace owner.name so that its `call`-th invocation never returns."""
    real = getattr(owner, name)
    calls = [0]

    def stalled(*args: object) -> object:
        calls[0] += 1
        if calls[0] == call:
            print("stalled", flush=True)
            time.sleep(3600)  # the parent kills the process now
        return real(*args)

    setattr(owner, name, stalled)


def install_stall(point: str) -> None:
    if point == "commit":
        _stall_on_call(flush.Flusher, "_commit", 3)
    elif point == "create":
        _stall_on_call(layout, "create_segment_file", 3)  # the first rotation of either track
    else:
        raise SystemExit(f"unknown stall point {point!r}")


async def record(data_dir: Path, options: StoreOptions) -> None:
    async with Store(data_dir, options=options) as store:
        try:
            await store.create_recording(RecordingConfig(name="crash test"), token=RECORDING)
        except ConflictError:
            pass  # a previous incarnation created it
        video = await store.open_writer(RECORDING, "VIDEO001")
        audio = await store.open_writer(RECORDING, "AUDIO001")
        seq = 0
        ready = False
        while True:
            now = time.time_ns()
            if seq % 2 == 0:
                vseq = seq // 2
                data = crash_payload(vseq, now, video_size(vseq))
                video.append(
                    AccessUnit(data, vseq * 3600, now, vseq % 25 == 0, TimeSource.LOCAL_CAPTURE),
                    H264,
                )
            audio.append(
                AccessUnit(
                    crash_payload(seq, now, 160), seq * 160, now, True, TimeSource.RECEIVE_TIME
                ),
                PCMU,
            )
            seq += 1
            if not ready and video.stats.frames_written:
                print("ready", flush=True)
                ready = True
            await asyncio.sleep(TICK_S)  # paces the synthetic camera


if __name__ == "__main__":
    stall = sys.argv[3] if len(sys.argv) == 4 and sys.argv[2] == "--stall" else None
    if stall is not None:
        install_stall(stall)
    asyncio.run(record(Path(sys.argv[1]), LONG_SEGMENTS if stall == "commit" else OPTIONS))
