"""MP4 sample entries (the `stsd` children) for every codec Custos records, built from CodecParams.

Choices (reasons from EX-07/EX-09 of the export spec, shared/spec/replay-export-signing.md):

- H.264 → `avc3` + `avcC`, H.265 → `hev1` + `hvcC`: stored keyframes keep their in-band
  parameter sets (no NAL unit is filtered or rewritten, which preserves ONVIF Media Signing and
  lets a mid-export parameter change decode); the configuration record still carries the first
  sets so players can set up their decoder before the first sample.
- JPEG → `mp4v` + `esds` with objectTypeIndication 0x6C (JPEG, ISO/IEC 10918-1).
- AAC → `mp4a` + `esds` (0x40) with the stored AudioSpecificConfig.
- G.711 → QuickTime-style `ulaw` / `alaw` audio entries, which FFmpeg and VLC read.
- ONVIF metadata → `metx` with the ONVIF schema namespace.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from app.core.errors import ConfigError
from app.core.media import Codec, CodecParams
from app.formats.bmff.box import box, cstring, full_box
from app.formats.h26x import (
    H26xError,
    h264_nal_type,
    h265_nal_type,
    parse_h264_sps,
    parse_h265_sps,
    remove_emulation_prevention,
)

#: Largest parameter set accepted into a configuration record (its length field is 16 bits).
MAX_PARAMETER_SET_BYTES = 0xFFFF
#: The AudioSampleEntry keeps the rate as 16.16 fixed point, so 65535 Hz is the most it can say.
MAX_AUDIO_SAMPLE_RATE = 0xFFFF
#: AudioSpecificConfig sizes seen in practice are 2–5 bytes; anything far larger is not AAC.
MAX_AUDIO_CONFIG_BYTES = 64

ONVIF_METADATA_NAMESPACE = "http://www.onvif.org/ver10/schema"

#: objectTypeIndication values of the MPEG-4 systems registry.
OTI_AAC = 0x40
OTI_JPEG = 0x6C
_STREAM_VISUAL = 0x04
_STREAM_AUDIO = 0x05

_H264_SPS, _H264_PPS = 7, 8
_H265_VPS, _H265_SPS, _H265_PPS = 32, 33, 34
#: Bytes of an H.265 SPS that surely hold its first 13 RBSP bytes despite emulation prevention.
_SPS_PTL_WINDOW = 40
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 144})
_DATA_REFERENCE_INDEX = 1
_RESOLUTION_72_DPI = 0x00480000


class SampleEntryError(ConfigError):
    """The codec parameters cannot be described by an MP4 sample entry."""


def sample_entry(params: CodecParams) -> bytes:
    """The one sample entry box of a track with these parameters."""
    codec = params.codec
    if codec is Codec.H264:
        return _visual(b"avc3", params, _avcc(params))
    if codec is Codec.H265:
        return _visual(b"hev1", params, _hvcc(params))
    if codec is Codec.JPEG:
        return _visual(b"mp4v", params, _esds(OTI_JPEG, _STREAM_VISUAL, b""))
    if codec is Codec.AAC:
        if not params.audio_config or len(params.audio_config) > MAX_AUDIO_CONFIG_BYTES:
            raise SampleEntryError(
                f"AAC track needs an AudioSpecificConfig of 1..{MAX_AUDIO_CONFIG_BYTES} bytes, "
                f"got {len(params.audio_config)}"
            )
        return _audio(b"mp4a", params, _esds(OTI_AAC, _STREAM_AUDIO, params.audio_config))
    if codec is Codec.PCMU:
        return _audio(b"ulaw", params, b"")
    if codec is Codec.PCMA:
        return _audio(b"alaw", params, b"")
    if codec is Codec.METADATA:
        return box(
            b"metx",
            _sample_entry_header(),
            cstring(""),  # content_encoding: empty = plain XML (EX-07)
            cstring(ONVIF_METADATA_NAMESPACE),
            cstring(""),  # schema_location: unused
        )
    raise SampleEntryError(f"no MP4 sample entry for codec {codec.value}")


def picture_size(params: CodecParams) -> tuple[int, int]:
    """(width, height) of a video track: from the params, else from its SPS (0, 0 if unknown)."""
    if params.width and params.height:
        return params.width, params.height
    try:
        if params.codec is Codec.H264:
            sps = parse_h264_sps(_nals_of_type(params, h264_nal_type, _H264_SPS)[0])
            return sps.width, sps.height
        if params.codec is Codec.H265:
            sps = parse_h265_sps(_nals_of_type(params, h265_nal_type, _H265_SPS)[0])
            return sps.width, sps.height
    except (H26xError, SampleEntryError):
        pass
    return 0, 0


def codec_brand(codec: Codec) -> bytes | None:
    """The ftyp compatible brand that announces this codec's file format, if there is one."""
    return {Codec.H264: b"avc1", Codec.H265: b"hvc1"}.get(codec)


# ---------------------------------------------------------------- entries


def _sample_entry_header() -> bytes:
    return bytes(6) + struct.pack(">H", _DATA_REFERENCE_INDEX)


def _visual(kind: bytes, params: CodecParams, config: bytes) -> bytes:
    width, height = picture_size(params)
    if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
        raise SampleEntryError(
            f"{params.codec.value} track has no usable picture size {width}x{height}"
        )
    compressor = b"Custos"
    return box(
        kind,
        _sample_entry_header(),
        bytes(16),  # pre_defined, reserved, pre_defined[3]
        struct.pack(">HHII", width, height, _RESOLUTION_72_DPI, _RESOLUTION_72_DPI),
        bytes(4),  # reserved
        struct.pack(">H", 1),  # frame_count: one picture per sample
        bytes([len(compressor)]) + compressor.ljust(31, b"\x00"),
        struct.pack(">Hh", 0x0018, -1),  # depth 24, pre_defined -1
        config,
    )


