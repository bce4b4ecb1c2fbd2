"""FFmpeg's RTSP client (through PyAV) plays a recording from the start and decodes every frame.

FFmpeg sends no clock Range (a plain `npt=0.000-` PLAY) and knows nothing of 0xABAC; it must
still get every stored frame, in order, with the simulated camera's stamps intact.
"""

from __future__ import annotations

import asyncio

import av

from app.core.time import NS_PER_US
from app.formats.stamp import read_stamp
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import RUNS, frame_wall

#: FFmpeg's socket timeout (µs): a hung server fails the test instead of the CI job.
FFMPEG_TIMEOUT_US = "10000000"


def decode_all(url: str) -> list[tuple[int, int]]:
    """(stamp index, stamp capture µs) of every decoded video picture."""
    stamps = []
    options = {"rtsp_transport": "tcp", "timeout": FFMPEG_TIMEOUT_US}
    with av.open(url, options=options) as container:
        stream = container.streams.video[0]
        for picture in container.decode(stream):
            stamp = read_stamp(picture.to_ndarray(format="gray"))
            stamps.append((stamp.index, stamp.capture_us))
    return stamps


async def test_ffmpeg_plays_from_the_start_and_decodes_every_frame(rig: ReplayRig) -> None:
    stamps = await asyncio.to_thread(decode_all, rig.url)
    expected = [n for run in RUNS for n in run]
    assert [index for index, _ in stamps] == expected
    assert [us * NS_PER_US for _, us in stamps] == [frame_wall(n) for n in expected]
