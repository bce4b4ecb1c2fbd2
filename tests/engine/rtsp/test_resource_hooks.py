"""The hooks the ONVIF replay server builds on, exercised by a small replay-like resource.

Feature tags, parsed PLAY headers, RTP-Info rtptime, per-packet 0xABAC extensions, zeroed
sender reports, lossless (blocking) delivery to a stalled client, go-to-time, TEARDOWN.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator, Sequence

import pytest

from app.core.media import AccessUnit, CodecParams
from app.core.time import ntp64_to_unix_ns, unix_ns_to_ntp64
from app.engine.rtsp import (
    ExtensionHook,
    MediaOutput,
    PlayRequest,
    PlayResult,
    ReportMode,
    RequestContext,
    ResourceDescription,
    RtspServer,
    RtspStatusError,
    TrackDescription,
)
from app.engine.rtsp.connection import RtspConnection
from app.protocols.rtp.formats import depacketizer_for, sdp_media_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, SenderReport, parse_rtcp
from app.protocols.rtsp.headers import format_yes_no, parse_rtp_info
from app.protocols.rtsp.range import RangeUnit, clock_range, format_clock, parse_range
from app.protocols.sdp import SessionDescription
from tests.engine.rtsp.conftest import session_of
from tests.engine.rtsp.helpers import RawClient, big_unit, h264_clip

FLAG_C, FLAG_E, FLAG_D, FLAG_T = 0x80, 0x40, 0x20, 0x10
REQUIRE = ("Require", "onvif-replay")
TCP = ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")


class UnitsReplay:
    """Replays stored units from a clock Range, forward, tagging packets like a recorder."""

    features = frozenset({"onvif-replay"})

    def __init__(self, params: CodecParams, units: Sequence[AccessUnit]) -> None:
        self.params = params
        self.units = list(units)
        self.requests: list[PlayRequest] = []

    async def describe(self, context: RequestContext) -> ResourceDescription:
        sdp = SessionDescription(
            session_name="replay", media=(sdp_media_for(self.params, 96, "video"),)
        )
        return ResourceDescription(sdp, (TrackDescription("video", self.params, 96),))

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> UnitsProducer:
        return UnitsProducer(self)


class UnitsProducer:
    def __init__(self, resource: UnitsReplay) -> None:
        self.resource = resource
        self.start = 0
        self.cseq = 0

    async def play(self, request: PlayRequest, output: MediaOutput) -> PlayResult:
        self.resource.requests.append(request)
        units = self.resource.units
        if request.range is None or request.range.unit is not RangeUnit.CLOCK:
            raise RtspStatusError(457, "replay needs a clock range")
        start = request.range.start
        if not isinstance(start, int) or not units[0].wall_ns <= start <= units[-1].wall_ns:
            raise RtspStatusError(457, "range outside the footage")
        # The last keyframe at or before the requested time (ONVIF Streaming §6.5.4).
        self.start = max(i for i, u in enumerate(units) if u.keyframe and u.wall_ns <= start)
        self.cseq = request.cseq
        if request.rate_control is False:
            output.set_report_mode(ReportMode.ZERO)
        first = units[self.start]
        echo = (
            ()
            if request.rate_control is None
            else (("Rate-Control", format_yes_no(request.rate_control)),)
        )
        return PlayResult(
            range=clock_range(first.wall_ns),
            headers=echo,
            rtptimes={0: output.rtp_timestamp(0, first.media_ts)},
        )

    async def run(self, output: MediaOutput) -> None:
        units = self.resource.units[self.start :]
        for index, unit in enumerate(units):
            hook = self._hook(unit, index == 0, index == len(units) - 1)
            await output.send(0, unit, extension=hook)

    def _hook(self, unit: AccessUnit, first: bool, last: bool) -> ExtensionHook:
        ntp = unix_ns_to_ntp64(unit.wall_ns)

        def hook(index: int, count: int) -> tuple[int, bytes]:
            flags = FLAG_C if unit.keyframe else 0
            if first and index == 0:
                flags |= FLAG_D  # only the first packet of the first unit
            if last:
                flags |= FLAG_E | (FLAG_T if index == count - 1 else 0)
            return 0xABAC, struct.pack("!QBBH", ntp, flags, self.cseq & 0xFF, 0)

        return hook

    async def pause(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def serve(resource: UnitsReplay) -> AsyncIterator[tuple[RtspServer, str]]:
    server = RtspServer(report_interval_s=0.05, max_queue=4)
    server.mount("recording/R1", resource)
    async with server:
        await server.start("127.0.0.1", 0)
        yield server, server.url("recording/R1")


@pytest.fixture
async def clip_replay() -> AsyncIterator[tuple[RtspServer, str, UnitsReplay]]:
    clip = h264_clip()
    resource = UnitsReplay(clip.params, [clip.unit(n) for n in range(50)])
    async for server, url in serve(resource):
        yield server, url, resource


@pytest.fixture
async def big_replay() -> AsyncIterator[tuple[RtspServer, str, UnitsReplay]]:
    clip = h264_clip()
    sps, pps = clip.params.parameter_sets
    rng = random.Random(11)
    resource = UnitsReplay(clip.params, [big_unit(n, sps, pps, rng) for n in range(200)])
    async for server, url in serve(resource):
        yield server, url, resource


async def read_until_bye(client: RawClient) -> tuple[list[RtpPacket], list[SenderReport]]:
    packets: list[RtpPacket] = []
    reports: list[SenderReport] = []
    while True:
        frame = await client.frame()
        if frame.channel == 0:
            packets.append(parse_rtp(frame.data))
            continue
        compound = parse_rtcp(frame.data)
        reports.extend(p for p in compound if isinstance(p, SenderReport))
        if any(isinstance(p, Bye) for p in compound):
            return packets, reports


async def test_replay_headers_extensions_and_zero_reports(
    clip_replay: tuple[RtspServer, str, UnitsReplay],
) -> None:
    server, url, resource = clip_replay
    client = await RawClient.connect("127.0.0.1", server.port)
    assert (await client.request("DESCRIBE", url, [REQUIRE])).status == 200
    refused = await client.request("DESCRIBE", url, [("Require", "onvif-replay, x-custom")])
    assert (refused.status, refused.headers.get("Unsupported")) == (551, "x-custom")
    setup = await client.request("SETUP", url + "/video", [TCP, REQUIRE])
    session = ("Session", session_of(setup))
    units = resource.units
    response = await client.request(
        "PLAY",
        url,
        [
            session,
            REQUIRE,
            ("Range", f"clock={format_clock(units[12].wall_ns)}-"),
            ("Rate-Control", "no"),
            ("Frames", "intra/500"),
            ("Scale", "1.0"),
            ("Immediate", "yes"),
        ],
    )
    assert response.status == 200
    request = resource.requests[-1]
    assert (request.rate_control, request.immediate, request.scale, request.cseq) == (
        False,
        True,
        1.0,
        4,
    )
    assert request.frames is not None and request.frames.to_header() == "intra/500"
    assert request.require == ("onvif-replay",) and request.tracks == (0,)
    # Delivery starts at the keyframe before the requested time, and says so.
    assert parse_range(response.headers.get("Range") or "") == clock_range(units[0].wall_ns)
    assert response.headers.get("Rate-Control") == "no"
    (info,) = parse_rtp_info(response.headers.get("RTP-Info") or "")

    packets, reports = await read_until_bye(client)
    depacketizer = depacketizer_for(resource.params)
    assert [u.data for p in packets for u in depacketizer.push(p)] == [u.data for u in units]
    assert (packets[0].timestamp, packets[0].sequence) == (info.rtptime, info.seq)
    assert all(p.extension_profile == 0xABAC and len(p.extension) == 12 for p in packets)
    flags = [p.extension[8] for p in packets]
    assert flags[0] == FLAG_C | FLAG_D
    assert [i for i, f in enumerate(flags) if f & FLAG_D] == [0]
    assert [i for i, f in enumerate(flags) if f & FLAG_T] == [len(packets) - 1]
    assert {p.extension[9] for p in packets} == {4}  # low byte of the PLAY's CSeq
    ntp_by_ts = {p.timestamp: struct.unpack("!Q", p.extension[:8])[0] for p in packets}
    assert sorted(ntp64_to_unix_ns(v) for v in ntp_by_ts.values()) == [u.wall_ns for u in units]
    assert reports and all((r.ntp_timestamp, r.rtp_timestamp) == (0, 0) for r in reports)
    await client.close()


async def test_go_to_time_restarts_with_the_new_cseq_and_d_flag(
    clip_replay: tuple[RtspServer, str, UnitsReplay],
) -> None:
    server, url, resource = clip_replay
    units = resource.units
    client = await RawClient.connect("127.0.0.1", server.port)
    session = ("Session", session_of(await client.request("SETUP", url + "/video", [TCP])))
    start = ("Range", f"clock={format_clock(units[0].wall_ns)}-")
    assert (await client.request("PLAY", url, [session, start])).status == 200
    jump = ("Range", f"clock={format_clock(units[30].wall_ns)}-")
    second = await client.request("PLAY", url, [session, jump, ("Immediate", "yes")])
    assert parse_range(second.headers.get("Range") or "").start == units[25].wall_ns
    # Everything after the second response belongs to the second PLAY (CSeq 3).
    client.frames.clear()
    packets, _ = await read_until_bye(client)
    assert {p.extension[9] for p in packets} == {3}
    assert packets[0].extension[8] & FLAG_D
    assert ntp64_to_unix_ns(struct.unpack("!Q", packets[0].extension[:8])[0]) == units[25].wall_ns
    outside = await client.request("PLAY", url, [session, ("Range", "clock=20000101T000000Z-")])
    assert outside.status == 457
    assert (await client.request("PLAY", url, [session, ("Range", "npt=0-")])).status == 457
    await client.close()


async def stall_until_blocked(
    client: RawClient, server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> asyncio.Event:
    """Make the client stop reading; the event is set once the server's socket is full."""
    (session,) = server.sessions
    connection = session.interleaved_connection
    assert isinstance(connection, RtspConnection)
    paused = asyncio.Event()
    pause = connection.pause_writing

    def spy() -> None:
        pause()
        paused.set()

    monkeypatch.setattr(connection, "pause_writing", spy)
    client.pause_reading()
    return paused


