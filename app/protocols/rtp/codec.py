"""The contracts every payload format implements: depacketizer (RTP → access units) and packetizer.

One module per payload format implements both directions for its codecs (h26x.py, jpeg.py,
aac.py, g711.py); `app.protocols.rtp.formats` maps a Codec to its classes.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from app.core.errors import ProtocolError
from app.core.media import CodecParams
from app.protocols.rtp.packet import RtpPacket

#: Default payload budget per RTP packet: fits a 1500-byte Ethernet MTU with IP/UDP/RTP/extension.
DEFAULT_MAX_PAYLOAD = 1400


class DepacketizeError(ProtocolError):
    """An RTP payload violates its payload format (the packet is dropped, the stream goes on)."""


@dataclasses.dataclass(frozen=True, slots=True)
class DepacketizedUnit:
    """One complete access unit recovered from RTP (payload layout as in app.core.media)."""

    data: bytes
    #: RTP timestamp (32-bit, as on the wire) of the packets that carried it.
    rtp_timestamp: int
    keyframe: bool
    #: Set when this unit changed the codec setup (new SPS, new JPEG size …), else None.
    new_params: CodecParams | None = None


class Depacketizer(Protocol):
    """Reassembles access units from the packets of one RTP stream, in arrival order.

    `push` raises only DepacketizeError (and its subclasses); after an error the depacketizer
    is still usable. Units left incomplete by packet loss are dropped and counted in `lost_units`.
    """

    params: CodecParams
    lost_units: int

    def push(self, packet: RtpPacket) -> list[DepacketizedUnit]: ...

    def flush(self) -> list[DepacketizedUnit]:
        """Emit a pending unit at the end of a stream if it is known to be complete."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class PayloadChunk:
    """One RTP payload produced by a packetizer; the marker bit ends an access unit."""

    payload: bytes
    marker: bool
    #: Added to the unit's RTP timestamp for this payload: non-zero only for audio units split
    #: over several packets (G.711), where each packet's timestamp is that of its first sample.
    ts_offset: int = 0


class Packetizer(Protocol):
    """Splits one access unit into RTP payloads of at most `max_payload` bytes."""

    params: CodecParams

    def packetize(self, data: bytes) -> list[PayloadChunk]: ...
