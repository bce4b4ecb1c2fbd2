"""One raw RTSP request set for ONVIF replay servers; what each server answered and sent.

Runs against any server holding a clip of constant frame rate whose footage starts at a known
NTP time (Custos's store, GStreamer's RTSPOnvifServer): frames are numbered from that start, so
the two servers' answers compare directly even though their footage lies at other dates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import struct
from collections.abc import Sequence

from app.core.time import NS_PER_SECOND
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, parse_rtcp
from app.protocols.rtsp.message import Headers
from tests.engine.rtsp.conftest import session_of
from tests.engine.rtsp.helpers import RawClient

#: Headers of a response the comparison records.
RECORDED = ("Range", "Scale", "Rate-Control", "RTP-Info", "Frames", "Unsupported")
#: Quiet time after which a delivery counts as over when neither T nor BYE came.
QUIET_S = 2.0
#: Upper bound of packets read from one PLAY (the clips are a few hundred packets).
MAX_PACKETS = 5000
NTP_EPOCH = datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC)
#: T flag of the 0xABAC extension's flag byte (PB-26); the others are in app.engine.replay.
FLAG_T = 0x10


@dataclasses.dataclass(frozen=True)
class Clip:
    """Where a server's footage lies: the NTP time (ns since 1900) of frame 0 and the spacing."""

    ntp_start_ns: int
    frame_ns: int

    def clock(self, frame: int) -> str:
        """The ONVIF clock time of `frame` (millisecond precision; both servers accept it)."""
        at = NTP_EPOCH + datetime.timedelta(
            microseconds=(self.ntp_start_ns + frame * self.frame_ns) // 1000
        )
        return at.strftime("%Y%m%dT%H%M%S.") + f"{at.microsecond // 1000:03d}Z"

    def frame_of(self, packet: RtpPacket) -> int:
        seconds, fraction = struct.unpack("!II", packet.extension[:8])
        ntp_ns = seconds * NS_PER_SECOND + (fraction * NS_PER_SECOND >> 32)
        # Rounded: GStreamer's fractions are truncated to 2^-32 s.
        return int((ntp_ns - self.ntp_start_ns + self.frame_ns // 2) // self.frame_ns)


@dataclasses.dataclass(frozen=True)
class DeliveredUnit:
    """One access unit as received: its frame number, flags OR-ed over its packets, CSeq byte."""

    frame: int
    flags: int
    cseq_byte: int
    first_flags: int
    last_flags: int


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str]
    units: list[DeliveredUnit] = dataclasses.field(default_factory=list)
    bye: bool = False


async def _deliveries(client: RawClient, clip: Clip) -> tuple[list[DeliveredUnit], bool]:
    """Video units of channel 0 until T on the last packet, an RTCP BYE or QUIET_S of silence."""
    packets: list[RtpPacket] = []
    bye = False
    while len(packets) < MAX_PACKETS:
        try:
            frame = await asyncio.wait_for(client.frame(), QUIET_S)
        except TimeoutError:
            break
        if frame.channel == 1:
            if any(isinstance(p, Bye) for p in parse_rtcp(frame.data)):
                bye = True
                break
            continue
        if frame.channel != 0:
            continue
        packet = parse_rtp(frame.data)
        packets.append(packet)
        if packet.extension_profile == 0xABAC and packet.extension[8] & FLAG_T:
            # GStreamer sends no BYE at the end of a replay: wait briefly for one anyway.
            bye = await _bye_within(client, QUIET_S / 4)
            break
    units: list[list[RtpPacket]] = []
    for packet in packets:
        if units and units[-1][-1].timestamp == packet.timestamp:
            units[-1].append(packet)
        else:
            units.append([packet])
    out = []
    for unit in units:
        flags = 0
        for p in unit:
            flags |= p.extension[8]
        out.append(
            DeliveredUnit(
                clip.frame_of(unit[0]),
                flags,
                unit[0].extension[9],
                unit[0].extension[8],
                unit[-1].extension[8],
            )
        )
    return out, bye


async def _bye_within(client: RawClient, within_s: float) -> bool:
    try:
        async with asyncio.timeout(within_s):
            while True:
                frame = await client.frame(1)
                if any(isinstance(p, Bye) for p in parse_rtcp(frame.data)):
                    return True
    except TimeoutError:
        return False


class ReplayProbe:
    """A raw client session on one replay URL; each call returns what the server did."""

    def __init__(self, client: RawClient, url: str, track_control: str, clip: Clip) -> None:
        self.client = client
        self.url = url
        self.track_control = track_control
        self.clip = clip
        self.session: str | None = None

    @classmethod
    async def open(cls, port: int, url: str, track_control: str, clip: Clip) -> ReplayProbe:
        return cls(await RawClient.connect("127.0.0.1", port), url, track_control, clip)

    async def close(self) -> None:
        await self.client.close()

    async def describe(self, require: str = "onvif-replay") -> tuple[Reply, str]:
        response = await self.client.request("DESCRIBE", self.url, [("Require", require)])
        return _reply(response.status, response.headers), response.body.decode()

    async def setup(self) -> Reply:
        response = await self.client.request(
            "SETUP",
            f"{self.url}/{self.track_control}",
            [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"), ("Require", "onvif-replay")],
        )
        if response.status == 200:
            self.session = session_of(response)
        return _reply(response.status, response.headers)

    async def play(self, headers: Sequence[tuple[str, str]], *, receive: bool = True) -> Reply:
        """PLAY on the aggregate URL with `headers`; the delivery it caused when 200."""
        assert self.session is not None, "setup first"
        self.client.frames.clear()
        response = await self.client.request(
            "PLAY", self.url, [("Session", self.session), ("Require", "onvif-replay"), *headers]
        )
        reply = _reply(response.status, response.headers)
        if response.status == 200 and receive:
            reply.units, reply.bye = await _deliveries(self.client, self.clip)
        return reply

    async def pause(self) -> Reply:
        assert self.session is not None
        response = await self.client.request("PAUSE", self.url, [("Session", self.session)])
        return _reply(response.status, response.headers)


def _reply(status: int, headers: Headers) -> Reply:
    return Reply(status, {name: v for name in RECORDED if (v := headers.get(name)) is not None})
