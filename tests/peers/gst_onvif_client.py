"""A GStreamer ONVIF replay client peer (rtspsrc onvif-mode=true); run by the Debian system Python.

    /usr/bin/python3 tests/peers/gst_onvif_client.py URL --range START-END [--rate -1]
        [--frames none|intra|intra/<ms>|predicted] [--rate-control yes|no] [--timeout 30]
        [--pause-after N --pause-s S] [--seek-after N --seek-range START-END]

It plays URL the way GStreamer's own test-onvif-client example does: one seek sent before the
pipeline reaches PLAYING, with the range as nanoseconds since 1900 (gst_rtsp_range_get_times of
"clock=START-END"), rate negative for reverse, trick-mode flags for Frames. Each video pad goes
through rtponvifparse (0xABAC NTP time → buffer PTS, C/D → flags, T → EOS), rtph264depay and
avdec_h264, which in reverse decodes each GOP forward and outputs it backwards.

Workarounds for Debian 12's GStreamer 1.22.0 (all client-side; see the brief's hand-over notes):
is-live stays true, because is-live=false segfaults in rtspsrc as soon as any event reaches the
not yet exposed pads (gstreamer#2751, fixed in 1.22.5); buffer-mode=none, because the live
jitter buffer drops the whole first access unit (rtspsrc stamps its first packet with a running
time that lies outside the onvif-mode segment); the seek is sent once rtspsrc reports the
stream open in PAUSED, then PLAYING sends a single PLAY; only the video stream is set up.

--pause-after N sets the pipeline to PAUSED once N frames were decoded (rtspsrc sends PAUSE)
and back to PLAYING --pause-s later (rtspsrc sends PLAY again). --seek-after N sends a second
flushing seek to --seek-range once N frames were decoded (go-to-time: rtspsrc sends a new PLAY
with the new Range in the same session). Each emits a marker event when it happens.

Output, one JSON object per line on stdout:
    {"event": "frame", "ntp_ns": <PTS: NTP time of the frame in ns since 1900>,
     "width": W, "height": H, "rows": <base64 of the top STAMP_ROWS rows of the luma plane>}
    {"event": "paused"} | {"event": "resumed"} | {"event": "seeked"}
    {"event": "eos"} | {"event": "error", "message": "..."} | {"event": "timeout"}
This file must stay runnable by /usr/bin/python3 with only python3-gi: it imports nothing from
the repository (the test decodes the stamps from the rows).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstRtsp  # noqa: E402

#: Rows of the luma plane reported per frame: the simulated camera's stamp is 32 rows high.
STAMP_ROWS = 32
DEFAULT_TIMEOUT_S = 30.0


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _seek_event(clock_range: str, rate: float, frames: str) -> Gst.Event:
    result, parsed = GstRtsp.rtsp_range_parse(f"clock={clock_range}")
    if result != GstRtsp.RTSPResult.OK:
        raise SystemExit(f"bad range {clock_range!r}")
    ok, start, stop = GstRtsp.rtsp_range_get_times(parsed)
    if not ok:
        raise SystemExit(f"range {clock_range!r} has no times")
    flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE
    mode, _, interval = frames.partition("/")
    if mode == "intra":
        flags |= Gst.SeekFlags.TRICKMODE_KEY_UNITS
    elif mode == "predicted":
        flags |= Gst.SeekFlags.TRICKMODE_FORWARD_PREDICTED
    elif mode != "none":
        raise SystemExit(f"bad frames mode {frames!r}")
    event = Gst.Event.new_seek(
        rate, Gst.Format.TIME, flags, Gst.SeekType.SET, start, Gst.SeekType.SET, stop
    )
    if interval:
        event.set_seek_trickmode_interval(int(interval) * Gst.MSECOND)
    return event


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.loop = GLib.MainLoop()
        self.pipe = Gst.Pipeline.new("onvif-client")
        self.src = Gst.ElementFactory.make("rtspsrc", "src")
        self.src.set_property("location", args.url)
        self.src.set_property("onvif-mode", True)
        self.src.set_property("onvif-rate-control", args.rate_control == "yes")
        self.src.set_property("tcp-timeout", 0)
        self.src.set_property("buffer-mode", 0)
        self.pipe.add(self.src)
        self.src.connect("pad-added", self._pad_added)
        # Video only: with audio and metadata set up too, the pipeline posts EOS as soon as
        # their short streams end, possibly before the video pad even appeared.
        self.src.connect("select-stream", self._select_stream)
        self.seek = _seek_event(args.range, args.rate, args.frames)
        self.frames = 0
        self.pause_after, self.pause_s = args.pause_after, args.pause_s
        self.seek_after = args.seek_after
        self.second_seek = (
            _seek_event(args.seek_range, args.rate, args.frames) if args.seek_range else None
        )
        self.exit_code = 1
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._message)
        GLib.timeout_add(int(args.timeout * 1000), self._timeout)

    def run(self) -> int:
        # PAUSED makes the live rtspsrc DESCRIBE and SETUP without PLAY; the seek is sent once
        # it reports the stream open (see _message), then PLAYING sends the one PLAY with it.
        self.pipe.set_state(Gst.State.PAUSED)
        self.loop.run()
        return self.exit_code

    @staticmethod
    def _select_stream(_src: Gst.Element, _index: int, caps: Gst.Caps) -> bool:
        return bool(caps.get_structure(0).get_string("media") == "video")

    def _pad_added(self, _src: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps()
        media = caps.get_structure(0).get_string("media") if caps is not None else None
        encoding = caps.get_structure(0).get_string("encoding-name") if caps is not None else None
        if media == "video" and encoding == "H264":
            chain = (
                "queue ! rtponvifparse ! rtph264depay ! avdec_h264 ! videoconvert"
                " ! video/x-raw,format=GRAY8 ! appsink name=frames sync=false async=false"
                " emit-signals=true"
            )
        else:
            chain = "fakesink sync=false async=false"
        bin_ = Gst.parse_bin_from_description(chain, True)
        self.pipe.add(bin_)
        bin_.sync_state_with_parent()
        sink = bin_.get_by_name("frames")
        if sink is not None:
            sink.connect("new-sample", self._sample)
        if pad.link(bin_.get_static_pad("sink")) != Gst.PadLinkReturn.OK:
            _emit({"event": "error", "message": f"cannot link {media} pad"})

    def _sample(self, sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer()
        structure = sample.get_caps().get_structure(0)
        width = structure.get_value("width")
        height = structure.get_value("height")
        ok, info = buffer.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        try:
            # GRAY8 rows are padded to a multiple of 4 bytes.
            stride = (width + 3) // 4 * 4
            rows = b"".join(
                bytes(info.data[r * stride : r * stride + width]) for r in range(STAMP_ROWS)
            )
        finally:
            buffer.unmap(info)
        _emit(
            {
                "event": "frame",
                "ntp_ns": buffer.pts,
                "width": width,
                "height": height,
                "rows": base64.b64encode(rows).decode(),
            }
        )
        # After the frame's line, so the marker follows the frame that triggered it.
        self.frames += 1
        if self.frames == self.pause_after:
            GLib.idle_add(self._pause)
        if self.frames == self.seek_after and self.second_seek is not None:
            GLib.idle_add(self._seek_again)
        return Gst.FlowReturn.OK

    def _pause(self) -> bool:
        # From the main loop, not the streaming thread: a state change there would deadlock.
        self.pipe.set_state(Gst.State.PAUSED)
        _emit({"event": "paused"})
        GLib.timeout_add(int(self.pause_s * 1000), self._resume)
        return False

    def _resume(self) -> bool:
        _emit({"event": "resumed"})
        self.pipe.set_state(Gst.State.PLAYING)
        return False

    def _seek_again(self) -> bool:
        assert self.second_seek is not None
        _emit({"event": "seeked"})
        if not self.pipe.send_event(self.second_seek):
            _emit({"event": "error", "message": "the pipeline refused the second seek"})
            self.loop.quit()
        return False

    def _message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.PROGRESS:
            kind, code, _text = message.parse_progress()
            if code == "open" and kind == Gst.ProgressType.COMPLETE:
                if not self.src.send_event(self.seek):
                    _emit({"event": "error", "message": "rtspsrc refused the seek"})
                    self.loop.quit()
                    return
                self.pipe.set_state(Gst.State.PLAYING)
        elif message.type == Gst.MessageType.EOS:
            _emit({"event": "eos"})
            self.exit_code = 0
            self.loop.quit()
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            _emit({"event": "error", "message": f"{error.message} ({debug})"})
            self.loop.quit()

    def _timeout(self) -> bool:
        _emit({"event": "timeout"})
        self.loop.quit()
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--range", required=True, help="START-END, clock=UTC times")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--frames", default="none")
    parser.add_argument("--rate-control", choices=("yes", "no"), default="yes")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument("--pause-after", type=int, default=0, help="frames before PAUSE")
    parser.add_argument("--pause-s", type=float, default=1.0)
    parser.add_argument("--seek-after", type=int, default=0, help="frames before the seek")
    parser.add_argument("--seek-range", default="", help="START-END of the second seek")
    args = parser.parse_args()
    Gst.init(None)
    code = Client(args).run()
    # Skip the pipeline shutdown: 1.22.0's rtspsrc deadlocks on the way to NULL after an EOS
    # with onvif-rate-control=false (its thread stops rtpbin's jitter buffer task while the
    # state change holds the lock that task needs). The server sees the connection close.
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
