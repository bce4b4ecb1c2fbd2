"""GStreamer's ONVIF client controls a running replay: PAUSE/resume and go-to-time (PB-15, PB-19).

rtspsrc onvif-mode=true with rate control (1×, so the play is still running when the client
acts): setting the pipeline to PAUSED sends PAUSE, PLAYING sends PLAY again; a second flushing
seek sends a new PLAY with the new `Range: clock=` in the same session, without TEARDOWN. Every
decoded frame's NTP time must be its stored wall clock (checked by `stamped`).

The footage (footage.py): frames 0..39 and 60..79 at 10 fps, keyframes 0, 20 and 60.
"""

from __future__ import annotations

import pytest

from app.protocols.rtsp.range import format_clock
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import FRAME_NS, frame_wall
from tests.engine.replay.test_replay_gst import stamped
from tests.peers.gst_onvif import PeerFrame, play_onvif_events

pytestmark = pytest.mark.interop

#: How long the client stays paused.
PAUSE_S = 1.0


def split(events: list[PeerFrame | str], marker: str) -> tuple[list[int], list[int]]:
    """Camera frame numbers decoded before and after the first `marker` event."""
    at = events.index(marker)
    before = [e for e in events[:at] if isinstance(e, PeerFrame)]
    after = [e for e in events[at:] if isinstance(e, PeerFrame)]
    return stamped(before), stamped(after)


async def test_pause_then_resume_continues_after_the_pause_point(rig: ReplayRig) -> None:
    span = f"{format_clock(frame_wall(20))}-{format_clock(frame_wall(39) + FRAME_NS // 2)}"
    events = await play_onvif_events(
        rig.url, clock_range=span, rate_control=True, pause_after=5, pause_s=PAUSE_S
    )
    assert events.count("paused") == 1 and events.count("resumed") == 1
    before, after = split(events, "resumed")
    # Every frame once, in order: nothing skipped, nothing repeated across the pause.
    assert before + after == list(range(20, 40))
    assert len(before) >= 5 and after, (before, after)


async def test_go_to_time_replays_from_the_keyframe_of_the_new_range(rig: ReplayRig) -> None:
    span = f"{format_clock(frame_wall(0))}-{format_clock(frame_wall(39) + FRAME_NS // 2)}"
    target = f"{format_clock(frame_wall(60))}-{format_clock(frame_wall(79) + FRAME_NS // 2)}"
    events = await play_onvif_events(
        rig.url, clock_range=span, rate_control=True, seek_after=5, seek_range=target
    )
    before, after = split(events, "seeked")
    assert before == list(range(len(before))) and len(before) >= 5
    # The first frame after the seek is the target keyframe, carrying its stored wall clock
    # (`stamped`), then the rest of the new range in order; nothing of the old range follows.
    # (A target inside a GOP would start at its keyframe too, but GStreamer's decoder clips
    # the frames before the new segment's start, so the keyframe itself is not output.)
    assert after == list(range(60, 80))
