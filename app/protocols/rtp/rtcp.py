"""RTCP (RFC 3550 §6): parse compound packets (SR, RR, SDES, BYE) and build SR, RR, SDES, BYE.

Unknown packet types (APP, feedback, XR …) are skipped by their length field. Every length is
checked against the datagram; a malformed packet raises RtcpError for the whole compound.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable

from app.core.errors import ProtocolError

#: Largest compound packet accepted (a UDP datagram or an interleaved frame).
MAX_RTCP_BYTES = 65_535
#: Most packets in one compound (a sender's SR + SDES + BYE is 3; relays add a few more).
MAX_COMPOUND_PACKETS = 64
#: Report blocks per SR/RR and chunks per SDES/BYE are counted in 5 bits.
MAX_COUNT = 31
#: SDES item text length is one byte.
MAX_SDES_TEXT = 255

RTCP_VERSION = 2
PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_SSRC = struct.Struct("!I")


class RtcpError(ProtocolError):
    """The bytes are not a well-formed RTCP compound packet."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source (RFC 3550 §6.4.1)."""

    ssrc: int
    #: Fraction of packets lost since the previous report, in 1/256 units.
    fraction_lost: int
    #: Cumulative packets lost (24-bit signed: duplicates can make it negative).
    cumulative_lost: int
    #: Extended highest sequence number received (cycles << 16 | seq).
    highest_sequence: int
    jitter: int
    #: Middle 32 bits of the NTP timestamp of the last SR received from the source (LSR).
    last_sr: int = 0
    #: Delay since that SR in 1/65536 s (DLSR).
    delay_since_last_sr: int = 0

    def to_bytes(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"fraction_lost {self.fraction_lost} outside 0..255")
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise RtcpError(f"cumulative_lost {self.cumulative_lost} outside 24-bit signed range")
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFF_FFFF)
        return _BLOCK.pack(
            self.ssrc,
            lost,
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: the sender's NTP/RTP timestamp pair and counts, plus its reception reports."""

    ssrc: int
    #: 64-bit NTP timestamp (seconds since 1900 << 32 | fraction).
    ntp_timestamp: int
    #: The RTP timestamp that corresponds to ntp_timestamp, in the stream's clock.
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp & 0xFFFF_FFFF,
            self.packet_count & 0xFFFF_FFFF,
            self.octet_count & 0xFFFF_FFFF,
        )
        return _packet(PT_SR, len(self.reports), body + _blocks(self.reports))


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception reports of a receiver that does not send."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        return _packet(PT_RR, len(self.reports), _SSRC.pack(self.ssrc) + _blocks(self.reports))


@dataclasses.dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items of one source: (item type, raw text bytes) pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for item_type, text in self.items:
            if item_type == SDES_CNAME:
                return text.decode("utf-8", errors="replace")
        return None

    def to_bytes(self) -> bytes:
        out = bytearray(_SSRC.pack(self.ssrc))
        for item_type, text in self.items:
            if not 1 <= item_type <= 255:
                raise RtcpError(f"SDES item type {item_type} outside 1..255")
            if len(text) > MAX_SDES_TEXT:
                raise RtcpError(f"SDES item of {len(text)} bytes exceeds {MAX_SDES_TEXT}")
            out += bytes((item_type, len(text))) + text
        # The item list ends with a null octet, then zeros to the next 32-bit boundary.
        out += b"\x00" * (4 - len(out) % 4)
        return bytes(out)