async def test_a_stalled_client_loses_nothing_in_replay(
    big_replay: tuple[RtspServer, str, UnitsReplay], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url, resource = big_replay
    client = await RawClient.connect("127.0.0.1", server.port)
    session = ("Session", session_of(await client.request("SETUP", url + "/video", [TCP])))
    paused = await stall_until_blocked(client, server, monkeypatch)
    start = ("Range", f"clock={format_clock(resource.units[0].wall_ns)}-")
    await client.send("PLAY", url, [session, start, ("Rate-Control", "no")])
    async with asyncio.timeout(10):
        await paused.wait()
    (live,) = server.sessions
    assert live.output.queued <= 4 and live.output.dropped_units == 0
    client.resume_reading()
    assert (await client.response()).status == 200
    packets, _ = await read_until_bye(client)
    seqs = [p.sequence for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    depacketizer = depacketizer_for(resource.params)
    got = [u.data for p in packets for u in depacketizer.push(p)]
    assert got == [u.data for u in resource.units]  # all 12 MB, in order
    await client.close()


async def test_teardown_cancels_a_producer_blocked_by_a_stalled_client(
    big_replay: tuple[RtspServer, str, UnitsReplay], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url, resource = big_replay
    client = await RawClient.connect("127.0.0.1", server.port)
    session = ("Session", session_of(await client.request("SETUP", url + "/video", [TCP])))
    paused = await stall_until_blocked(client, server, monkeypatch)
    start = ("Range", f"clock={format_clock(resource.units[0].wall_ns)}-")
    await client.send("PLAY", url, [session, start])
    async with asyncio.timeout(10):
        await paused.wait()
    # The server still reads and acts on requests while its writes are blocked (PB-38).
    await client.send("TEARDOWN", url, [session])
    async with asyncio.timeout(10):
        await server.wait_no_sessions()
    client.resume_reading()
    assert [(await client.response()).status for _ in range(2)] == [200, 200]
    await client.close()
