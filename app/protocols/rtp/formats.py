"""The payload-format registry: SDP media ↔ CodecParams, and CodecParams → (de)packetizer.

One place knows every codec Custos records: H.264, H.265 (h26x.py), JPEG (jpeg.py), AAC
(aac.py), G.711 (g711.py) and ONVIF metadata (here: it is a plain byte stream).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging

from app.core.media import Codec, CodecParams, TrackKind
from app.formats.h26x import H26xError, syntax_for
from app.protocols.rtp.aac import AacDepacketizer, AacPacketizer
from app.protocols.rtp.codec import (
    DEFAULT_MAX_PAYLOAD,
    DepacketizedUnit,
    DepacketizeError,
    Depacketizer,
    Packetizer,
    PayloadChunk,
)
from app.protocols.rtp.g711 import G711Depacketizer, G711Packetizer
from app.protocols.rtp.h26x import (
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
)
from app.protocols.rtp.jpeg import JpegDepacketizer, JpegPacketizer
from app.protocols.rtp.packet import RtpPacket
from app.protocols.sdp import MediaDescription, SdpError

logger = logging.getLogger(__name__)

#: Largest ONVIF metadata document reassembled from RTP.
MAX_METADATA_BYTES = 1024 * 1024
#: Static RTP payload types (RFC 3551) Custos accepts without an a=rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, tuple[Codec, int]] = {
    0: (Codec.PCMU, 8000),
    8: (Codec.PCMA, 8000),
    26: (Codec.JPEG, 90_000),
}
#: AAC-hbr (RFC 3640 §3.3.6) fixes these AU-header field sizes; the AAC depacketizer assumes them.
AAC_HBR_FIELDS = {"sizelength": "13", "indexlength": "3", "indexdeltalength": "3"}

_ENCODINGS = {codec.value: codec for codec in Codec}
# Encoding names as written in a=rtpmap (RFC names; ONVIF spells metadata in lower case).
_RTPMAP_NAMES = {Codec.METADATA: "vnd.onvif.metadata"}
_MEDIA_TYPES = {
    TrackKind.VIDEO: "video",
    TrackKind.AUDIO: "audio",
    TrackKind.METADATA: "application",
}


class UnsupportedEncodingError(SdpError):
    """The SDP offers an encoding or a mode of it that Custos cannot record."""


def params_from_sdp(media: MediaDescription, payload_type: int | None = None) -> CodecParams:
    """CodecParams of one m= section (its first format unless `payload_type` is given)."""
    if payload_type is None:
        types = media.payload_types
        if not types:
            raise SdpError(f"m={media.media} section lists no formats")
        payload_type = types[0]
    rtpmap = media.rtpmap(payload_type)
    if rtpmap is None:
        if payload_type not in STATIC_PAYLOAD_TYPES:
            raise UnsupportedEncodingError(
                f"dynamic payload type {payload_type} of m={media.media} has no a=rtpmap"
            )
        codec, rate = STATIC_PAYLOAD_TYPES[payload_type]
        channels = 1
    else:
        found = _ENCODINGS.get(rtpmap.encoding.upper())
        if found is None:
            raise UnsupportedEncodingError(
                f"encoding {rtpmap.encoding!r} (payload type {payload_type}) is not supported"
            )
        codec, rate, channels = found, rtpmap.clock_rate, rtpmap.channels
    fmtp = media.fmtp(payload_type)
    if codec is Codec.H264:
        return _h264_params(rate, fmtp)
    if codec is Codec.H265:
        return _h265_params(rate, fmtp)
    if codec is Codec.JPEG:
        width, height = _jpeg_size(media, payload_type)
        return CodecParams(codec, rate, width=width, height=height)
    if codec is Codec.AAC:
        return _aac_params(rate, channels, fmtp)
    if codec in (Codec.PCMU, Codec.PCMA):
        return CodecParams(codec, rate, sample_rate=rate, channels=channels)
    return CodecParams(codec, rate)


def sdp_media_for(params: CodecParams, payload_type: int, control: str) -> MediaDescription:
    """The m= section that offers `params` as `payload_type` (inverse of params_from_sdp)."""
    codec = params.codec
    name = _RTPMAP_NAMES.get(codec, codec.value)
    rtpmap = f"{payload_type} {name}/{params.clock_rate}"
    if codec is Codec.AAC or (codec.kind is TrackKind.AUDIO and params.channels > 1):
        rtpmap += f"/{max(params.channels, 1)}"
    attributes: list[tuple[str, str | None]] = [("rtpmap", rtpmap)]
    fmtp = _fmtp_for(params)
    if fmtp:
        attributes.append(("fmtp", f"{payload_type} {fmtp}"))
    if codec is Codec.JPEG and params.width and params.height:
        attributes.append(("framesize", f"{payload_type} {params.width}-{params.height}"))
    attributes.append(("control", control))
    return MediaDescription(
        media=_MEDIA_TYPES[codec.kind],
        port=0,
        proto="RTP/AVP",
        formats=(str(payload_type),),
        attributes=tuple(attributes),
    )


def depacketizer_for(params: CodecParams) -> Depacketizer:
    """A new depacketizer for one RTP stream of `params`."""
    codec = params.codec
    if codec is Codec.H264:
        return H264Depacketizer(params)
    if codec is Codec.H265:
        return H265Depacketizer(params)
    if codec is Codec.JPEG:
        return JpegDepacketizer(params)
    if codec is Codec.AAC:
        return AacDepacketizer(params)
    if codec in (Codec.PCMU, Codec.PCMA):
        return G711Depacketizer(params)
    return MetadataDepacketizer(params)


def packetizer_for(params: CodecParams, max_payload: int = DEFAULT_MAX_PAYLOAD) -> Packetizer:
    """A new packetizer producing payloads of at most `max_payload` bytes for `params`."""
    codec = params.codec
    if codec is Codec.H264:
        return H264Packetizer(params, max_payload)
    if codec is Codec.H265:
        return H265Packetizer(params, max_payload)
    if codec is Codec.JPEG:
        return JpegPacketizer(params, max_payload)
    if codec is Codec.AAC:
        return AacPacketizer(params, max_payload)
    if codec in (Codec.PCMU, Codec.PCMA):
        return G711Packetizer(params, max_payload)
    return MetadataPacketizer(params, max_payload)


class MetadataDepacketizer:
    """ONVIF metadata (vnd.onvif.metadata): payloads of one timestamp concatenated up to the
    marker bit form one XML document (ONVIF Streaming spec §5.2.1.1)."""

    def __init__(self, params: CodecParams) -> None:
        self.params = params
        self.lost_units = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._timestamp: int | None = None
        self._damaged = False
        self._last_seq: int | None = None
        # Units completed by a packet that then raised wait here for the next push or flush.
        self._ready: list[DepacketizedUnit] = []

    def push(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        last, self._last_seq = self._last_seq, packet.sequence
        if last == packet.sequence:
            return []  # duplicate
        if self._timestamp is not None and packet.timestamp != self._timestamp:
            self._finish(complete=False)
        if last is not None and packet.sequence != (last + 1) & 0xFFFF:
            # The lost packets may have been this document's beginning: half an XML
            # document is noise, so the document this packet belongs to is dropped.
            self._damaged = True
        self._timestamp = packet.timestamp
        if not self._damaged:
            self._size += len(packet.payload)
            if self._size > MAX_METADATA_BYTES:
                self._damaged = True
                self._parts.clear()
                if packet.marker:
                    self._finish(complete=True)
                raise DepacketizeError(
                    f"metadata document exceeds MAX_METADATA_BYTES={MAX_METADATA_BYTES}"
                )
            self._parts.append(packet.payload)
        if packet.marker:
            self._finish(complete=True)
        ready, self._ready = self._ready, []
        return ready

    def flush(self) -> list[DepacketizedUnit]:
        """Drop a pending document (without its marker it may lack its tail)."""
        if self._timestamp is not None:
            self._finish(complete=False)
        ready, self._ready = self._ready, []
        return ready

    def _finish(self, *, complete: bool) -> None:
        parts, timestamp, damaged = self._parts, self._timestamp, self._damaged
        self._parts, self._size, self._timestamp, self._damaged = [], 0, None, False
        if timestamp is None:
            return
        if damaged or not complete:
            self.lost_units += 1
            return
        self._ready.append(DepacketizedUnit(b"".join(parts), timestamp, keyframe=True))


class MetadataPacketizer:
    """One ONVIF metadata document → payloads of at most max_payload bytes, marker on the last."""

    def __init__(self, params: CodecParams, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if max_payload < 1:
            raise ValueError(f"max_payload {max_payload} must be positive")
        self.params = params
        self.max_payload = max_payload

    def packetize(self, data: bytes) -> list[PayloadChunk]:
        step = self.max_payload
        parts = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        return [PayloadChunk(p, i == len(parts) - 1) for i, p in enumerate(parts)]


def h264_profile_level_id(sps: bytes) -> str:
    """The profile-level-id fmtp value (profile_idc, constraint flags, level_idc as hex)."""
    if len(sps) < 4:
        raise H26xError(f"SPS of {len(sps)} bytes has no profile and level")
    return sps[1:4].hex().upper()


def _fmtp_for(params: CodecParams) -> str:
    codec, sets = params.codec, params.parameter_sets
    if codec is Codec.H264:
        items = ["packetization-mode=1"]
        if len(sets) == 2:
            items.append(f"profile-level-id={h264_profile_level_id(sets[0])}")
            items.append("sprop-parameter-sets=" + ",".join(_b64(s) for s in sets))
        return ";".join(items)
    if codec is Codec.H265 and len(sets) == 3:
        return ";".join(
            f"sprop-{name}={_b64(s)}" for name, s in zip(("vps", "sps", "pps"), sets, strict=True)
        )
    if codec is Codec.AAC:
        items = ["streamtype=5", "profile-level-id=1", "mode=AAC-hbr"]
        items += [f"{k}={v}" for k, v in AAC_HBR_FIELDS.items()]
        items.append(f"config={params.audio_config.hex().upper()}")
        return ";".join(items)
    return ""


def _h264_params(rate: int, fmtp: dict[str, str]) -> CodecParams:
    mode = fmtp.get("packetization-mode", "0").strip()
    if mode not in ("0", "1"):
        raise UnsupportedEncodingError(
            f"H264 packetization-mode={mode} is not supported (only 0 and 1)"
        )
    sets = _decode_sets(fmtp.get("sprop-parameter-sets", ""))
    return _with_sps(CodecParams(Codec.H264, rate), sets)


def _h265_params(rate: int, fmtp: dict[str, str]) -> CodecParams:
    don_diff = fmtp.get("sprop-max-don-diff", "0").strip()
    if don_diff != "0":
        raise UnsupportedEncodingError(
            f"H265 sprop-max-don-diff={don_diff} (DONL fields) is not supported"
        )
    sets = [
        s
        for key in ("sprop-vps", "sprop-sps", "sprop-pps")
        for s in _decode_sets(fmtp.get(key, ""))
    ]
    return _with_sps(CodecParams(Codec.H265, rate), sets)


def _with_sps(params: CodecParams, sets: list[bytes]) -> CodecParams:
    """Attach SDP parameter sets and the picture size from their SPS; a broken or incomplete
    sprop is left out (the stream's in-band parameter sets will supply it)."""
    if not sets:
        return params
    syntax = syntax_for(params.codec)
    try:
        ordered = syntax.split_parameter_sets(sets)
        info = syntax.parse_sps(ordered[syntax.parameter_set_types.index(syntax.sps_type)])
    except H26xError as exc:
        logger.warning("ignoring SDP parameter sets of %s: %s", params.codec.value, exc)
        return params
    return dataclasses.replace(params, parameter_sets=ordered, width=info.width, height=info.height)


def _decode_sets(value: str) -> list[bytes]:
    sets = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            sets.append(base64.b64decode(item + "=" * (-len(item) % 4), validate=True))
        except (binascii.Error, ValueError):
            logger.warning("ignoring undecodable SDP parameter set %r", item[:64])
    return [s for s in sets if s]


def _aac_params(rate: int, channels: int, fmtp: dict[str, str]) -> CodecParams:
    mode = fmtp.get("mode", "")
    if mode.lower() != "aac-hbr":
        raise UnsupportedEncodingError(f"MPEG4-GENERIC mode={mode!r} is not supported (AAC-hbr)")
    for key, expected in AAC_HBR_FIELDS.items():
        if fmtp.get(key, expected).strip() != expected:
            raise UnsupportedEncodingError(
                f"MPEG4-GENERIC {key}={fmtp[key]} is not supported (AAC-hbr uses {expected})"
            )
    config_hex = fmtp.get("config", "").strip()
    try:
        config = bytes.fromhex(config_hex)
    except ValueError:
        raise SdpError(f"MPEG4-GENERIC config {config_hex!r} is not hexadecimal") from None
    if not config:
        raise SdpError("MPEG4-GENERIC media without an AudioSpecificConfig (fmtp config)")
    return CodecParams(Codec.AAC, rate, sample_rate=rate, channels=channels, audio_config=config)


def _jpeg_size(media: MediaDescription, payload_type: int) -> tuple[int, int]:
    """Picture size from a=framesize:<pt> W-H or a=x-dimensions:W,H; (0, 0) if neither."""
    for value in media.attribute_values("framesize"):
        pt, _, size = value.strip().partition(" ")
        if pt == str(payload_type):
            return _size_pair(size, "-")
    dims = media.attribute("x-dimensions")
    if dims:
        return _size_pair(dims, ",")
    return 0, 0


def _size_pair(text: str, separator: str) -> tuple[int, int]:
    width, _, height = text.strip().partition(separator)
    if width.isdigit() and height.isdigit():
        return int(width), int(height)
    return 0, 0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
