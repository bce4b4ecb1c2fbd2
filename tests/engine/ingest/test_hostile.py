"""Hostile and broken cameras: every failure is logged clearly, the receiver retries, nothing
crashes; credentials never reach a log record."""

from __future__ import annotations

import base64
import logging
import os
import random
from typing import Any

import pytest

from app.core.time import SystemClock
from app.engine.ingest import Receiver, ReceiverState, redact_url
from app.formats.h26x import MAX_NAL_BYTES
from tests.engine.ingest.fake_camera import (
    SESSION_ID,
    Connection,
    FakeCamera,
    MediaScript,
    Request,
    Responder,
    bye,
    h264_sdp,
    h264_units,
    interleaved,
    response,
    rtp_packets,
    stream_units,
)
from tests.engine.ingest.helpers import RecordingSink, StateLog

UNITS = h264_units(frames=10, gop=5)
SDP = h264_sdp(UNITS)
FAST: dict[str, Any] = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.1, "request_timeout_s": 0.5}


def raw(data: bytes) -> Responder:
    return lambda request, conn: data


def status(line: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Responder:
    return lambda request, conn: response(request.header("cseq"), line, headers, body)


def sdp_body(text: str, content_type: str = "application/sdp") -> Responder:
    return status("200 OK", {"Content-Type": content_type}, text.encode())


def setup_answer(headers: dict[str, str]) -> Responder:
    return status("200 OK", headers)


def frames(data: list[bytes], channel: int = 0, close: bool = False) -> MediaScript:
    async def media(conn: Connection) -> None:
        for packet in data:
            conn.write(interleaved(channel, packet))
        await conn.drain()
        if close:
            conn.close()

    return media


def then(*scripts: MediaScript) -> MediaScript:
    async def media(conn: Connection) -> None:
        for script in scripts:
            await script(conn)

    return media


async def truncated_then_close(conn: Connection) -> None:
    for packet in rtp_packets(UNITS[:2]):
        conn.write(interleaved(0, packet))
    conn.write(b"$\x00\x05\xdc" + b"\x80" * 10)  # announces 1500 bytes, sends 10
    await conn.drain()
    conn.close()


# Deterministic noise whose first byte never claims RTP/RTCP version 2.
GARBAGE = [bytes([i & 0x3F]) + random.Random(i).randbytes(40 + i) for i in range(60)]
OTHER_SSRC = rtp_packets(UNITS[3:6], first_seq=200, first_ts=50_000, ssrc=0xBAD)

CASES: dict[str, tuple[dict[str, Responder], MediaScript | None, str]] = {
    "http-not-rtsp": (
        {"OPTIONS": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
        None,
        "malformed RTSP data from the camera",
    ),
    "binary-garbage": ({"OPTIONS": raw(bytes(range(256)))}, None, "malformed RTSP data"),
    "header-without-colon": (
        {"OPTIONS": raw(b"RTSP/1.0 200 OK\r\nCSeq 1\r\n\r\n")},
        None,
        "malformed RTSP data from the camera (RTSPResponseError",
    ),
    "bad-content-length": (
        {"OPTIONS": status("200 OK", {"Content-Length": "ten"})},
        None,
        "malformed RTSP data from the camera (ValueError",
    ),
    "endless-header": (
        {"OPTIONS": raw(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Junk: " + b"a" * 20_000)},
        None,
        "RTSP response head of more than 16384 bytes",
    ),
    "header-flood": (
        {"OPTIONS": raw(b"RTSP/1.0 200 OK\r\n" + b"X-Junk: 1\r\n" * 100)},
        None,
        "RTSP response with more than 64 header lines",
    ),
    "silence": ({"OPTIONS": raw(b"")}, None, "no answer to OPTIONS within 0.5 s"),
    "describe-404": (
        {"DESCRIBE": status("404 Not Found")},
        None,
        "DESCRIBE answered 404 Not Found",
    ),
    "sdp-without-version": (
        {"DESCRIBE": sdp_body("this is not a session description")},
        None,
        "not an SDP session description",
    ),
    "sdp-bad-m-line": ({"DESCRIBE": sdp_body("v=0\r\nm=video\r\n")}, None, "malformed m= line"),
    "sdp-unsupported-codec": (
        {"DESCRIBE": sdp_body("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")},
        None,
        "the camera offers no supported media",
    ),
    "sdp-wrong-content-type": (
        {"DESCRIBE": sdp_body("<html></html>", "text/html")},
        None,
        "DESCRIBE answered 'text/html' instead of application/sdp",
    ),
    "setup-without-session": (
        {"SETUP": setup_answer({"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})},
        None,
        "SETUP answer has no Session header",
    ),
    "setup-garbage-transport": (
        {"SETUP": setup_answer({"Session": SESSION_ID, "Transport": "%%%"})},
        None,
        "invalid transport protocol",
    ),
    "setup-udp-for-tcp": (
        {"SETUP": setup_answer({"Session": SESSION_ID, "Transport": "RTP/AVP;client_port=8-9"})},
        None,
        "asked for RTP over TCP",
    ),
    "play-refused": ({"PLAY": status("453 Not Enough Bandwidth")}, None, "PLAY answered 453"),
    "garbage-rtp": ({}, frames(GARBAGE), "50 malformed packets in a row"),
    "truncated-rtp": (
        {},
        frames([b"\x80\x60\x00"] * 60),
        "(last: RTP packet of 3 bytes is shorter than the 12-byte header)",
    ),
    "garbage-rtcp": ({}, frames(GARBAGE, channel=1), "malformed packets in a row"),
    "truncated-frame-then-close": (
        {},
        truncated_then_close,
        "the camera closed the connection",
    ),
    "ssrc-change": (
        {},
        then(frames(rtp_packets(UNITS[:3])), frames(OTHER_SSRC)),
        "SSRC changed from 0x12345678 to 0x00000bad",
    ),
    "rtcp-bye": (
        {},
        then(frames(rtp_packets(UNITS[:3])), frames([bye()], channel=1)),
        "the camera sent RTCP BYE",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_hostile_camera_fails_clearly_and_is_retried(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    responders, media, expected = CASES[case]
    sink, states = RecordingSink(), StateLog()
    caplog.set_level(logging.INFO, logger="app.engine.ingest")
    async with FakeCamera(sdp=SDP, responders=responders, media=media) as camera:
        receiver = Receiver(camera.url(), sink, clock=SystemClock(), on_state=states, **FAST)
        async with receiver:
            failures = await states.wait_failures(2)
            assert receiver.state in (ReceiverState.FAILED, ReceiverState.CONNECTING)
    assert camera.connections >= 2
    assert expected in (failures[0].reason or ""), failures[0].reason
    assert failures[0].reason == failures[1].reason
    assert states.states[-1] is ReceiverState.STOPPED
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(expected in r.getMessage() and camera.url() in r.getMessage() for r in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Runs that got as far as PLAY were closed with the same reason; no frame is invented.
    for run in sink.runs:
        assert run.stopped and run.stop_reason == failures[0].reason
        assert len(run.frames) <= 3


async def test_oversized_nal_unit_is_dropped_and_the_stream_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fragmented NAL unit growing past MAX_NAL_BYTES is refused; later units still arrive."""
    chunk = os.urandom(1400)
    count = MAX_NAL_BYTES // len(chunk) + 2
    fu = [b"\x7c\x85" + chunk] + [b"\x7c\x05" + chunk] * (count - 2) + [b"\x7c\x45" + chunk]
    huge = [
        (b"\x80\x60" + (i).to_bytes(2, "big") + (500).to_bytes(4, "big") + b"\x12\x34\x56\x78")
        + payload
        for i, payload in enumerate(fu)
    ]
    huge[-1] = bytes([huge[-1][0], huge[-1][1] | 0x80]) + huge[-1][2:]
    valid = rtp_packets(UNITS, first_seq=len(huge), first_ts=10_000)
    caplog.set_level(logging.INFO, logger="app.engine.ingest")
    sink, states = RecordingSink(), StateLog()
    async with FakeCamera(sdp=SDP, media=frames(huge + valid, close=True)) as camera:
        receiver = Receiver(camera.url(), sink, clock=SystemClock(), on_state=states, **FAST)
        async with receiver:
            failures = await states.wait_failures(1)
    assert failures[0].reason == "the camera closed the connection"
    first = sink.runs[0]
    assert [u.media_ts for _, u, _ in first.frames] == [10_000 + 3600 * i for i in range(10)]
    assert receiver.stats.errors >= 1
    assert any(
        f"exceeds MAX_NAL_BYTES={MAX_NAL_BYTES}" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def _basic_required(user: str, password: str) -> Responder:
    token = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def check(request: Request, conn: Connection) -> bytes | None:
        if request.header("authorization") == token:
            return None
        challenge = {"WWW-Authenticate": 'Basic realm="fake camera"'}
        return response(request.header("cseq"), "401 Unauthorized", challenge)

    return check


@pytest.mark.parametrize(
    ("userinfo", "expected"),
    [
        ("admin:s3cret-Pa55@", None),
        ("admin:wrong-Pa55@", "the camera refused the user name or password"),
        ("", "the camera requires credentials and the URI has none"),
    ],
)
async def test_basic_auth_and_passwords_never_logged(
    userinfo: str, expected: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    check = _basic_required("admin", "s3cret-Pa55")
    responders = dict.fromkeys(("OPTIONS", "DESCRIBE", "SETUP", "PLAY"), check)
    sink, states = RecordingSink(), StateLog()
    async with FakeCamera(sdp=SDP, responders=responders, media=stream_units_3) as camera:
        url = camera.url(userinfo=userinfo)
        receiver = Receiver(url, sink, clock=SystemClock(), on_state=states, **FAST)
        async with receiver:
            if expected is None:
                await sink.wait(lambda: len(sink.frames()) == 3)
            else:
                failures = await states.wait_failures(2)
                assert failures[0].reason == f"OPTIONS answered 401 Unauthorized: {expected}"
    secrets = ["s3cret-Pa55", "wrong-Pa55"]
    secrets += [base64.b64encode(f"admin:{p}".encode()).decode() for p in secrets]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "nothing was logged"
    assert not [s for s in secrets if s in text]
    assert all(s not in str(states.statuses) for s in secrets)
    if userinfo:
        # aiortsp's wire dump was logged, with the credential line blanked.
        assert "Authorization: <redacted>" in text
        assert receiver.name == camera.url()  # logs name the camera without its credentials
        assert redact_url(url) == camera.url(userinfo="admin:***@")


async def stream_units_3(conn: Connection) -> None:
    await stream_units(conn, UNITS[:3])