def _audio(kind: bytes, params: CodecParams, config: bytes) -> bytes:
    rate = params.sample_rate or params.clock_rate
    channels = params.channels or 1
    if not 0 < rate <= MAX_AUDIO_SAMPLE_RATE:
        raise SampleEntryError(
            f"{params.codec.value} sample rate {rate} Hz is outside 1..{MAX_AUDIO_SAMPLE_RATE}"
        )
    if not 0 < channels <= 0xFFFF:
        raise SampleEntryError(f"{params.codec.value} channel count {channels} is invalid")
    return box(
        kind,
        _sample_entry_header(),
        bytes(8),  # reserved
        struct.pack(">HHHHI", channels, 16, 0, 0, rate << 16),
        config,
    )


# ---------------------------------------------------------------- configuration records


def _nals_of_type(
    params: CodecParams, type_of: Callable[[bytes], int], nal_type: int
) -> list[bytes]:
    found = [p for p in params.parameter_sets if p and type_of(p) == nal_type]
    if not found:
        raise SampleEntryError(
            f"{params.codec.value} parameters hold no NAL unit of type {nal_type} "
            f"({len(params.parameter_sets)} parameter sets given)"
        )
    for nal in found:
        if len(nal) > MAX_PARAMETER_SET_BYTES:
            raise SampleEntryError(f"parameter set of {len(nal)} bytes is too large")
    return found


def _length_prefixed_16(nals: list[bytes]) -> bytes:
    return b"".join(struct.pack(">H", len(n)) + n for n in nals)


def _avcc(params: CodecParams) -> bytes:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) with 4-byte NAL lengths."""
    sps = _nals_of_type(params, h264_nal_type, _H264_SPS)
    pps = _nals_of_type(params, h264_nal_type, _H264_PPS)
    if len(sps) > 31 or len(pps) > 255 or len(sps[0]) < 4:
        raise SampleEntryError(f"H.264 parameter sets unusable: {len(sps)} SPS, {len(pps)} PPS")
    profile, compat, level = sps[0][1], sps[0][2], sps[0][3]
    record = bytes([1, profile, compat, level, 0xFC | 3, 0xE0 | len(sps)])
    record += _length_prefixed_16(sps) + bytes([len(pps)]) + _length_prefixed_16(pps)
    if profile in _H264_HIGH_PROFILES:
        try:
            info = parse_h264_sps(sps[0])
        except H26xError as exc:
            raise SampleEntryError(f"H.264 SPS unreadable: {exc}") from None
        depth = info.bit_depth_luma - 8
        record += bytes([0xFC | info.chroma_format_idc, 0xF8 | depth, 0xF8 | depth, 0])
    return box(b"avcC", record)


def _hvcc(params: CodecParams) -> bytes:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) with 4-byte NAL lengths."""
    arrays = [
        (nal_type, _nals_of_type(params, h265_nal_type, nal_type))
        for nal_type in (_H265_VPS, _H265_SPS, _H265_PPS)
    ]
    sps = arrays[1][1][0]
    try:
        info = parse_h265_sps(sps)
    except H26xError as exc:
        raise SampleEntryError(f"H.265 SPS unreadable: {exc}") from None
    rbsp = remove_emulation_prevention(sps[2:_SPS_PTL_WINDOW])
    # The SPS opens with one byte of ids and flags, then the 12-byte general profile_tier_level,
    # which the record copies field for field.
    sub_layers = ((rbsp[0] >> 1) & 0x7) + 1
    nesting = rbsp[0] & 1
    general_ptl = rbsp[1:13]
    if len(general_ptl) != 12:
        raise SampleEntryError(f"H.265 SPS of {len(sps)} bytes is too short")
    depth = info.bit_depth_luma - 8
    record = bytes([1]) + general_ptl
    record += struct.pack(
        ">HBBBBHB",
        0xF000,  # min_spatial_segmentation_idc 0
        0xFC,  # parallelismType unknown
        0xFC | info.chroma_format_idc,
        0xF8 | depth,
        0xF8 | depth,
        0,  # avgFrameRate unspecified
        sub_layers << 3 | nesting << 2 | 3,  # constantFrameRate 0, lengthSizeMinusOne 3
    )
    record += bytes([len(arrays)])
    for nal_type, nals in arrays:
        # array_completeness 0: hev1 samples may carry further parameter sets in band.
        record += bytes([nal_type]) + struct.pack(">H", len(nals)) + _length_prefixed_16(nals)
    return box(b"hvcC", record)


def _descriptor(tag: int, body: bytes) -> bytes:
    """An MPEG-4 systems descriptor with the size in 7-bit groups (ISO/IEC 14496-1 8.3.3)."""
    size = len(body)
    groups = [size & 0x7F]
    size >>= 7
    while size:
        groups.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes([tag, *reversed(groups)]) + body


def _esds(object_type: int, stream_type: int, specific: bytes) -> bytes:
    # bufferSizeDB, maxBitrate and avgBitrate are left 0 (unknown); players do not need them.
    decoder_config = bytes([object_type, stream_type << 2 | 1]) + bytes(11)
    if specific:
        decoder_config += _descriptor(0x05, specific)
    es = struct.pack(">HB", 0, 0) + _descriptor(0x04, decoder_config) + _descriptor(0x06, b"\x02")
    return full_box(b"esds", 0, 0, _descriptor(0x03, es))
