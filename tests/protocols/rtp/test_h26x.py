"""H.264/H.265 RTP payload formats on hand-made vectors: byte layouts, loss, limits, params."""

from __future__ import annotations

import struct

import pytest

from app.core.media import Codec, CodecParams
from app.formats.h26x import join_length_prefixed, split_length_prefixed
from app.protocols.rtp import h26x
from app.protocols.rtp.codec import DepacketizedUnit, DepacketizeError
from app.protocols.rtp.h26x import (
    AccessUnitTooLargeError,
    H26xDepacketizeError,
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
    UnsupportedPacketizationError,
)
from app.protocols.rtp.packet import RtpPacket
from tests.formats.h26x.streams import (
    H264_PPS,
    H265_PPS,
    H265_VPS,
    h264_slice,
    h264_sps,
    h265_slice,
    h265_sps,
)

SPS = h264_sps(80, 45)  # 1280x720
IDR = h264_slice(5, 3000, seed=1)
P1 = h264_slice(1, 200, seed=2)
H264_PARAMS = CodecParams(Codec.H264, 90_000, 1280, 720, parameter_sets=(SPS, H264_PPS))

H265_SPS = h265_sps(1920, 1088, conformance=(0, 0, 0, 4))
H265_PARAMS = CodecParams(
    Codec.H265, 90_000, 1920, 1080, parameter_sets=(H265_VPS, H265_SPS, H265_PPS)
)


class Feed:
    """Pushes payloads as consecutive RTP packets and collects the units."""

    def __init__(self, depacketizer: H264Depacketizer | H265Depacketizer) -> None:
        self.dep = depacketizer
        self.seq = 65_530  # crosses the 16-bit wrap within a few packets
        self.units: list[DepacketizedUnit] = []

    def push(self, payload: bytes, ts: int, marker: bool = False, *, skip: int = 0) -> None:
        self.seq = (self.seq + 1 + skip) & 0xFFFF
        packet = RtpPacket(96, self.seq, ts, 0x1234, payload, marker)
        self.units.extend(self.dep.push(packet))


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal: bytes, size: int) -> list[bytes]:
    body = nal[1:]
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, part in enumerate(parts):
        flags = (0x80 if i == 0 else 0) | (0x40 if i == len(parts) - 1 else 0)
        out.append(bytes(((nal[0] & 0xE0) | 28, flags | (nal[0] & 0x1F))) + part)
    return out


def test_single_nal_units_end_at_marker() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    feed.push(SPS, 1000)
    feed.push(H264_PPS, 1000)
    feed.push(IDR, 1000, marker=True)
    feed.push(P1, 4600, marker=True)
    assert [u.rtp_timestamp for u in feed.units] == [1000, 4600]
    assert feed.units[0].data == join_length_prefixed([SPS, H264_PPS, IDR])
    assert feed.units[0].keyframe and not feed.units[1].keyframe
    assert feed.units[1].data == struct.pack("!I", len(P1)) + P1
    assert feed.units[0].new_params is None  # same parameter sets as the SDP gave
    assert feed.dep.lost_units == 0


def test_timestamp_change_ends_a_unit_without_marker() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    feed.push(P1, 100)
    feed.push(h264_slice(1, 50, first=False), 100)
    assert feed.units == []
    feed.push(P1, 3700)
    assert [u.rtp_timestamp for u in feed.units] == [100]
    assert len(split_length_prefixed(feed.units[0].data)) == 2
    assert [u.rtp_timestamp for u in feed.dep.flush()] == [3700]
    assert feed.dep.flush() == []


def test_stap_a_and_fu_a_reassemble() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    sei = b"\x06\x05\x01\xaa\x80"
    feed.push(stap_a(SPS, H264_PPS, sei), 9000)
    fragments = fu_a(IDR, 1000)
    assert len(fragments) == 3
    for i, fragment in enumerate(fragments):
        feed.push(fragment, 9000, marker=i == 2)
    assert len(feed.units) == 1
    assert split_length_prefixed(feed.units[0].data) == [SPS, H264_PPS, sei, IDR]
    assert feed.units[0].keyframe


def test_keyframe_gets_parameter_sets_after_the_delimiter() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    aud = b"\x09\xf0"
    feed.push(aud, 0)
    feed.push(IDR, 0, marker=True)
    assert split_length_prefixed(feed.units[0].data) == [aud, SPS, H264_PPS, IDR]
    # a keyframe carrying only its SPS gets the PPS it lacks
    feed.push(SPS, 3600)
    feed.push(IDR, 3600, marker=True)
    assert split_length_prefixed(feed.units[1].data) == [H264_PPS, SPS, IDR]


