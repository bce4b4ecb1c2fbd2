"""RTP payload format for AAC (RFC 3640 mpeg4-generic, AAC-hbr mode) and the AudioSpecificConfig.

A packet holds a 16-bit AU-headers-length (in bits), the AU headers (AU-size, then AU-index for
the first and AU-index-delta for the others), padding to a byte, and the AUs one after another.
An AU too big for one packet travels alone in several packets, each header giving the size of
the whole AU, the marker bit on the last. The RTP clock is the sample rate, so AU i of a packet
plays at the packet's timestamp + i * frame length (1024 samples for AAC-LC).
"""

from __future__ import annotations

import dataclasses

from app.core.errors import ConfigError, LimitError, ProtocolError
from app.core.media import Codec, CodecParams
from app.protocols.rtp.codec import (
    DEFAULT_MAX_PAYLOAD,
    DepacketizedUnit,
    DepacketizeError,
    PayloadChunk,
)
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.reassembly import FragmentReassembler

#: AAC-hbr field widths in bits (RFC 3640 §3.3.6: sizeLength, indexLength, indexDeltaLength).
HBR_SIZE_LENGTH = 13
HBR_INDEX_LENGTH = 3
HBR_INDEX_DELTA_LENGTH = 3
#: Widest AU-size field accepted; it bounds the size of one AU.
MAX_SIZE_LENGTH = 16
#: Widest AU-index / AU-index-delta field accepted.
MAX_INDEX_LENGTH = 8
#: Most AU headers accepted in one packet.
MAX_AU_HEADERS = 512
#: Samples per AAC frame unless the AudioSpecificConfig says 960.
AAC_FRAME_SAMPLES = 1024
#: Longest AudioSpecificConfig parsed (the fields read here fit in 8 bytes).
MAX_CONFIG_BYTES = 64

#: MPEG-4 audio object types (ISO/IEC 14496-3 Table 1.1) used here.
AOT_AAC_LC = 2
AOT_SBR = 5
AOT_PS = 29
_AOT_ESCAPE = 31
#: Object types whose config is a GASpecificConfig (it carries the 960/1024 frame length flag).
_GA_OBJECT_TYPES = frozenset({1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23})
#: samplingFrequencyIndex -> Hz (index 15 escapes to an explicit 24-bit rate).
SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip
_RATE_ESCAPE = 15
#: channelConfiguration -> channel count (0 means "in a program config element": unknown here).
_CHANNELS = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8, 11: 7, 12: 8, 14: 8}


class AacPayloadError(DepacketizeError):
    """An RTP payload violates RFC 3640 for the configured AU header layout."""


class AudioConfigError(ProtocolError):
    """An AudioSpecificConfig (SDP config= or stored) is malformed or of an unknown kind."""


# ---------------------------------------------------------------- AudioSpecificConfig


@dataclasses.dataclass(frozen=True, slots=True)
class AudioSpecificConfig:
    """The fields of an MPEG-4 AudioSpecificConfig that transport and storage need."""

    object_type: int
    #: Sampling rate of the core decoder (the AAC part for HE-AAC).
    sample_rate: int
    #: 0 when the channel layout is given by a program config element.
    channels: int
    #: Samples per frame at `sample_rate`: 1024, or 960 when frameLengthFlag is set.
    frame_length: int = AAC_FRAME_SAMPLES
    #: HE-AAC (explicit SBR/PS signalling): the output sampling rate, else 0.
    extension_sample_rate: int = 0


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = 8 * len(data)
        self.pos = 0

    def read(self, width: int) -> int:
        if self.pos + width > self._bits:
            raise AudioConfigError(f"AudioSpecificConfig of {self._bits // 8} bytes is truncated")
        self.pos += width
        return self._value >> (self._bits - self.pos) & ((1 << width) - 1)


def _read_object_type(bits: _BitReader) -> int:
    object_type = bits.read(5)
    return 32 + bits.read(6) if object_type == _AOT_ESCAPE else object_type


def _read_sample_rate(bits: _BitReader) -> int:
    index = bits.read(4)
    if index == _RATE_ESCAPE:
        return bits.read(24)
    if index >= len(SAMPLE_RATES):
        raise AudioConfigError(f"AudioSpecificConfig sampling frequency index {index} is reserved")
    return SAMPLE_RATES[index]


def parse_audio_specific_config(data: bytes) -> AudioSpecificConfig:
    """Decode the fields of an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) Custos uses.

    Trailing fields (such as the backward-compatible SBR sync extension FFmpeg appends) are
    ignored.
    """
    if not data or len(data) > MAX_CONFIG_BYTES:
        raise AudioConfigError(f"AudioSpecificConfig of {len(data)} bytes (expected 2..64)")
    bits = _BitReader(data)
    object_type = _read_object_type(bits)
    sample_rate = _read_sample_rate(bits)
    channel_config = bits.read(4)
    if channel_config not in _CHANNELS:
        raise AudioConfigError(f"AudioSpecificConfig channel configuration {channel_config}")
    extension_rate = 0
    if object_type in (AOT_SBR, AOT_PS):
        extension_rate = _read_sample_rate(bits)
        object_type = _read_object_type(bits)
    frame_length = AAC_FRAME_SAMPLES
    if object_type in _GA_OBJECT_TYPES and bits.read(1):
        frame_length = 960
    if sample_rate == 0:
        raise AudioConfigError("AudioSpecificConfig sampling rate is 0")
    return AudioSpecificConfig(
        object_type, sample_rate, _CHANNELS[channel_config], frame_length, extension_rate
    )


