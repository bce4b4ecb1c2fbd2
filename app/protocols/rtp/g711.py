"""RTP payload format for G.711 µ-law / A-law (PCMU, PCMA; RFC 3551 §4.5.14): one byte a sample.

The payload is the samples themselves (interleaved when there are several channels), so one
packet is one access unit and the RTP clock (8000 Hz) counts samples.
"""

from __future__ import annotations

from app.core.errors import ConfigError
from app.core.media import Codec, CodecParams
from app.protocols.rtp.codec import DEFAULT_MAX_PAYLOAD, DepacketizedUnit, PayloadChunk
from app.protocols.rtp.packet import RtpPacket

#: RTP clock rate of PCMU and PCMA (RFC 3551 Table 4).
G711_CLOCK_RATE = 8000
_CODECS = (Codec.PCMU, Codec.PCMA)


def _sample_bytes(params: CodecParams) -> int:
    """Bytes per sampling instant: one per channel."""
    return max(1, params.channels)


class G711Depacketizer:
    """Each packet's payload is one access unit at the packet's timestamp; nothing can be lost
    inside a unit, so `lost_units` stays 0 (gaps show as timestamp jumps)."""

    def __init__(self, params: CodecParams) -> None:
        if params.codec not in _CODECS:
            raise ConfigError(f"G711Depacketizer cannot handle codec {params.codec}")
        self.params = params
        self.lost_units = 0

    def push(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        if not packet.payload:  # nothing to play (some senders keep-alive this way)
            return []
        return [DepacketizedUnit(packet.payload, packet.timestamp, keyframe=True)]

    def flush(self) -> list[DepacketizedUnit]:
        return []


class G711Packetizer:
    """Splits G.711 samples into payloads of at most `max_payload` bytes on sample boundaries.

    Every chunk stands on its own: its `ts_offset` is the number of samples before it. The
    marker bit stays clear: for audio it flags the start of a talkspurt (RFC 3551 §4.1), and a
    recorded stream plays continuously.
    """

    def __init__(self, params: CodecParams, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if params.codec not in _CODECS:
            raise ConfigError(f"G711Packetizer cannot handle codec {params.codec}")
        step = _sample_bytes(params)
        self.params = params
        self.max_payload = max_payload - max_payload % step
        if self.max_payload <= 0:
            raise ConfigError(f"G.711 max_payload {max_payload} holds no {step}-byte sample")

    def packetize(self, data: bytes) -> list[PayloadChunk]:
        size, step = self.max_payload, _sample_bytes(self.params)
        return [
            PayloadChunk(data[i : i + size], marker=False, ts_offset=i // step)
            for i in range(0, len(data), size)
        ]
