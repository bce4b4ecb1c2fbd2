"""RTSP exchanges as real clients and servers write them (test data).

Typed in from RFC 2326, the ONVIF Streaming specification and what FFmpeg, GStreamer,
VLC/live555 and cameras send.

Each entry is the raw bytes of one direction of a connection; the tests parse them whole, byte by
byte and in random chunks, and mutate them for the fuzz tests.
"""

from __future__ import annotations

SDP_AXIS = (
    b"v=0\r\n"
    b"o=- 1187325087286934 1 IN IP4 192.168.0.90\r\n"
    b"s=Session streamed with GStreamer\r\n"
    b"i=rtsp-server\r\n"
    b"t=0 0\r\n"
    b"a=tool:GStreamer\r\n"
    b"a=type:broadcast\r\n"
    b"a=range:npt=now-\r\n"
    b"a=control:rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264\r\n"
    b"m=video 0 RTP/AVP 96\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"b=AS:50000\r\n"
    b"a=rtpmap:96 H264/90000\r\n"
    b"a=fmtp:96 packetization-mode=1;profile-level-id=4d0029;"
    b"sprop-parameter-sets=Z00AKeKQDwBE/LgLcBAQGkHiRFQ=,aO48gA==\r\n"
    b"a=control:rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264\r\n"
    b"a=framerate:25.000000\r\n"
)

