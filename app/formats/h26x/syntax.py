"""What differs between H.264 and H.265 at the NAL level, behind one interface for both."""

from __future__ import annotations

from collections.abc import Iterable

from app.core.media import Codec
from app.formats.h26x.nal import H26xError, h264_nal_type, h265_nal_type
from app.formats.h26x.sps import SpsInfo, parse_h264_sps, parse_h265_sps


class NalSyntax:
    """NAL header layout and type numbers of one codec; use H264_SYNTAX or H265_SYNTAX."""

    codec: Codec
    #: Bytes of the NAL unit header (1 for H.264, 2 for H.265).
    header_size: int
    #: Parameter set NAL types in the order they precede a keyframe (and in CodecParams).
    parameter_set_types: tuple[int, ...]
    sps_type: int
    aud_type: int

    def nal_type(self, nal: bytes) -> int:
        raise NotImplementedError

    def is_keyframe_type(self, nal_type: int) -> bool:
        raise NotImplementedError

    def is_vcl_type(self, nal_type: int) -> bool:
        raise NotImplementedError

    def parse_sps(self, nal: bytes) -> SpsInfo:
        raise NotImplementedError

    def is_keyframe(self, nals: Iterable[bytes]) -> bool:
        """True if the access unit holds a random access picture (H.264 IDR, H.265 IRAP)."""
        return any(self.is_keyframe_type(self.nal_type(nal)) for nal in nals)

    def parameter_sets_in(self, nals: Iterable[bytes]) -> dict[int, bytes]:
        """The last parameter set of each type found in `nals`, keyed by NAL type."""
        found: dict[int, bytes] = {}
        for nal in nals:
            nal_type = self.nal_type(nal)
            if nal_type in self.parameter_set_types:
                found[nal_type] = nal
        return found

    def split_parameter_sets(self, sets: Iterable[bytes]) -> tuple[bytes, ...]:
        """Order parameter sets as CodecParams keeps them; error unless each type is present."""
        found = self.parameter_sets_in(sets)
        missing = [t for t in self.parameter_set_types if t not in found]
        if missing:
            raise H26xError(f"{self.codec.value} parameter sets lack NAL type(s) {missing}")
        return tuple(found[t] for t in self.parameter_set_types)


class _H264Syntax(NalSyntax):
    codec = Codec.H264
    header_size = 1
    parameter_set_types = (7, 8)
    sps_type = 7
    aud_type = 9

    def nal_type(self, nal: bytes) -> int:
        return h264_nal_type(nal)

    def is_keyframe_type(self, nal_type: int) -> bool:
        return nal_type == 5

    def is_vcl_type(self, nal_type: int) -> bool:
        return 1 <= nal_type <= 5

    def parse_sps(self, nal: bytes) -> SpsInfo:
        return parse_h264_sps(nal)


class _H265Syntax(NalSyntax):
    codec = Codec.H265
    header_size = 2
    parameter_set_types = (32, 33, 34)
    sps_type = 33
    aud_type = 35

    def nal_type(self, nal: bytes) -> int:
        return h265_nal_type(nal)

    def is_keyframe_type(self, nal_type: int) -> bool:
        # IRAP pictures: BLA 16..18, IDR 19..20, CRA 21, reserved IRAP 22..23.
        return 16 <= nal_type <= 23

    def is_vcl_type(self, nal_type: int) -> bool:
        return nal_type <= 31

    def parse_sps(self, nal: bytes) -> SpsInfo:
        return parse_h265_sps(nal)


H264_SYNTAX: NalSyntax = _H264Syntax()
H265_SYNTAX: NalSyntax = _H265Syntax()


def syntax_for(codec: Codec) -> NalSyntax:
    """The NAL syntax of an H.264 or H.265 codec; H26xError for any other codec."""
    if codec is Codec.H264:
        return H264_SYNTAX
    if codec is Codec.H265:
        return H265_SYNTAX
    raise H26xError(f"codec {codec.value} has no NAL unit syntax")
