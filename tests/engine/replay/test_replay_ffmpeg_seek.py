"""FFmpeg (through PyAV) seeks in a replay: `Range: npt=` counts from the recording's start.

FFmpeg's RTSP client cannot send `Range: clock=`. Its seek is PAUSE, then PLAY with
`Range: npt=<t>-`; Custos maps npt on a replay resource to the footage's first frame + t
(PB-12a rec.), so container.seek(t) plays from the clean point at or before recording start + t
(PB-18; inside a gap: the first clean point after it). See docs/replay-vs-gstreamer.md.

The footage (footage.py): frames 0..39 and 60..79 at 10 fps, keyframes 0, 20 and 60.
"""

from __future__ import annotations

import asyncio

import av
import pytest

from app.core.time import NS_PER_US
from app.formats.stamp import read_stamp
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import RUNS, frame_wall
from tests.engine.replay.test_replay_ffmpeg import FFMPEG_TIMEOUT_US

#: PyAV's seek offset unit without a stream: AV_TIME_BASE (µs).
US_PER_SECOND = 1_000_000


def seek_and_decode(url: str, offset_s: float) -> list[tuple[int, int]]:
    """(stamp index, stamp capture µs) of every picture decoded after seeking to `offset_s`."""
    options = {"rtsp_transport": "tcp", "timeout": FFMPEG_TIMEOUT_US}
    stamps = []
    with av.open(url, options=options) as container:
        stream = container.streams.video[0]
        container.seek(round(offset_s * US_PER_SECOND))
        for picture in container.decode(stream):
            stamp = read_stamp(picture.to_ndarray(format="gray"))
            stamps.append((stamp.index, stamp.capture_us))
    return stamps


@pytest.mark.parametrize(
    ("offset_s", "first"),
    [
        (2.5, 20),  # inside the first run: the keyframe at or before frame 25
        (4.5, 60),  # inside the gap (frames 40..59): the first keyframe after it
    ],
)
async def test_pyav_seek_plays_from_the_keyframe_at_recording_start_plus_offset(
    rig: ReplayRig, offset_s: float, first: int
) -> None:
    stamps = await asyncio.to_thread(seek_and_decode, rig.url, offset_s)
    expected = [n for run in RUNS for n in run if n >= first]
    assert [index for index, _ in stamps] == expected
    assert stamps[0][1] * NS_PER_US == frame_wall(first)
    assert [us * NS_PER_US for _, us in stamps] == [frame_wall(n) for n in expected]
