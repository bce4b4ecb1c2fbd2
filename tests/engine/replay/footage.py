"""Recorded test footage for the replay tests: the simulated camera's stamped H.264 in a Store.

Video: 10 fps, a keyframe every 20 frames (the camera's 2 s GOP), 1024x576 so the stamps are
readable. Run 1 holds frames 0..39 (two GOPs), then frames 40..59 are missing (a gap of 2.1 s),
run 2 holds frames 60..79 (one GOP). Audio: 20 ms PCMU units over both runs. Metadata: one XML
document per second of each run. Every stored wall clock is the stamped capture time.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_MS, NS_PER_SECOND, NS_PER_US
from app.engine.simcam.audio import PCMU_PARAMS, UNIT_NS
from app.engine.simcam.camera import EncodedLoop, encode_loop
from app.engine.storage import RecordingConfig, Store

#: Wall clock of frame 0: 2026-03-01T08:00:00Z.
START_NS = 1_772_352_000 * NS_PER_SECOND
FPS = 10
FRAME_NS = NS_PER_SECOND // FPS
GOP = 20
SIZE = (1024, 576)
RUNS = (range(0, 40), range(60, 80))
RECORDING = "Gate"
VIDEO, AUDIO, META = "VIDEO001", "AUDIO001", "META001"
METADATA = CodecParams(Codec.METADATA, 90_000)


@functools.cache
def camera_loop() -> EncodedLoop:
    """Eight seconds of the camera, encoded once per test process (about a second of CPU)."""
    return encode_loop(size=SIZE, fps=FPS, bitrate=300_000, seconds=8, capture_ns=START_NS)


@dataclasses.dataclass(frozen=True)
class Footage:
    video: list[AccessUnit]
    audio: list[AccessUnit]
    metadata: list[AccessUnit]
    params: CodecParams

    def video_index(self, wall_ns: int) -> int:
        """The camera frame number of a stored wall clock."""
        return (wall_ns - START_NS) // FRAME_NS


def frame_wall(n: int) -> int:
    return START_NS + n * FRAME_NS


def footage() -> Footage:
    loop = camera_loop()
    video = [
        AccessUnit(
            loop.frames[n].data,
            n * 9000,
            frame_wall(n),
            loop.frames[n].keyframe,
            TimeSource.LOCAL_CAPTURE,
        )
        for run in RUNS
        for n in run
    ]
    audio = []
    metadata = []
    for run in RUNS:
        first, end = frame_wall(run[0]), frame_wall(run[-1]) + FRAME_NS
        for k in range((end - first) // UNIT_NS):
            wall = first + k * UNIT_NS
            data = loop.audio[(wall - START_NS) // UNIT_NS % len(loop.audio)]
            audio.append(
                AccessUnit(data, wall // UNIT_NS * 160, wall, True, TimeSource.LOCAL_CAPTURE)
            )
        for s in range((end - first) // NS_PER_SECOND):
            wall = first + s * NS_PER_SECOND + 50 * NS_PER_MS
            xml = f'<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" n="{s}"/>'
            metadata.append(
                AccessUnit(
                    xml.encode(), wall // NS_PER_US * 9 // 100, wall, True, TimeSource.LOCAL_CAPTURE
                )
            )
    return Footage(video, audio, metadata, loop.video)


async def record(store: Store, clip: Footage) -> None:
    """Write the footage into RECORDING (runs split at the gap) and wait until it is durable."""
    await store.create_recording(RecordingConfig(name="Gate camera"), token=RECORDING)
    tracks = (
        (VIDEO, clip.video, clip.params),
        (AUDIO, clip.audio, PCMU_PARAMS),
        (META, clip.metadata, METADATA),
    )
    gap_start = frame_wall(RUNS[0][-1]) + FRAME_NS
    for token, units, params in tracks:
        writer = await store.open_writer(RECORDING, token)
        ended = False
        for unit in units:
            if not ended and unit.wall_ns >= gap_start:
                writer.end_run("camera lost")
                ended = True
            writer.append(unit, params)
        await writer.close()
    await store.flush()


async def open_store(path: Path, clip: Footage) -> Store:
    store = Store(path)
    await store.open()
    await record(store, clip)
    return store