def audio_specific_config(sample_rate: int, channels: int, object_type: int = AOT_AAC_LC) -> bytes:
    """The 2-byte (or longer, for unusual rates) AudioSpecificConfig of plain AAC (1024 samples)."""
    configs = [config for config, count in _CHANNELS.items() if count == channels and config < 8]
    if not configs or channels == 0:
        raise ConfigError(f"AAC channel count {channels} has no channel configuration")
    if not 0 < object_type < _AOT_ESCAPE or object_type not in _GA_OBJECT_TYPES:
        raise ConfigError(f"AAC object type {object_type} is not a plain AAC type")
    if not 0 < sample_rate < 1 << 24:
        raise ConfigError(f"AAC sample rate {sample_rate} is out of range")
    value, width = object_type, 5
    if sample_rate in SAMPLE_RATES:
        value, width = value << 4 | SAMPLE_RATES.index(sample_rate), width + 4
    else:
        value, width = (value << 4 | _RATE_ESCAPE) << 24 | sample_rate, width + 28
    # channelConfiguration, then GASpecificConfig: frameLengthFlag, dependsOnCoreCoder,
    # extensionFlag, all 0.
    value, width = (value << 4 | configs[0]) << 3, width + 7
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


# ---------------------------------------------------------------- RTP payload


@dataclasses.dataclass(frozen=True, slots=True)
class AuHeaderLayout:
    """Widths in bits of the AU header fields (the sizelength/indexlength/indexdeltalength fmtp)."""

    size_length: int = HBR_SIZE_LENGTH
    index_length: int = HBR_INDEX_LENGTH
    index_delta_length: int = HBR_INDEX_DELTA_LENGTH

    def __post_init__(self) -> None:
        if not 1 <= self.size_length <= MAX_SIZE_LENGTH:
            raise ConfigError(f"AAC sizelength {self.size_length} is not in 1..{MAX_SIZE_LENGTH}")
        for name, width in (
            ("indexlength", self.index_length),
            ("indexdeltalength", self.index_delta_length),
        ):
            if not 0 <= width <= MAX_INDEX_LENGTH:
                raise ConfigError(f"AAC {name} {width} is not in 0..{MAX_INDEX_LENGTH}")

    @property
    def max_au_size(self) -> int:
        return (1 << self.size_length) - 1


def _frame_duration(params: CodecParams, frame_length: int | None) -> int:
    """RTP timestamp units per AU: the frame length scaled from the core rate to the clock."""
    if frame_length is not None:
        if frame_length <= 0:
            raise ConfigError(f"AAC frame length {frame_length} must be positive")
        return frame_length
    if not params.audio_config:
        return AAC_FRAME_SAMPLES
    config = parse_audio_specific_config(params.audio_config)
    if params.clock_rate and params.clock_rate != config.sample_rate:
        return config.frame_length * params.clock_rate // config.sample_rate
    return config.frame_length


@dataclasses.dataclass(slots=True)
class _Fragments:
    timestamp: int
    au_size: int
    next_sequence: int
    parts: list[bytes]
    received: int


