"""Replay over UDP unicast (RTP/AVP;unicast;client_port=, PB-02): same units as over TCP.

Every RTP datagram on the client's RTP port carries the 0xABAC extension; RTCP on the client's
RTCP port brings sender reports (zeros without rate control, PB-34; the current wall clock with
it) whose counts match what arrived, and the BYE after the last unit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import socket
import time

from app.core.time import NS_PER_SECOND, ntp64_to_unix_ns
from app.engine.replay import FLAG_C, FLAG_T
from app.protocols.rtp.formats import depacketizer_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, SenderReport, parse_rtcp
from app.protocols.rtsp.headers import parse_rtp_info
from app.protocols.rtsp.range import format_clock
from app.protocols.rtsp.transport import parse_transport
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import RUNS, frame_wall
from tests.engine.replay.test_replay_wire import (
    REQUIRE,
    Unit,
    check_common,
    read_until_bye,
    setup_all,
    units_of,
)
from tests.engine.rtsp.conftest import session_of

#: The client's receive buffer: a whole Rate-Control no replay fits, so the kernel drops none.
RECEIVE_BUFFER_BYTES = 4 << 20
#: Longest wait for the replay's last datagram (it takes well under a second).
RECEIVE_TIMEOUT_S = 15


class _Collector(asyncio.DatagramProtocol):
    """Keeps every datagram; `done` is set once the RTCP BYE came and, for RTP, `expect` arrived."""

    def __init__(self, rtcp: bool) -> None:
        self.rtcp = rtcp
        self.datagrams: list[tuple[bytes, int]] = []
        self.done = asyncio.Event()
        self.expect: int | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr[1]))
        if self.rtcp and any(isinstance(p, Bye) for p in parse_rtcp(data)):
            self.done.set()
        self._check()

    def expect_count(self, count: int) -> None:
        self.expect = count
        self._check()

    def _check(self) -> None:
        if self.expect is not None and len(self.datagrams) >= self.expect:
            self.done.set()


def _same(collector: _Collector) -> _Collector:
    return collector


@dataclasses.dataclass
class UdpClient:
    """The client's RTP/RTCP port pair, collecting every datagram that arrives."""

    rtp: _Collector
    rtcp: _Collector
    transports: list[asyncio.DatagramTransport]
    ports: tuple[int, int]

    @classmethod
    async def open(cls) -> UdpClient:
        loop = asyncio.get_running_loop()
        collectors = _Collector(rtcp=False), _Collector(rtcp=True)
        transports = []
        for collector in collectors:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind(("127.0.0.1", 0))
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_same, collector), sock=sock
            )
            transports.append(transport)
        ports = tuple(t.get_extra_info("sockname")[1] for t in transports)
        return cls(collectors[0], collectors[1], transports, (ports[0], ports[1]))

    def close(self) -> None:
        for transport in self.transports:
            transport.close()

    def packets(self) -> list[tuple[int, RtpPacket]]:
        return [(0, parse_rtp(data)) for data, _ in self.rtp.datagrams]

    def reports(self) -> list[SenderReport]:
        return [
            p
            for data, _ in self.rtcp.datagrams
            for p in parse_rtcp(data)
            if isinstance(p, SenderReport)
        ]


async def play_udp(
    rig: ReplayRig, *headers: tuple[str, str]
) -> tuple[UdpClient, int, tuple[int, int], int, int]:
    """SETUP video over UDP, PLAY to the BYE: (client, cseq, server ports, ssrc, RTP-Info seq)."""
    udp = await UdpClient.open()
    client = await rig.client()
    response = await client.request(
        "SETUP",
        f"{rig.url}/trackID=0",
        [("Transport", f"RTP/AVP;unicast;client_port={udp.ports[0]}-{udp.ports[1]}"), REQUIRE],
    )
    assert response.status == 200, response
    (spec,) = parse_transport(response.headers.get("Transport") or "")
    assert spec.client_port == udp.ports and spec.server_port is not None
    assert spec.ssrc is not None
    session = ("Session", session_of(response))
    played = await client.request("PLAY", rig.url, [session, REQUIRE, *headers])
    assert played.status == 200, played
    (info,) = parse_rtp_info(played.headers.get("RTP-Info") or "")
    assert info.seq is not None
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        await udp.rtcp.done.wait()
        # The event loop reads one datagram per socket and turn: RTP sent before the BYE may
        # still be queued when the BYE is read. The last SR (it precedes the BYE) counts it.
        udp.rtp.expect_count(udp.reports()[-1].packet_count)
        await udp.rtp.done.wait()
    await client.request("TEARDOWN", rig.url, [session])
    await client.close()
    return udp, client.cseq - 1, spec.server_port, spec.ssrc, info.seq


