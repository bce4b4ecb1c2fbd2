"""H.264 encoding for the simulated camera: PyAV libx264 set up like a camera, output as stored.

Camera-like settings: no B-frames, a fixed GOP (keyint = min-keyint, no scene-cut keyframes),
zero-latency tuning (one frame in, one frame out), constant-ish bitrate through a one-second VBV.
libx264 emits Annex B; the engine stores 4-byte length-prefixed NAL units with SPS/PPS in front
of every keyframe (`app/core/media.py`), so the encoder converts (with `app/formats/h26x/nal.py`).
Not thread-safe: the camera drives one encoder from its single encode thread.
"""

from __future__ import annotations

import dataclasses
import fractions

import av
import numpy as np
import numpy.typing as npt
from av.codec.context import CodecContext, Flags

from app.core.media import Codec, CodecParams
from app.formats.h26x import h264_nal_type, join_length_prefixed, split_annexb

VIDEO_CLOCK_RATE = 90_000
#: Faster than veryfast by about 3× at the same bitrate; a test pattern needs no finer search.
PRESET = "ultrafast"
PROFILE = "main"
#: One encode thread per camera: dozens of cameras share two cores better than they would share
#: sliced threads, and the output does not depend on the machine's core count.
ENCODER_THREADS = 1

_NAL_SPS = 7
_NAL_PPS = 8
# Video coding layer NAL types (non-IDR slice … IDR slice); SEI, AUD and filler are not kept:
# libx264's SEI is its settings text, of no use to a viewer.
_VCL_TYPES = range(1, 6)


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded picture, payload in the stored layout (length-prefixed NAL units)."""

    data: bytes
    keyframe: bool


class H264Encoder:
    """libx264 through PyAV for yuv420p pictures of one size, frame rate and bitrate."""

    def __init__(self, width: int, height: int, fps: int, bitrate: int) -> None:
        context = CodecContext.create("libx264", "w")
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.time_base = fractions.Fraction(1, fps)
        context.framerate = fractions.Fraction(fps)
        context.bit_rate = bitrate
        context.gop_size = 2 * fps
        context.max_b_frames = 0
        context.thread_count = ENCODER_THREADS
        # SPS/PPS go to extradata once instead of in-band: the camera puts them in front of
        # every keyframe itself, and knows them before the first frame.
        context.flags |= Flags.global_header
        context.options = {
            "preset": PRESET,
            "tune": "zerolatency",
            "profile": PROFILE,
            "x264-params": f"keyint={2 * fps}:min-keyint={2 * fps}:scenecut=0",
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
        }
        context.open()
        nals = split_annexb(bytes(context.extradata or b""))
        sps = [n for n in nals if h264_nal_type(n) == _NAL_SPS]
        pps = [n for n in nals if h264_nal_type(n) == _NAL_PPS]
        if len(sps) != 1 or len(pps) != 1:
            raise RuntimeError(f"libx264 extradata holds {len(sps)} SPS and {len(pps)} PPS")
        self._context = context
        self._fps = fps
        self._parameter_sets = join_length_prefixed([sps[0], pps[0]])
        self.params = CodecParams(
            codec=Codec.H264,
            clock_rate=VIDEO_CLOCK_RATE,
            width=width,
            height=height,
            parameter_sets=(sps[0], pps[0]),
        )

    def encode(self, yuv420p: npt.NDArray[np.uint8], pts: int) -> EncodedFrame:
        """Encode one picture ((H·3/2)×W uint8, as PatternRenderer makes); exactly one frame out."""
        frame = av.VideoFrame.from_ndarray(yuv420p, format="yuv420p")
        frame.pts = pts
        packets = self._context.encode(frame)
        if len(packets) != 1:
            # zerolatency without B-frames has no encoder delay; anything else is a setup bug.
            raise RuntimeError(f"libx264 returned {len(packets)} packets for frame {pts}, not 1")
        packet = packets[0]
        vcl = [n for n in split_annexb(bytes(packet)) if h264_nal_type(n) in _VCL_TYPES]
        keyframe = bool(packet.is_keyframe)
        data = join_length_prefixed(vcl)
        return EncodedFrame(self._parameter_sets + data if keyframe else data, keyframe)
