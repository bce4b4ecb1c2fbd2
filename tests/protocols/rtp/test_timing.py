"""RTP timestamp unwrapping and the RTCP SR wall-clock mapping (exactness, jumps, provenance)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.media import TimeSource
from app.core.time import NS_PER_MS, NS_PER_SECOND, unix_ns_to_ntp64
from app.protocols.rtp.timing import (
    ClockJump,
    RtpTimestampUnwrapper,
    WallClockMapper,
    signed_delta32,
    ticks_to_ns,
)

T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01T00:00:00Z


def test_unwrap_across_the_wrap_and_reordering() -> None:
    assert RtpTimestampUnwrapper().newest is None
    u = RtpTimestampUnwrapper()
    assert u.unwrap(0xFFFF_FF00) == 0xFFFF_FF00
    assert u.unwrap(0x0000_0100) == 0x1_0000_0100
    assert u.unwrap(0xFFFF_FFF0) == 0xFFFF_FFF0  # reordered from before the wrap
    assert u.newest == 0x1_0000_0100
    assert u.unwrap(0x0000_0200) == 0x1_0000_0200
    u.reset()
    assert u.unwrap(5) == 5


@settings(max_examples=500)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(-3000, 2**31 - 1), max_size=50))
def test_unwrap_follows_the_true_timeline(start: int, steps: list[int]) -> None:
    u = RtpTimestampUnwrapper()
    true = start
    newest = start
    assert u.unwrap(start) == start
    for step in steps:
        # steps forward of any size below half the range, or small steps back (reordering)
        if true + step < newest - 3000:
            continue
        true += step
        newest = max(newest, true)
        assert u.unwrap(true & 0xFFFF_FFFF) == true


def test_signed_delta_and_ticks() -> None:
    assert signed_delta32(5, 0xFFFF_FFFB) == 10
    assert signed_delta32(0xFFFF_FFFB, 5) == -10
    assert ticks_to_ns(90_000, 90_000) == NS_PER_SECOND
    assert ticks_to_ns(1, 90_000) == 11_111  # 11111.1 ns rounds down
    assert ticks_to_ns(1, 48_000) == 20_833  # 20833.33
    assert ticks_to_ns(-1, 90_000) == -11_111


def test_receive_time_until_the_first_sender_report() -> None:
    assert not WallClockMapper(90_000).synced
    m = WallClockMapper(90_000)
    assert m.map(1000, T0 + 5) == (T0 + 5, TimeSource.RECEIVE_TIME)
    m.on_sender_report(unix_ns_to_ntp64(T0), 1000)
    assert m.synced
    assert m.map(1000 + 90_000, T0 + 7) == (T0 + NS_PER_SECOND, TimeSource.CAMERA_NTP)
    m.reset()
    assert m.map(0, T0 + 9) == (T0 + 9, TimeSource.RECEIVE_TIME)


def test_mapping_is_exact_to_the_sender_report() -> None:
    """Frames map to exactly what the SR's NTP/RTP pair says, across the 32-bit wrap."""
    m = WallClockMapper(90_000)
    u = RtpTimestampUnwrapper()
    sr_wall = T0 + 123_456_789
    sr_rtp = 0xFFFF_0000
    m.on_sender_report(unix_ns_to_ntp64(sr_wall), sr_rtp)
    for frame in range(-30, 2000):
        wire = (sr_rtp + frame * 3600) & 0xFFFF_FFFF
        wall, source = m.map(u.unwrap(wire), receive_ns=0)
        assert source is TimeSource.CAMERA_NTP
        assert abs(wall - (sr_wall + frame * 40 * NS_PER_MS)) <= 1


def test_each_report_re_anchors_without_a_jump() -> None:
    m = WallClockMapper(8000)
    m.on_sender_report(unix_ns_to_ntp64(T0), 0)
    # the camera's NTP clock runs 2 ms ahead of its RTP clock over 10 s: drift, not a jump
    assert (
        m.on_sender_report(unix_ns_to_ntp64(T0 + 10 * NS_PER_SECOND + 2 * NS_PER_MS), 80_000)
        is None
    )
    assert m.map(80_000 + 8000, 0)[0] == T0 + 11 * NS_PER_SECOND + 2 * NS_PER_MS
    assert m.jumps == 0 and m.reports == 2


def test_clock_jump_is_reported_and_re_anchored() -> None:
    m = WallClockMapper(90_000)
    m.on_sender_report(unix_ns_to_ntp64(T0), 0)
    assert m.map(90_000, 0)[0] == T0 + NS_PER_SECOND
    # the camera's clock is set back an hour while RTP time runs on
    jumped = T0 + 5 * NS_PER_SECOND - 3600 * NS_PER_SECOND
    jump = m.on_sender_report(unix_ns_to_ntp64(jumped), 5 * 90_000)
    assert jump == ClockJump(5 * 90_000, T0 + 5 * NS_PER_SECOND, jumped)
    assert jump.delta_ns == -3600 * NS_PER_SECOND
    assert m.jumps == 1
    assert m.map(6 * 90_000, 0) == (jumped + NS_PER_SECOND, TimeSource.CAMERA_NTP)


def test_sender_report_before_any_frame_resolves_against_the_first_frame() -> None:
    m = WallClockMapper(90_000)
    m.on_sender_report(unix_ns_to_ntp64(T0), 0xFFFF_FFFF)
    u = RtpTimestampUnwrapper()
    assert m.map(u.unwrap(9), 0)[0] == T0 + ticks_to_ns(10, 90_000)


@settings(max_examples=500)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(T0, T0 + 10**17),
    st.sampled_from([8000, 16_000, 44_100, 48_000, 90_000]),
    st.lists(st.integers(-(2**20), 2**28), min_size=1, max_size=10),
)
def test_mapping_error_below_a_millisecond(
    sr_rtp: int, sr_wall: int, rate: int, offsets: list[int]
) -> None:
    m = WallClockMapper(rate)
    m.on_sender_report(unix_ns_to_ntp64(sr_wall), sr_rtp)
    u = RtpTimestampUnwrapper()
    for offset in sorted(offsets):
        wall, _ = m.map(u.unwrap((sr_rtp + offset) & 0xFFFF_FFFF), 0)
        exact = sr_wall + offset * NS_PER_SECOND / rate
        assert abs(wall - exact) < NS_PER_MS
        assert abs(wall - exact) <= 2 + abs(exact) * 1e-15
