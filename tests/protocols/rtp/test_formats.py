"""The payload-format registry: SDP of real devices → CodecParams, the inverse, and the classes."""

from __future__ import annotations

import base64
import logging

import pytest

from app.core.media import Codec, CodecParams
from app.protocols.rtp import formats
from app.protocols.rtp.aac import AacDepacketizer, AacPacketizer
from app.protocols.rtp.codec import DepacketizeError
from app.protocols.rtp.formats import (
    MetadataDepacketizer,
    MetadataPacketizer,
    UnsupportedEncodingError,
    depacketizer_for,
    packetizer_for,
    params_from_sdp,
    sdp_media_for,
)
from app.protocols.rtp.g711 import G711Depacketizer, G711Packetizer
from app.protocols.rtp.h26x import (
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
)
from app.protocols.rtp.jpeg import JpegDepacketizer, JpegPacketizer
from app.protocols.rtp.packet import RtpPacket
from app.protocols.sdp import SdpError, SessionDescription, parse_sdp
from tests.formats.h26x.streams import H264_PPS, H265_PPS, H265_VPS, h264_sps, h265_sps
from tests.protocols.test_sdp import (
    AXIS_SDP,
    GSTREAMER_SDP,
    HIKVISION_SDP,
    ONVIF_REPLAY_SDP,
    RFC_SDP,
)


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_axis_params() -> None:
    video, audio, metadata = (params_from_sdp(m) for m in parse_sdp(AXIS_SDP).media)
    assert video == CodecParams(
        Codec.H264,
        90_000,
        1920,
        1080,
        parameter_sets=(_b64("Z00AKeKQDwBE/LgLcBAQGkHiRFQ="), _b64("aO48gA==")),
    )
    assert audio == CodecParams(
        Codec.AAC, 16_000, sample_rate=16_000, channels=1, audio_config=b"\x14\x08"
    )
    assert metadata == CodecParams(Codec.METADATA, 90_000)


def test_hikvision_params_order_vps_sps_pps() -> None:
    video, audio = (params_from_sdp(m) for m in parse_sdp(HIKVISION_SDP).media)
    assert video.codec is Codec.H265
    assert (video.width, video.height) == (1920, 1080)
    assert [(s[0] >> 1) & 0x3F for s in video.parameter_sets] == [32, 33, 34]
    assert video.parameter_sets[2] == _b64("RAHA8vA8kAA=")
    assert audio == CodecParams(Codec.PCMA, 8000, sample_rate=8000, channels=1)


def test_gstreamer_params() -> None:
    video, audio = (params_from_sdp(m) for m in parse_sdp(GSTREAMER_SDP).media)
    assert video == CodecParams(Codec.JPEG, 90_000, 320, 240)
    assert audio == CodecParams(Codec.PCMU, 8000, sample_rate=8000, channels=1)


def test_rfc_example_params() -> None:
    video, audio = (params_from_sdp(m) for m in parse_sdp(RFC_SDP).media)
    assert (video.codec, video.width, video.height) == (Codec.H264, 176, 144)
    assert video.parameter_sets == (_b64("Z0IACpZTBYmI"), _b64("aMljiA=="))
    assert audio == CodecParams(
        Codec.AAC, 48_000, sample_rate=48_000, channels=2, audio_config=b"\x11\x90"
    )


def test_onvif_replay_params_without_sprop() -> None:
    video, metadata = (params_from_sdp(m) for m in parse_sdp(ONVIF_REPLAY_SDP).media)
    assert video == CodecParams(Codec.H264, 90_000)
    assert metadata.codec is Codec.METADATA


@pytest.mark.parametrize(
    ("media", "params"),
    [
        ("m=audio 0 RTP/AVP 0", CodecParams(Codec.PCMU, 8000, sample_rate=8000, channels=1)),
        ("m=audio 0 RTP/AVP 8 0", CodecParams(Codec.PCMA, 8000, sample_rate=8000, channels=1)),
        (
            "m=video 0 RTP/AVP 26\r\na=framesize:26 640-480",
            CodecParams(Codec.JPEG, 90_000, 640, 480),
        ),
    ],
)
def test_static_payload_types_need_no_rtpmap(media: str, params: CodecParams) -> None:
    assert params_from_sdp(parse_sdp(f"v=0\r\n{media}\r\n").media[0]) == params


