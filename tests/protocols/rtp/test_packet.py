"""RTP fixed header, CSRCs, header extension and padding: byte layouts and malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.rtp.packet import MAX_PACKET_BYTES, RtpError, RtpPacket, parse_rtp


def test_fixed_header_layout() -> None:
    packet = RtpPacket(96, 0x1234, 0xDEADBEEF, 0x01020304, b"\x65\x88", marker=True)
    wire = packet.to_bytes()
    assert wire == bytes.fromhex("80e01234deadbeef01020304") + b"\x65\x88"
    assert parse_rtp(wire) == packet


def test_csrcs_and_onvif_extension() -> None:
    ext = struct.pack("!IIBBxx", 0xE6B5F9A1, 0x80000000, 0x80, 7)
    packet = RtpPacket(
        26, 1, 2, 3, b"jpeg", csrcs=(10, 11), extension_profile=0xABAC, extension=ext
    )
    wire = packet.to_bytes()
    assert wire[0] == 0x80 | 0x10 | 2
    assert wire[12:20] == struct.pack("!II", 10, 11)
    assert wire[20:24] == bytes.fromhex("abac0003")
    assert parse_rtp(wire) == packet


def test_padding_is_stripped() -> None:
    wire = bytearray(RtpPacket(0, 5, 6, 7, b"\xff\xfe").to_bytes() + b"\x00\x00\x03")
    wire[0] |= 0x20
    assert parse_rtp(bytes(wire)).payload == b"\xff\xfe"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x80\x60\x00", "shorter than the 12-byte header"),
        (bytes.fromhex("40600001000000000000000a"), "version 1"),
        (bytes.fromhex("83600001000000000000000a") + b"\x00" * 8, "CSRC count 3"),
        (bytes.fromhex("90600001000000000000000a") + b"\xab\xac", "extension header"),
        (bytes.fromhex("90600001000000000000000a") + b"\xab\xac\x00\x02\x00", "2 words"),
        (bytes.fromhex("a0600001000000000000000a") + b"\x00", "padding count 0"),
        (bytes.fromhex("a0600001000000000000000a") + b"\x09", "padding count 9"),
        (b"\x80" * (MAX_PACKET_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_packets(wire: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse_rtp(wire)


def test_extension_must_be_whole_words() -> None:
    with pytest.raises(RtpError, match="32-bit words"):
        RtpPacket(96, 1, 2, 3, b"", extension_profile=1, extension=b"\x01").to_bytes()


@settings(max_examples=10_000)
@given(st.binary(max_size=80))
def test_parse_rtp_raises_only_rtp_error(data: bytes) -> None:
    # Half the examples get a version-2 first byte so the deeper checks are reached.
    wire = bytes((0x80 | (data[0] & 0x3F),)) + data[1:] if data and data[0] & 0x40 else data
    try:
        packet = parse_rtp(wire)
    except RtpError:
        return
    assert len(packet.payload) <= len(wire) - 12
    assert 0 <= packet.payload_type < 128


@settings(max_examples=300)
@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF_FFFF),
    st.integers(0, 0xFFFF_FFFF),
    st.binary(max_size=64),
    st.booleans(),
    st.lists(st.integers(0, 0xFFFF_FFFF), max_size=15),
    st.one_of(st.none(), st.integers(0, 0xFFFF)),
    st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]),
)
def test_serialize_parse_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrcs: list[int],
    profile: int | None,
    ext: bytes,
) -> None:
    packet = RtpPacket(
        pt,
        seq,
        ts,
        ssrc,
        payload,
        marker,
        tuple(csrcs),
        profile,
        ext if profile is not None else b"",
    )
    assert parse_rtp(packet.to_bytes()) == packet
