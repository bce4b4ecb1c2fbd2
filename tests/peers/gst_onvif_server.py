"""GStreamer's own ONVIF replay server (RTSPOnvifServer) on a short clip; run by the system Python.

    /usr/bin/python3 tests/peers/gst_onvif_server.py [--port 0] [--seconds 4] [--fps 10] [--gop 10]

Serves /replay: a short H.264 clip (videotestsrc, no B-frames, a keyframe every --gop frames)
recorded to MP4 at start-up in a temporary directory, played by filesrc ! qtdemux ! h264parse
! rtph264pay ! rtponviftimestamp through RTSPOnvifMediaFactory with replay support, the way
gst-rtsp-server's examples/test-onvif-server.c does (minus its endless archive simulation).
GStreamer maps `Range: clock=` to nanoseconds since 1900-01-01 and rtponviftimestamp runs with
ntp-offset 0, so the clip's footage lies at 19000101T000000Z onwards.

Once listening it prints one JSON line on stdout: {"port": N, "mount": "/replay", "frames": K}
and serves until stdin reaches end of file or SIGTERM/SIGINT arrives. This file must stay
runnable by /usr/bin/python3 with only python3-gi: it imports nothing from the repository but
gst_serve.py beside it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: E402

# Run as a script by the system Python: make the repository's `tests` package importable.
sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[2]))
from tests.peers.gst_serve import leave, serve  # noqa: E402

MOUNT = "/replay"
SIZE = (320, 240)
#: Upper bound for recording the clip at start-up (a few seconds of tiny pictures).
RECORD_TIMEOUT_S = 30


def _record_clip(path: str, seconds: int, fps: int, gop: int) -> int:
    """Encode the clip into an MP4 file; the number of frames written."""
    frames = seconds * fps
    width, height = SIZE
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={frames} pattern=ball"
        f" ! video/x-raw,width={width},height={height},framerate={fps}/1,format=I420"
        f" ! x264enc speed-preset=ultrafast bframes=0 threads=1 key-int-max={gop}"
        " ! video/x-h264,profile=constrained-baseline ! h264parse"
        f" ! mp4mux ! filesink location={path}"
    )
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(
        RECORD_TIMEOUT_S * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type != Gst.MessageType.EOS:
        raise RuntimeError(f"recording the clip failed: {message}")
    return frames


class ReplayFactory(GstRtspServer.RTSPOnvifMediaFactory):  # type: ignore[misc]
    """One pipeline per client: the clip, payloaded and stamped with 0xABAC extensions."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def do_create_element(self, url: Any) -> Any:
        top = Gst.Bin.new(None)
        source = Gst.ElementFactory.make("filesrc", None)
        source.set_property("location", self.path)
        demux = Gst.ElementFactory.make("qtdemux", None)
        # rtsp-media looks the payloader up by name (pay0) and takes its "src" pad: a bin of
        # payloader + timestamper with ghost pads stands in for it, as in test-onvif-server.c.
        pay_bin = Gst.Bin.new("pay0")
        chain = [
            Gst.ElementFactory.make(name, None)
            for name in ("queue", "h264parse", "rtph264pay", "rtponviftimestamp", "queue")
        ]
        chain[2].set_property("pt", 96)
        stamper = chain[3]
        stamper.set_property("set-t-bit", True)
        stamper.set_property("set-e-bit", True)
        stamper.set_property("ntp-offset", 0)
        stamper.set_property("drop-out-of-segment", False)
        stamper.set_clock(Gst.SystemClock.obtain())
        for element in chain:
            pay_bin.add(element)
        for a, b in itertools.pairwise(chain):
            a.link(b)
        pay_bin.add_pad(Gst.GhostPad.new("sink", chain[0].get_static_pad("sink")))
        pay_bin.add_pad(Gst.GhostPad.new("src", chain[-1].get_static_pad("src")))
        top.add(source)
        top.add(demux)
        top.add(pay_bin)
        source.link(demux)

        def on_pad(_demux: Any, pad: Any) -> None:
            caps = pad.get_current_caps()
            if caps is not None and caps.get_structure(0).get_name() == "video/x-h264":
                pad.link(pay_bin.get_static_pad("sink"))

        demux.connect("pad-added", on_pad)
        return top


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--seconds", type=int, default=4, help="length of the clip")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--gop", type=int, default=10, help="keyframe interval in frames")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    Gst.init(None)
    with tempfile.TemporaryDirectory(prefix="gst-onvif-") as tmp:
        clip = os.path.join(tmp, "clip.mp4")
        frames = _record_clip(clip, args.seconds, args.fps, args.gop)
        server = GstRtspServer.RTSPOnvifServer.new()
        server.set_address("127.0.0.1")
        server.set_service(str(args.port))
        factory = ReplayFactory(clip)
        factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
        factory.set_replay_support(True)
        server.get_mount_points().add_factory(MOUNT, factory)
        info = {"mount": MOUNT, "frames": frames}
        if not serve(server, info, args.port):
            return 1
    leave()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
