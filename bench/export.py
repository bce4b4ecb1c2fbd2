"""bench/export: export speed of 10 minutes of 1080p H.264 against a plain copy of the same bytes.

A store is filled with synthetic 1080p H.264 access units of realistic sizes (4 Mbit/s, 25 fps,
2 s GOP: ~150 kB keyframes, ~17 kB P-frames; random payload in the stored length-prefixed
layout — export never decodes, so the bytes need not be a valid picture) plus 20 ms G.711
audio. Then the range is exported (unsigned, and signed with a fresh RSA-2048 key), and the
segment files of the store are copied with shutil.copyfile, once as is and once with an fsync
per file (the export fsyncs its parts). All run in the same process on the same, page-cached
input; the script prints MB/s of each and the ratios (target ≥ 0.5×).

    .venv/bin/python -m bench.export [--minutes 10] [--part-size-gib 4] [--repeat N] [--keep DIR]

With --repeat N the export/copy rounds run N times on the same store (the machine is shared
and noisy) and the median and range of each ratio are printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import struct
import tempfile
import time
from pathlib import Path

from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.export import ExportRequest, export_recording
from app.engine.export.keys import self_signed_signer
from app.engine.storage import RecordingConfig, Store, StoreOptions

FPS = 25
GOP = 2 * FPS
BITRATE = 4_000_000
KEYFRAME_BYTES = 150_000
T0 = 1_767_225_600 * NS_PER_SECOND
#: A real 1080p Main-profile SPS/PPS pair (libx264), so the sample entry is well-formed.
SPS = bytes.fromhex("674d4028eca03c0113f2e02d4040405000000300100000030328f1831a")
PPS = bytes.fromhex("68ebef20")
VIDEO = CodecParams(Codec.H264, 90_000, 1920, 1080, parameter_sets=(SPS, PPS))
PCMU = CodecParams(Codec.PCMU, 8_000, sample_rate=8_000, channels=1)


def frame_sizes(count: int) -> list[int]:
    p_bytes = (BITRATE // 8 * GOP // FPS - KEYFRAME_BYTES) // (GOP - 1)
    rng = random.Random(1)
    return [
        KEYFRAME_BYTES if i % GOP == 0 else max(100, int(rng.gauss(p_bytes, p_bytes / 5)))
        for i in range(count)
    ]


def nal(size: int, pool: bytes, offset: int) -> bytes:
    body = pool[offset % 1_000_000 : offset % 1_000_000 + size - 4]
    return struct.pack(">I", size - 4) + body


async def fill(store: Store, minutes: float) -> int:
    """Record `minutes` of video + audio; returns the number of video frames."""
    await store.create_recording(RecordingConfig(name="Bench"), token="Bench")
    video = await store.open_writer("Bench", "VIDEO001")
    audio = await store.open_writer("Bench", "AUDIO001")
    count = int(minutes * 60 * FPS)
    pool = random.Random(2).randbytes(1_000_000 + KEYFRAME_BYTES)
    tone = bytes(160)
    for i, size in enumerate(frame_sizes(count)):
        wall = T0 + i * NS_PER_SECOND // FPS
        head = b"".join(struct.pack(">I", len(p)) + p for p in (SPS, PPS)) if i % GOP == 0 else b""
        data = head + nal(size, pool, i * 7919)
        video.append(AccessUnit(data, i * 3600, wall, i % GOP == 0, TimeSource.CAMERA_NTP), VIDEO)
        for k in (2 * i, 2 * i + 1):
            audio.append(
                AccessUnit(tone, k * 160, T0 + k * 20_000_000, True, TimeSource.CAMERA_NTP), PCMU
            )
        if i % 50 == 49:
            await store.flush()  # stay below the writer's overload buffer
    await video.close()
    await audio.close()
    return count


def copy_segments(data: Path, target: Path, *, durable: bool) -> int:
    """Copy the segment files; `durable`: fsync each copy, as the export does its parts."""
    target.mkdir()
    total = 0
    for i, path in enumerate(sorted((data / "media").rglob("*"))):
        if path.is_file():
            copy = target / f"{i:06d}"
            shutil.copyfile(path, copy)
            if durable:
                fd = os.open(copy, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            total += path.stat().st_size
    return total


async def measure(
    store: Store, work: Path, data: Path, minutes: float, part_size: int
) -> dict[str, float]:
    """One round: export, signed export and the plain copy; their speed ratios to the copy."""
    end = T0 + int(minutes * 60 * NS_PER_SECOND)
    results = {}
    for label, signer in (
        ("export", None),
        ("signed export", self_signed_signer("bench exporter", key_bits=2048)),
    ):
        out = work / label.replace(" ", "-") / "bench.mp4"
        out.parent.mkdir()
        request = ExportRequest("Bench", T0, end, out, part_size_limit=part_size, signer=signer)
        t = time.perf_counter()
        result = await export_recording(store, request)
        seconds = time.perf_counter() - t
        size = sum(p.size for p in result.parts)
        results[label] = (size, seconds)
        print(
            f"{label}: {size / 1e6:.1f} MB in {len(result.parts)} part(s), "
            f"{result.frames} frames, {seconds:.2f} s = {size / 1e6 / seconds:.1f} MB/s"
        )
    # The export fsyncs its parts; the copy is measured both ways: as is (page cache only, its
    # speed swings with the machine's dirty-page state) and made durable like the export.
    ratios = {}
    for durable, name in ((False, "plain copy"), (True, "durable copy")):
        t = time.perf_counter()
        copied = copy_segments(data, work / name.replace(" ", "-"), durable=durable)
        copy_s = time.perf_counter() - t
        copy_rate = copied / 1e6 / copy_s
        print(
            f"{name} (shutil.copyfile{' + fsync' if durable else ''} of the segment files): "
            f"{copied / 1e6:.1f} MB in {copy_s:.2f} s = {copy_rate:.1f} MB/s"
        )
        for label, (size, seconds) in results.items():
            ratios[f"{label} / {name}"] = size / 1e6 / seconds / copy_rate
    for label, ratio in ratios.items():
        print(f"{label} speed: {ratio:.2f}x (target >= 0.5x)")
    return ratios


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--part-size-gib", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=1, help="rounds on the same store")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="custos-bench-export-", dir=args.keep))
    try:
        data = work / "data"
        rounds: list[dict[str, float]] = []
        async with Store(data, clock=FakeClock(T0), options=StoreOptions()) as store:
            t = time.perf_counter()
            frames = await fill(store, args.minutes)
            print(f"recorded {frames} 1080p frames in {time.perf_counter() - t:.1f} s")
            for n in range(args.repeat):
                round_dir = work / f"round-{n + 1}"
                round_dir.mkdir()
                part_size = int(args.part_size_gib * (1 << 30))
                rounds.append(await measure(store, round_dir, data, args.minutes, part_size))
                shutil.rmtree(round_dir, ignore_errors=True)
        if args.repeat > 1:
            for label in rounds[0]:
                values = sorted(r[label] for r in rounds)
                print(
                    f"{label} over {len(values)} rounds: median "
                    f"{statistics.median(values):.2f}x, min {values[0]:.2f}x, max {values[-1]:.2f}x"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