def test_payload_type_can_be_chosen() -> None:
    media = parse_sdp("v=0\r\nm=audio 0 RTP/AVP 8 0\r\n").media[0]
    assert params_from_sdp(media, 0).codec is Codec.PCMU


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H263-1998/90000", "encoding 'H263-1998'"),
        ("m=video 0 RTP/AVP 96", "dynamic payload type 96 .* has no a=rtpmap"),
        (
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2",
            "packetization-mode=2",
        ),
        (
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-max-don-diff=2",
            "sprop-max-don-diff=2",
        ),
        (
            "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/8000\r\n"
            "a=fmtp:96 mode=AAC-lbr;config=1588",
            "mode='AAC-lbr'",
        ),
        (
            "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/8000\r\n"
            "a=fmtp:96 mode=AAC-hbr;sizelength=6;config=1588",
            "sizelength=6",
        ),
    ],
)
def test_unsupported_encodings_are_named(lines: str, message: str) -> None:
    with pytest.raises(UnsupportedEncodingError, match=message):
        params_from_sdp(parse_sdp(f"v=0\r\n{lines}\r\n").media[0])


@pytest.mark.parametrize(
    ("fmtp", "message"),
    [("mode=AAC-hbr", "without an AudioSpecificConfig"), ("mode=AAC-hbr;config=1G", "'1G'")],
)
def test_aac_config_is_required(fmtp: str, message: str) -> None:
    text = f"v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MPEG4-GENERIC/8000\r\na=fmtp:96 {fmtp}\r\n"
    with pytest.raises(SdpError, match=message):
        params_from_sdp(parse_sdp(text).media[0])


def test_broken_sprop_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0IA,aM48gA==,!!!\r\n"
    )
    with caplog.at_level(logging.WARNING):
        params = params_from_sdp(parse_sdp(text).media[0])
    assert params == CodecParams(Codec.H264, 90_000)
    assert "undecodable SDP parameter set '!!!'" in caplog.text
    assert "ignoring SDP parameter sets of H264" in caplog.text


H264_PARAMS = CodecParams(
    Codec.H264, 90_000, 1280, 720, parameter_sets=(h264_sps(80, 45), H264_PPS)
)
H265_PARAMS = CodecParams(
    Codec.H265,
    90_000,
    1920,
    1080,
    parameter_sets=(H265_VPS, h265_sps(1920, 1088, conformance=(0, 0, 0, 4)), H265_PPS),
)
ALL_PARAMS = [
    H264_PARAMS,
    CodecParams(Codec.H264, 90_000),
    H265_PARAMS,
    CodecParams(Codec.JPEG, 90_000, 640, 480),
    CodecParams(Codec.JPEG, 90_000),
    CodecParams(Codec.AAC, 48_000, sample_rate=48_000, channels=2, audio_config=b"\x11\x90"),
    CodecParams(Codec.AAC, 16_000, sample_rate=16_000, channels=1, audio_config=b"\x14\x08"),
    CodecParams(Codec.PCMU, 8000, sample_rate=8000, channels=1),
    CodecParams(Codec.PCMA, 16_000, sample_rate=16_000, channels=2),
    CodecParams(Codec.METADATA, 90_000),
]


@pytest.mark.parametrize(
    "params", ALL_PARAMS, ids=lambda p: f"{p.codec.value}-{p.width or p.sample_rate}"
)
def test_sdp_media_round_trip(params: CodecParams) -> None:
    media = sdp_media_for(params, 97, "trackID=3")
    text = SessionDescription(media=(media,)).to_text()
    parsed = parse_sdp(text).media[0]
    assert parsed.control == "trackID=3"
    assert params_from_sdp(parsed) == params


