"""Stamped test media in the stored layout (app/core/media.py), encoded once per test session.

Video pictures carry the simulated camera's stamp (frame index + capture µs), so a decoded
export frame tells exactly which stored frame it was and when it was captured.
"""

from __future__ import annotations

import dataclasses
import fractions
import functools
from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from app.core.media import Codec, CodecParams
from app.core.time import NS_PER_SECOND, NS_PER_US
from app.engine.simcam.pattern import PatternRenderer
from app.formats.h26x import annexb_to_length_prefixed, h264_nal_type, h265_nal_type, split_annexb

#: 2026-01-01T00:00:00Z, the FakeClock default.
T0 = 1_767_225_600 * NS_PER_SECOND
FPS = 25
FRAME_NS = NS_PER_SECOND // FPS
GOP = 10
WIDTH, HEIGHT = 1024, 64


@dataclasses.dataclass(frozen=True)
class Unit:
    data: bytes
    keyframe: bool


@dataclasses.dataclass(frozen=True)
class Stream:
    params: CodecParams
    units: tuple[Unit, ...]


#: How far the capture clock jumps at a stream's gap.
GAP_NS = 3 * NS_PER_SECOND


def capture_ns(index: int, t0: int = T0, gap_at: int | None = None) -> int:
    """Capture time of stamped frame `index` (whole µs, as the stamp holds)."""
    jump = GAP_NS if gap_at is not None and index >= gap_at else 0
    return (t0 + index * FRAME_NS) // NS_PER_US * NS_PER_US + jump


@functools.cache
def video(codec: Codec, frames: int = 30, t0: int = T0, gap_at: int | None = None) -> Stream:
    """`frames` stamped pictures (frame i captured at capture_ns(i, ...)), keyframe every GOP."""
    name = {Codec.H264: "libx264", Codec.H265: "libx265", Codec.JPEG: "mjpeg"}[codec]
    ctx = cast(VideoCodecContext, av.CodecContext.create(name, "w"))
    ctx.width, ctx.height = WIDTH, HEIGHT
    ctx.pix_fmt = "yuvj420p" if codec is Codec.JPEG else "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS)
    ctx.gop_size = GOP
    ctx.max_b_frames = 0
    if codec is Codec.H264:
        ctx.options = {"bf": "0", "preset": "ultrafast", "tune": "zerolatency"}
    elif codec is Codec.H265:
        ctx.options = {
            "preset": "ultrafast",
            "x265-params": f"log-level=none:bframes=0:keyint={GOP}:min-keyint={GOP}:"
            "scenecut=0:repeat-headers=1",
        }
    else:
        ctx.options = {"q": "2"}
    renderer = PatternRenderer(WIDTH, HEIGHT)
    packets = []
    for index in range(frames):
        picture = renderer.render(index, capture_ns(index, t0, gap_at) // NS_PER_US)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        if codec is Codec.JPEG:
            frame = frame.reformat(format="yuvj420p")
        frame.pts = index
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    units = []
    for packet in packets:
        data = bytes(packet)
        if codec is not Codec.JPEG:
            data = annexb_to_length_prefixed(data)
        units.append(Unit(data, bool(packet.is_keyframe) or codec is Codec.JPEG))
    assert len(units) == frames
    return Stream(_params(codec, bytes(packets[0])), tuple(units))


def _params(codec: Codec, first: bytes) -> CodecParams:
    if codec is Codec.JPEG:
        return CodecParams(codec, 90_000, WIDTH, HEIGHT)
    nals = split_annexb(first)
    if codec is Codec.H264:
        sets = tuple(n for n in nals if h264_nal_type(n) in (7, 8))
    else:
        sets = tuple(n for n in nals if h265_nal_type(n) in (32, 33, 34))
    return CodecParams(codec, 90_000, WIDTH, HEIGHT, parameter_sets=sets)


@functools.cache
def aac(units: int = 50, rate: int = 16_000) -> Stream:
    """`units` AAC access units (1024 samples each) of a tone, raw (no ADTS)."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "fltp"
    ctx.bit_rate = 32_000
    ctx.open()
    t = np.arange(1024 * (units + 4)) / rate
    pcm = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    packets = []
    for i in range(units + 4):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, i * 1024 : (i + 1) * 1024], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = i * 1024
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    params = CodecParams(
        Codec.AAC, rate, sample_rate=rate, channels=1, audio_config=bytes(ctx.extradata or b"")
    )
    return Stream(params, tuple(Unit(bytes(p), True) for p in packets[:units]))
