"""NAL framing: Annex B and length-prefixed splitting, NAL types, emulation prevention, limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats import h26x
from app.formats.h26x import (
    H264_SYNTAX,
    H265_SYNTAX,
    H26xError,
    add_emulation_prevention,
    h264_nal_type,
    h265_nal_type,
    join_annexb,
    join_length_prefixed,
    remove_emulation_prevention,
    split_annexb,
    split_length_prefixed,
)


@pytest.mark.parametrize(
    ("stream", "nals"),
    [
        (b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce", [b"\x67\x42", b"\x68\xce"]),
        (b"\x00\x00\x01\x65\x88\x00\x00\x00\x00\x01\x41\x9a", [b"\x65\x88", b"\x41\x9a"]),
        # leading junk before the first start code and trailing_zero_8bits are not NAL bytes
        (b"\xff\xee\x00\x00\x01\x09\xf0\x00\x00", [b"\x09\xf0"]),
        # empty NAL units between back-to-back start codes are skipped
        (b"\x00\x00\x01\x00\x00\x01\x06\x05", [b"\x06\x05"]),
        (b"", []),
        (b"\x01\x02\x03", []),
    ],
)
def test_split_annexb(stream: bytes, nals: list[bytes]) -> None:
    assert split_annexb(stream) == nals


def test_join_annexb_uses_four_byte_start_codes() -> None:
    assert join_annexb([b"\x67\x42", b"\x68"]) == b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x68"


def test_length_prefixed_layout() -> None:
    data = join_length_prefixed([b"\x67\x42\x00", b"\x68"])
    assert data == b"\x00\x00\x00\x03\x67\x42\x00\x00\x00\x00\x01\x68"
    assert split_length_prefixed(data) == [b"\x67\x42\x00", b"\x68"]
    assert h26x.length_prefixed_to_annexb(data) == join_annexb([b"\x67\x42\x00", b"\x68"])
    assert h26x.annexb_to_length_prefixed(join_annexb([b"\x67\x42\x01", b"\x68"])) == (
        join_length_prefixed([b"\x67\x42\x01", b"\x68"])
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00", "truncated NAL length"),
        (b"\x00\x00\x00\x00", "zero-length"),
        (b"\x00\x00\x00\x05\x65\x88", "runs past the end"),
        (b"\x00\x50\x00\x00", "exceeds MAX_NAL_BYTES"),
    ],
)
def test_split_length_prefixed_rejects(data: bytes, message: str) -> None:
    with pytest.raises(H26xError, match=message):
        split_length_prefixed(data)


def test_nal_count_limit() -> None:
    many = [b"\x09\xf0"] * (h26x.MAX_NALS_PER_AU + 1)
    with pytest.raises(H26xError, match="MAX_NALS_PER_AU"):
        join_length_prefixed(many)
    with pytest.raises(H26xError, match="MAX_NALS_PER_AU"):
        split_length_prefixed(b"\x00\x00\x00\x02\x09\xf0" * (h26x.MAX_NALS_PER_AU + 1))
    with pytest.raises(H26xError, match="MAX_NALS_PER_AU"):
        split_annexb(join_annexb(many))
    assert len(split_length_prefixed(join_length_prefixed(many[:-1]))) == h26x.MAX_NALS_PER_AU


def test_nal_size_limit_in_annexb() -> None:
    with pytest.raises(H26xError, match="MAX_NAL_BYTES"):
        split_annexb(b"\x00\x00\x01\x65" + b"\x11" * h26x.MAX_NAL_BYTES)


def test_nal_types() -> None:
    assert h264_nal_type(b"\x67\x42") == 7
    assert h264_nal_type(b"\x65") == 5
    assert h264_nal_type(b"\x41") == 1
    assert h265_nal_type(b"\x40\x01") == 32
    assert h265_nal_type(b"\x26\x01") == 19
    assert h265_nal_type(b"\x2a\x01") == 21
    with pytest.raises(H26xError):
        h264_nal_type(b"")
    with pytest.raises(H26xError):
        h265_nal_type(b"\x40")


def test_keyframe_detection() -> None:
    assert H264_SYNTAX.is_keyframe([b"\x67", b"\x68", b"\x65\x88"])
    assert not H264_SYNTAX.is_keyframe([b"\x06\x05", b"\x41\x9a", b"\x01\x9a"])
    irap = [bytes((t << 1, 1)) for t in range(16, 24)]
    assert all(H265_SYNTAX.is_keyframe([nal]) for nal in irap)
    assert not H265_SYNTAX.is_keyframe([bytes((t << 1, 1)) for t in (0, 1, 9, 15, 24, 32, 39)])


def test_split_parameter_sets_orders_and_requires_all() -> None:
    vps, sps, pps = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1"
    assert H265_SYNTAX.split_parameter_sets([pps, vps, sps]) == (vps, sps, pps)
    with pytest.raises(H26xError, match=r"lack NAL type\(s\) \[32\]"):
        H265_SYNTAX.split_parameter_sets([sps, pps])


@pytest.mark.parametrize(
    ("rbsp", "nal"),
    [
        (b"\x00\x00\x00", b"\x00\x00\x03\x00"),
        (b"\x00\x00\x01", b"\x00\x00\x03\x01"),
        (b"\x00\x00\x02\x00\x00\x03", b"\x00\x00\x03\x02\x00\x00\x03\x03"),
        (b"\x00\x00\x04", b"\x00\x00\x04"),
        (b"\x00\x00\x00\x00", b"\x00\x00\x03\x00\x00\x03"),
        (b"\x12\x00", b"\x12\x00"),
        (b"\x12\x00\x00", b"\x12\x00\x00\x03"),
    ],
)
def test_emulation_prevention_vectors(rbsp: bytes, nal: bytes) -> None:
    assert add_emulation_prevention(rbsp) == nal
    assert remove_emulation_prevention(nal) == rbsp


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_emulation_prevention_round_trip(rbsp: bytes) -> None:
    escaped = add_emulation_prevention(rbsp)
    assert remove_emulation_prevention(escaped) == rbsp
    for marker in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
        assert marker not in escaped


@settings(max_examples=300)
@given(st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=8))
def test_annexb_round_trip(payloads: list[bytes]) -> None:
    # A real NAL never ends in a zero byte (rbsp_stop_one_bit) and is emulation-prevented.
    nals = [add_emulation_prevention(b"\x65" + p + b"\x80") for p in payloads]
    assert split_annexb(join_annexb(nals)) == nals
    assert split_length_prefixed(join_length_prefixed(nals)) == nals
