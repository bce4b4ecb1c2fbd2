"""One track: keyframe gate, foreign packets, UDP reordering, sender reports, hostile bytes."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import PeerError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.ingest.track import MAX_ERRORS_IN_A_ROW, Track
from app.protocols.rtp.packet import RtpPacket
from tests.engine.ingest.fake_camera import (
    SSRC,
    h264_units,
    rtp_packets,
    sender_report,
)

UNITS = h264_units(frames=10, gop=5)
PARAMS = CodecParams(Codec.H264, 90_000)


class Collector:
    def __init__(self) -> None:
        self.units: list[AccessUnit] = []

    def __call__(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        assert track == 0
        self.units.append(unit)


def make_track(window: int = 0) -> tuple[Track, Collector, FakeClock]:
    got, clock = Collector(), FakeClock()
    track = Track(0, PARAMS, 96, clock=clock, on_frame=got, label="t0", reorder_window=window)
    return track, got, clock


def test_video_waits_for_the_first_keyframe() -> None:
    track, got, _ = make_track()
    for packet in rtp_packets(UNITS[2:], first_ts=0):
        track.on_rtp(packet)
    assert [u.media_ts for u in got.units] == [3600 * i for i in range(3, 8)]
    assert got.units[0].keyframe and track.stats.skipped == 3
    assert track.params.width == 64  # from the in-band SPS of the keyframe


def test_other_payload_types_are_ignored() -> None:
    track, got, _ = make_track()
    track.on_rtp(RtpPacket(13, 1, 0, SSRC, b"\x00").to_bytes())  # comfort noise
    for packet in rtp_packets(UNITS[:1]):
        track.on_rtp(packet)
    assert (len(got.units), track.stats.foreign, track.stats.errors) == (1, 1, 0)


def test_udp_reordering_restores_every_frame() -> None:
    in_order, _, _ = make_track()
    reordered, got, _ = make_track(window=8)
    packets = rtp_packets(UNITS)
    expected = Collector()
    in_order._on_frame = expected
    for packet in packets:
        in_order.on_rtp(packet)
    swapped = list(packets)
    # The first packet fixes where the sequence starts, so the swaps begin after it.
    for i in range(1, len(swapped) - 1, 2):
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    for packet in swapped:
        reordered.on_rtp(packet)
    assert [u.data for u in got.units] == [u.data for u in expected.units]
    assert reordered.stats.late == 0 and len(got.units) == 10


def test_sender_report_before_rtp_and_clock_jump(caplog: pytest.LogCaptureFixture) -> None:
    track, got, clock = make_track()
    wall = 1_800_000_000 * NS_PER_SECOND
    track.on_rtcp(sender_report(wall, 1000))
    packets = rtp_packets(UNITS[:5], first_ts=1000)
    track.on_rtp(packets[0])
    for packet in packets[1:]:
        track.on_rtp(packet)
    assert [(u.wall_ns, u.time_source) for u in got.units] == [
        (wall + i * 40_000_000, TimeSource.CAMERA_NTP) for i in range(5)
    ]
    with caplog.at_level(logging.WARNING, logger="app.engine.ingest"):
        track.on_rtcp(sender_report(wall + 5 * NS_PER_SECOND, 1000))
    assert "camera clock jumped by +5.000 s" in caplog.text
    assert clock.wall_ns() != wall


def test_sender_reports_of_other_sources_are_ignored() -> None:
    track, got, _ = make_track()
    for packet in rtp_packets(UNITS[:1]):
        track.on_rtp(packet)
    track.on_rtcp(sender_report(5 * NS_PER_SECOND, 1000, ssrc=0xBAD))
    for packet in rtp_packets(UNITS[1:2], first_ts=4600, first_seq=200):
        track.on_rtp(packet)
    assert [u.time_source for u in got.units] == [TimeSource.RECEIVE_TIME] * 2
    assert track.stats.sender_reports == 0


def test_errors_in_a_row_end_the_stream() -> None:
    track, _, _ = make_track()
    for _ in range(MAX_ERRORS_IN_A_ROW - 1):
        track.on_rtp(b"\x00" * 20)
    with pytest.raises(PeerError, match=f"{MAX_ERRORS_IN_A_ROW} malformed packets in a row"):
        track.on_rtp(b"\x00" * 20)


def _rtp(payload: bytes, seq: int, marker: bool) -> bytes:
    return RtpPacket(96, seq, 1234, SSRC, payload, marker=marker).to_bytes()


@settings(max_examples=500)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(_rtp, st.binary(max_size=64), st.integers(0, 0xFFFF), st.booleans()),
        ),
        max_size=20,
    ),
    st.lists(st.binary(max_size=64), max_size=5),
)
def test_hostile_bytes_raise_only_peer_error(packets: list[bytes], rtcp: list[bytes]) -> None:
    track, got, _ = make_track(window=4)
    try:
        for data in rtcp:
            track.on_rtcp(data)
        for data in packets:
            track.on_rtp(data)
    except PeerError:
        pass
    assert track.stats.packets <= len(packets)
    assert all(u.keyframe for u in got.units[:1])
