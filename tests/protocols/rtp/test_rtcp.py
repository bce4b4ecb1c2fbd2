"""RTCP: byte layouts of SR/RR/SDES/BYE, compound parsing, unknown types, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.time import unix_ns_to_ntp64
from app.protocols.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_bye,
    build_compound,
    build_rr,
    build_sdes,
    build_sr,
    ntp_middle32,
    parse_rtcp,
)

BLOCK = ReportBlock(0xAABBCCDD, 25, -3, 0x0001_0010, 120, 0x12345678, 65536)


def test_sender_report_layout() -> None:
    ntp = unix_ns_to_ntp64(1_767_225_600_500_000_000)
    wire = build_sr(0x01020304, ntp, 0xFFFF_FFF0, 1000, 123_456, (BLOCK,))
    assert wire[:4] == bytes.fromhex("81c8000c")  # V=2, RC=1, PT=200, 12 words follow
    assert struct.unpack_from("!IQIII", wire, 4) == (0x01020304, ntp, 0xFFFF_FFF0, 1000, 123_456)
    assert wire[28:52] == bytes.fromhex("aabbccdd19fffffd00010010000000781234567800010000")
    assert parse_rtcp(wire) == [SenderReport(0x01020304, ntp, 0xFFFF_FFF0, 1000, 123_456, (BLOCK,))]


def test_receiver_report_and_sdes_and_bye_layout() -> None:
    assert build_rr(7) == bytes.fromhex("80c9000100000007")
    assert build_sdes(7, "cam@host") == bytes.fromhex("81ca0004") + b"\x00\x00\x00\x07" + (
        b"\x01\x08cam@host\x00\x00"
    )
    assert build_bye((7,)) == bytes.fromhex("81cb000100000007")
    assert (
        build_bye((7, 8), "shutdown")
        == bytes.fromhex("82cb0005") + struct.pack("!II", 7, 8) + b"\x08shutdown\x00\x00\x00"
    )


def test_compound_round_trip() -> None:
    packets: list[RtcpPacket] = [
        SenderReport(1, 2**63, 3, 4, 5),
        SourceDescription((SdesChunk(1, ((1, b"a@b"), (2, b"name"))), SdesChunk(9, ((1, b"x"),)))),
        Bye((1,), "bye"),
    ]
    parsed = parse_rtcp(build_compound(packets))
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "a@b"


def test_unknown_types_are_skipped() -> None:
    app = bytes.fromhex("80cc0002") + b"\x00\x00\x00\x01" + b"name"  # APP
    xr = bytes.fromhex("80cf0001") + b"\x00\x00\x00\x01"  # XR
    compound = build_rr(5, (BLOCK,)) + app + xr + build_bye((5,))
    assert parse_rtcp(compound) == [ReceiverReport(5, (BLOCK,)), Bye((5,))]


def test_padding_on_last_packet() -> None:
    padded = bytearray(build_bye((5,)) + b"\x00\x00\x00\x04")
    padded[0] |= 0x20
    padded[3] += 1
    assert parse_rtcp(bytes(build_rr(1) + padded)) == [ReceiverReport(1), Bye((5,))]


def test_ntp_middle32() -> None:
    assert ntp_middle32(0x1122_3344_5566_7788) == 0x3344_5566


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x80\xc8", "shorter than the 4-byte header"),
        (bytes.fromhex("40c9000100000007"), "version 1"),
        (bytes.fromhex("80c9000500000007"), "runs past the end"),
        (bytes.fromhex("81c9000100000007"), "too short for 1 report blocks"),
        (bytes.fromhex("80c8000100000007"), "SR of 4 bytes"),
        (bytes.fromhex("81ca000100000007"), "has no end item"),
        (bytes.fromhex("81ca00020000000701ff0000"), "runs past the end"),
        (bytes.fromhex("82cb000100000007"), "too short for 2 SSRCs"),
        (bytes.fromhex("81cb00020000000709000000"), "reason of 9 bytes"),
        (bytes.fromhex("a0c9000100000000"), "padding count 0"),
        (build_rr(1) + b"\x80", "truncated RTCP header"),
    ],
)
def test_malformed_compounds(wire: bytes, message: str) -> None:
    with pytest.raises(RtcpError, match=message):
        parse_rtcp(wire)


def test_builders_check_field_ranges() -> None:
    with pytest.raises(RtcpError, match="cumulative_lost"):
        ReportBlock(1, 0, 1 << 23, 0, 0).to_bytes()
    with pytest.raises(RtcpError, match="fraction_lost"):
        ReportBlock(1, 256, 0, 0, 0).to_bytes()
    with pytest.raises(RtcpError, match="exceed 31"):
        build_bye(tuple(range(32)))
    with pytest.raises(RtcpError, match="SDES item of 300 bytes"):
        build_sdes(1, "x" * 300)


@settings(max_examples=10_000)
@given(st.binary(max_size=120))
def test_parse_rtcp_raises_only_rtcp_error(data: bytes) -> None:
    # Steer most examples past the version check: the interesting bugs are in the bodies.
    if data and data[0] & 0x40:
        data = (
            bytes((0x80 | (data[0] & 0x3F), 200 + data[1] % 6 if len(data) > 1 else 200)) + data[2:]
        )
    try:
        packets = parse_rtcp(data)
    except RtcpError:
        return
    for packet in packets:
        if isinstance(packet, SenderReport | ReceiverReport):
            assert len(packet.reports) <= 31
            assert parse_rtcp(packet.to_bytes()) == [packet]
        else:
            assert isinstance(packet, SourceDescription | Bye)


@settings(max_examples=300)
@given(
    st.lists(
        st.builds(
            ReportBlock,
            st.integers(0, 2**32 - 1),
            st.integers(0, 255),
            st.integers(-(2**23), 2**23 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
        ),
        max_size=31,
    ),
    st.integers(0, 2**64 - 1),
    st.text(max_size=40),
)
def test_build_parse_round_trip(blocks: list[ReportBlock], ntp: int, cname: str) -> None:
    packets: list[RtcpPacket] = [
        SenderReport(3, ntp, 4, 5, 6, tuple(blocks)),
        SourceDescription((SdesChunk(3, ((1, cname.encode()[:255]),)),)),
        Bye((3,), cname[:20]),
    ]
    assert parse_rtcp(build_compound(packets)) == packets
