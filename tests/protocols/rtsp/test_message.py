"""Message values and serializers: byte layout, CSeq echo, automatic Content-Length, headers."""

from __future__ import annotations

import pytest

from app.protocols.rtsp.message import (
    REASONS,
    Headers,
    RtspRequest,
    RtspResponse,
    encode_interleaved,
    encode_request,
    encode_response,
    make_response,
    redact_url,
)


def test_request_bytes() -> None:
    request = RtspRequest(
        "SETUP",
        "rtsp://h/live/trackID=0",
        Headers([("CSeq", "3"), ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]),
    )
    assert encode_request(request) == (
        b"SETUP rtsp://h/live/trackID=0 RTSP/1.0\r\n"
        b"CSeq: 3\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    )


def test_response_echoes_cseq_and_counts_the_body() -> None:
    request = RtspRequest("DESCRIBE", "rtsp://h/a", Headers([("Cseq", " 12 ")]))
    # A stale Content-Length given by the caller is replaced by the real one.
    response = make_response(
        request,
        200,
        headers=[("Content-Type", "application/sdp"), ("Content-Length", "999")],
        body=b"v=0\r\n",
    )
    assert encode_response(response) == (
        b"RTSP/1.0 200 OK\r\n"
        b"CSeq: 12\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 5\r\n\r\n"
        b"v=0\r\n"
    )


def test_response_without_a_request_uses_the_given_cseq_or_none() -> None:
    assert encode_response(make_response(None, 413, cseq=7)) == (
        b"RTSP/1.0 413 Request Entity Too Large\r\nCSeq: 7\r\n\r\n"
    )
    assert encode_response(make_response(None, 400)) == b"RTSP/1.0 400 Bad Request\r\n\r\n"
    bad = RtspRequest("PLAY", "rtsp://h/a", Headers([("CSeq", "x")]))
    assert make_response(bad, 400).headers.get("CSeq") is None


def test_reason_phrases_cover_the_rtsp_status_codes() -> None:
    for code in (200, 401, 405, 451, 453, 454, 455, 457, 459, 460, 461, 501, 505, 551):
        assert REASONS[code]
    assert make_response(None, 454).reason == "Session Not Found"
    assert make_response(None, 299).reason == "Unknown"


def test_interleaved_frame_bytes() -> None:
    assert encode_interleaved(1, b"\x80\xc8") == b"$\x01\x00\x02\x80\xc8"
    assert encode_interleaved(255, b"x" * 65535)[:4] == b"$\xff\xff\xff"
    with pytest.raises(ValueError, match="65535"):
        encode_interleaved(0, b"x" * 65536)
    with pytest.raises(ValueError, match="channel"):
        encode_interleaved(256, b"")


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        Headers([("X", "a\r\nSession: 1")])
    with pytest.raises(ValueError, match="Request-URI"):
        encode_request(RtspRequest("PLAY", "rtsp://h/a b", Headers()))
    with pytest.raises(ValueError, match="method"):
        encode_request(RtspRequest("PL AY", "rtsp://h/a", Headers()))
    with pytest.raises(ValueError, match="three digits"):
        encode_response(RtspResponse(20))


def test_headers_are_case_insensitive_and_ordered() -> None:
    headers = Headers([("WWW-Authenticate", "Digest a"), ("www-authenticate", "Digest b")])
    headers.add("Require", "x")
    headers.add("REQUIRE", "y")
    assert headers.get("Www-Authenticate") == "Digest a"
    assert headers.get_all("www-authenticate") == ["Digest a", "Digest b"]
    assert headers.get_joined("require") == "x, y"
    assert "require" in headers and "Session" not in headers
    headers.set("require", "z")
    assert headers.get_all("Require") == ["z"]
    headers.remove("WWW-AUTHENTICATE")
    assert list(headers) == [("require", "z")]
    assert len(headers) == 1 and headers == headers.copy()


def test_redact_url_removes_user_info_only() -> None:
    assert redact_url("rtsp://admin:pw@cam:554/live?x=@y") == "rtsp://cam:554/live?x=@y"
    assert redact_url("PLAY rtsp://u@h/a RTSP/1.0") == "PLAY rtsp://h/a RTSP/1.0"
    assert redact_url("rtsp://h/a@b") == "rtsp://h/a@b"
