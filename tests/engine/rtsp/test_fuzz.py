"""Fuzzed requests against a live server, one connection per example.

Every answer is a well-formed RTSP response with a sensible status, nothing is logged as an
error, and the server keeps answering.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.protocols.rtsp.message import RtspResponse
from app.protocols.rtsp.parser import MAX_LINE_BYTES
from tests.engine.rtsp.conftest import LiveRig
from tests.engine.rtsp.helpers import RawClient

METHODS = [
    "OPTIONS",
    "DESCRIBE",
    "SETUP",
    "PLAY",
    "PAUSE",
    "TEARDOWN",
    "GET_PARAMETER",
    "SET_PARAMETER",
    "ANNOUNCE",
    "RECORD",
    "REDIRECT",
    "FROB",
    "play",
    "GET",
]
PATHS = [
    "{url}",
    "{url}/",
    "{url}/trackID=0",
    "{url}/trackID=1",
    "{url}/trackID=9",
    "*",
    "{url}x",
    "rtsp://[::1/x",
    "rtsp://h:99999/x",
    "http://h/x",
    "/relative",
    "{url}/%00",
    "{url}?a=b/trackID=0",
    "{url}/../live",
]
HEADERS: dict[str, list[str]] = {
    "CSeq": ["1", "0", "4294967295", "99999999999", "-1", "x", ""],
    "Session": ["0123456789abcdef", "bad id", "x" * 200, ";timeout=5", "{session}"],
    "Transport": [
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        "RTP/AVP/TCP;unicast;interleaved=254-255",
        "RTP/AVP/TCP;unicast;interleaved=255",
        "RTP/AVP;unicast;client_port=9-10",
        "RTP/AVP;unicast;client_port=65535",
        "RTP/AVP;multicast;ttl=3",
        "RTP/AVP;unicast;client_port=0-0;destination=192.0.2.1",
        "RTP/SAVP/TCP;unicast",
        "RTP/AVP/TCP;mode=RECORD",
        'RTP/AVP/TCP;mode="PLAY;interleaved=2-3',
        ";;;,,,",
    ],
    "Range": [
        "npt=0-",
        "npt=now-",
        "clock=20261121T140000Z-",
        "clock=x-",
        "smpte=0:0:0-",
        "npt=99999999999-",
        "npt=-",
        "",
    ],
    "Scale": ["1.0", "-1.0", "0", "nan", "1e309", "-"],
    "Speed": ["2", "0", "-1"],
    "Rate-Control": ["yes", "no", "maybe"],
    "Frames": ["intra", "intra/100", "all/5", "predicted"],
    "Immediate": ["yes", "no", "1"],
    "Require": ["onvif-replay", "a, b", "", ",,,"],
    "Authorization": ['Digest username="a"', "Basic YTpi", "Digest " + "x=" * 100],
    "Accept": ["application/sdp", "*/*"],
}


_token = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8)
_printable = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Mostly well-framed requests with hostile header values, some malformed framing."""
    method = draw(st.sampled_from(METHODS))
    if draw(st.integers(0, 9)) == 0:
        method = draw(_token)
    path = draw(st.sampled_from(PATHS))
    version = draw(st.sampled_from(["RTSP/1.0"] * 20 + ["RTSP/2.0", "HTTP/1.1", ""]))
    names = draw(st.lists(st.sampled_from(sorted(HEADERS)), max_size=8))
    lines = [f"{method} {path} {version}".strip()]
    if draw(st.integers(0, 9)):
        lines.append("CSeq: 7")
    for name in names:
        value = draw(st.sampled_from(HEADERS[name]))
        if draw(st.integers(0, 9)) == 0:
            value = draw(_printable).strip()
        lines.append(f"{name}: {value}")
    if draw(st.integers(0, 20)) == 0:
        lines.append("X-Long: " + "y" * (MAX_LINE_BYTES + 1))
    body = draw(st.sampled_from([b"", b"", b"", b"position\r\n", b"\x00\xff" * 10]))
    if draw(st.integers(0, 9)) == 0:
        lines.append(f"Content-Length: {draw(st.sampled_from(['0', '5', '-1', 'x', '70000']))}")
    elif body:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    if draw(st.integers(0, 10)) == 0:
        data += b"$\x01\x00\x08" + draw(st.binary(min_size=8, max_size=8))
    if draw(st.integers(0, 20)) == 0:
        data = draw(st.binary(max_size=64)) + data
    return data


@pytest.fixture
def quiet_caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="app.engine.rtsp")
    return caplog


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(raw_requests(), min_size=1, max_size=3))
async def test_fuzzed_requests_never_crash_the_server(
    rig: LiveRig, quiet_caplog: pytest.LogCaptureFixture, requests: list[bytes]
) -> None:
    client = await rig.client()
    setup = await client.request(
        "SETUP", rig.url + "/trackID=0", [("Transport", "RTP/AVP/TCP;unicast")]
    )
    session = (setup.headers.get("Session") or "").split(";")[0]
    for data in requests:
        raw = data.replace(b"{url}", rig.url.encode()).replace(b"{session}", session.encode())
        await client.send_raw(raw)
    client.writer.write_eof()  # the server answers what it read, then closes
    assert await client.at_eof()
    responses: list[RtspResponse] = list(client.responses)
    for response in responses:
        assert response.status in (
            200,
            400,
            401,
            404,
            405,
            413,
            414,
            451,
            453,
            454,
            455,
            457,
            459,
            460,
            461,
            501,
            503,
            505,
            551,
        ), response
    await client.close()
    errors = [r for r in quiet_caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()
    probe = await RawClient.connect("127.0.0.1", rig.server.port)
    assert (await probe.request("OPTIONS", "*")).status == 200
    await probe.close()