def test_sdp_media_layout() -> None:
    h264 = sdp_media_for(H264_PARAMS, 96, "trackID=1")
    assert h264.media == "video" and h264.formats == ("96",)
    sprop = ",".join(base64.b64encode(s).decode() for s in H264_PARAMS.parameter_sets)
    assert h264.attributes == (
        ("rtpmap", "96 H264/90000"),
        ("fmtp", f"96 packetization-mode=1;profile-level-id=42001F;sprop-parameter-sets={sprop}"),
        ("control", "trackID=1"),
    )
    aac = sdp_media_for(ALL_PARAMS[5], 97, "trackID=2")
    assert aac.media == "audio"
    assert aac.attributes[:2] == (
        ("rtpmap", "97 MPEG4-GENERIC/48000/2"),
        (
            "fmtp",
            "97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
            "indexdeltalength=3;config=1190",
        ),
    )
    assert sdp_media_for(CodecParams(Codec.PCMU, 8000, 8000, 1), 0, "a").attributes[0] == (
        "rtpmap",
        "0 PCMU/8000",
    )
    meta = sdp_media_for(CodecParams(Codec.METADATA, 90_000), 107, "m")
    assert meta.media == "application"
    assert meta.attributes[0] == ("rtpmap", "107 vnd.onvif.metadata/90000")


@pytest.mark.parametrize(
    ("params", "depacketizer", "packetizer"),
    [
        (H264_PARAMS, H264Depacketizer, H264Packetizer),
        (H265_PARAMS, H265Depacketizer, H265Packetizer),
        (ALL_PARAMS[3], JpegDepacketizer, JpegPacketizer),
        (ALL_PARAMS[5], AacDepacketizer, AacPacketizer),
        (ALL_PARAMS[7], G711Depacketizer, G711Packetizer),
        (ALL_PARAMS[8], G711Depacketizer, G711Packetizer),
        (ALL_PARAMS[9], MetadataDepacketizer, MetadataPacketizer),
    ],
)
def test_registry_classes(params: CodecParams, depacketizer: type, packetizer: type) -> None:
    dep = depacketizer_for(params)
    assert type(dep) is depacketizer and dep.params == params and dep.lost_units == 0
    pk = packetizer_for(params, 600)
    assert type(pk) is packetizer and pk.params == params
    assert getattr(pk, "max_payload", 600) == 600


def test_metadata_round_trip_and_loss() -> None:
    doc = b"<?xml version='1.0'?><tt:MetadataStream>" + b"x" * 2500 + b"</tt:MetadataStream>"
    params = CodecParams(Codec.METADATA, 90_000)
    chunks = packetizer_for(params, 1000).packetize(doc)
    assert [len(c.payload) for c in chunks] == [1000, 1000, len(doc) - 2000]
    assert [c.marker for c in chunks] == [False, False, True]
    dep = depacketizer_for(params)
    packets = [RtpPacket(107, i, 9000, 1, c.payload, c.marker) for i, c in enumerate(chunks)]
    units = [u for p in packets for u in dep.push(p)]
    assert [(u.data, u.rtp_timestamp, u.keyframe) for u in units] == [(doc, 9000, True)]
    # the middle packet of the next document is lost
    later = [RtpPacket(107, 3 + i, 18000, 1, c.payload, c.marker) for i, c in enumerate(chunks)]
    assert dep.push(later[0]) == [] and dep.push(later[2]) == []
    assert dep.lost_units == 1
    assert [u.data for u in dep.push(RtpPacket(107, 6, 27000, 1, doc, True))] == [doc]
    # a document whose marker never came is dropped when the next begins
    dep.push(RtpPacket(107, 7, 36000, 1, b"<a>", False))
    assert [u.data for u in dep.push(RtpPacket(107, 8, 45000, 1, doc, True))] == [doc]
    assert dep.lost_units == 2
    # after a gap even a one-packet document is dropped: its beginning may have been lost
    assert dep.push(RtpPacket(107, 10, 54000, 1, doc, True)) == []
    assert dep.lost_units == 3
    assert dep.push(RtpPacket(107, 11, 63000, 1, b"<b>", False)) == []
    assert dep.flush() == [] and dep.lost_units == 4


def test_metadata_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_METADATA_BYTES", 100)
    dep = depacketizer_for(CodecParams(Codec.METADATA, 90_000))
    dep.push(RtpPacket(107, 1, 0, 1, b"<a/>", False))
    with pytest.raises(DepacketizeError, match="MAX_METADATA_BYTES=100"):
        dep.push(RtpPacket(107, 2, 0, 1, b"x" * 100, False))
    assert dep.push(RtpPacket(107, 3, 0, 1, b"x" * 100, True)) == []
    assert dep.lost_units == 1
    assert [u.data for u in dep.push(RtpPacket(107, 4, 9, 1, b"<b/>", True))] == [b"<b/>"]
