"""RTP produced by GStreamer's payloaders (rtph264pay, rtph265pay) depacketizes and decodes."""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from app.core.media import Codec, CodecParams
from app.formats.h26x import H264_SYNTAX, H265_SYNTAX, split_length_prefixed
from app.protocols.rtp.formats import depacketizer_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from tests.formats.h26x.streams import decode

pytestmark = pytest.mark.interop

FRAMES = 30
GOP = 10


def _gst_rtp(tmp_path: Path, encoder: str, payloader: str) -> list[RtpPacket]:
    """Run a GStreamer pipeline that writes RFC 4571-framed RTP to a file; read the packets."""
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 not installed")
    out = tmp_path / "stream.rtp"
    pipeline = (
        f"videotestsrc num-buffers={FRAMES} pattern=ball "
        "! video/x-raw,width=320,height=240,framerate=25/1 "
        f"! {encoder} ! {payloader} aggregate-mode=zero-latency config-interval=-1 mtu=600 "
        f"! rtpstreampay ! filesink location={out}"
    )
    result = subprocess.run(
        ["gst-launch-1.0", "-q", *pipeline.split()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and "no element" in result.stderr:
        pytest.skip(f"GStreamer element missing: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    packets = []
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack_from("!H", data, pos)
        packets.append(parse_rtp(data[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return packets


@pytest.mark.parametrize(
    ("codec", "encoder", "payloader", "aggregate_type", "fu_type"),
    [
        (
            Codec.H264,
            f"x264enc key-int-max={GOP} bframes=0 tune=zerolatency",
            "rtph264pay",
            24,
            28,
        ),
        (
            Codec.H265,
            f"x265enc key-int-max={GOP} option-string=bframes=0:log-level=none",
            "rtph265pay",
            48,
            49,
        ),
    ],
)
def test_gstreamer_payloader_output(
    tmp_path: Path, codec: Codec, encoder: str, payloader: str, aggregate_type: int, fu_type: int
) -> None:
    packets = _gst_rtp(tmp_path, encoder, payloader)
    syntax = H264_SYNTAX if codec is Codec.H264 else H265_SYNTAX
    types = {
        p.payload[0] & 0x1F if codec is Codec.H264 else (p.payload[0] >> 1) & 0x3F for p in packets
    }
    assert {aggregate_type, fu_type} <= types  # the vectors exercise aggregation and FUs
    depacketizer = depacketizer_for(CodecParams(codec, 90_000))
    units = [u for p in packets for u in depacketizer.push(p)] + depacketizer.flush()
    assert depacketizer.lost_units == 0
    assert len(units) == FRAMES
    assert [u.keyframe for u in units] == [i % GOP == 0 for i in range(FRAMES)]
    first = units[0].new_params
    assert first is not None and (first.width, first.height) == (320, 240)
    for unit in units:
        if unit.keyframe:
            nal_types = {syntax.nal_type(n) for n in split_length_prefixed(unit.data)}
            assert set(syntax.parameter_set_types) <= nal_types
    steps = {(b.rtp_timestamp - a.rtp_timestamp) % 2**32 for a, b in itertools.pairwise(units)}
    assert steps == {3600}
    decoder = "h264" if codec is Codec.H264 else "hevc"
    assert decode(decoder, [u.data for u in units]) == [(320, 240)] * FRAMES
