"""H.264/H.265 bitstream helpers: NAL framing, emulation prevention, SPS parsing, keyframes."""

from __future__ import annotations

from app.formats.h26x.bits import BitReader, BitWriter
from app.formats.h26x.nal import (
    LENGTH_PREFIX_BYTES,
    MAX_NAL_BYTES,
    MAX_NALS_PER_AU,
    H26xError,
    add_emulation_prevention,
    annexb_to_length_prefixed,
    h264_nal_type,
    h265_nal_type,
    join_annexb,
    join_length_prefixed,
    length_prefixed_to_annexb,
    remove_emulation_prevention,
    split_annexb,
    split_length_prefixed,
)
from app.formats.h26x.sps import SpsInfo, parse_h264_sps, parse_h265_sps
from app.formats.h26x.syntax import H264_SYNTAX, H265_SYNTAX, NalSyntax, syntax_for

__all__ = [
    "H264_SYNTAX",
    "H265_SYNTAX",
    "LENGTH_PREFIX_BYTES",
    "MAX_NALS_PER_AU",
    "MAX_NAL_BYTES",
    "BitReader",
    "BitWriter",
    "H26xError",
    "NalSyntax",
    "SpsInfo",
    "add_emulation_prevention",
    "annexb_to_length_prefixed",
    "h264_nal_type",
    "h265_nal_type",
    "join_annexb",
    "join_length_prefixed",
    "length_prefixed_to_annexb",
    "parse_h264_sps",
    "parse_h265_sps",
    "remove_emulation_prevention",
    "split_annexb",
    "split_length_prefixed",
    "syntax_for",
]
