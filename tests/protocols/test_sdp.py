"""SDP parsing and serializing: device answers (Axis, Hikvision, GStreamer, ONVIF replay, RFC
examples), tolerance, control URL resolution, limits and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols import sdp
from app.protocols.sdp import (
    MediaDescription,
    Origin,
    Rtpmap,
    SdpError,
    SessionDescription,
    parse_sdp,
    resolve_control,
)

# Modelled on an Axis camera's DESCRIBE answer (absolute control URLs, AAC, ONVIF metadata).
AXIS_SDP = (
    "v=0\r\n"
    "o=- 12897538591740302823 1 IN IP4 192.0.2.90\r\n"
    "s=Session streamed with GStreamer\r\n"
    "i=rtsp-server\r\n"
    "t=0 0\r\n"
    "a=tool:GStreamer\r\n"
    "a=type:broadcast\r\n"
    "a=range:npt=now-\r\n"
    "a=control:rtsp://192.0.2.90:554/axis-media/media.amp?videocodec=h264&audio=1\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:50000\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=4d0029;"
    "sprop-parameter-sets=Z00AKeKQDwBE/LgLcBAQGkHiRFQ=,aO48gA==\r\n"
    "a=control:rtsp://192.0.2.90:554/axis-media/media.amp/stream=0?videocodec=h264&audio=1\r\n"
    "a=framerate:30.000000\r\n"
    "a=transform:1.000000,0.000000,0.000000;0.000000,1.000000,0.000000;0.0,0.0,1.0\r\n"
    "m=audio 0 RTP/AVP 97\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:32\r\n"
    "a=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
    "a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1408;sizelength=13;"
    "indexlength=3;indexdeltalength=3\r\n"
    "a=control:rtsp://192.0.2.90:554/axis-media/media.amp/stream=1?videocodec=h264&audio=1\r\n"
    "m=application 0 RTP/AVP 98\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtpmap:98 vnd.onvif.metadata/90000\r\n"
    "a=control:rtsp://192.0.2.90:554/axis-media/media.amp/stream=2?videocodec=h264&audio=1\r\n"
)

# Modelled on a Hikvision camera: H.265 with spaces after the fmtp semicolons, G.711 A-law by
# static payload type, vendor attributes, an e= line.
HIKVISION_SDP = (
    "v=0\r\n"
    "o=- 1109162014219182 1109162014219192 IN IP4 192.0.2.64\r\n"
    "s=Media Presentation\r\n"
    "e=NONE\r\n"
    "b=AS:5050\r\n"
    "t=0 0\r\n"
    "a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/?transportmode=unicast\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:5000\r\n"
    "a=recvonly\r\n"
    "a=x-dimensions:1920,1080\r\n"
    "a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast\r\n"
    "a=rtpmap:96 H265/90000\r\n"
    "a=fmtp:96 sprop-sps=QgEBAWAAAAMAAAMAAAMAAAMAlqADwIAQ5Y2uSTL8BAAAAwAEAAADAGQQ; "
    "sprop-pps=RAHA8vA8kAA=; sprop-vps=QAEMAf//AWAAAAMAAAMAAAMAAAMAlqwJ\r\n"
    "a=Media_header:MEDIAINFO=494D4B48010200000400050000000000000000000000000000000000;\r\n"
    "a=appversion:1.0\r\n"
    "m=audio 0 RTP/AVP 8\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "b=AS:50\r\n"
    "a=recvonly\r\n"
    "a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
)

# Modelled on gst-rtsp-server: relative controls against the Content-Base, LF line ends,
# MJPEG by static payload type with the size in a=x-dimensions, PCMU audio.
GSTREAMER_SDP = (
    "v=0\n"
    "o=- 1188340656180883 1 IN IP4 127.0.0.1\n"
    "s=Session streamed with GStreamer\n"
    "i=rtsp-server\n"
    "t=0 0\n"
    "a=tool:GStreamer\n"
    "a=type:broadcast\n"
    "a=range:npt=0-\n"
    "a=control:*\n"
    "m=video 0 RTP/AVP 26\n"
    "c=IN IP4 0.0.0.0\n"
    "a=rtpmap:26 JPEG/90000\n"
    "a=framerate:25\n"
    "a=x-dimensions:320,240\n"
    "a=control:stream=0\n"
    "m=audio 0 RTP/AVP 0\n"
    "c=IN IP4 0.0.0.0\n"
    "a=rtpmap:0 PCMU/8000\n"
    "a=control:stream=1\n"
)

# RFC 6184 §8.2.1 style offer (QCIF baseline, mode 0 by omission), RFC 3640 AAC-hbr example
# with camel-case parameter names.
RFC_SDP = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 host.example.com\r\n"
    "s=RFC examples\r\n"
    "c=IN IP4 192.0.2.1\r\n"
    "t=0 0\r\n"
    "m=video 49170 RTP/AVP 98\r\n"
    "a=rtpmap:98 H264/90000\r\n"
    "a=fmtp:98 profile-level-id=42A01E; sprop-parameter-sets=Z0IACpZTBYmI,aMljiA==\r\n"
    "m=audio 49230 RTP/AVP 96\r\n"
    "a=rtpmap:96 mpeg4-generic/48000/2\r\n"
    "a=fmtp:96 streamtype=5; profile-level-id=14; mode=AAC-hbr; config=1190; "
    "sizeLength=13; indexLength=3; indexDeltaLength=3; constantDuration=1024\r\n"
)

# An ONVIF Profile G replay answer (session-level absolute control, relative media controls).
ONVIF_REPLAY_SDP = (
    "v=0\r\n"
    "o=- 0 0 IN IP4 192.0.2.10\r\n"
    "s=Recording RecordingToken001\r\n"
    "t=0 0\r\n"
    "a=control:rtsp://192.0.2.10/onvif/replay/RecordingToken001/\r\n"
    "a=range:clock=20260101T000000Z-20260101T010000Z\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=control:video\r\n"
    "a=sendonly\r\n"
    "m=application 0 RTP/AVP 107\r\n"
    "a=rtpmap:107 vnd.onvif.metadata/90000\r\n"
    "a=control:metadata\r\n"
)


def test_axis_structure() -> None:
    desc = parse_sdp(AXIS_SDP.encode())
    assert desc.origin == Origin("-", "12897538591740302823", "1", "IN", "IP4", "192.0.2.90")
    assert desc.session_name == "Session streamed with GStreamer"
    assert desc.info == "rtsp-server"
    assert desc.attribute("type") == "broadcast"
    assert [m.media for m in desc.media] == ["video", "audio", "application"]
    video = desc.media[0]
    assert (video.port, video.proto, video.formats) == (0, "RTP/AVP", ("96",))
    assert video.connection == "IN IP4 0.0.0.0"
    assert video.bandwidths == ("AS:50000",)
    assert video.rtpmap(96) == Rtpmap("H264", 90_000, 1)
    assert video.fmtp(96)["sprop-parameter-sets"] == "Z00AKeKQDwBE/LgLcBAQGkHiRFQ=,aO48gA=="
    assert video.fmtp(96)["profile-level-id"] == "4d0029"
    assert desc.media[1].rtpmap(97) == Rtpmap("MPEG4-GENERIC", 16_000, 1)
    assert desc.media[2].rtpmap(98) == Rtpmap("vnd.onvif.metadata", 90_000, 1)
    assert desc.media_control_url(1, "rtsp://192.0.2.90/axis-media/media.amp") == (
        "rtsp://192.0.2.90:554/axis-media/media.amp/stream=1?videocodec=h264&audio=1"
    )


def test_hikvision_structure() -> None:
    desc = parse_sdp(HIKVISION_SDP.encode())
    video, audio = desc.media
    assert video.rtpmap(96) == Rtpmap("H265", 90_000, 1)
    fmtp = video.fmtp(96)
    assert set(fmtp) == {"sprop-sps", "sprop-pps", "sprop-vps"}
    assert fmtp["sprop-pps"] == "RAHA8vA8kAA="
    assert video.attribute("x-dimensions") == "1920,1080"
    assert video.attribute("recvonly") == ""
    assert audio.payload_types == [8]
    assert audio.rtpmap(8) == Rtpmap("PCMA", 8000, 1)
    assert audio.rtpmap(0) is None
    assert desc.bandwidths == ("AS:5050",)


def test_gstreamer_relative_controls() -> None:
    desc = parse_sdp(GSTREAMER_SDP)
    base = "rtsp://127.0.0.1:8554/test/"
    assert desc.control == "*"
    assert [desc.media_control_url(i, base) for i in range(2)] == [
        "rtsp://127.0.0.1:8554/test/stream=0",
        "rtsp://127.0.0.1:8554/test/stream=1",
    ]


def test_onvif_replay_controls_resolve_against_session_control() -> None:
    desc = parse_sdp(ONVIF_REPLAY_SDP)
    assert desc.media_control_url(0, "rtsp://192.0.2.10/other") == (
        "rtsp://192.0.2.10/onvif/replay/RecordingToken001/video"
    )
    assert desc.attribute("range") == "clock=20260101T000000Z-20260101T010000Z"


@pytest.mark.parametrize(
    ("base", "control", "url"),
    [
        ("rtsp://cam/stream", "trackID=1", "rtsp://cam/stream/trackID=1"),
        ("rtsp://cam/stream/", "trackID=1", "rtsp://cam/stream/trackID=1"),
        ("rtsp://cam/stream/", "/trackID=1", "rtsp://cam/stream/trackID=1"),
        ("rtsp://cam/stream", "*", "rtsp://cam/stream"),
        ("rtsp://cam/stream", None, "rtsp://cam/stream"),
        ("rtsp://cam/stream", "rtsp://other:8554/x/track", "rtsp://other:8554/x/track"),
        ("rtsp://cam/stream", "RTSPS://cam/secure", "RTSPS://cam/secure"),
    ],
)
def test_resolve_control(base: str, control: str | None, url: str) -> None:
    assert resolve_control(base, control) == url


def test_tolerates_what_cameras_send() -> None:
    text = (
        "\r\n"
        "v=0\n"
        "o=- 1 1 IN IP4\r\n"  # address missing
        "garbage line without equals\r\n"
        "x=unknown type\r\n"
        "k=clear:key\r\n"
        "m=video 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;;flag\r\n"
        "\r\n"
    )
    desc = parse_sdp(text)
    assert desc.session_name == "-" and desc.timing == "0 0"  # s= and t= missing
    assert desc.origin.address == "0.0.0.0"
    assert desc.media[0].fmtp(96) == {"packetization-mode": "1", "flag": ""}
    assert desc.media[0].control is None


def test_origin_with_spaces_in_user_name() -> None:
    origin = parse_sdp("v=0\r\no=Axis Camera 1 2 IN IP4 192.0.2.1\r\n").origin
    assert origin == Origin("Axis Camera", "1", "2", "IN", "IP4", "192.0.2.1")


def test_latin1_session_name() -> None:
    desc = parse_sdp(b"v=0\r\ns=C\xe1mara 1\r\nm=video 0 RTP/AVP 26\r\n")
    assert desc.session_name == "Cámara 1"


def test_serialize_round_trip() -> None:
    for text in (AXIS_SDP, HIKVISION_SDP, GSTREAMER_SDP, RFC_SDP, ONVIF_REPLAY_SDP):
        desc = parse_sdp(text)
        again = parse_sdp(desc.to_bytes())
        assert again == desc


def test_serialize_layout() -> None:
    media = MediaDescription(
        "video",
        0,
        "RTP/AVP",
        ("96",),
        (("rtpmap", "96 H264/90000"), ("recvonly", None), ("control", "trackID=1")),
        bandwidths=("AS:4000",),
    )
    desc = SessionDescription(
        origin=Origin("-", "42", "1", "IN", "IP4", "127.0.0.1"),
        session_name="Custos",
        connection="IN IP4 0.0.0.0",
        attributes=(("control", "*"),),
        media=(media,),
    )
    assert desc.to_text() == (
        "v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\ns=Custos\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        "a=control:*\r\nm=video 0 RTP/AVP 96\r\nb=AS:4000\r\na=rtpmap:96 H264/90000\r\n"
        "a=recvonly\r\na=control:trackID=1\r\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s=no version\r\n", "no v= line"),
        ("v=1\r\n", "version '1'"),
        ("v=0\r\nm=video\r\n", "needs media, port, proto"),
        ("v=0\r\nm=video x RTP/AVP 96\r\n", "malformed port 'x'"),
        ("v=0\r\nm=video 70000 RTP/AVP 96\r\n", "port 70000 out of range"),
        ("v=0\r\n" + "m=audio 0 RTP/AVP 0\r\n" * (sdp.MAX_MEDIA + 1), "MAX_MEDIA"),
        ("v=0\r\n" + "a=x\r\n" * (sdp.MAX_ATTRIBUTES + 1), "MAX_ATTRIBUTES"),
        ("v=0\r\ns=" + "x" * (sdp.MAX_LINE_BYTES + 1), "exceeds"),
        ("v=0\r\n" + "a=x\r\n" * 20_000, "MAX_SDP_BYTES"),
    ],
)
def test_malformed_or_oversized(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        parse_sdp(text)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("96 H264", "malformed a=rtpmap:96"),
        ("96 H264/abc", "malformed"),
        ("96 /90000", "malformed"),
    ],
)
def test_bad_rtpmap(line: str, message: str) -> None:
    media = parse_sdp(f"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:{line}\r\n").media[0]
    with pytest.raises(SdpError, match=message):
        media.rtpmap(96)


def test_payload_types_must_be_numbers() -> None:
    for fmt in ("abc", "128", "\u00b2"):
        media = parse_sdp(f"v=0\r\nm=video 0 RTP/AVP 96 {fmt}\r\n").media[0]
        with pytest.raises(SdpError, match="is not an RTP payload type"):
            _ = media.payload_types


@settings(max_examples=10_000)
@given(st.binary(max_size=300))
def test_parser_raises_only_sdp_error(data: bytes) -> None:
    # Prefix half of the examples with a valid start so the line parsers are reached.
    if data[:1] and data[0] & 1:
        data = b"v=0\r\nm=video 0 RTP/AVP 96\r\n" + data[1:]
    try:
        desc = parse_sdp(data)
    except SdpError:
        return
    for media in desc.media:
        try:
            for pt in media.payload_types:
                media.rtpmap(pt)
                media.fmtp(pt)
        except SdpError:
            pass
    assert desc.to_text().startswith("v=0\r\n")
