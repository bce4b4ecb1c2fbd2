"""Test streams: real H.264/H.265 access units encoded with PyAV, and hand-made parameter sets."""

from __future__ import annotations

import dataclasses
import fractions
import functools
import random
from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from app.formats.h26x import (
    BitWriter,
    add_emulation_prevention,
    annexb_to_length_prefixed,
    join_length_prefixed,
    length_prefixed_to_annexb,
)

FPS = 25


@dataclasses.dataclass(frozen=True)
class EncodedUnit:
    """One encoded access unit in the stored layout (4-byte length-prefixed NAL units)."""

    data: bytes
    keyframe: bool


def has_encoder(name: str) -> bool:
    return name in av.codecs_available


@functools.cache
def encode(
    codec: str,
    width: int,
    height: int,
    frames: int = 30,
    pix_fmt: str = "yuv420p",
    gop: int = 10,
    extra: tuple[tuple[str, str], ...] = (),
) -> tuple[EncodedUnit, ...]:
    """`frames` frames of a moving pattern with a static noise patch (big I, small P frames)."""
    ctx = cast(VideoCodecContext, av.CodecContext.create(codec, "w"))
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS)
    ctx.gop_size = gop
    ctx.max_b_frames = 0
    options = {"bf": "0"} if codec == "libx264" else {"x265-params": "log-level=none:bframes=0"}
    options.update(dict(extra))
    ctx.options = options
    noise = np.random.default_rng(7).integers(0, 256, (height // 2, width // 2, 3), dtype=np.uint8)
    yy, xx = np.indices((height, width))
    units: list[EncodedUnit] = []
    for index in range(frames):
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[..., 0] = (xx + 3 * index) % 256
        image[..., 1] = (yy * 2 + index) % 256
        image[..., 2] = 128
        image[: height // 2, : width // 2] = noise
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
        frame.pts = index
        units.extend(_units(ctx.encode(frame)))
    units.extend(_units(ctx.encode(None)))
    return tuple(units)


def _units(packets: list[av.Packet]) -> list[EncodedUnit]:  # type: ignore[type-arg]
    return [EncodedUnit(annexb_to_length_prefixed(bytes(p)), bool(p.is_keyframe)) for p in packets]


def decode(codec: str, units: list[bytes]) -> list[tuple[int, int]]:
    """Decode stored-layout access units with FFmpeg; (width, height) of every frame."""
    ctx = cast(VideoCodecContext, av.CodecContext.create(codec, "r"))
    sizes = []
    for data in units:
        for frame in ctx.decode(av.Packet(length_prefixed_to_annexb(data))):
            sizes.append((frame.width, frame.height))
    for frame in ctx.decode(None):
        sizes.append((frame.width, frame.height))
    return sizes


def h264_sps(
    width_mbs: int,
    height_map_units: int,
    *,
    profile_idc: int = 66,
    level_idc: int = 31,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    scaling_lists: bool = False,
    poc_type: int = 0,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
) -> bytes:
    """An H.264 SPS NAL unit (header 0x67) with the given size fields, per H.264 7.3.2.1.1."""
    w = BitWriter()
    w.u(8, profile_idc)
    w.u(8, 0)
    w.u(8, level_idc)
    w.ue(0)
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.flag(separate_colour_plane)
        w.ue(0)
        w.ue(0)
        w.flag(False)
        w.flag(scaling_lists)
        if scaling_lists:
            for index in range(8 if chroma_format_idc != 3 else 12):
                present = index % 2 == 0
                w.flag(present)
                if present:
                    # nextScale 13, 10, then 0: the list ends early and reads nothing more.
                    for delta in (5, -3, -10):
                        w.se(delta)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.flag(False)
        w.se(-1)
        w.se(2)
        w.ue(3)
        for value in (1, -2, 3):
            w.se(value)
    w.ue(1)  # max_num_ref_frames
    w.flag(False)
    w.ue(width_mbs - 1)
    w.ue(height_map_units - 1)
    w.flag(frame_mbs_only)
    if not frame_mbs_only:
        w.flag(True)
    w.flag(True)
    w.flag(crop is not None)
    if crop is not None:
        for value in crop:
            w.ue(value)
    w.flag(False)  # vui_parameters_present_flag
    return b"\x67" + add_emulation_prevention(w.rbsp_bytes())


def h265_sps(
    width: int,
    height: int,
    *,
    chroma_format_idc: int = 1,
    max_sub_layers_minus1: int = 0,
    conformance: tuple[int, int, int, int] | None = None,
    profile_idc: int = 1,
    level_idc: int = 93,
) -> bytes:
    """An H.265 SPS NAL unit (type 33) up to the bit depth, per H.265 7.3.2.2."""
    w = BitWriter()
    w.u(4, 0)
    w.u(3, max_sub_layers_minus1)
    w.flag(True)
    # profile_tier_level(1, max_sub_layers_minus1)
    w.u(2, 0)
    w.flag(False)
    w.u(5, profile_idc)
    w.u(32, 0x6000_0000)
    w.u(4, 0b1001)
    w.u(32, 0)
    w.u(12, 0)
    w.u(8, level_idc)
    flags = [(i % 2 == 0, True) for i in range(max_sub_layers_minus1)]
    for profile_present, level_present in flags:
        w.flag(profile_present)
        w.flag(level_present)
    if max_sub_layers_minus1 > 0:
        for _ in range(max_sub_layers_minus1, 8):
            w.u(2, 0)
    for profile_present, level_present in flags:
        if profile_present:
            w.u(32, 0xFFFF_FFFF)
            w.u(32, 0xFFFF_FFFF)
            w.u(24, 0xFFFFFF)
        if level_present:
            w.u(8, 0xFF)
    w.ue(0)  # sps_seq_parameter_set_id
    w.ue(chroma_format_idc)
    if chroma_format_idc == 3:
        w.flag(False)
    w.ue(width)
    w.ue(height)
    w.flag(conformance is not None)
    if conformance is not None:
        for value in conformance:
            w.ue(value)
    w.ue(0)  # bit_depth_luma_minus8
    w.ue(0)  # bit_depth_chroma_minus8
    return bytes((33 << 1, 1)) + add_emulation_prevention(w.rbsp_bytes())


H264_PPS = b"\x68\xce\x3c\x80"
H265_VPS = bytes((32 << 1, 1)) + b"\x0c\x01\xff\xff\x01\x60\x00\x00\x03\x00\x00\x03\x00\x00\x5d"
H265_PPS = bytes((34 << 1, 1)) + b"\xc1\x72\xb4\x62\x40"


def h264_slice(nal_type: int, size: int, *, first: bool = True, seed: int = 0) -> bytes:
    """A fake H.264 slice NAL: correct header and first_mb_in_slice bit, random body."""
    body = random.Random(seed).randbytes(size - 2)
    return bytes((0x60 | nal_type, 0x88 if first else 0x08)) + body


def h265_slice(nal_type: int, size: int, *, first: bool = True, seed: int = 0) -> bytes:
    """A fake H.265 slice segment NAL: header, first_slice_segment_in_pic_flag, random body."""
    body = random.Random(seed).randbytes(size - 3)
    return bytes((nal_type << 1, 1, 0xC0 if first else 0x40)) + body


def h265_units(count: int = 12, gop: int = 5) -> list[EncodedUnit]:
    """Hand-made H.265 access units: VPS/SPS/PPS + IDR every `gop`, TRAIL_R otherwise,
    some with two slice segments and some larger than one RTP packet."""
    sps = h265_sps(640, 368, conformance=(0, 0, 0, 4))
    units = []
    for index in range(count):
        if index % gop == 0:
            nals = [H265_VPS, sps, H265_PPS, h265_slice(19, 5000, seed=index)]
        else:
            nals = [h265_slice(1, 300 + 97 * index, seed=index)]
            if index % 3 == 0:
                nals.append(h265_slice(1, 2500, first=False, seed=-index))
        units.append(EncodedUnit(join_length_prefixed(nals), index % gop == 0))
    return units
