"""SPS parsing: picture size, profile and level from real encoder output and hand-made SPS."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats.h26x import (
    H264_SYNTAX,
    H265_SYNTAX,
    BitReader,
    BitWriter,
    H26xError,
    NalSyntax,
    parse_h264_sps,
    parse_h265_sps,
    split_length_prefixed,
)
from tests.formats.h26x.streams import encode, h264_sps, h265_sps, has_encoder

ENCODED = [
    # (encoder, width, height, pix_fmt, extra options, profile_idc, chroma_format_idc)
    ("libx264", 320, 180, "yuv420p", (), 100, 1),
    ("libx264", 1920, 1080, "yuv420p", (("profile", "main"),), 77, 1),
    ("libx264", 322, 182, "yuv444p", (("x264-params", "cqm=jvt"),), 244, 3),
    ("libx264", 320, 182, "yuv422p", (("x264-params", "interlaced=1"),), 122, 2),
    ("libx264", 176, 144, "gray", (), 100, 0),
    ("libx265", 320, 180, "yuv420p", (), 1, 1),
    ("libx265", 322, 182, "yuv444p", (), 4, 3),
    ("libx265", 330, 186, "yuv422p", (), 4, 2),
]


def _first_sps(units: tuple[bytes, ...], syntax: NalSyntax) -> bytes:
    for data in units:
        for nal in split_length_prefixed(data):
            if syntax.nal_type(nal) == syntax.sps_type:
                return nal
    raise AssertionError("stream has no SPS")


@pytest.mark.parametrize(
    ("encoder", "width", "height", "pix", "extra", "profile", "chroma"), ENCODED
)
def test_sps_of_encoded_streams(
    encoder: str,
    width: int,
    height: int,
    pix: str,
    extra: tuple[tuple[str, str], ...],
    profile: int,
    chroma: int,
) -> None:
    if not has_encoder(encoder):
        pytest.skip(f"{encoder} not in this FFmpeg build")
    units = encode(encoder, width, height, frames=1, pix_fmt=pix, extra=extra)
    syntax = H264_SYNTAX if encoder == "libx264" else H265_SYNTAX
    info = syntax.parse_sps(_first_sps(tuple(u.data for u in units), syntax))
    assert (info.width, info.height) == (width, height)
    assert info.profile_idc == profile
    assert info.chroma_format_idc == chroma
    assert info.bit_depth_luma == 8
    assert info.level_idc > 0


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        # 1080p as cameras send it: 68 macroblock rows, 8 lines cropped at the bottom.
        ({"width_mbs": 120, "height_map_units": 68, "crop": (0, 0, 0, 4)}, (1920, 1080)),
        ({"width_mbs": 80, "height_map_units": 45}, (1280, 720)),
        # field coding: map units are field macroblock pairs, crop unit doubles vertically
        (
            {
                "width_mbs": 45,
                "height_map_units": 18,
                "frame_mbs_only": False,
                "crop": (1, 1, 0, 2),
            },
            (45 * 16 - 4, 18 * 32 - 8),
        ),
        ({"width_mbs": 22, "height_map_units": 18, "poc_type": 1}, (352, 288)),
        ({"width_mbs": 22, "height_map_units": 18, "poc_type": 2}, (352, 288)),
        (
            {
                "width_mbs": 40,
                "height_map_units": 30,
                "profile_idc": 100,
                "scaling_lists": True,
                "crop": (2, 2, 2, 2),
            },
            (640 - 8, 480 - 8),
        ),
        (
            {"width_mbs": 40, "height_map_units": 30, "profile_idc": 100, "chroma_format_idc": 0},
            (640, 480),
        ),
        # 4:2:2: chroma is full height, so the vertical crop unit is 1
        (
            {
                "width_mbs": 40,
                "height_map_units": 30,
                "profile_idc": 122,
                "chroma_format_idc": 2,
                "crop": (0, 1, 0, 3),
            },
            (638, 477),
        ),
        (
            {
                "width_mbs": 40,
                "height_map_units": 30,
                "profile_idc": 244,
                "chroma_format_idc": 3,
                "scaling_lists": True,
                "crop": (1, 0, 1, 0),
            },
            (639, 479),
        ),
        (
            {
                "width_mbs": 40,
                "height_map_units": 30,
                "profile_idc": 244,
                "chroma_format_idc": 3,
                "separate_colour_plane": True,
                "crop": (1, 0, 1, 0),
            },
            (639, 479),
        ),
    ],
)
def test_hand_made_h264_sps(kwargs: dict[str, object], size: tuple[int, int]) -> None:
    info = parse_h264_sps(h264_sps(**kwargs))  # type: ignore[arg-type]
    assert (info.width, info.height) == size
    assert info.profile_idc == kwargs.get("profile_idc", 66)
    assert info.level_idc == 31


@pytest.mark.parametrize(
    ("kwargs", "size"),
    [
        ({"width": 1920, "height": 1088, "conformance": (0, 0, 0, 4)}, (1920, 1080)),
        ({"width": 3840, "height": 2160}, (3840, 2160)),
        (
            {"width": 640, "height": 480, "chroma_format_idc": 2, "conformance": (1, 1, 1, 1)},
            (636, 478),
        ),
        (
            {"width": 640, "height": 480, "chroma_format_idc": 3, "conformance": (1, 1, 1, 1)},
            (638, 478),
        ),
        (
            {"width": 640, "height": 480, "chroma_format_idc": 0, "conformance": (1, 0, 0, 1)},
            (639, 479),
        ),
        ({"width": 1280, "height": 720, "max_sub_layers_minus1": 1}, (1280, 720)),
        (
            {"width": 1280, "height": 736, "max_sub_layers_minus1": 6, "conformance": (0, 0, 0, 8)},
            (1280, 720),
        ),
    ],
)
def test_hand_made_h265_sps(kwargs: dict[str, object], size: tuple[int, int]) -> None:
    info = parse_h265_sps(h265_sps(**kwargs))  # type: ignore[arg-type]
    assert (info.width, info.height) == size
    assert (info.profile_idc, info.level_idc) == (1, 93)


def test_sps_errors_name_the_problem() -> None:
    with pytest.raises(H26xError, match="not an SPS"):
        parse_h264_sps(b"\x68\xce\x3c\x80")
    with pytest.raises(H26xError, match="not an SPS"):
        parse_h265_sps(b"\x44\x01\xc1")
    with pytest.raises(H26xError, match="no payload"):
        parse_h264_sps(b"\x67")
    with pytest.raises(H26xError, match="bitstream ends"):
        parse_h264_sps(h264_sps(80, 45)[:6])
    with pytest.raises(H26xError, match="MAX_SPS_BYTES"):
        parse_h264_sps(b"\x67" + b"\x42" * 5000)
    with pytest.raises(H26xError, match="picture width"):
        parse_h265_sps(h265_sps(20_000, 100))
    with pytest.raises(H26xError, match="chroma_format_idc 5"):
        parse_h265_sps(h265_sps(640, 480, chroma_format_idc=5))


@settings(max_examples=2000)
@given(st.binary(max_size=80))
def test_sps_parsers_raise_only_declared_errors(data: bytes) -> None:
    for parse, header in ((parse_h264_sps, b"\x67"), (parse_h265_sps, b"\x42\x01")):
        try:
            info = parse(header + data)
        except H26xError:
            continue
        assert info.width > 0 and info.height > 0


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(-(2**20), 2**20)), max_size=20))
def test_exp_golomb_round_trip(values: list[tuple[int, int]]) -> None:
    w = BitWriter()
    for unsigned, signed in values:
        w.ue(unsigned)
        w.se(signed)
        w.u(3, unsigned & 7)
    r = BitReader(w.rbsp_bytes())
    for unsigned, signed in values:
        assert r.ue() == unsigned
        assert r.se() == signed
        assert r.u(3) == unsigned & 7
    assert r.u(1) == 1  # rbsp_stop_one_bit
    assert r.remaining < 8


def test_exp_golomb_codes_on_the_wire() -> None:
    w = BitWriter()
    for value in (0, 1, 2, 3, 7):
        w.ue(value)
    # 1 010 011 00100 0001000, then the stop bit and padding
    assert w.rbsp_bytes() == bytes([0b10100110, 0b01000001, 0b00010000])
    with pytest.raises(H26xError, match="exp-Golomb"):
        BitReader(b"\x00" * 5).ue()
