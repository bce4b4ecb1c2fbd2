"""What one replay PLAY asks for: direction, span, speed, pacing and frame selection (PB-11..19).

`plan_play` turns the parsed headers of a PLAY into a `PlayPlan` against the footage's extent,
or raises RtspStatusError (400 for contradictions, 457 for ranges that miss the footage). It
does no I/O: which frames the plan selects is the walker's business (walk.py).
"""

from __future__ import annotations

import dataclasses
import math

from app.core.time import NS_PER_MS, NS_PER_SECOND, NTP_UNIX_OFFSET_S
from app.engine.rtsp.resource import PlayRequest, RtspStatusError
from app.protocols.rtsp.headers import FramesHeader, FramesMode, format_scale, format_yes_no
from app.protocols.rtsp.range import INVALID_RANGE, NOW, RangeUnit, TimeRange

#: Fastest trick speed served with rate control; faster requests are clamped (PB-11).
MAX_SCALE = 64.0
#: Slowest one; slower requests are clamped.
MIN_SCALE = 1.0 / 64
#: An npt position this large is seconds since 1900, not since the footage began: GStreamer's
#: rtspsrc outside onvif-mode turns the SDP's a=range:clock into such npt values (obs.), and
#: no recording is 70 years long.
NPT_ABSOLUTE_FROM_NS = NTP_UNIX_OFFSET_S * NS_PER_SECOND


@dataclasses.dataclass(frozen=True, slots=True)
class Extent:
    """Wall clock of the earliest and the latest stored frame of the footage (inclusive)."""

    earliest_ns: int
    latest_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class PlayPlan:
    """One delivery: from `start_ns` towards `end_ns` (inclusive; None = open)."""

    start_ns: int
    end_ns: int | None
    scale: float
    rate_control: bool
    frames: FramesMode
    #: Minimum spacing of intra frames in recording time (Frames: intra/<ms>), 0 = none.
    interval_ns: int
    cseq: int
    #: The start the PLAY response reports in reverse: the requested one, even past the end
    #: of the footage. A client's segment ends there (GStreamer clips at segment.stop, end
    #: excluded), so reporting the last frame's own time would make it drop that frame.
    reverse_reported_ns: int | None = None

    @property
    def reverse(self) -> bool:
        return self.scale < 0

    def echo_headers(self, request: PlayRequest) -> tuple[tuple[str, str], ...]:
        """The applied Scale and Rate-Control, plus Frames/Speed when the client sent them."""
        headers = [
            ("Scale", format_scale(self.scale)),
            ("Rate-Control", format_yes_no(self.rate_control)),
        ]
        if request.frames is not None:
            headers.append(("Frames", request.frames.to_header()))
        if request.speed is not None:
            headers.append(("Speed", format_scale(request.speed)))
        return tuple(headers)


def plan_play(
    request: PlayRequest,
    extent: Extent,
    *,
    previous: PlayPlan | None = None,
    resume_ns: int | None = None,
) -> PlayPlan:
    """The plan of a PLAY; without a Range it resumes at `resume_ns` in `previous`'s direction."""
    rate_control = True if request.rate_control is None else request.rate_control
    scale = _scale(request, previous if request.range is None else None, rate_control)
    start, end = _span(request.range, extent, scale)
    requested = start
    if start is None:
        if resume_ns is not None and request.range is None:
            # Resuming where PAUSE left it, which may be just past either end of the footage.
            start = min(max(resume_ns, extent.earliest_ns), extent.latest_ns)
        else:
            start = extent.latest_ns if scale < 0 else extent.earliest_ns
    frames_header = request.frames
    if resume_ns is not None and request.range is None and previous is not None:
        # A resume continues the paused delivery: its range end and frame selection still hold.
        end = previous.end_ns
        if frames_header is None:
            interval = previous.interval_ns // NS_PER_MS or None
            frames_header = FramesHeader(previous.frames, interval)
    start, end = _clamp(start, end, extent, scale)
    frames = frames_header.mode if frames_header is not None else FramesMode.ALL
    interval_ms = frames_header.interval_ms if frames_header is not None else None
    return PlayPlan(
        start_ns=start,
        end_ns=end,
        scale=scale,
        rate_control=rate_control,
        frames=frames,
        interval_ns=(interval_ms or 0) * NS_PER_MS,
        cseq=request.cseq,
        reverse_reported_ns=requested if scale < 0 and requested is not None else None,
    )


def _scale(request: PlayRequest, previous: PlayPlan | None, rate_control: bool) -> float:
    scale = request.scale
    if scale is None:
        reversed_range = request.range is not None and request.range.reverse
        scale = -1.0 if reversed_range else (previous.scale if previous is not None else 1.0)
        if request.speed is not None and rate_control:
            # GStreamer asks fast forward with Speed alone (PB-11).
            scale = math.copysign(request.speed, scale)
    if scale == 0 or not math.isfinite(scale):
        raise RtspStatusError(400, f"Scale {scale} cannot play anything")
    if not rate_control:
        # Without rate control Scale is only a direction (PB-11).
        return math.copysign(1.0, scale)
    magnitude = min(max(abs(scale), MIN_SCALE), MAX_SCALE)
    return math.copysign(magnitude, scale)


def _span(range_: TimeRange | None, extent: Extent, scale: float) -> tuple[int | None, int | None]:
    if range_ is None:
        return None, None
    if range_.start == NOW or range_.end == NOW:
        raise RtspStatusError(INVALID_RANGE, "replay has no 'now'; use a clock range")
    start, end = range_.start, range_.end
    assert not isinstance(start, str) and not isinstance(end, str)
    if range_.unit is RangeUnit.NPT:
        # npt is relative to the start of the footage (PB-12a, for non-ONVIF clients).
        start = None if start is None else _npt_to_wall(start, extent)
        end = None if end is None else _npt_to_wall(end, extent)
    if start is not None and end is not None and start != end and (start > end) != (scale < 0):
        direction = "reverse" if scale < 0 else "forward"
        raise RtspStatusError(
            INVALID_RANGE, f"Range {range_.to_header()} runs against the {direction} Scale {scale}"
        )
    return start, end


def _npt_to_wall(npt_ns: int, extent: Extent) -> int:
    if npt_ns >= NPT_ABSOLUTE_FROM_NS:
        return npt_ns - NPT_ABSOLUTE_FROM_NS
    return extent.earliest_ns + npt_ns


def _clamp(start: int, end: int | None, extent: Extent, scale: float) -> tuple[int, int | None]:
    """Move the span inside the footage; 457 when it misses the footage entirely."""
    low, high = (end, start) if scale < 0 else (start, end)
    if (high is not None and high < extent.earliest_ns) or (
        low is not None and low > extent.latest_ns
    ):
        raise RtspStatusError(INVALID_RANGE, "the Range lies outside the recorded footage")
    if scale < 0:
        return min(start, extent.latest_ns), end
    return max(start, extent.earliest_ns), end