#: (name, bytes, expected events: ("req", method, uri), ("resp", status, reason), ("frame", ch, n))
TRANSCRIPTS: list[tuple[str, bytes, list[tuple[str, object, object]]]] = [
    (
        "ffmpeg-tcp-session",
        b"OPTIONS rtsp://127.0.0.1:8554/live RTSP/1.0\r\n"
        b"CSeq: 1\r\n"
        b"User-Agent: Lavf60.16.100\r\n\r\n"
        b"DESCRIBE rtsp://127.0.0.1:8554/live RTSP/1.0\r\n"
        b"Accept: application/sdp\r\n"
        b"CSeq: 2\r\n"
        b"User-Agent: Lavf60.16.100\r\n\r\n"
        b"SETUP rtsp://127.0.0.1:8554/live/trackID=0 RTSP/1.0\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
        b"CSeq: 3\r\n"
        b"User-Agent: Lavf60.16.100\r\n\r\n"
        b"PLAY rtsp://127.0.0.1:8554/live/ RTSP/1.0\r\n"
        b"Range: npt=0.000-\r\n"
        b"CSeq: 4\r\n"
        b"User-Agent: Lavf60.16.100\r\n"
        b"Session: 343c10e569254ba2\r\n\r\n"
        # FFmpeg's receiver report on the RTCP channel, then a keepalive.
        b"$\x01\x00\x20\x81\xc9\x00\x07\x12\x34\x56\x78\xf3\x37\xb8\x47\x00\x00\x00\x00"
        b"\x00\x00\xc6\xa2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"GET_PARAMETER rtsp://127.0.0.1:8554/live/ RTSP/1.0\r\n"
        b"CSeq: 5\r\n"
        b"User-Agent: Lavf60.16.100\r\n"
        b"Session: 343c10e569254ba2\r\n\r\n"
        b"TEARDOWN rtsp://127.0.0.1:8554/live/ RTSP/1.0\r\n"
        b"CSeq: 6\r\n"
        b"User-Agent: Lavf60.16.100\r\n"
        b"Session: 343c10e569254ba2\r\n\r\n",
        [
            ("req", "OPTIONS", "rtsp://127.0.0.1:8554/live"),
            ("req", "DESCRIBE", "rtsp://127.0.0.1:8554/live"),
            ("req", "SETUP", "rtsp://127.0.0.1:8554/live/trackID=0"),
            ("req", "PLAY", "rtsp://127.0.0.1:8554/live/"),
            ("frame", 1, 32),
            ("req", "GET_PARAMETER", "rtsp://127.0.0.1:8554/live/"),
            ("req", "TEARDOWN", "rtsp://127.0.0.1:8554/live/"),
        ],
    ),
    (
        "gstreamer-onvif-replay",
        b"OPTIONS rtsp://127.0.0.1:8554/recording/R1 RTSP/1.0\r\n"
        b"CSeq: 1\r\n"
        b"User-Agent: GStreamer/1.22.0\r\n\r\n"
        b"DESCRIBE rtsp://127.0.0.1:8554/recording/R1 RTSP/1.0\r\n"
        b"CSeq: 2\r\n"
        b"User-Agent: GStreamer/1.22.0\r\n"
        b"Accept: application/sdp\r\n\r\n"
        b"SETUP rtsp://127.0.0.1:8554/recording/R1/stream=0 RTSP/1.0\r\n"
        b"CSeq: 3\r\n"
        b"User-Agent: GStreamer/1.22.0\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        b"PLAY rtsp://127.0.0.1:8554/recording/R1/ RTSP/1.0\r\n"
        b"CSeq: 4\r\n"
        b"User-Agent: GStreamer/1.22.0\r\n"
        b"Range: clock=20090615T115000.440000000Z-20090615T114900Z\r\n"
        b"Scale: -1.000000\r\n"
        b"Rate-Control: no\r\n"
        b"Frames: intra/4000\r\n"
        b"Session: dR4yuXHyIxz6Rn4A\r\n\r\n",
        [
            ("req", "OPTIONS", "rtsp://127.0.0.1:8554/recording/R1"),
            ("req", "DESCRIBE", "rtsp://127.0.0.1:8554/recording/R1"),
            ("req", "SETUP", "rtsp://127.0.0.1:8554/recording/R1/stream=0"),
            ("req", "PLAY", "rtsp://127.0.0.1:8554/recording/R1/"),
        ],
    ),
    (
        "vlc-live555-udp",
        b"OPTIONS rtsp://192.168.0.90:554/live RTSP/1.0\r\n"
        b"CSeq: 2\r\n"
        b"User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2021.08.24)\r\n\r\n"
        b"SETUP rtsp://192.168.0.90:554/live/trackID=0 RTSP/1.0\r\n"
        b"CSeq: 4\r\n"
        b"User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2021.08.24)\r\n"
        b"Transport: RTP/AVP;unicast;client_port=54086-54087\r\n\r\n"
        b"SET_PARAMETER rtsp://192.168.0.90:554/live/ RTSP/1.0\r\n"
        b"CSeq: 7\r\n"
        b"Session: 6A4F2C11\r\n"
        b"Content-Type: text/parameters\r\n"
        b"Content-Length: 10\r\n\r\n"
        b"barparam: ",
        [
            ("req", "OPTIONS", "rtsp://192.168.0.90:554/live"),
            ("req", "SETUP", "rtsp://192.168.0.90:554/live/trackID=0"),
            ("req", "SET_PARAMETER", "rtsp://192.168.0.90:554/live/"),
        ],
    ),
    (
        # ONVIF Streaming §5.2.2.6 and §6.5, as printed: "Cseq", folded Transport, bare LF.
        "onvif-spec-examples",
        b"DESCRIBE rtsp://example.com/onvif_camera RTSP/1.0\n"
        b"Cseq: 1\n\n"
        b"SETUP rtsp://example.com/onvif_camera/audio RTSP/1.0\n"
        b"Cseq: 2\n"
        b"Transport: RTP/AVP;unicast;client_port=8002-8003;\n"
        b'   mode="PLAY"\n\n'
        b"PLAY rtsp://192.168.0.1/path/to/recording RTSP/1.0\r\n"
        b"Cseq: 123\r\n"
        b"Session: 12345678\r\n"
        b"Require: onvif-replay\r\n"
        b"Range: clock=20090615T114900.440Z-\r\n"
        b"Rate-Control: no\r\n\r\n",
        [
            ("req", "DESCRIBE", "rtsp://example.com/onvif_camera"),
            ("req", "SETUP", "rtsp://example.com/onvif_camera/audio"),
            ("req", "PLAY", "rtsp://192.168.0.1/path/to/recording"),
        ],
    ),
    (
        # RFC 2326 §10 / §12 examples; old Mac line ends (bare CR) in the second request.
        "rfc2326-examples",
        b"SETUP rtsp://example.com/foo/bar/baz.rm RTSP/1.0\r\n"
        b"CSeq: 302\r\n"
        b"Transport: RTP/AVP;unicast;client_port=4588-4589\r\n\r\n"
        b"PLAY rtsp://audio.example.com/twister.en RTSP/1.0\r"
        b"CSeq: 833\r"
        b"Session: 12345678\r"
        b"Range: smpte=0:10:20-;time=19970123T153600Z\r\r"
        b"OPTIONS * RTSP/1.0\r\n"
        b"CSeq: 1\r\n"
        b"Require: implicit-play\r\n"
        b"Proxy-Require: gzipped-messages\r\n\r\n",
        [
            ("req", "SETUP", "rtsp://example.com/foo/bar/baz.rm"),
            ("req", "PLAY", "rtsp://audio.example.com/twister.en"),
            ("req", "OPTIONS", "*"),
        ],
    ),
    (
        "camera-answers",
        b"RTSP/1.0 401 Unauthorized\r\n"
        b"CSeq: 1\r\n"
        b'WWW-Authenticate: Digest realm="AXIS_ACCC8E000000", '
        b'nonce="0024e47aY398109708de9ccd8056c58a068a59540a99d3", stale=FALSE\r\n'
        b'WWW-Authenticate: Basic realm="AXIS_ACCC8E000000"\r\n'
        b"Date: Sat, 21 Nov 2026 14:00:00 GMT\r\n\r\n"
        b"RTSP/1.0 200 OK\r\n"
        b"CSeq: 2\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Base: rtsp://192.168.0.90/axis-media/media.amp/\r\n"
        b"Content-Length: " + str(len(SDP_AXIS)).encode() + b"\r\n\r\n" + SDP_AXIS + b""
        b"RTSP/1.0 200 OK\r\n"
        b"CSeq: 3\r\n"
        b"Session: 12345678; timeout=60\r\n"
        b"Transport: RTP/AVP;unicast;client_port=8002-8003;server_port=9004-9005;"
        b'ssrc=1D3A4B5C;mode="PLAY"\r\n\r\n'
        b"RTSP/1.0 200 OK\r\n"
        b"CSeq: 4\r\n"
        b"Session: 12345678\r\n"
        b"Range: npt=0.000-\r\n"
        b"RTP-Info: url=rtsp://example.com/onvif_camera/video;seq=1234;rtptime=3450012, "
        b"url=rtsp://example.com/onvif_camera/audio;seq=22434;rtptime=1234566\r\n\r\n"
        b"$\x00\x00\x0c\x80\x60\x04\xd2\x00\x34\xa4\x9c\x11\x22\x33\x44"
        b"RTSP/1.0 551 Option not supported\r\n"
        b"CSeq: 5\r\n"
        b"Unsupported: onvif-replay\r\n\r\n"
        b"RTSP/1.0 200\r\n"
        b"CSeq: 6\r\n\r\n",
        [
            ("resp", 401, "Unauthorized"),
            ("resp", 200, "OK"),
            ("resp", 200, "OK"),
            ("resp", 200, "OK"),
            ("frame", 0, 12),
            ("resp", 551, "Option not supported"),
            ("resp", 200, ""),
        ],
    ),
]
