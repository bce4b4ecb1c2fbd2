"""Receiver against a scripted camera: session flow, frame times, UDP, keepalive, backoff, stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND, FakeClock, SystemClock
from app.engine.ingest import Receiver, ReceiverState, ReceiverStatus, backoff_delay
from app.engine.ingest import session as session_module
from app.formats.h26x import split_length_prefixed
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.timing import ticks_to_ns
from tests.engine.ingest.fake_camera import (
    SESSION_ID,
    Connection,
    FakeCamera,
    Request,
    h264_sdp,
    h264_units,
    interleaved,
    response,
    rtp_packets,
    sender_report,
    stream_units,
)
from tests.engine.ingest.helpers import RecordingSink, StateLog

UNITS = h264_units(frames=10, gop=5)
SDP = h264_sdp(UNITS)
FAST: dict[str, Any] = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}


def _slices(data: bytes) -> list[bytes]:
    return [n for n in split_length_prefixed(data) if n[0] & 0x1F in (1, 5)]


async def test_session_flow_frames_and_exact_times() -> None:
    """OPTIONS…PLAY…TEARDOWN, every unit delivered once, RTP and NTP times exact to the ns."""
    first_ts = 2**32 - 3 * 3600  # the RTP clock wraps during the stream
    sr_wall = 1_800_000_000 * NS_PER_SECOND + 123_456_789
    sr_rtp = (first_ts + 5 * 3600 - 1800) & 0xFFFF_FFFF

    async def media(conn: Connection) -> None:
        packets = rtp_packets(UNITS, first_ts=first_ts)
        split = sum(1 for _ in rtp_packets(UNITS[:5], first_ts=first_ts))
        await conn.send_rtp(packets[:split])
        await conn.send_rtp([sender_report(sr_wall, sr_rtp)], channel=1)
        await conn.send_rtp(packets[split:])

    clock = FakeClock()
    sink, states = RecordingSink(), StateLog()
    async with FakeCamera(sdp=SDP, media=media) as camera:
        receiver = Receiver(camera.url(), sink, clock=clock, on_state=states)
        async with receiver:
            await sink.wait(lambda: len(sink.frames()) == 10)
        await camera.wait_for(lambda: "TEARDOWN" in camera.methods())

    assert camera.methods() == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"]
    setup = camera.requests[2]
    assert setup.url == camera.url() + "/trackID=0"
    assert setup.header("transport") == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert camera.requests[3].url == camera.url() + "/"
    assert (
        camera.requests[3].header("session") == camera.requests[4].header("session") == SESSION_ID
    )

    assert sink.events == ["start", "stop"] and sink.runs[0].stop_reason is None
    (params,) = sink.runs[0].tracks
    assert (params.codec, params.width, params.height) == (Codec.H264, 64, 64)
    frames = sink.frames()
    assert [u.media_ts for u in frames] == [first_ts + i * 3600 for i in range(10)]
    assert [u.keyframe for u in frames] == [k for _, k in UNITS]
    for unit, (data, key) in zip(frames, UNITS, strict=True):
        assert _slices(unit.data) == _slices(data)
        if not key:
            assert unit.data == data
    assert [(u.wall_ns, u.time_source) for u in frames[:5]] == [
        (clock.wall_ns(), TimeSource.RECEIVE_TIME)
    ] * 5
    for unit in frames[5:]:
        expected = sr_wall + ticks_to_ns(unit.media_ts - (sr_rtp + 2**32), 90_000)
        assert (unit.wall_ns, unit.time_source) == (expected, TimeSource.CAMERA_NTP)
    assert states.states == [
        ReceiverState.CONNECTING,
        ReceiverState.STREAMING,
        ReceiverState.STOPPED,
    ]
    assert [s.onvif for s in states.states] == ["Connecting", "Connected", "NotConnected"]
    assert receiver.stats.frames == 10 and receiver.stats.errors == 0


async def test_packets_arriving_with_the_play_answer_follow_start() -> None:
    def play(request: Request, conn: Connection) -> bytes:
        media = b"".join(interleaved(0, p) for p in rtp_packets(UNITS))
        return response(request.header("cseq"), headers={"Session": SESSION_ID}) + media

    sink = RecordingSink()
    async with (
        FakeCamera(sdp=SDP, responders={"PLAY": play}) as camera,
        Receiver(camera.url(), sink, clock=SystemClock()),
    ):
        await sink.wait(lambda: len(sink.frames()) == 10)
    assert [u.keyframe for u in sink.frames()] == [k for _, k in UNITS]


METADATA = (
    "m=audio 0 RTP/AVP 98\r\na=rtpmap:98 L16/44100/2\r\na=control:trackID=1\r\n"
    "m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\n"
    "a=control:trackID=2\r\n"
)
XML = b"<tt:MetadataStream xmlns:tt='http://www.onvif.org/ver10/schema'/>"


async def test_every_supported_media_is_set_up_in_one_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Video and metadata are set up on their own channels; the L16 audio is skipped."""

    async def media(conn: Connection) -> None:
        await stream_units(conn, UNITS[:2])
        packet = RtpPacket(107, 7, 1000, 0xABC, XML, marker=True).to_bytes()
        await conn.send_rtp([packet], channel=2)

    caplog.set_level(logging.INFO, logger="app.engine.ingest")
    sink = RecordingSink()
    async with (
        FakeCamera(sdp=h264_sdp(UNITS, extra_media=METADATA), media=media) as camera,
        Receiver(camera.url(), sink, clock=SystemClock()),
    ):
        await sink.wait(lambda: len(sink.frames(0)) == 2 and len(sink.frames(1)) == 1)
    setups = [r for r in camera.requests if r.method == "SETUP"]
    assert [r.url.rsplit("/", 1)[1] for r in setups] == ["trackID=0", "trackID=2"]
    assert [r.header("transport") for r in setups] == [
        "RTP/AVP/TCP;unicast;interleaved=0-1",
        "RTP/AVP/TCP;unicast;interleaved=2-3",
    ]
    assert setups[1].header("session") == SESSION_ID
    assert [p.codec for p in sink.runs[0].tracks] == [Codec.H264, Codec.METADATA]
    (meta,) = sink.frames(1)
    assert (meta.data, meta.media_ts, meta.keyframe) == (XML, 1000, True)
    assert "skipping m=audio section 1: encoding 'L16'" in caplog.text


