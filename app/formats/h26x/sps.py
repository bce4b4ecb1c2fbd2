"""Sequence parameter set parsing: picture size, profile and level of H.264 and H.265 streams.

Only the fields up to the cropping window are read; VUI and later syntax do not affect the
picture size and are where vendor SPS quirks live.
"""

from __future__ import annotations

import dataclasses

from app.formats.h26x.bits import BitReader
from app.formats.h26x.nal import (
    H26xError,
    h264_nal_type,
    h265_nal_type,
    remove_emulation_prevention,
)

#: Largest SPS NAL accepted (with full scaling lists an H.264 SPS is a few hundred bytes).
MAX_SPS_BYTES = 4096
#: Largest coded picture side accepted in luma samples (H.265 level 6.2 allows 16888).
MAX_PICTURE_SIDE = 16_888

H264_SPS_TYPE = 7
H265_SPS_TYPE = 33

# H.264 profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (7.3.2.1.1).
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# (SubWidthC, SubHeightC) per chroma_format_idc (Table 6-1 of both specs); 0 = monochrome.
_CHROMA_SUBSAMPLING = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}


@dataclasses.dataclass(frozen=True, slots=True)
class SpsInfo:
    """What Custos needs from an SPS: display size after cropping, profile and level."""

    width: int
    height: int
    profile_idc: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    sps_id: int


def parse_h264_sps(nal: bytes) -> SpsInfo:
    """Parse an H.264 SPS NAL unit (with its 1-byte header) per ITU-T H.264 7.3.2.1.1."""
    _check_sps(nal, 1)
    if h264_nal_type(nal) != H264_SPS_TYPE:
        raise H26xError(f"H.264 NAL type {h264_nal_type(nal)} is not an SPS (7)")
    r = BitReader(remove_emulation_prevention(nal[1:]))
    profile_idc = r.u(8)
    r.skip(8)  # constraint_set flags and reserved_zero_2bits
    level_idc = r.u(8)
    sps_id = _bounded(r.ue(), 31, "seq_parameter_set_id")
    chroma_format_idc = 1
    separate_colour_plane = False
    bit_depth_luma = 8
    if profile_idc in _H264_HIGH_PROFILES:
        chroma_format_idc = _bounded(r.ue(), 3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = 8 + _bounded(r.ue(), 6, "bit_depth_luma_minus8")
        _bounded(r.ue(), 6, "bit_depth_chroma_minus8")
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if index < 6 else 64)
    _bounded(r.ue(), 12, "log2_max_frame_num_minus4")
    poc_type = _bounded(r.ue(), 2, "pic_order_cnt_type")
    if poc_type == 0:
        _bounded(r.ue(), 12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()
        r.se()
        for _ in range(_bounded(r.ue(), 255, "num_ref_frames_in_pic_order_cnt_cycle")):
            r.se()
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.flag() else (0, 0, 0, 0)
    field_factor = 1 if frame_mbs_only else 2
    if separate_colour_plane or chroma_format_idc == 0:
        crop_x, crop_y = 1, field_factor
    else:
        sub_w, sub_h = _CHROMA_SUBSAMPLING[chroma_format_idc]
        crop_x, crop_y = sub_w, sub_h * field_factor
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = field_factor * height_map_units * 16 - crop_y * (crop[2] + crop[3])
    return SpsInfo(
        width=_size(width, "width"),
        height=_size(height, "height"),
        profile_idc=profile_idc,
        level_idc=level_idc,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        sps_id=sps_id,
    )


def parse_h265_sps(nal: bytes) -> SpsInfo:
    """Parse an H.265 SPS NAL unit (with its 2-byte header) per ITU-T H.265 7.3.2.2."""
    _check_sps(nal, 2)
    if h265_nal_type(nal) != H265_SPS_TYPE:
        raise H26xError(f"H.265 NAL type {h265_nal_type(nal)} is not an SPS (33)")
    r = BitReader(remove_emulation_prevention(nal[2:]))
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 > 6:
        raise H26xError(f"sps_max_sub_layers_minus1 {max_sub_layers_minus1} exceeds 6")
    r.skip(1)  # sps_temporal_id_nesting_flag
    profile_idc, level_idc = _profile_tier_level(r, max_sub_layers_minus1)
    sps_id = _bounded(r.ue(), 15, "sps_seq_parameter_set_id")
    chroma_format_idc = _bounded(r.ue(), 3, "chroma_format_idc")
    separate_colour_plane = chroma_format_idc == 3 and r.flag()
    pic_width = r.ue()
    pic_height = r.ue()
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.flag() else (0, 0, 0, 0)
    bit_depth_luma = 8 + _bounded(r.ue(), 8, "bit_depth_luma_minus8")
    sub_w, sub_h = (1, 1) if separate_colour_plane else _CHROMA_SUBSAMPLING[chroma_format_idc]
    return SpsInfo(
        width=_size(pic_width - sub_w * (crop[0] + crop[1]), "width"),
        height=_size(pic_height - sub_h * (crop[2] + crop[3]), "height"),
        profile_idc=profile_idc,
        level_idc=level_idc,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        sps_id=sps_id,
    )


def _profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> tuple[int, int]:
    """profile_tier_level(1, max_sub_layers_minus1) (7.3.3) → (general_profile_idc, level)."""
    r.skip(3)  # general_profile_space, general_tier_flag
    profile_idc = r.u(5)
    r.skip(32 + 48)  # compatibility flags; source flags + 43 constraint bits + inbld/reserved
    level_idc = r.u(8)
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        if profile_present:
            r.skip(88)
        if level_present:
            r.skip(8)
    return profile_idc, level_idc


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last_scale = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise H26xError(f"delta_scale {delta} outside -128..127")
            next_scale = (last_scale + delta + 256) % 256
        last_scale = next_scale if next_scale != 0 else last_scale


def _check_sps(nal: bytes, header: int) -> None:
    if len(nal) > MAX_SPS_BYTES:
        raise H26xError(f"SPS of {len(nal)} bytes exceeds MAX_SPS_BYTES={MAX_SPS_BYTES}")
    if len(nal) <= header:
        raise H26xError(f"SPS of {len(nal)} bytes has no payload")


def _bounded(value: int, maximum: int, name: str) -> int:
    if value > maximum:
        raise H26xError(f"SPS {name} {value} exceeds {maximum}")
    return value


def _size(value: int, name: str) -> int:
    if not 0 < value <= MAX_PICTURE_SIDE:
        raise H26xError(f"SPS gives picture {name} {value}, outside 1..{MAX_PICTURE_SIDE}")
    return value