class AacDepacketizer(FragmentReassembler[_Fragments]):
    """RFC 3640 packets -> raw AAC access units (every AU is a keyframe).

    `frame_length` is in RTP clock units; by default it comes from `params.audio_config`
    (1024 when there is none). A fragmented AU with a missing or extra piece (checked by the
    AU size and the RTP sequence numbers) is dropped and counted in `lost_units`.
    """

    def __init__(
        self,
        params: CodecParams,
        *,
        size_length: int = HBR_SIZE_LENGTH,
        index_length: int = HBR_INDEX_LENGTH,
        index_delta_length: int = HBR_INDEX_DELTA_LENGTH,
        frame_length: int | None = None,
    ) -> None:
        if params.codec is not Codec.AAC:
            raise ConfigError(f"AacDepacketizer cannot handle codec {params.codec}")
        super().__init__()
        self.params = params
        self.layout = AuHeaderLayout(size_length, index_length, index_delta_length)
        self.frame_length = _frame_duration(params, frame_length)

    def _continues(self, pending: _Fragments, packet: RtpPacket) -> bool:
        return packet.timestamp == pending.timestamp and packet.sequence == pending.next_sequence

    def _accept(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        payload = packet.payload
        headers, data_start = self._parse_headers(payload)
        available = len(payload) - data_start
        pending = self._pending
        if pending is not None:
            return self._continue(pending, packet, headers, payload[data_start:])
        if len(headers) == 1 and headers[0][0] > available:
            if packet.marker:
                raise AacPayloadError(
                    f"AAC AU of {headers[0][0]} bytes has only {available} in its last packet"
                )
            self._pending = _Fragments(
                packet.timestamp,
                headers[0][0],
                (packet.sequence + 1) & 0xFFFF,
                [payload[data_start:]],
                available,
            )
            return []
        total = sum(size for size, _ in headers)
        if total > available:
            raise AacPayloadError(
                f"AAC AU sizes add up to {total} bytes, the packet has {available}"
            )
        units = []
        pos = data_start
        for size, index in headers:
            if size:  # an empty AU carries nothing to store
                timestamp = (packet.timestamp + index * self.frame_length) & 0xFFFF_FFFF
                units.append(DepacketizedUnit(payload[pos : pos + size], timestamp, keyframe=True))
            pos += size
        return units

    def _continue(
        self,
        pending: _Fragments,
        packet: RtpPacket,
        headers: list[tuple[int, int]],
        data: bytes,
    ) -> list[DepacketizedUnit]:
        if len(headers) != 1 or headers[0][0] != pending.au_size:
            raise AacPayloadError(
                f"AAC fragment headers {headers} do not continue an AU of {pending.au_size} bytes"
            )
        pending.received += len(data)
        if pending.received > pending.au_size:
            raise AacPayloadError(
                f"AAC fragments carry {pending.received} bytes of an AU of {pending.au_size}"
            )
        pending.parts.append(data)
        pending.next_sequence = (pending.next_sequence + 1) & 0xFFFF
        if pending.received == pending.au_size:  # complete, even if a sender forgot the marker
            self._pending = None
            return [DepacketizedUnit(b"".join(pending.parts), pending.timestamp, keyframe=True)]
        if packet.marker:  # a middle fragment went missing without a sequence gap
            self._lose(pending.timestamp, marker=True)
        return []

    def _parse_headers(self, payload: bytes) -> tuple[list[tuple[int, int]], int]:
        """[(AU size, AU offset in frames from the packet timestamp)], start of the AU data."""
        if len(payload) < 2:
            raise AacPayloadError(f"AAC payload of {len(payload)} bytes has no AU-headers-length")
        header_bits = int.from_bytes(payload[:2], "big")
        data_start = 2 + (header_bits + 7) // 8
        if data_start > len(payload):
            raise AacPayloadError(
                f"AAC AU headers of {header_bits} bits overrun the {len(payload)}-byte packet"
            )
        layout = self.layout
        bits = int.from_bytes(payload[2:data_start], "big")
        total = 8 * (data_start - 2)
        pos = 0
        headers: list[tuple[int, int]] = []
        index = 0
        while pos < header_bits:
            index_width = layout.index_length if not headers else layout.index_delta_length
            width = layout.size_length + index_width
            if pos + width > header_bits:
                raise AacPayloadError(f"AAC AU-headers-length {header_bits} is not whole headers")
            if len(headers) == MAX_AU_HEADERS:
                raise AacPayloadError(f"AAC packet has more than {MAX_AU_HEADERS} AU headers")
            field = bits >> (total - pos - width) & ((1 << width) - 1)
            index_field = field & ((1 << index_width) - 1)
            # The first AU sits at the packet timestamp; a delta of d skips d AUs (interleaving).
            index = 0 if not headers else index + 1 + index_field
            headers.append((field >> index_width, index))
            pos += width
        if not headers:
            raise AacPayloadError("AAC packet has no AU headers")
        return headers, data_start


class AacPacketizer:
    """Raw AAC access units -> RFC 3640 payloads: one AU per packet, fragmented when too big."""

    def __init__(
        self,
        params: CodecParams,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        *,
        size_length: int = HBR_SIZE_LENGTH,
        index_length: int = HBR_INDEX_LENGTH,
        index_delta_length: int = HBR_INDEX_DELTA_LENGTH,
    ) -> None:
        if params.codec is not Codec.AAC:
            raise ConfigError(f"AacPacketizer cannot handle codec {params.codec}")
        self.params = params
        self.layout = AuHeaderLayout(size_length, index_length, index_delta_length)
        header_bits = size_length + index_length
        self._header_bits = header_bits
        self._header_bytes = 2 + (header_bits + 7) // 8
        if max_payload <= self._header_bytes:
            raise ConfigError(f"AAC max_payload {max_payload} leaves no room for AU data")
        self.max_payload = max_payload

    def packetize(self, data: bytes) -> list[PayloadChunk]:
        size = len(data)
        if size > self.layout.max_au_size:
            raise LimitError(
                f"AAC AU of {size} bytes exceeds the {self.layout.size_length}-bit AU-size field"
            )
        width = self._header_bytes - 2
        header_field = size << (8 * width - self.layout.size_length)  # AU-index 0, padding 0
        head = self._header_bits.to_bytes(2, "big") + header_field.to_bytes(width, "big")
        room = self.max_payload - len(head)
        pieces = [data[i : i + room] for i in range(0, size, room)] or [b""]
        return [
            PayloadChunk(head + piece, marker=i == len(pieces) - 1)
            for i, piece in enumerate(pieces)
        ]
