"""A gst-rtsp-server test peer serving live test streams; run by the Debian system Python.

    /usr/bin/python3 tests/peers/gst_rtsp_server.py [--port 0] [--size 320x240] [--fps 25]
        [--auth USER:PASSWORD] [--auth-method digest|basic]

Mounts (each a live videotestsrc plus an audiotestsrc tone, both with RTCP sender reports):
    /h264   x264enc (no B-frames, key-int-max 50, SPS/PPS in band) + audio
    /h265   x265enc (VPS/SPS/PPS only in the SDP) + audio
    /mjpeg  jpegenc + rtpjpegpay + audio
    /protected  like /h264, only with the --auth credentials (absent without --auth)
Audio is AAC (avenc_aac or voaacenc + rtpmp4gpay) when an encoder exists, else PCMU.

Once listening it prints one JSON line on stdout: {"port": N, "mounts": [...], "audio": "..."}
and serves until stdin reaches end of file or SIGTERM/SIGINT arrives. This file must stay
runnable by /usr/bin/python3 with only python3-gi: it imports nothing from the repository but
gst_serve.py beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# Run as a script by the system Python: make the repository's `tests` package importable.
sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[2]))
from tests.peers.gst_serve import leave, serve  # noqa: E402

#: Sender reports every 0.5 s instead of rtpbin's 5 s so short tests see one within a second.
RTCP_MIN_INTERVAL_NS = 500_000_000
#: Keyframe interval of the H.264/H.265 streams, in frames.
KEY_INT_MAX = 50
AUDIO_RATE = 16_000
#: Single-threaded encoders: tiny pictures need no thread pools, and several peers (parallel
#: test runs) then do not fight over the cores.
X265_OPTIONS = "pools=none:frame-threads=1"
PROTECTED_MOUNT = "/protected"


def _element_exists(name: str) -> bool:
    return Gst.ElementFactory.find(name) is not None


def _audio_branch() -> tuple[str, str]:
    """The audio half of a launch line (payloader named pay1) and its codec name."""
    raw = (
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! audioresample"
        f" ! audio/x-raw,rate={AUDIO_RATE},channels=1"
    )
    for encoder in ("avenc_aac", "voaacenc"):
        if _element_exists(encoder) and _element_exists("rtpmp4gpay"):
            return f"{raw} ! {encoder} ! rtpmp4gpay name=pay1 pt=97", "AAC"
    return f"{raw} ! mulawenc ! rtppcmupay name=pay1 pt=0", "PCMU"


def _video_branch(mount: str, width: int, height: int, fps: int) -> str:
    raw = (
        f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1,format=I420"
    )
    if mount in ("/h264", PROTECTED_MOUNT):
        return (
            f"{raw} ! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 threads=1"
            f" key-int-max={KEY_INT_MAX} ! video/x-h264,profile=constrained-baseline"
            " ! rtph264pay name=pay0 pt=96 config-interval=-1"
        )
    if mount == "/h265":
        return (
            f"{raw} ! x265enc tune=zerolatency speed-preset=ultrafast"
            f" key-int-max={KEY_INT_MAX} option-string={X265_OPTIONS}"
            " ! rtph265pay name=pay0 pt=96"
        )
    if mount == "/mjpeg":
        return f"{raw} ! jpegenc quality=60 ! rtpjpegpay name=pay0 pt=26"
    raise ValueError(f"unknown mount {mount!r}")


def _tune_rtcp(media: Any) -> None:
    for index in range(media.n_streams()):
        session = media.get_stream(index).get_rtpsession()
        if session is not None:
            session.set_property("rtcp-min-interval", RTCP_MIN_INTERVAL_NS)


def _make_factory(launch: str) -> Any:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {launch} )")
    # One pipeline per mount shared by every client keeps the CPU cost flat on small CI machines.
    factory.set_shared(True)
    factory.connect("media-configure", lambda _f, media: media.connect("prepared", _tune_rtcp))
    return factory


def _build_server(args: argparse.Namespace) -> tuple[Any, list[str], str]:
    width, height = (int(v) for v in args.size.split("x"))
    audio, audio_codec = _audio_branch()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    names = ["/h264", "/h265", "/mjpeg"]
    if args.auth:
        names.append(PROTECTED_MOUNT)
    factories = {}
    for name in names:
        factory = _make_factory(f"{_video_branch(name, width, height, args.fps)}  {audio}")
        mounts.add_factory(name, factory)
        factories[name] = factory
    if args.auth:
        _protect(server, factories, args.auth, args.auth_method)
    return server, names, audio_codec


def _protect(server: Any, factories: dict[str, Any], credentials: str, method: str) -> None:
    """Require the credentials on the protected mount; every other mount stays anonymous."""
    user, _, password = credentials.partition(":")
    auth = GstRtspServer.RTSPAuth()
    user_token = GstRtspServer.RTSPToken()
    user_token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    anonymous = GstRtspServer.RTSPToken()
    anonymous.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
    auth.set_default_token(anonymous)
    if method == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, user_token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), user_token)
    for name, factory in factories.items():
        # Anonymous clients may find the protected mount (so they get 401, not 404) but not play.
        open_to_all = name != PROTECTED_MOUNT
        for role, construct in (("user", True), ("anonymous", open_to_all)):
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    f"{role}, media.factory.access=(boolean)true,"
                    f" media.factory.construct=(boolean){str(construct).lower()}"
                )
            )
    server.set_auth(auth)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--size", default="320x240", help="video size WxH")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--auth", default="", help="USER:PASSWORD required on /protected")
    parser.add_argument("--auth-method", choices=("digest", "basic"), default="digest")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    Gst.init(None)
    server, names, audio_codec = _build_server(args)
    server.set_session_pool(GstRtspServer.RTSPSessionPool())

    def expire_sessions() -> bool:
        server.get_session_pool().cleanup()
        return True

    GLib.timeout_add_seconds(2, expire_sessions)
    if not serve(server, {"mounts": names, "audio": audio_codec}, args.port):
        return 1
    leave()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