async def test_udp_transport_ignores_other_senders() -> None:
    async def media(conn: Connection) -> None:
        client_rtp = conn.client_ports[0][0]
        # A stranger on another loopback address with a different SSRC must not disturb the run.
        stranger, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.2", 0)
        )
        try:
            for packet in rtp_packets(UNITS[:2], ssrc=0xBAD):
                stranger.sendto(packet, ("127.0.0.1", client_rtp))
        finally:
            stranger.close()
        await stream_units(conn, UNITS)

    sink = RecordingSink()
    async with (
        FakeCamera(sdp=SDP, media=media) as camera,
        Receiver(camera.url(), sink, transport="udp", clock=SystemClock()) as receiver,
    ):
        await sink.wait(lambda: len(sink.frames()) == 10)
        assert receiver.state is ReceiverState.STREAMING
    transport = camera.requests[2].header("transport") or ""
    low, high = (int(p) for p in transport.split("client_port=")[1].split("-"))
    assert (low % 2, high) == (0, low + 1)
    assert transport.startswith("RTP/AVP;unicast;")
    assert [u.media_ts - 1000 for u in sink.frames()] == [i * 3600 for i in range(10)]


async def test_keepalive_every_timeout_times_0_8(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET_PARAMETER when the camera lists it; OPTIONS once the camera says it has none."""
    monkeypatch.setattr(session_module, "MIN_SESSION_TIMEOUT_S", 1)

    def get_parameter(request: Request, conn: Connection) -> bytes:
        return response(request.header("cseq"), "501 Not Implemented")

    sink = RecordingSink()
    async with FakeCamera(
        sdp=SDP,
        session=f"{SESSION_ID};timeout=1",
        media=lambda conn: stream_units(conn, UNITS),
        responders={"GET_PARAMETER": get_parameter},
    ) as camera:
        loop = asyncio.get_running_loop()
        async with Receiver(camera.url(), sink, clock=SystemClock()) as receiver:
            await camera.wait_for(lambda: "PLAY" in camera.methods())
            played = loop.time()
            await camera.wait_for(lambda: camera.methods()[-1:] == ["GET_PARAMETER"])
            first = loop.time() - played
            await camera.wait_for(lambda: camera.methods()[-1:] == ["OPTIONS"])
            second = loop.time() - played
            assert receiver.state is ReceiverState.STREAMING
    assert 0.7 <= first < 1.3 and 1.5 <= second < 2.5
    keepalives = [r for r in camera.requests if r.method in ("GET_PARAMETER", "OPTIONS")][1:]
    assert all(r.header("session") == SESSION_ID for r in keepalives)


async def test_dead_stream_is_detected_and_reconnected() -> None:
    sink, states = RecordingSink(), StateLog()
    async with FakeCamera(sdp=SDP, media=lambda conn: stream_units(conn, UNITS[:3])) as camera:
        receiver = Receiver(
            camera.url(), sink, clock=SystemClock(), dead_after_s=0.3, on_state=states, **FAST
        )
        async with receiver:
            await camera.wait_for(lambda: camera.connections >= 2)
            await sink.wait(lambda: len(sink.runs) >= 2 and len(sink.frames()) == 3)
    reason = "no RTP from the camera for 0.3 s"
    assert states.failures()[0].reason == reason
    assert sink.runs[0].stop_reason == reason
    # Every run delivers exactly what the camera sent in it: nothing is invented across the gap.
    assert [len(r.frames) for r in sink.runs] == [3] * len(sink.runs)
    assert sink.events[:3] == ["start", "stop", "start"]


async def test_backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() -> None:
    fail = {"on": True}

    def describe(request: Request, conn: Connection) -> bytes | None:
        return response(request.header("cseq"), "503 Service Unavailable") if fail["on"] else None

    async def media(conn: Connection) -> None:
        await stream_units(conn, UNITS[:2])
        conn.close()

    states = StateLog()
    async with FakeCamera(sdp=SDP, media=media, responders={"DESCRIBE": describe}) as camera:
        receiver = Receiver(
            camera.url(),
            RecordingSink(),
            clock=SystemClock(),
            on_state=states,
            backoff_initial_s=0.02,
            backoff_cap_s=0.08,
            healthy_after_s=0.0,
        )
        async with receiver:
            failures = await states.wait_failures(5)
            fail["on"] = False
            await states.wait(lambda: ReceiverState.STREAMING in states.states)
            await states.wait_failures(7)
    delays = [s.retry_in_s for s in states.failures()]
    assert delays[:5] == [0.02, 0.04, 0.08, 0.08, 0.08]
    assert failures[0].reason == "DESCRIBE answered 503 Service Unavailable"
    # The healthy run resets the backoff: its end waits the initial delay again.
    assert delays[5:7] == [0.02, 0.02]
    assert states.failures()[5].reason == "the camera closed the connection"


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (99, 8.0)],
)
def test_backoff_delay_sequence(failures: int, expected: float) -> None:
    assert backoff_delay(failures, 1.0, 8.0) == expected


async def test_stop_while_connecting_returns_promptly() -> None:
    sink, states = RecordingSink(), StateLog()
    async with FakeCamera(sdp=SDP, responders={"OPTIONS": lambda r, c: b""}) as camera:
        receiver = Receiver(camera.url(), sink, clock=SystemClock(), on_state=states)
        receiver.start()
        await camera.wait_for(lambda: "OPTIONS" in camera.methods())
        async with asyncio.timeout(2):
            await receiver.stop()
    assert states.states == [ReceiverState.CONNECTING, ReceiverState.STOPPED]
    assert sink.runs == []


async def test_run_twice_is_refused_and_restart_after_stop_works() -> None:
    sink = RecordingSink()
    async with FakeCamera(sdp=SDP, media=lambda conn: stream_units(conn, UNITS[:1])) as camera:
        receiver = Receiver(camera.url(), sink, clock=SystemClock())
        async with receiver:
            await sink.wait(lambda: len(sink.frames()) == 1)
            with pytest.raises(Exception, match="already running"):
                await receiver.run()
        async with receiver:
            await sink.wait(lambda: len(sink.runs) == 2 and len(sink.frames()) == 1)
    assert sink.events == ["start", "stop", "start", "stop"]


def _broken_listener(status: ReceiverStatus) -> None:
    raise ZeroDivisionError(status.state.value)


class BrokenSink(RecordingSink):
    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        super().frame(track, unit, params)
        raise RuntimeError("disk full")


async def test_a_failing_sink_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink, states = BrokenSink(), StateLog()
    async with FakeCamera(sdp=SDP, media=lambda conn: stream_units(conn, UNITS[:3])) as camera:
        receiver = Receiver(camera.url(), sink, clock=SystemClock(), on_state=states, **FAST)
        receiver.add_listener(_broken_listener)  # a broken listener changes nothing
        async with receiver:
            failures = await states.wait_failures(2)
    assert failures[0].reason == "internal error: RuntimeError: disk full"
    assert sink.runs[0].stop_reason == failures[0].reason and len(sink.runs[0].frames) == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("unexpected failure" in r.getMessage() and r.exc_info for r in errors)
    assert any("state listener failed" in r.getMessage() for r in errors)


async def test_start_twice_is_refused_and_stop_without_start_is_harmless() -> None:
    async with FakeCamera(sdp=SDP) as camera:
        receiver = Receiver(camera.url(), RecordingSink(), clock=SystemClock())
        await receiver.stop()
        receiver.start()
        with pytest.raises(ConflictError, match="already running"):
            receiver.start()
        await camera.wait_for(lambda: "PLAY" in camera.methods())
        await receiver.stop()
        assert receiver.state is ReceiverState.STOPPED


@pytest.mark.parametrize(
    ("uri", "kwargs", "message"),
    [
        ("http://user:hunter2@cam/x", {}, "scheme must be rtsp"),
        ("rtsp://user:hunter2@/x", {}, "has no host"),
        ("rtsp://user:hunter2@cam/x", {"transport": "sctp"}, "transport must be"),
        ("rtsp://user:hunter2@cam/x", {"backoff_cap_s": 0.5}, "backoff must satisfy"),
        ("rtsp://user:hunter2@cam/x", {"dead_after_s": 0}, "dead_after_s"),
    ],
)
def test_configuration_errors_name_the_value_not_the_password(
    uri: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Receiver(uri, RecordingSink(), clock=SystemClock(), **kwargs)  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)
