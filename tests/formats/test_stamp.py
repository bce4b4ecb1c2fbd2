"""Frame stamp: exact block layout, round trips in every pixel layout, lossy survival, refusals."""

from __future__ import annotations

import fractions

import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ErrorKind
from app.formats.stamp import (
    BLOCK_PX,
    STAMP_HEIGHT,
    STAMP_WIDTH,
    Stamp,
    StampError,
    draw_stamp,
    read_stamp,
)

INDEX = st.integers(min_value=0, max_value=2**32 - 1)
TIME_US = st.integers(min_value=0, max_value=2**64 - 1)
# 2026-01-01T00:00:00.123456Z
SOME_US = 1_767_225_600_123_456


def _block(image: npt.NDArray[np.uint8], row: int, col: int) -> npt.NDArray[np.uint8]:
    return image[row * BLOCK_PX : (row + 1) * BLOCK_PX, col * BLOCK_PX : (col + 1) * BLOCK_PX]


def test_block_layout_is_big_endian_msb_left() -> None:
    image = np.full((48, 1100), 77, dtype=np.uint8)
    draw_stamp(image, 0x8000_0001, 0x0123_4567_89AB_CDEF)

    index_bits = [1] + [0] * 30 + [1]
    for col, bit in enumerate(index_bits):
        assert np.all(_block(image, 0, col) == (255 if bit else 0)), f"index block {col}"
    time_bits = [int(b) for b in f"{0x0123_4567_89AB_CDEF:064b}"]
    assert time_bits[:8] == [0, 0, 0, 0, 0, 0, 0, 1]
    for col, bit in enumerate(time_bits):
        assert np.all(_block(image, 1, col) == (255 if bit else 0)), f"time block {col}"
    # Outside the stamp nothing changes: the rest of row 0, right of 1024 px, below 32 px.
    assert np.all(image[:BLOCK_PX, 32 * BLOCK_PX :] == 77)
    assert np.all(image[:, STAMP_WIDTH:] == 77)
    assert np.all(image[STAMP_HEIGHT:] == 77)
    assert read_stamp(image) == Stamp(0x8000_0001, 0x0123_4567_89AB_CDEF)


def test_colour_pictures_get_neutral_blocks_in_every_channel() -> None:
    image = np.zeros((32, 1024, 4), dtype=np.uint8)
    draw_stamp(image, 1, 0)
    assert np.all(_block(image, 0, 31) == 255)  # the least significant index bit, RGBA alike
    assert np.all(_block(image, 0, 30) == 0)
    assert np.all(image[BLOCK_PX:] == 0)


@settings(max_examples=200)
@given(index=INDEX, capture_us=TIME_US, channels=st.sampled_from([0, 3, 4]))
def test_round_trip(index: int, capture_us: int, channels: int) -> None:
    shape = (STAMP_HEIGHT, STAMP_WIDTH) if channels == 0 else (STAMP_HEIGHT, STAMP_WIDTH, channels)
    image = np.full(shape, 128, dtype=np.uint8)
    draw_stamp(image, index, capture_us)
    stamp = read_stamp(image)
    assert (stamp.index, stamp.capture_us) == (index, capture_us)
    assert stamp.capture_ns == capture_us * 1000