def test_in_band_parameter_sets_update_params() -> None:
    dep = H264Depacketizer(CodecParams(Codec.H264, 90_000))
    feed = Feed(dep)
    feed.push(P1, 0, marker=True)  # nothing known yet: passed on as is
    new_sps = h264_sps(120, 68, crop=(0, 0, 0, 4))
    feed.push(stap_a(new_sps, H264_PPS), 3600)
    feed.push(IDR, 3600, marker=True)
    unit = feed.units[1]
    assert unit.new_params is not None
    assert (unit.new_params.width, unit.new_params.height) == (1920, 1080)
    assert unit.new_params.parameter_sets == (new_sps, H264_PPS)
    assert dep.params == unit.new_params
    feed.push(stap_a(new_sps, H264_PPS), 7200)
    feed.push(IDR, 7200, marker=True)
    assert feed.units[2].new_params is None  # unchanged sets: no new run


def test_parameter_sets_alone_wait_for_the_next_picture() -> None:
    dep = H264Depacketizer(CodecParams(Codec.H264, 90_000))
    feed = Feed(dep)
    feed.push(SPS, 0)
    feed.push(H264_PPS, 0, marker=True)
    assert feed.units == []
    feed.push(IDR, 3600, marker=True)
    assert split_length_prefixed(feed.units[0].data) == [SPS, H264_PPS, IDR]
    assert feed.units[0].new_params is not None
    assert (feed.units[0].new_params.width, feed.units[0].new_params.height) == (1280, 720)


def test_broken_in_band_sps_keeps_the_unit_and_counts() -> None:
    dep = H264Depacketizer(H264_PARAMS)
    feed = Feed(dep)
    broken = b"\x67\x42\x00"
    feed.push(stap_a(broken, H264_PPS), 0)
    feed.push(IDR, 0, marker=True)
    assert dep.bad_parameter_sets == 1
    assert feed.units[0].new_params is not None
    assert feed.units[0].new_params.parameter_sets == (broken, H264_PPS)
    assert (feed.units[0].new_params.width, feed.units[0].new_params.height) == (1280, 720)


def test_lost_middle_fragment_drops_only_that_unit() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    fragments = fu_a(IDR, 700)
    feed.push(fragments[0], 0)
    feed.push(fragments[1], 0)
    feed.push(fragments[3], 0, skip=1)  # fragments[2] lost
    feed.push(fragments[4], 0, marker=True)
    assert feed.units == []
    assert feed.dep.lost_units == 1
    feed.push(P1, 3600, marker=True)
    assert [u.rtp_timestamp for u in feed.units] == [3600]
    assert feed.units[0].data == struct.pack("!I", len(P1)) + P1


def test_lost_marker_packet_drops_unit_at_timestamp_change() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    fragments = fu_a(IDR, 1000)
    feed.push(fragments[0], 0)
    feed.push(fragments[1], 0)
    feed.push(P1, 3600, marker=True, skip=1)  # the end fragment was lost
    assert [u.rtp_timestamp for u in feed.units] == [3600]
    assert feed.dep.lost_units == 1


def test_lost_first_slice_is_detected_after_a_gap() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    feed.push(P1, 0, marker=True)
    # the first slice of the next picture is lost; its second slice arrives complete
    feed.push(h264_slice(1, 100, first=False), 3600, marker=True, skip=1)
    feed.push(P1, 7200, marker=True)
    assert [u.rtp_timestamp for u in feed.units] == [0, 7200]
    assert feed.dep.lost_units == 1


def test_fu_without_start_is_dropped() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    fragments = fu_a(IDR, 1000)
    feed.push(fragments[1], 0)
    feed.push(fragments[2], 0, marker=True)
    assert feed.units == [] and feed.dep.lost_units == 1


def test_duplicates_and_late_packets_are_ignored() -> None:
    dep = H264Depacketizer(H264_PARAMS)
    packets = [RtpPacket(96, 10, 0, 1, SPS), RtpPacket(96, 11, 0, 1, IDR, marker=True)]
    assert dep.push(packets[0]) == []
    assert dep.push(packets[0]) == []  # duplicate
    assert len(dep.push(packets[1])) == 1
    assert dep.push(RtpPacket(96, 9, 0, 1, SPS)) == []  # late
    units = dep.push(RtpPacket(96, 12, 3600, 1, P1, marker=True))
    assert [u.rtp_timestamp for u in units] == [3600]
    assert dep.lost_units == 0


