"""GStreamer's ONVIF client (rtspsrc onvif-mode=true, rtponvifparse, avdec_h264) replays footage.

Forward, reverse (seek rate -1: avdec_h264 decodes each GOP forward and outputs it backwards),
with onvif-rate-control=false and true, and with Frames: intra. Every decoded frame's NTP time
(0xABAC, via rtponvifparse) must equal its stored wall clock and the capture time stamped into
its picture, and the stamps must come out in the order the direction implies.

The footage (footage.py): frames 0..39 and 60..79 at 10 fps, keyframes 0, 20 and 60.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from app.core.time import NS_PER_US
from app.formats.stamp import read_stamp
from app.protocols.rtsp.range import format_clock
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import FRAME_NS, RUNS, frame_wall
from tests.peers.gst_onvif import PeerFrame, play_onvif

pytestmark = pytest.mark.interop

ALL_FRAMES = [n for run in RUNS for n in run]
#: GStreamer clips at its segment stop (end excluded), so ranges end between two frames.
WHOLE = f"{format_clock(frame_wall(0))}-{format_clock(frame_wall(80) + FRAME_NS // 2)}"


def stamped(frames: list[PeerFrame]) -> list[int]:
    """Camera frame numbers in output order; each frame's NTP time must be its stamped time."""
    numbers = []
    for frame in frames:
        stamp = read_stamp(frame.rows)
        assert stamp.capture_us * NS_PER_US == frame.wall_ns, (stamp, frame.wall_ns)
        assert frame_wall(stamp.index) == frame.wall_ns, "NTP time is not the stored wall clock"
        numbers.append(stamp.index)
    return numbers


async def test_forward_without_rate_control_gets_every_frame_in_order(rig: ReplayRig) -> None:
    frames = await play_onvif(rig.url, clock_range=WHOLE)
    assert stamped(frames) == ALL_FRAMES


async def test_reverse_without_rate_control_gets_every_frame_backwards(rig: ReplayRig) -> None:
    frames = await play_onvif(rig.url, clock_range=WHOLE, rate=-1.0)
    assert stamped(frames) == ALL_FRAMES[::-1]


async def test_reverse_from_inside_the_footage_starts_at_the_requested_time(
    rig: ReplayRig,
) -> None:
    # GStreamer's reverse seek [start, stop) plays from stop (frame 70.5) down to start.
    # A start between frames would show frame 10 with its PTS clipped to the segment start.
    span = f"{format_clock(frame_wall(11))}-{format_clock(frame_wall(70) + FRAME_NS // 2)}"
    frames = await play_onvif(rig.url, clock_range=span, rate=-1.0)
    # The walk goes down to the GOP holding the range end (keyframe 0); GStreamer's segment
    # then clips what lies before its start.
    assert stamped(frames) == [*range(70, 59, -1), *range(39, 10, -1)]


@pytest.mark.parametrize("rate", [1.0, -1.0])
async def test_frames_intra_gets_the_key_frames_only(rig: ReplayRig, rate: float) -> None:
    frames = await play_onvif(rig.url, clock_range=WHOLE, rate=rate, frames="intra")
    keys = [0, 20, 60]
    assert stamped(frames) == (keys if rate > 0 else keys[::-1])


async def test_forward_with_rate_control_keeps_wall_clocks(rig: ReplayRig) -> None:
    # Paced by the server at real time: a two-second slice (one GOP) keeps the test short.
    span = f"{format_clock(frame_wall(20))}-{format_clock(frame_wall(39) + FRAME_NS // 2)}"
    frames = await play_onvif(rig.url, clock_range=span, rate_control=True)
    assert stamped(frames) == list(range(20, 40))


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="GStreamer not installed")
async def test_plain_rtspsrc_plays_the_recording(rig: ReplayRig) -> None:
    # Outside onvif-mode rtspsrc turns the SDP's a=range:clock into npt seconds since 1900
    # (npt=3981340800-…); the server takes such npt values as absolute times.
    process = await asyncio.create_subprocess_exec(
        "gst-launch-1.0",
        "-v",
        "rtspsrc",
        f"location={rig.url}",
        "protocols=tcp",
        "!",
        "rtph264depay",
        "!",
        "avdec_h264",
        "!",
        "fakesink",
        "silent=false",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-1500:]
    assert b"Got EOS" in out
    decoded = [line for line in out.splitlines() if b"last-message = chain" in line]
    assert len(decoded) == len(ALL_FRAMES)