@dataclasses.dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES: descriptions (CNAME …) of one or more sources."""

    chunks: tuple[SdesChunk, ...]

    def to_bytes(self) -> bytes:
        return _packet(PT_SDES, len(self.chunks), b"".join(c.to_bytes() for c in self.chunks))


@dataclasses.dataclass(frozen=True, slots=True)
class Bye:
    """BYE: the sources are leaving, optionally with a reason."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    def to_bytes(self) -> bytes:
        body = b"".join(_SSRC.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode("utf-8")
            if len(text) > MAX_SDES_TEXT:
                raise RtcpError(f"BYE reason of {len(text)} bytes exceeds {MAX_SDES_TEXT}")
            body += bytes((len(text),)) + text
            body += b"\x00" * (-len(body) % 4)
        return _packet(PT_BYE, len(self.ssrcs), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; unknown packet types are skipped."""
    size = len(data)
    if size > MAX_RTCP_BYTES:
        raise RtcpError(f"RTCP packet of {size} bytes exceeds {MAX_RTCP_BYTES}")
    if size < _HEADER.size:
        raise RtcpError(f"RTCP packet of {size} bytes is shorter than the 4-byte header")
    packets: list[RtcpPacket] = []
    offset = 0
    index = 0
    while offset < size:
        if index >= MAX_COMPOUND_PACKETS:
            raise RtcpError(f"more than {MAX_COMPOUND_PACKETS} packets in one RTCP compound")
        if offset + _HEADER.size > size:
            raise RtcpError(f"truncated RTCP header at byte {offset} of {size}")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise RtcpError(f"RTCP version {first >> 6} at byte {offset}, expected 2")
        end = offset + 4 * (words + 1)
        if end > size:
            raise RtcpError(
                f"RTCP packet type {packet_type} of {4 * (words + 1)} bytes at byte {offset} "
                f"runs past the end ({size})"
            )
        body = data[offset + 4 : end]
        if first & 0x20:
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise RtcpError(f"RTCP padding count {pad} invalid for type {packet_type}")
            body = body[: len(body) - pad]
        parsed = _parse_one(packet_type, first & 0x1F, bytes(body))
        if parsed is not None:
            packets.append(parsed)
        offset = end
        index += 1
    return packets


def build_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound (RFC 3550: SR or RR first, then SDES)."""
    return b"".join(p.to_bytes() for p in packets)


def build_sr(
    ssrc: int,
    ntp_timestamp: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: tuple[ReportBlock, ...] = (),
) -> bytes:
    """One SR packet."""
    return SenderReport(
        ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count, reports
    ).to_bytes()


def build_rr(ssrc: int, reports: tuple[ReportBlock, ...] = ()) -> bytes:
    """One RR packet."""
    return ReceiverReport(ssrc, reports).to_bytes()


def build_sdes(ssrc: int, cname: str) -> bytes:
    """One SDES packet with a single CNAME item."""
    return SourceDescription((SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),)),)).to_bytes()


def build_bye(ssrcs: tuple[int, ...], reason: str | None = None) -> bytes:
    """One BYE packet."""
    return Bye(ssrcs, reason).to_bytes()


def ntp_middle32(ntp_timestamp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp, as used in LSR (RFC 3550 §6.4.1)."""
    return (ntp_timestamp >> 16) & 0xFFFF_FFFF


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket | None:
    if packet_type == PT_SR:
        if len(body) < _SR_INFO.size + count * _BLOCK.size:
            raise RtcpError(f"SR of {len(body)} bytes is too short for {count} report blocks")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _parse_blocks(body, 24, count))
    if packet_type == PT_RR:
        if len(body) < 4 + count * _BLOCK.size:
            raise RtcpError(f"RR of {len(body)} bytes is too short for {count} report blocks")
        return ReceiverReport(_SSRC.unpack_from(body)[0], _parse_blocks(body, 4, count))
    if packet_type == PT_SDES:
        return _parse_sdes(body, count)
    if packet_type == PT_BYE:
        return _parse_bye(body, count)
    return None


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + i * 24)
        cumulative = lost & 0xFF_FFFF
        if cumulative & 0x80_0000:
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpError(f"SDES chunk {len(chunks)} at byte {offset} is truncated")
        (ssrc,) = _SSRC.unpack_from(body, offset)
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtcpError(f"SDES chunk of SSRC {ssrc:#010x} has no end item")
            item_type = body[offset]
            if item_type == 0:
                offset += 1
                offset += -offset % 4
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError(f"SDES item type {item_type} at byte {offset} runs past the end")
            length = body[offset + 1]
            items.append((item_type, bytes(body[offset + 2 : offset + 2 + length])))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpError(f"BYE of {len(body)} bytes is too short for {count} SSRCs")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    rest = body[4 * count :]
    if rest:
        if 1 + rest[0] > len(rest):
            raise RtcpError(f"BYE reason of {rest[0]} bytes runs past the end")
        reason = rest[1 : 1 + rest[0]].decode("utf-8", errors="replace")
    return Bye(tuple(ssrcs), reason)


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    return b"".join(r.to_bytes() for r in reports)


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if count > MAX_COUNT:
        raise RtcpError(f"{count} items in one RTCP packet exceed {MAX_COUNT}")
    if len(body) % 4:
        raise RtcpError(f"RTCP body of {len(body)} bytes is not a whole number of words")
    header = _HEADER.pack(RTCP_VERSION << 6 | count, packet_type, len(body) // 4)
    return header + body
