"""RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1, §5.3.1).

Parsing is strict about lengths and lenient about nothing else: a packet whose declared CSRC
count, extension length or padding exceeds the datagram raises RtpError.
"""

from __future__ import annotations

import dataclasses
import struct

from app.core.errors import ProtocolError

#: Largest RTP packet accepted (UDP datagram / interleaved frame payload is at most 65535).
MAX_PACKET_BYTES = 65_535
RTP_VERSION = 2
_FIXED = struct.Struct("!BBHII")


class RtpError(ProtocolError):
    """The bytes are not a well-formed RTP packet."""


@dataclasses.dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; `extension` holds the header-extension words without the 4-byte header."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    #: The 16-bit "defined by profile" value (0xABAC for ONVIF replay), or None without extension.
    extension_profile: int | None = None
    extension: bytes = b""

    def to_bytes(self) -> bytes:
        """Serialize (never adds padding)."""
        has_ext = self.extension_profile is not None
        if len(self.extension) % 4:
            raise RtpError("RTP header extension must be a whole number of 32-bit words")
        b0 = RTP_VERSION << 6 | (0x10 if has_ext else 0) | len(self.csrcs)
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            _FIXED.pack(b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFF_FFFF, self.ssrc),
            b"".join(struct.pack("!I", c) for c in self.csrcs),
        ]
        if has_ext:
            assert self.extension_profile is not None
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet (datagram or interleaved frame payload)."""
    size = len(data)
    if size > MAX_PACKET_BYTES:
        raise RtpError(f"RTP packet of {size} bytes exceeds {MAX_PACKET_BYTES}")
    if size < _FIXED.size:
        raise RtpError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    offset = _FIXED.size
    cc = b0 & 0x0F
    if offset + 4 * cc > size:
        raise RtpError(f"RTP CSRC count {cc} runs past the end of the packet")
    csrcs = struct.unpack_from(f"!{cc}I", data, offset) if cc else ()
    offset += 4 * cc
    profile: int | None = None
    extension = b""
    if b0 & 0x10:
        if offset + 4 > size:
            raise RtpError("RTP header extension header runs past the end of the packet")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        if offset + 4 * words > size:
            raise RtpError(f"RTP header extension of {words} words runs past the end")
        extension = bytes(data[offset : offset + 4 * words])
        offset += 4 * words
    end = size
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or offset + pad > size:
            raise RtpError(f"RTP padding count {pad} is invalid for a {size}-byte packet")
        end -= pad
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
        extension_profile=profile,
        extension=extension,
    )
