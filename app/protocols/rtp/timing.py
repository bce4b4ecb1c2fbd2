"""RTP time: 32-bit timestamp unwrapping and the RTP → UTC wall-clock mapping from RTCP SRs.

Exact integer arithmetic throughout: a frame's wall clock is the SR's NTP time plus the RTP
distance from the SR's RTP timestamp, converted at the clock rate and rounded to the nearest ns.
"""

from __future__ import annotations

import dataclasses

from app.core.media import TimeSource
from app.core.time import NS_PER_SECOND, ntp64_to_unix_ns

RTP_TIMESTAMP_MODULUS = 1 << 32
_HALF_RANGE = 1 << 31
#: A sender report that disagrees with the current mapping by more than this is a clock jump.
CLOCK_JUMP_NS = NS_PER_SECOND


def signed_delta32(later: int, earlier: int) -> int:
    """`later - earlier` for 32-bit wrapping counters, as the nearest signed value."""
    return (later - earlier + _HALF_RANGE) % RTP_TIMESTAMP_MODULUS - _HALF_RANGE


def ticks_to_ns(ticks: int, clock_rate: int) -> int:
    """RTP clock ticks → ns, rounded half up (works for negative tick counts too)."""
    return (2 * ticks * NS_PER_SECOND + clock_rate) // (2 * clock_rate)


class RtpTimestampUnwrapper:
    """32-bit RTP timestamps → a 64-bit timeline that keeps counting across wraps.

    The first timestamp is returned as is, so an unwrapped value is always congruent to the wire
    value modulo 2**32 (WallClockMapper relies on that). Each later timestamp lands within half
    the 32-bit range of the newest one seen, so packets reordered behind it get values slightly
    below it rather than a jump of 2**32.
    """

    __slots__ = ("_newest",)

    def __init__(self) -> None:
        self._newest: int | None = None

    @property
    def newest(self) -> int | None:
        """The largest unwrapped value so far, None before the first timestamp."""
        return self._newest

    def unwrap(self, timestamp: int) -> int:
        timestamp &= 0xFFFF_FFFF
        if self._newest is None:
            self._newest = timestamp
            return timestamp
        value = self._newest + signed_delta32(timestamp, self._newest)
        if value > self._newest:
            self._newest = value
        return value

    def reset(self) -> None:
        """Forget the timeline (a new SSRC or a new run starts over)."""
        self._newest = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClockJump:
    """A sender report whose NTP time disagreed with the mapping in force by > CLOCK_JUMP_NS."""

    #: The SR's RTP timestamp (32-bit, as on the wire).
    rtp_timestamp: int
    #: Wall clock the previous mapping gave for that RTP timestamp, Unix ns.
    expected_ns: int
    #: Wall clock the new SR gives for it, Unix ns.
    reported_ns: int

    @property
    def delta_ns(self) -> int:
        return self.reported_ns - self.expected_ns


class WallClockMapper:
    """Maps a track's unwrapped RTP timestamps to UTC wall clock with the provenance of each.

    Before the first sender report, a frame's wall clock is its receive time
    (TimeSource.RECEIVE_TIME). From the first SR on it is computed from the newest SR
    (TimeSource.CAMERA_NTP); each SR re-anchors the mapping, so every frame is exact to the
    sender's own latest NTP/RTP pairing, and an SR more than CLOCK_JUMP_NS away from the previous
    mapping is reported as a ClockJump.
    """

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, got {clock_rate}")
        self.clock_rate = clock_rate
        #: Sender reports taken and clock jumps seen so far.
        self.reports = 0
        self.jumps = 0
        self._sr_rtp: int | None = None
        self._sr_wall_ns = 0
        # The SR's RTP timestamp on the unwrapped timeline, resolved by the first map() after it.
        self._anchor: int | None = None

    @property
    def synced(self) -> bool:
        """True once a sender report has been taken (frames map as CAMERA_NTP)."""
        return self._sr_rtp is not None

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> ClockJump | None:
        """Take an SR's (64-bit NTP, 32-bit RTP) pair; returns a ClockJump if the clock jumped."""
        rtp_timestamp &= 0xFFFF_FFFF
        wall_ns = ntp64_to_unix_ns(ntp_timestamp)
        jump: ClockJump | None = None
        if self._sr_rtp is not None:
            expected = self._sr_wall_ns + ticks_to_ns(
                signed_delta32(rtp_timestamp, self._sr_rtp), self.clock_rate
            )
            if abs(wall_ns - expected) > CLOCK_JUMP_NS:
                jump = ClockJump(rtp_timestamp, expected, wall_ns)
                self.jumps += 1
        # Resolved against the next frame, which is seconds (not 2**31 ticks) from the SR.
        self._anchor = None
        self._sr_rtp = rtp_timestamp
        self._sr_wall_ns = wall_ns
        self.reports += 1
        return jump

    def map(self, media_ts: int, receive_ns: int) -> tuple[int, TimeSource]:
        """Wall clock (Unix ns) and its source for a frame.

        `media_ts` is the unwrapped RTP timestamp from RtpTimestampUnwrapper (congruent to the
        wire value modulo 2**32); `receive_ns` is when the frame arrived (used before any SR).
        """
        if self._sr_rtp is None:
            return receive_ns, TimeSource.RECEIVE_TIME
        if self._anchor is None:
            self._anchor = media_ts + signed_delta32(self._sr_rtp, media_ts)
        wall = self._sr_wall_ns + ticks_to_ns(media_ts - self._anchor, self.clock_rate)
        return wall, TimeSource.CAMERA_NTP

    def reset(self) -> None:
        """Forget every SR (a new run of the source)."""
        self._sr_rtp = None
        self._anchor = None
