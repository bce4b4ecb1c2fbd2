"""The RTSP server core against a raw loopback client: methods, SDP, RTP layout, RTCP, state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from app.core.media import AccessUnit, CodecParams
from app.core.time import ntp64_to_unix_ns
from app.engine.rtsp import LiveResource, RtspServer
from app.protocols.rtp.codec import DepacketizedUnit
from app.protocols.rtp.formats import depacketizer_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, SenderReport, SourceDescription, build_rr, parse_rtcp
from app.protocols.rtsp.headers import parse_rtp_info
from app.protocols.rtsp.range import parse_range
from app.protocols.rtsp.transport import parse_transport
from app.protocols.sdp import parse_sdp
from tests.engine.rtsp.conftest import LiveRig, session_of, setup_interleaved
from tests.engine.rtsp.helpers import Clip, RawClient, pcmu_unit


async def play(client: RawClient, url: str, session: str) -> dict[str, tuple[int, int | None]]:
    """PLAY the session; returns RTP-Info as {control: (seq, rtptime)}."""
    response = await client.request("PLAY", url + "/", [("Session", session)])
    assert response.status == 200, response
    assert parse_range(response.headers.get("Range") or "").to_header() == "npt=0.000-"
    infos = parse_rtp_info(response.headers.get("RTP-Info") or "")
    out = {}
    for info in infos:
        assert info.seq is not None
        out[info.url.rsplit("/", 1)[1]] = (info.seq, info.rtptime)
    return out


async def read_rtp(client: RawClient, channel: int, count: int) -> list[RtpPacket]:
    """The next `count` RTP packets of `channel` (frames of other channels stay queued)."""
    return [parse_rtp((await client.frame(channel)).data) for _ in range(count)]


async def test_options_lists_the_methods(rig: LiveRig) -> None:
    client = await rig.client()
    response = await client.request("OPTIONS", "*")
    assert response.status == 200
    assert response.headers.get("Public") == (
        "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
    )
    assert response.headers.get("Server") == "Custos"
    await client.close()


async def test_describe_gives_sdp_from_the_source_tracks(rig: LiveRig) -> None:
    client = await rig.client()
    response = await client.request("DESCRIBE", rig.url, [("Accept", "application/sdp")])
    assert response.status == 200
    assert response.headers.get("Content-Type") == "application/sdp"
    assert response.headers.get("Content-Base") == rig.url + "/"
    sdp = parse_sdp(response.body)
    assert sdp.control == "*"
    assert [(m.media, m.formats, m.control) for m in sdp.media] == [
        ("video", ("96",), "trackID=0"),
        ("audio", ("0",), "trackID=1"),
    ]
    rtpmap = sdp.media[0].rtpmap(96)
    assert rtpmap is not None and (rtpmap.encoding, rtpmap.clock_rate) == ("H264", 90000)
    assert "sprop-parameter-sets" in sdp.media[0].fmtp(96)
    missing = await client.request("DESCRIBE", rig.url + "x")
    assert missing.status == 404
    await client.close()


async def test_describe_of_a_stopped_source_is_503(rig: LiveRig) -> None:
    rig.source.tracks().clear()  # type: ignore[attr-defined]
    client = await rig.client()
    assert (await client.request("DESCRIBE", rig.url)).status == 503
    await client.close()


async def test_interleaved_rtp_layout_sequence_and_timestamps(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url)
    info = await play(client, rig.url, session)
    await rig.source.subscribed.wait()
    units = [rig.clip.unit(n) for n in range(10)]
    for n, unit in enumerate(units):
        rig.source.push(0, unit)
        rig.source.push(1, pcmu_unit(n))

    video_params = rig.clip.params
    depacketizer = depacketizer_for(video_params)
    video: list[RtpPacket] = []
    received: list[DepacketizedUnit] = []
    while len(received) < len(units):
        packet = (await read_rtp(client, 0, 1))[0]
        video.append(packet)
        received.extend(depacketizer.push(packet))
    assert [u.data for u in received] == [u.data for u in units]
    assert [u.keyframe for u in received] == [u.keyframe for u in units]

    seq0, rtptime0 = info["trackID=0"]
    assert rtptime0 is not None
    assert [p.sequence for p in video] == [(seq0 + i) & 0xFFFF for i in range(len(video))]
    assert {p.payload_type for p in video} == {96}
    assert len({p.ssrc for p in video}) == 1
    assert all(p.extension_profile is None and not p.csrcs for p in video)
    # RTP time = media time + one per-session offset; the first unit carries RTP-Info rtptime.
    assert [u.rtp_timestamp for u in received] == [
        (rtptime0 + u.media_ts - units[0].media_ts) % 2**32 for u in units
    ]
    # The marker bit ends each access unit, and only there.
    ends = [i for i, p in enumerate(video) if p.marker]
    changes = [i for i in range(len(video) - 1) if video[i].timestamp != video[i + 1].timestamp]
    assert ends == [*changes, len(video) - 1]

    audio = await read_rtp(client, 2, 10)
    seq1, rtptime1 = info["trackID=1"]
    assert [p.sequence for p in audio] == [(seq1 + i) & 0xFFFF for i in range(10)]
    assert [p.timestamp for p in audio] == [((rtptime1 or 0) + 160 * i) % 2**32 for i in range(10)]
    assert {(p.payload_type, p.payload) for p in audio} == {(0, b"\xff" * 160)}
    await client.close()


async def test_setup_transport_reply_and_session_timeout(rig: LiveRig) -> None:
    client = await rig.client()
    response = await client.request(
        "SETUP",
        rig.url + "/trackID=0",
        [("Transport", "RTP/AVP;multicast, RTP/AVP/TCP;unicast;interleaved=6-7")],
    )
    assert response.status == 200
    assert response.headers.get("Session") == f"{session_of(response)};timeout=60"
    (spec,) = parse_transport(response.headers.get("Transport") or "")
    assert (spec.lower.value, spec.unicast, spec.interleaved, spec.mode) == (
        "TCP",
        True,
        (6, 7),
        ("PLAY",),
    )
    assert spec.ssrc is not None
    # Without interleaved=, or with a pair in use, the server picks the lowest free pair.
    second = await client.request(
        "SETUP",
        rig.url + "/trackID=1",
        [("Transport", "RTP/AVP/TCP;unicast;interleaved=6-7"), ("Session", session_of(response))],
    )
    (spec2,) = parse_transport(second.headers.get("Transport") or "")
    assert spec2.interleaved == (0, 1)
    await client.close()


async def test_sender_reports_map_rtp_time_to_the_frames_wall_clock(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url)
    await play(client, rig.url, session)
    await rig.source.subscribed.wait()
    units = {}
    for n in range(5):
        unit = rig.clip.unit(n)
        rig.source.push(0, unit)
        units[n] = unit
    sent: dict[int, int] = {}  # RTP timestamp -> wall ns
    packets = octets = 0
    media_offset = None
    while True:
        frame = await client.frame()
        if frame.channel == 0:
            packet = parse_rtp(frame.data)
            packets += 1
            octets += len(packet.payload)
            if media_offset is None:
                media_offset = packet.timestamp - units[0].media_ts
            for unit in units.values():
                if (unit.media_ts + media_offset) % 2**32 == packet.timestamp:
                    sent[packet.timestamp] = unit.wall_ns
        elif frame.channel == 1:
            compound = parse_rtcp(frame.data)
            report = compound[0]
            assert isinstance(report, SenderReport)
            assert isinstance(compound[1], SourceDescription)
            assert compound[1].chunks[0].cname == f"custos-{session}"
            if report.packet_count == packets and packets > 0:
                break
    assert report.rtp_timestamp in sent
    # Exact to the nanosecond rounding of the 32-bit NTP fraction.
    assert abs(ntp64_to_unix_ns(report.ntp_timestamp) - sent[report.rtp_timestamp]) <= 1
    assert report.octet_count == octets
    await client.close()


async def test_pause_stops_delivery_and_play_resumes_the_sequence(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url, tracks=(0,))
    info = await play(client, rig.url, session)
    await rig.source.subscribed.wait()
    rig.source.push(0, rig.clip.unit(0))
    first = await read_rtp(client, 0, 1)
    while not first[-1].marker:
        first += await read_rtp(client, 0, 1)
    response = await client.request("PAUSE", rig.url + "/", [("Session", session)])
    assert response.status == 200
    assert rig.source.subscribers == 0
    resumed = await client.request("PLAY", rig.url + "/", [("Session", session)])
    (entry,) = parse_rtp_info(resumed.headers.get("RTP-Info") or "")
    assert entry.seq == (info["trackID=0"][0] + len(first)) & 0xFFFF
    assert entry.rtptime is None  # the timeline was fixed by the first PLAY
    await rig.source.subscribed.wait()
    rig.source.push(0, rig.clip.unit(1))
    (packet,) = await read_rtp(client, 0, 1)
    assert packet.sequence == entry.seq
    assert packet.timestamp == (first[0].timestamp + 3600) % 2**32
    await client.close()


async def test_teardown_sends_bye_and_ends_the_session(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url, tracks=(0,))
    await play(client, rig.url, session)
    await rig.source.subscribed.wait()
    rig.source.push(0, rig.clip.unit(0))
    response = await client.request("TEARDOWN", rig.url + "/", [("Session", session)])
    assert response.status == 200
    rtcp = [parse_rtcp(f.data) for f in client.frames if f.channel == 1]
    assert isinstance(rtcp[-1][-1], Bye)
    assert len(rig.server.sessions) == 0 and rig.source.subscribers == 0
    again = await client.request("PLAY", rig.url + "/", [("Session", session)])
    assert again.status == 454
    await client.close()


async def test_end_of_the_live_stream_sends_bye(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url, tracks=(0,))
    await play(client, rig.url, session)
    await rig.source.subscribed.wait()
    rig.source.push(0, rig.clip.unit(0))
    rig.source.stop()
    while True:
        frame = await client.frame()
        if frame.channel == 1 and isinstance(parse_rtcp(frame.data)[-1], Bye):
            break
    assert len(rig.server.sessions) == 1  # the session lives on until TEARDOWN or timeout
    await client.close()


async def test_closing_the_connection_ends_its_interleaved_sessions(rig: LiveRig) -> None:
    client = await rig.client()
    await setup_interleaved(client, rig.url)
    assert len(rig.server.sessions) == 1
    await client.close()
    async with asyncio.timeout(5):
        await rig.server.wait_no_sessions()


async def test_rtcp_receiver_report_is_accepted_on_the_odd_channel(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url, tracks=(0,))
    await client.send_rtcp(1, build_rr(0x12345678))
    await client.send_rtcp(1, b"not rtcp")
    await client.send_rtcp(0, b"rtp from the client is ignored")
    response = await client.request("GET_PARAMETER", rig.url + "/", [("Session", session)])
    assert response.status == 200
    await client.close()


def _h(*pairs: tuple[str, str]) -> Sequence[tuple[str, str]]:
    return pairs


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "expect"),
    [
        ("PLAY", "/", _h(), b"", 454, {}),
        ("PLAY", "/", _h(("Session", "0123456789abcdef")), b"", 454, {}),
        ("PLAY", "/", _h(("Session", "bad id!")), b"", 454, {}),
        ("PAUSE", "/", _h(), b"", 454, {}),
        ("TEARDOWN", "/", _h(), b"", 454, {}),
        ("SETUP", "", _h(("Transport", "RTP/AVP/TCP;unicast")), b"", 459, {}),
        ("SETUP", "/trackID=0", _h(), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/AVP;multicast")), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/SAVP;client_port=9-10")), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/AVP;unicast")), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/AVP;client_port=0-1")), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/AVP/TCP;mode=RECORD")), b"", 461, {}),
        ("SETUP", "/trackID=0", _h(("Transport", "RTP/AVP;client_port=x")), b"", 400, {}),
        ("SETUP", "/trackID=9", _h(("Transport", "RTP/AVP/TCP")), b"", 404, {}),
        ("ANNOUNCE", "", _h(), b"", 405, {"Allow": "OPTIONS, DESCRIBE"}),
        ("RECORD", "", _h(), b"", 405, {"Allow": "OPTIONS, DESCRIBE"}),
        ("FROB", "", _h(), b"", 501, {"Public": "OPTIONS, DESCRIBE"}),
        ("DESCRIBE", "/trackID=0", _h(), b"", 404, {}),
        ("DESCRIBE", "", _h(("Require", "onvif-replay")), b"", 551, {"Unsupported": "onvif-"}),
        ("OPTIONS", "", _h(("Require", "a, b")), b"", 551, {"Unsupported": "a, b"}),
        ("GET_PARAMETER", "/", _h(), b"", 200, {}),
        ("GET_PARAMETER", "/", _h(), b"position\r\n", 451, {}),
        ("SET_PARAMETER", "/", _h(), b"barparam: barstuff\r\n", 451, {}),
        ("SET_PARAMETER", "/", _h(), b"", 200, {}),
    ],
)
async def test_status_codes(
    rig: LiveRig,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    status: int,
    expect: dict[str, str],
) -> None:
    client = await rig.client()
    response = await client.request(method, rig.url + path, headers, body)
    assert response.status == status, response
    for name, prefix in expect.items():
        assert (response.headers.get(name) or "").startswith(prefix), response
    # The connection stays usable after every refusal.
    assert (await client.request("OPTIONS", rig.url)).status == 200
    await client.close()


async def test_state_dependent_codes(rig: LiveRig) -> None:
    client = await rig.client()
    session = await setup_interleaved(client, rig.url)
    track_play = await client.request("PLAY", rig.url + "/trackID=0", [("Session", session)])
    assert track_play.status == 460
    bad_range = await client.request("PLAY", rig.url, [("Session", session), ("Range", "npt=x")])
    assert bad_range.status == 400
    smpte = await client.request("PLAY", rig.url, [("Session", session), ("Range", "smpte=0:0:1-")])
    assert smpte.status == 457
    await play(client, rig.url, session)
    again = await client.request(
        "SETUP",
        rig.url + "/trackID=1",
        [("Transport", "RTP/AVP/TCP;unicast"), ("Session", session)],
    )
    assert again.status == 455
    scaled = await client.request(
        "PLAY", rig.url, [("Session", session), ("Scale", "2.0"), ("Speed", "4")]
    )
    assert (scaled.headers.get("Scale"), scaled.headers.get("Speed")) == ("1.0", "1.0")
    other_mount = await client.request("PLAY", rig.server.url("nothing"), [("Session", session)])
    assert other_mount.status == 404
    await client.close()


async def test_missing_cseq_is_400_without_an_echo(rig: LiveRig) -> None:
    client = await rig.client()
    await client.send_raw(b"OPTIONS * RTSP/1.0\r\nUser-Agent: x\r\n\r\n")
    response = await client.response()
    assert response.status == 400 and response.cseq is None
    await client.close()


async def test_oversized_headers_get_413_and_the_connection_survives(rig: LiveRig) -> None:
    client = await rig.client()
    await client.send_raw(
        b"DESCRIBE "
        + rig.url.encode()
        + b" RTSP/1.0\r\nCSeq: 41\r\n"
        + b"".join(b"X-Junk-%d: %s\r\n" % (i, b"j" * 200) for i in range(100))
        + b"\r\n"
    )
    response = await client.response()
    assert (response.status, response.cseq) == (413, 41)
    assert (await client.request("OPTIONS", rig.url)).status == 200
    await client.close()


async def test_unframeable_garbage_gets_400_and_a_clean_close(rig: LiveRig) -> None:
    client = await rig.client()
    await client.send_raw(b"PLAY * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: lots\r\n\r\n")
    assert await client.at_eof()
    assert [r.status for r in client.responses] == [400]
    await client.close()


async def test_credentials_never_reach_the_log(
    rig: LiveRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await rig.client()
    secret_url = rig.url.replace("rtsp://", "rtsp://admin:hunter2@") + "x"
    assert (await client.request("DESCRIBE", secret_url)).status == 404
    assert (await client.request("FROB", secret_url)).status == 501
    await client.send_raw(b"PLAY rtsp://admin:hunter2@h/x\r\nCSeq: 9\r\n\r\n")
    assert (await client.response()).status == 400
    await client.send_raw(
        b"OPTIONS * RTSP/1.0\r\nCSeq: 10\r\nAuthorization Digest response=hunter2\r\n\r\n"
    )
    assert (await client.response()).status == 400
    await client.close()
    assert caplog.records
    assert not [r for r in caplog.records if "hunter2" in r.getMessage()]


async def test_pipelined_requests_are_answered_in_order(rig: LiveRig) -> None:
    client = await rig.client()
    burst = b"".join(
        b"OPTIONS * RTSP/1.0\r\nCSeq: %d\r\n\r\n$\x01\x00\x04abcd" % n for n in range(1, 201)
    )
    await client.send_raw(burst)
    responses = [await client.response() for _ in range(200)]
    assert [(r.status, r.cseq) for r in responses] == [(200, n) for n in range(1, 201)]
    await client.close()


class IteratorSubscription:
    """A subscription shaped like LiveHub's: an async iterator with aclose(), no generator."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, AccessUnit]] = asyncio.Queue()
        self.closed = asyncio.Event()

    def __aiter__(self) -> IteratorSubscription:
        return self

    async def __anext__(self) -> tuple[int, AccessUnit]:
        return await self.queue.get()

    async def aclose(self) -> None:
        self.closed.set()


class IteratorSource:
    def __init__(self, params: CodecParams) -> None:
        self.params = params
        self.subscriptions: list[IteratorSubscription] = []

    def tracks(self) -> list[CodecParams]:
        return [self.params]

    def subscribe(self, max_queue: int = 256) -> IteratorSubscription:
        self.subscriptions.append(IteratorSubscription())
        return self.subscriptions[-1]


async def test_pause_closes_a_non_generator_subscription(clip: Clip) -> None:
    source = IteratorSource(clip.params)
    async with RtspServer() as server:
        server.mount("live", LiveResource(source))
        await server.start("127.0.0.1", 0)
        client = await RawClient.connect("127.0.0.1", server.port)
        url = server.url("live")
        session = await setup_interleaved(client, url, tracks=(0,))
        assert (await client.request("PLAY", url, [("Session", session)])).status == 200
        (subscription,) = source.subscriptions
        subscription.queue.put_nowait((0, clip.unit(0)))
        await read_rtp(client, 0, 1)
        assert (await client.request("PAUSE", url, [("Session", session)])).status == 200
        assert subscription.closed.is_set()
        await client.close()