def test_new_ssrc_counts_as_a_gap() -> None:
    dep = H264Depacketizer(H264_PARAMS)
    fragments = fu_a(IDR, 1000)
    assert dep.push(RtpPacket(96, 1, 0, 1, fragments[0])) == []
    assert dep.push(RtpPacket(96, 500, 0, 2, fragments[1])) == []
    assert dep.push(RtpPacket(96, 501, 0, 2, fragments[2], marker=True)) == []
    assert dep.lost_units == 1


@pytest.mark.parametrize(
    ("nal_type", "name"), [(25, "STAP-B"), (26, "MTAP16"), (27, "MTAP24"), (29, "FU-B")]
)
def test_interleaved_mode_packets_are_rejected(nal_type: int, name: str) -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    with pytest.raises(UnsupportedPacketizationError, match=name):
        feed.push(bytes((0x60 | nal_type, 0, 4, 0x65, 0x88, 0, 0)), 0)
    feed.push(IDR, 0, marker=True)  # the unit is damaged: dropped
    feed.push(P1, 3600, marker=True)
    assert [u.rtp_timestamp for u in feed.units] == [3600]
    assert feed.dep.lost_units == 1


def test_reserved_types_are_ignored() -> None:
    feed = Feed(H264Depacketizer(H264_PARAMS))
    feed.push(b"\x00\x11", 0)
    feed.push(b"\x7e\x11", 0)
    feed.push(P1, 0, marker=True)
    assert len(feed.units) == 1 and feed.units[0].data == struct.pack("!I", len(P1)) + P1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\x78\x00", "truncated"),
        (b"\x78", "no NAL units"),
        (b"\x78\x00\x09\x67", "does not fit"),
        (b"\x78\x00\x00", "does not fit"),
        (b"\x7c\x85", "no fragment"),
    ],
)
def test_malformed_h264_payloads(payload: bytes, message: str) -> None:
    dep = H264Depacketizer(H264_PARAMS)
    with pytest.raises(H26xDepacketizeError, match=message):
        dep.push(RtpPacket(96, 1, 0, 1, payload, marker=True))
    assert dep.lost_units == 1
    assert len(dep.push(RtpPacket(96, 2, 3600, 1, P1, marker=True))) == 1


def test_units_completed_before_an_error_are_kept() -> None:
    dep = H264Depacketizer(H264_PARAMS)
    assert dep.push(RtpPacket(96, 1, 0, 1, P1)) == []
    with pytest.raises(DepacketizeError):
        dep.push(RtpPacket(96, 2, 3600, 1, b"\x78\x00\x09\x67"))
    assert [u.rtp_timestamp for u in dep.flush()] == [0]


def test_access_unit_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h26x, "MAX_AU_BYTES", 5000)
    feed = Feed(H264Depacketizer(H264_PARAMS))
    feed.push(IDR, 0)
    with pytest.raises(AccessUnitTooLargeError, match="MAX_AU_BYTES=5000"):
        feed.push(IDR, 0)
    feed.push(IDR, 0, marker=True)
    assert feed.units == [] and feed.dep.lost_units == 1
    feed.push(IDR, 3600, marker=True)
    assert len(feed.units) == 1


def test_h265_single_ap_fu_and_paci() -> None:
    feed = Feed(H265Depacketizer(H265_PARAMS))
    ap = bytes((48 << 1, 1)) + b"".join(
        struct.pack("!H", len(n)) + n for n in (H265_VPS, H265_SPS, H265_PPS)
    )
    idr = h265_slice(19, 2500, seed=3)
    body = idr[2:]
    fus = [
        bytes((49 << 1, 1, flags | 19)) + body[start : start + 1000]
        for flags, start in ((0x80, 0), (0x00, 1000), (0x40, 2000))
    ]
    feed.push(ap, 90)
    feed.push(bytes((50 << 1, 1)) + b"\x00\x00\x00\x00", 90)  # PACI: ignored
    for i, fu in enumerate(fus):
        feed.push(fu, 90, marker=i == 2)
    trail = h265_slice(1, 100, seed=4)
    feed.push(trail, 3690, marker=True)
    assert [u.rtp_timestamp for u in feed.units] == [90, 3690]
    assert split_length_prefixed(feed.units[0].data) == [H265_VPS, H265_SPS, H265_PPS, idr]
    assert feed.units[0].keyframe and not feed.units[1].keyframe
    assert feed.units[1].data == struct.pack("!I", len(trail)) + trail


