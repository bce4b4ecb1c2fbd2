"""Session, CSeq, Scale/Speed, Rate-Control, Frames, Immediate, feature tags and RTP-Info."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.rtsp.headers import (
    FramesHeader,
    FramesMode,
    RtpInfo,
    SessionHeader,
    format_feature_tags,
    format_rtp_info,
    format_scale,
    format_yes_no,
    parse_cseq,
    parse_feature_tags,
    parse_frames,
    parse_immediate,
    parse_rate_control,
    parse_rtp_info,
    parse_scale,
    parse_session,
    parse_speed,
)
from app.protocols.rtsp.message import RtspParseError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12345678", SessionHeader("12345678")),
        ("12345678; timeout=60", SessionHeader("12345678", 60)),  # ONVIF example spacing
        ("343c10e569254ba2;timeout=60", SessionHeader("343c10e569254ba2", 60)),
        ("dR4yuXHyIxz6Rn4A;timeout=30;x-other=1", SessionHeader("dR4yuXHyIxz6Rn4A", 30)),
        ("a.b-c_d$e+f", SessionHeader("a.b-c_d$e+f")),
    ],
)
def test_session(value: str, expected: SessionHeader) -> None:
    assert parse_session(value) == expected


@pytest.mark.parametrize("value", ["", "has space", "abc;timeout=x", "a/b", "x" * 129])
def test_session_invalid(value: str) -> None:
    with pytest.raises(RtspParseError):
        parse_session(value)


def test_session_format() -> None:
    assert SessionHeader("abcdef01", 60).to_header() == "abcdef01;timeout=60"
    assert SessionHeader("abcdef01").to_header() == "abcdef01"


def test_cseq() -> None:
    assert parse_cseq(" 833 ") == 833
    for bad in (None, "", "-1", "1.5", "x", "12345678901"):
        with pytest.raises(RtspParseError):
            parse_cseq(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.0", 1.0),
        ("-1.0", -1.0),
        ("-1.000000", -1.0),
        ("2", 2.0),
        ("0.5", 0.5),
        (".25", 0.25),
        ("+4.0", 4.0),
        (" -8 ", -8.0),
        ("0", 0.0),
    ],
)
def test_scale(text: str, value: float) -> None:
    assert parse_scale(text) == value


@pytest.mark.parametrize("text", ["", "nan", "inf", "-inf", "1e3", "1,5", "--1", "0x10"])
def test_scale_invalid(text: str) -> None:
    with pytest.raises(RtspParseError):
        parse_scale(text)


def test_speed_must_be_positive() -> None:
    assert parse_speed("2.5") == 2.5
    for bad in ("0", "-1.0", "0.0"):
        with pytest.raises(RtspParseError):
            parse_speed(bad)


def test_scale_format() -> None:
    assert [format_scale(v) for v in (1.0, -1.0, 0.25, 2, -16)] == [
        "1.0",
        "-1.0",
        "0.25",
        "2.0",
        "-16.0",
    ]
    with pytest.raises(ValueError, match="finite"):
        format_scale(float("nan"))


@pytest.mark.parametrize("parse", [parse_rate_control, parse_immediate])
def test_yes_no(parse: Callable[[str], bool]) -> None:
    assert parse("yes") is True
    assert parse(" no ") is False
    assert parse("YES") is True
    for bad in ("", "true", "1", "y"):
        with pytest.raises(RtspParseError):
            parse(bad)
    assert (format_yes_no(True), format_yes_no(False)) == ("yes", "no")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("intra", FramesHeader(FramesMode.INTRA)),
        ("intra/4000", FramesHeader(FramesMode.INTRA, 4000)),
        ("predicted", FramesHeader(FramesMode.PREDICTED)),
        ("all", FramesHeader(FramesMode.ALL)),
        (" Intra / 250 ", FramesHeader(FramesMode.INTRA, 250)),
    ],
)
def test_frames(text: str, expected: FramesHeader) -> None:
    assert parse_frames(text) == expected
    assert parse_frames(expected.to_header()) == expected


@pytest.mark.parametrize(
    "text",
    ["", "some", "predicted/100", "all/5", "intra/", "intra/-5", "intra/1.5", "intra/999999999"],
)
def test_frames_invalid(text: str) -> None:
    with pytest.raises(RtspParseError):
        parse_frames(text)


def test_feature_tags() -> None:
    assert parse_feature_tags("onvif-replay") == ("onvif-replay",)
    assert parse_feature_tags("www.onvif.org/ver20/backchannel, onvif-replay,") == (
        "www.onvif.org/ver20/backchannel",
        "onvif-replay",
    )
    assert format_feature_tags(("a", "b")) == "a, b"
    with pytest.raises(RtspParseError):
        parse_feature_tags("bad tag")
    with pytest.raises(RtspParseError):
        parse_feature_tags(",".join(f"t{i}" for i in range(33)))


def test_rtp_info_from_the_onvif_example() -> None:
    value = (
        "url=rtsp://example.com/onvif_camera/video; seq=1234;rtptime=3450012, "
        "url=rtsp://example.com/onvif_camera/audio;seq=22434;rtptime=1234566"
    )
    assert parse_rtp_info(value) == [
        RtpInfo("rtsp://example.com/onvif_camera/video", 1234, 3450012),
        RtpInfo("rtsp://example.com/onvif_camera/audio", 22434, 1234566),
    ]


def test_rtp_info_urls_with_commas_and_semicolons() -> None:
    entries = [
        RtpInfo("rtsp://h/media.amp/stream=0?videocodec=h264,x;y", 1, None),
        RtpInfo("rtsp://h/media.amp/stream=1", None, 4294967295),
    ]
    text = format_rtp_info(entries)
    assert text == (
        "url=rtsp://h/media.amp/stream=0?videocodec=h264,x;y;seq=1,"
        "url=rtsp://h/media.amp/stream=1;rtptime=4294967295"
    )
    assert parse_rtp_info(text) == entries


@pytest.mark.parametrize(
    "value", ["seq=1", "url=;seq=1", "url=rtsp://h/a;seq=65536", "url=rtsp://h/a;rtptime=x"]
)
def test_rtp_info_invalid(value: str) -> None:
    with pytest.raises(RtspParseError):
        parse_rtp_info(value)


@settings(max_examples=2_000)
@given(
    parser=st.sampled_from(
        [
            parse_session,
            parse_scale,
            parse_speed,
            parse_rate_control,
            parse_frames,
            parse_feature_tags,
            parse_rtp_info,
        ]
    ),
    value=st.text(max_size=100),
)
def test_random_text_raises_only_parse_errors(parser: Callable[[str], object], value: str) -> None:
    try:
        parser(value)
    except RtspParseError as exc:
        assert exc.status == 400