@settings(max_examples=100)
@given(index=INDEX, capture_us=TIME_US, seed=st.integers(0, 2**32 - 1))
def test_survives_noise_and_block_edges(index: int, capture_us: int, seed: int) -> None:
    """Noise of ±60 everywhere and ringing on the outer 4 px of each block do not change a bit."""
    rng = np.random.default_rng(seed)
    image = np.zeros((STAMP_HEIGHT, STAMP_WIDTH), dtype=np.uint8)
    draw_stamp(image, index, capture_us)
    noisy = image.astype(np.int16) + rng.integers(-60, 61, size=image.shape)
    edges = np.ones((BLOCK_PX, BLOCK_PX), dtype=bool)
    edges[4:12, 4:12] = False
    edge_mask = np.tile(edges, (2, STAMP_WIDTH // BLOCK_PX))
    noisy[edge_mask] = rng.integers(0, 256, size=int(edge_mask.sum()))
    assert read_stamp(np.clip(noisy, 0, 255).astype(np.uint8)) == Stamp(index, capture_us)


def test_survives_lossy_jpeg_round_trip_in_rgb() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(64, 1024, 3), dtype=np.uint8)
    draw_stamp(image, 123_456_789, SOME_US)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 1024, 64, "yuvj420p"
    encoder.time_base = fractions.Fraction(1, 25)
    encoder.qmin = encoder.qmax = 31  # the coarsest quantizer
    encoder.open()
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    frame.pts = 0
    jpeg = b"".join(bytes(p) for p in encoder.encode(frame))
    decoded = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))[0]

    rgb = decoded.to_ndarray(format="rgb24")
    bgr = decoded.to_ndarray(format="bgr24")
    luma = decoded.to_ndarray(format="gray")
    assert len(jpeg) < image.size // 4
    assert np.abs(rgb.astype(np.int16) - image).max() > 64  # it really was lossy
    for picture in (rgb, bgr, luma):
        assert read_stamp(picture) == Stamp(123_456_789, SOME_US)


def test_ambiguous_block_is_refused_with_its_position() -> None:
    image = np.zeros((STAMP_HEIGHT, STAMP_WIDTH), dtype=np.uint8)
    draw_stamp(image, 5, SOME_US)
    _block(image, 1, 40)[4:12, 4:12] = 128
    with pytest.raises(StampError, match=r"block 40 of row 1 is ambiguous: mean 128\.0") as info:
        read_stamp(image)
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT


def test_threshold_edges() -> None:
    image = np.zeros((STAMP_HEIGHT, STAMP_WIDTH), dtype=np.uint8)
    image[:BLOCK_PX, :BLOCK_PX] = 192  # clearly bright: MSB of the index set
    image[BLOCK_PX:, -BLOCK_PX:] = 64  # clearly dark: LSB of the time clear
    image[:BLOCK_PX, 40 * BLOCK_PX : 41 * BLOCK_PX] = 128  # outside the 32 index blocks: ignored
    assert read_stamp(image) == Stamp(0x8000_0000, 0)
    image[:BLOCK_PX, :BLOCK_PX] = 191
    with pytest.raises(StampError, match="block 0 of row 0"):
        read_stamp(image)


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((32, 1023), np.uint8, r"1023×32 is too small .*1024×32"),
        ((31, 1024), np.uint8, r"1024×31 is too small"),
        ((32, 1024, 2), np.uint8, r"got shape \(32, 1024, 2\)"),
        ((32,), np.uint8, r"got shape \(32,\)"),
        ((32, 1024), np.uint16, "8-bit; got dtype uint16"),
    ],
)
def test_unusable_pictures_are_refused(
    shape: tuple[int, ...], dtype: type[np.generic], message: str
) -> None:
    image = np.zeros(shape, dtype=dtype)
    with pytest.raises(StampError, match=message):
        read_stamp(image)
    with pytest.raises(StampError, match=message):
        draw_stamp(image, 0, 0)


@pytest.mark.parametrize(
    ("index", "capture_us", "message"),
    [
        (-1, 0, "frame index -1"),
        (2**32, 0, "frame index 4294967296"),
        (0, -5, "capture time -5"),
        (0, 2**64, "capture time 18446744073709551616"),
    ],
)
def test_values_outside_the_stamp_are_refused(index: int, capture_us: int, message: str) -> None:
    with pytest.raises(StampError, match=message):
        draw_stamp(np.zeros((32, 1024), dtype=np.uint8), index, capture_us)


@settings(max_examples=200)
@given(seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([(0, 256), (0, 2), (60, 200)]))
def test_garbage_pictures_raise_only_stamp_error(seed: int, levels: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(*levels, size=(STAMP_HEIGHT, STAMP_WIDTH), dtype=np.uint8)
    try:
        stamp = read_stamp(image)
    except StampError:
        return
    assert 0 <= stamp.index < 2**32
    assert 0 <= stamp.capture_us < 2**64