def test_h265_keyframe_gets_vps_sps_pps_and_in_band_update() -> None:
    dep = H265Depacketizer(H265_PARAMS)
    feed = Feed(dep)
    cra = h265_slice(21, 80)
    feed.push(cra, 0, marker=True)
    assert split_length_prefixed(feed.units[0].data) == [H265_VPS, H265_SPS, H265_PPS, cra]
    new_sps = h265_sps(640, 368, conformance=(0, 0, 0, 4))
    feed.push(new_sps, 3600)
    feed.push(cra, 3600, marker=True)
    new_params = feed.units[1].new_params
    assert new_params is not None
    assert (new_params.width, new_params.height) == (640, 360)
    assert new_params.parameter_sets == (H265_VPS, new_sps, H265_PPS)
    assert split_length_prefixed(feed.units[1].data) == [H265_VPS, H265_PPS, new_sps, cra]


def test_h265_lost_fragment_and_malformed() -> None:
    feed = Feed(H265Depacketizer(H265_PARAMS))
    feed.push(bytes((49 << 1, 1, 0x80 | 1)) + b"\x11" * 10, 0)
    feed.push(bytes((49 << 1, 1, 0x40 | 1)) + b"\x22" * 10, 0, marker=True, skip=1)
    assert feed.dep.lost_units == 1
    with pytest.raises(H26xDepacketizeError, match="1 bytes has no header"):
        feed.push(b"\x02", 3600, marker=True)
    with pytest.raises(H26xDepacketizeError, match="no fragment"):
        feed.push(bytes((49 << 1, 1, 0x81)), 7200, marker=True)
    assert feed.dep.lost_units == 3


def test_h264_packetizer_layout() -> None:
    pk = H264Packetizer(H264_PARAMS, max_payload=1000)
    chunks = pk.packetize(join_length_prefixed([IDR]))
    # parameter sets in-band first, then the 3000-byte IDR as FU-A of ≤ 1000 bytes
    assert [c.payload for c in chunks[:2]] == [SPS, H264_PPS]
    fus = [c.payload for c in chunks[2:]]
    assert len(fus) == 4 and all(len(p) <= 1000 for p in fus)
    assert [p[0] for p in fus] == [(IDR[0] & 0xE0) | 28] * 4
    assert [p[1] for p in fus] == [0x85, 0x05, 0x05, 0x45]
    assert b"".join(p[2:] for p in fus) == IDR[1:]
    assert [c.marker for c in chunks] == [False] * 5 + [True]
    p_chunks = pk.packetize(join_length_prefixed([P1]))
    assert [(c.payload, c.marker) for c in p_chunks] == [(P1, True)]


def test_h265_packetizer_layout() -> None:
    pk = H265Packetizer(H265_PARAMS, max_payload=1200)
    idr = h265_slice(20, 2000, seed=9)
    chunks = pk.packetize(join_length_prefixed([H265_VPS, H265_SPS, H265_PPS, idr]))
    assert [c.payload for c in chunks[:3]] == [H265_VPS, H265_SPS, H265_PPS]
    fus = [c.payload for c in chunks[3:]]
    assert [p[:3] for p in fus] == [bytes((98, 1, 0x80 | 20)), bytes((98, 1, 0x40 | 20))]
    assert b"".join(p[3:] for p in fus) == idr[2:]
    assert [c.marker for c in chunks] == [False, False, False, False, True]


def test_packetizer_learns_parameter_sets_from_keyframes() -> None:
    pk = H264Packetizer(CodecParams(Codec.H264, 90_000))
    idr = h264_slice(5, 100)
    assert [c.payload for c in pk.packetize(join_length_prefixed([idr]))] == [idr]
    pk.packetize(join_length_prefixed([SPS, H264_PPS, idr]))
    assert [c.payload for c in pk.packetize(join_length_prefixed([idr]))] == [SPS, H264_PPS, idr]


def test_constructors_check_their_codec() -> None:
    with pytest.raises(ValueError, match="H265"):
        H264Depacketizer(H265_PARAMS)
    with pytest.raises(ValueError, match="H264"):
        H265Packetizer(H264_PARAMS)
    with pytest.raises(ValueError, match="max_payload 4"):
        H264Packetizer(H264_PARAMS, max_payload=4)