async def test_udp_replay_delivers_the_tcp_units_with_the_extension_and_sender_reports(
    rig: ReplayRig,
) -> None:
    span = ("Range", f"clock={format_clock(frame_wall(5))}-")
    no_rc = ("Rate-Control", "no")
    udp, cseq, server_ports, ssrc, first_seq = await play_udp(rig, span, no_rc)
    try:
        packets = udp.packets()
        reports = udp.reports()
        assert {port for _, port in udp.rtp.datagrams} == {server_ports[0]}
        assert {port for _, port in udp.rtcp.datagrams} == {server_ports[1]}
    finally:
        udp.close()
    check_common(packets, cseq)
    assert all(p.ssrc == ssrc for _, p in packets)
    assert packets[0][1].sequence == first_seq
    video = units_of(packets)
    expected = [n for run in RUNS for n in run]
    assert [u.frame for u in video] == expected
    assert {u.frame for u in video if u.flags & FLAG_C} == {0, 20, 60}
    assert [u.frame for u in video if u.flags & FLAG_T] == [79]
    depacketizer = depacketizer_for(rig.clip.params)
    data = [d.data for _, p in packets for d in depacketizer.push(p)]
    assert data == [u.data for u in rig.clip.video]
    # PB-34 without rate control: zero NTP and RTP fields; counts of what was sent.
    assert reports and all(
        (r.ssrc, r.ntp_timestamp, r.rtp_timestamp) == (ssrc, 0, 0) for r in reports
    )
    assert reports[-1].packet_count == len(packets)
    assert reports[-1].octet_count == sum(len(p.payload) for _, p in packets)

    # The same PLAY over TCP interleaved: the very same units, flags, RTP time steps, bytes.
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    response = await client.request("PLAY", rig.url, [session, REQUIRE, span, no_rc])
    assert response.status == 200
    tcp_packets, _ = await read_until_bye(client)
    await client.close()
    tcp = units_of(tcp_packets)

    def shape(units: list[Unit]) -> list[tuple[int, int, int, int, list[bytes]]]:
        first = units[0].packets[0].timestamp
        return [
            (
                u.frame,
                u.flags,
                len(u.packets),
                (u.packets[0].timestamp - first) & 0xFFFFFFFF,
                [p.payload for p in u.packets],
            )
            for u in units
        ]

    assert shape(tcp) == shape(video)


async def test_udp_replay_with_rate_control_reports_the_current_wall_clock(
    rig: ReplayRig,
) -> None:
    span = f"clock={format_clock(frame_wall(20))}-{format_clock(frame_wall(39))}"
    began_ns = time.time_ns()
    udp, _, _, ssrc, _ = await play_udp(rig, ("Range", span), ("Scale", "4.0"))
    ended_ns = time.time_ns()
    try:
        video = units_of(udp.packets())
        reports = udp.reports()
    finally:
        udp.close()
    assert [u.frame for u in video] == list(range(20, 40))
    # RTP times are rendering times at Scale 4: 25 ms apart (PB-33).
    steps = {
        (b.packets[0].timestamp - a.packets[0].timestamp) & 0xFFFFFFFF
        for a, b in itertools.pairwise(video)
    }
    assert steps == {2250}
    # PB-34 with rate control: each SR's NTP is the wall clock when it was sent.
    assert reports and all(r.ssrc == ssrc for r in reports)
    for report in reports:
        sent_ns = ntp64_to_unix_ns(report.ntp_timestamp)
        assert began_ns - NS_PER_SECOND <= sent_ns <= ended_ns + NS_PER_SECOND
