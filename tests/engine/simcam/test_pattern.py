"""The test pattern and the camera-like H.264 encoder under it."""

from __future__ import annotations

import av
import numpy as np
import pytest

from app.engine.simcam.encoder import H264Encoder
from app.engine.simcam.pattern import PatternRenderer
from app.formats.h26x import h264_nal_type, length_prefixed_to_annexb, split_length_prefixed
from app.formats.stamp import STAMP_HEIGHT, STAMP_WIDTH, Stamp, read_stamp

CAPTURE_US = 1_767_225_600_040_000


def test_stamp_reads_in_luma_and_after_conversion_to_rgb() -> None:
    renderer = PatternRenderer(1280, 720)
    buffer = renderer.render(1234, CAPTURE_US)
    assert buffer.shape == (1080, 1280)
    assert read_stamp(buffer[:720]) == Stamp(1234, CAPTURE_US)
    rgb = av.VideoFrame.from_ndarray(buffer, format="yuv420p").to_ndarray(format="rgb24")
    assert read_stamp(rgb) == Stamp(1234, CAPTURE_US)
    # The band around the stamp is video black with neutral chroma.
    assert np.all(buffer[:STAMP_HEIGHT, STAMP_WIDTH:] == 16)
    assert np.all(buffer[720 : 720 + STAMP_HEIGHT // 4] == 128)


def test_rendering_is_deterministic_and_moves() -> None:
    first, second = PatternRenderer(1024, 576), PatternRenderer(1024, 576)
    a = first.render(7, CAPTURE_US).copy()
    assert np.array_equal(a, second.render(7, CAPTURE_US))
    b = first.render(8, CAPTURE_US).copy()
    changed = np.mean(a[STAMP_HEIGHT:576] != b[STAMP_HEIGHT:576])
    assert changed > 0.1  # bars, box and noise all move
    # Only the printed time (and the stamp) depend on the capture time.
    c = first.render(8, CAPTURE_US + 1_000_000)
    rows = np.nonzero(np.any(b[:576] != c[:576], axis=1))[0]
    assert rows.min() < STAMP_HEIGHT and rows.max() < 576 // 2


def test_small_sizes_render_and_odd_ones_are_refused() -> None:
    assert read_stamp(PatternRenderer(1024, 64).render(3, 5)[:64]) == Stamp(3, 5)
    with pytest.raises(ValueError, match="1024×60"):
        PatternRenderer(1024, 60)


def test_encoder_makes_a_fixed_gop_with_parameter_sets_in_every_keyframe() -> None:
    encoder = H264Encoder(1024, 64, fps=10, bitrate=500_000)
    renderer = PatternRenderer(1024, 64)
    frames = [encoder.encode(renderer.render(n, CAPTURE_US), n) for n in range(41)]
    assert [n for n, f in enumerate(frames) if f.keyframe] == [0, 20, 40]
    sps, pps = encoder.params.parameter_sets
    assert h264_nal_type(sps) == 7 and h264_nal_type(pps) == 8
    assert sps[1] in (66, 77)  # profile_idc: baseline or main, as cameras send
    for n, frame in enumerate(frames):
        nals = split_length_prefixed(frame.data)
        types = [h264_nal_type(nal) for nal in nals]
        if frame.keyframe:
            assert nals[:2] == [sps, pps] and set(types[2:]) == {5}
        else:
            assert set(types) == {1}, f"frame {n}: {types}"
    # Every keyframe decodes on its own.
    decoder = av.CodecContext.create("h264", "r")
    (picture,) = decoder.decode(av.Packet(length_prefixed_to_annexb(frames[20].data)))
    assert read_stamp(picture.to_ndarray(format="gray")) == Stamp(20, CAPTURE_US)
