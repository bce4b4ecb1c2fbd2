"""Byte-level replay over TCP interleaved: 0xABAC layout and flags, order, RTP numbering, statuses.

The footage (footage.py): video frames 0..39 and 60..79 at 10 fps (keyframes 0, 20, 60), PCMU
audio and one metadata document per second over the same two runs, a 2.1 s gap between them.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct

from app.core.time import ntp64_to_unix_ns
from app.engine.replay import FLAG_C, FLAG_D, FLAG_E, FLAG_T
from app.protocols.rtp.formats import depacketizer_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, SenderReport, parse_rtcp
from app.protocols.rtsp.headers import parse_rtp_info
from app.protocols.rtsp.range import format_clock, parse_range
from app.protocols.sdp import parse_sdp
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import FRAME_NS, START_NS, frame_wall
from tests.engine.rtsp.conftest import session_of
from tests.engine.rtsp.helpers import RawClient

REQUIRE = ("Require", "onvif-replay")


@dataclasses.dataclass
class Unit:
    """The packets of one access unit as received, with the flags OR-ed over them (PB-26b)."""

    channel: int
    packets: list[RtpPacket]

    @property
    def wall_ns(self) -> int:
        return ntp64_to_unix_ns(struct.unpack("!Q", self.packets[0].extension[:8])[0])

    @property
    def flags(self) -> int:
        out = 0
        for p in self.packets:
            out |= p.extension[8]
        return out

    @property
    def frame(self) -> int:
        return (self.wall_ns - START_NS) // FRAME_NS


async def setup_all(client: RawClient, url: str, count: int = 3) -> tuple[str, str]:
    session: str | None = None
    for i in range(count):
        headers = [("Transport", f"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1}"), REQUIRE]
        if session is not None:
            headers.append(("Session", session))
        response = await client.request("SETUP", f"{url}/trackID={i}", headers)
        assert response.status == 200, response
        session = session_of(response)
    assert session is not None
    return "Session", session


async def read_until_bye(
    client: RawClient, channels: int = 1
) -> tuple[list[tuple[int, RtpPacket]], list[SenderReport]]:
    """RTP packets (channel, packet) in arrival order until every track said BYE."""
    packets: list[tuple[int, RtpPacket]] = []
    reports: list[SenderReport] = []
    byes = 0
    while byes < channels:
        frame = await client.frame()
        if frame.channel % 2 == 0:
            packets.append((frame.channel, parse_rtp(frame.data)))
            continue
        compound = parse_rtcp(frame.data)
        reports.extend(p for p in compound if isinstance(p, SenderReport))
        byes += sum(isinstance(p, Bye) for p in compound)
    return packets, reports


def units_of(packets: list[tuple[int, RtpPacket]], channel: int = 0) -> list[Unit]:
    units: list[Unit] = []
    for ch, packet in packets:
        if ch != channel:
            continue
        if units and units[-1].packets[-1].timestamp == packet.timestamp:
            units[-1].packets.append(packet)
        else:
            units.append(Unit(ch, [packet]))
    return units


def check_common(packets: list[tuple[int, RtpPacket]], cseq: int) -> None:
    """Extension on every packet, mbz and padding zero, CSeq byte, sequence numbers +1."""
    for _, p in packets:
        assert p.extension_profile == 0xABAC and len(p.extension) == 12
        assert p.extension[8] & 0x0F == 0 and p.extension[10:] == b"\0\0"
        assert p.extension[9] == cseq & 0xFF
    by_channel: dict[int, list[int]] = {}
    for ch, p in packets:
        by_channel.setdefault(ch, []).append(p.sequence)
    for seqs in by_channel.values():
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]


def play_headers(session: tuple[str, str], *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [session, REQUIRE, *extra]


async def test_describe_lists_every_track_with_its_token_and_the_footage_range(
    rig: ReplayRig,
) -> None:
    client = await rig.client()
    response = await client.request("DESCRIBE", rig.url, [REQUIRE])
    assert response.status == 200
    assert response.headers.get("Content-Base") == rig.url + "/"
    sdp = parse_sdp(response.body)
    assert sdp.attribute("range") == (
        f"clock={format_clock(frame_wall(0))}-{format_clock(rig.clip.audio[-1].wall_ns)}"
    )
    assert [m.attribute("x-onvif-track") for m in sdp.media] == ["VIDEO001", "AUDIO001", "META001"]
    assert [m.media for m in sdp.media] == ["video", "audio", "application"]
    assert [m.control for m in sdp.media] == ["trackID=0", "trackID=1", "trackID=2"]
    video = sdp.media[0]
    assert video.rtpmap(96) is not None and "sprop-parameter-sets" in video.fmtp(96)
    assert sdp.media[1].formats == ("0",)
    assert all(m.attribute("recvonly") == "" for m in sdp.media)
    refused = await client.request("DESCRIBE", rig.url, [("Require", "onvif-replay, x-other")])
    assert (refused.status, refused.headers.get("Unsupported")) == (551, "x-other")
    missing = await client.request("DESCRIBE", rig.server.url("replay/NoSuchRecording"))
    assert missing.status == 404
    await client.close()


async def test_forward_without_rate_control_sends_every_track_in_wall_clock_order(
    rig: ReplayRig,
) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url)
    response = await client.request(
        "PLAY",
        rig.url,
        play_headers(
            session, ("Range", f"clock={format_clock(frame_wall(5))}-"), ("Rate-Control", "no")
        ),
    )
    assert response.status == 200
    cseq = client.cseq
    # Starts at the clean point at or before the requested time (PB-18).
    assert parse_range(response.headers.get("Range") or "").start == frame_wall(0)
    assert response.headers.get("Rate-Control") == "no"
    infos = parse_rtp_info(response.headers.get("RTP-Info") or "")
    packets, reports = await read_until_bye(client, channels=3)
    check_common(packets, cseq)
    assert reports and all((r.ntp_timestamp, r.rtp_timestamp) == (0, 0) for r in reports)

    video = units_of(packets, 0)
    assert [u.frame for u in video] == [*range(40), *range(60, 80)]
    assert (video[0].packets[0].sequence, video[0].packets[0].timestamp) == (
        infos[0].seq,
        infos[0].rtptime,
    )
    # RTP times follow the stored wall clocks, across the gap too (PB-33).
    for a, b in itertools.pairwise(video):
        delta = (b.packets[0].timestamp - a.packets[0].timestamp) & 0xFFFFFFFF
        assert delta == (b.wall_ns - a.wall_ns) * 90_000 // 1_000_000_000
    flags = {u.frame: u.flags for u in video}
    assert {f for f, v in flags.items() if v & FLAG_C} == {0, 20, 60}
    assert {f for f, v in flags.items() if v & FLAG_D} == {0, 60}
    assert {f for f, v in flags.items() if v & FLAG_E} == {39, 79}
    assert {f for f, v in flags.items() if v & FLAG_T} == {79}
    # D only on the first packet of its unit, T only on the last (PB-26a).
    for unit in video:
        assert all(not p.extension[8] & FLAG_D for p in unit.packets[1:])
        assert all(not p.extension[8] & FLAG_T for p in unit.packets[:-1])
    assert video[-1].packets[-1].extension[8] == FLAG_E | FLAG_T

    # Audio and metadata come interleaved in wall-clock order, each with its own flags.
    stored_audio = [u.wall_ns for u in rig.clip.audio]
    audio = units_of(packets, 2)
    assert [u.wall_ns for u in audio] == stored_audio
    assert audio[-1].flags & FLAG_T and audio[0].flags & FLAG_D
    metadata = units_of(packets, 4)
    assert [u.wall_ns for u in metadata] == [u.wall_ns for u in rig.clip.metadata]
    walls = [Unit(ch, [p]).wall_ns for ch, p in packets]
    assert walls == sorted(walls)
    depacketizer = depacketizer_for(rig.clip.params)
    data = [d.data for _, p in packets if _ == 0 for d in depacketizer.push(p)]
    assert data == [u.data for u in rig.clip.video]
    await client.close()


async def test_reverse_sends_gops_last_to_first_with_frames_forward(rig: ReplayRig) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url)
    start = frame_wall(70)
    response = await client.request(
        "PLAY",
        rig.url,
        play_headers(
            session,
            ("Range", f"clock={format_clock(start)}-{format_clock(frame_wall(0))}"),
            ("Scale", "-1.0"),
            ("Rate-Control", "no"),
        ),
    )
    assert response.status == 200
    assert response.headers.get("Scale") == "-1.0"
    packets, _ = await read_until_bye(client, channels=3)
    check_common(packets, client.cseq)
    assert {ch for ch, _ in packets} == {0}, "audio and metadata are not sent in reverse"
    video = units_of(packets, 0)
    assert [u.frame for u in video] == [*range(60, 71), *range(20, 40), *range(0, 20)]
    flags = {u.frame: u.flags for u in video}
    assert {f for f, v in flags.items() if v & FLAG_D} == {60, 20, 0}
    assert {f for f, v in flags.items() if v & FLAG_C} == {60, 20, 0}
    # E: the last frame sent of a GOP after a gap, and of the first GOP of the footage.
    assert {f for f, v in flags.items() if v & FLAG_E} == {70, 19}
    assert {f for f, v in flags.items() if v & FLAG_T} == {19}

    # RTP times are the forward ones: rising inside a GOP, falling from GOP to GOP.
    def rtp(frame: int) -> int:
        return next(u.packets[0].timestamp for u in video if u.frame == frame)

    assert (rtp(61) - rtp(60)) & 0xFFFFFFFF == 9000
    assert (rtp(60) - rtp(20)) & 0xFFFFFFFF == 40 * 9000
    await client.close()


async def test_frames_intra_with_interval_spaces_key_frames_in_recording_time(
    rig: ReplayRig,
) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url)
    begin = ("Range", f"clock={format_clock(frame_wall(0))}-")
    no_rc = ("Rate-Control", "no")
    response = await client.request(
        "PLAY", rig.url, play_headers(session, begin, no_rc, ("Frames", "intra/2500"))
    )
    assert (response.status, response.headers.get("Frames")) == (200, "intra/2500")
    packets, _ = await read_until_bye(client, channels=3)
    assert {ch for ch, _ in packets} == {0, 4}, "audio is skipped when scanning key frames"
    video = units_of(packets, 0)
    assert [u.frame for u in video] == [0, 60]  # 20 is only 2.0 s after 0
    assert [u.flags & (FLAG_C | FLAG_T) for u in video] == [FLAG_C, FLAG_C | FLAG_T]
    client.frames.clear()
    response = await client.request(
        "PLAY", rig.url, play_headers(session, begin, no_rc, ("Frames", "intra"))
    )
    packets, _ = await read_until_bye(client, channels=3)
    assert [u.frame for u in units_of(packets, 0)] == [0, 20, 60]
    await client.close()


async def test_statuses_for_bad_ranges_sessions_and_headers(rig: ReplayRig) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    before = f"clock={format_clock(START_NS - 10**10)}-{format_clock(START_NS - 10**9)}"
    after = f"clock={format_clock(frame_wall(200))}-"
    backwards = f"clock={format_clock(frame_wall(30))}-{format_clock(frame_wall(10))}"
    for headers, status in [
        ([("Range", before)], 457),
        ([("Range", after)], 457),
        ([("Range", backwards), ("Scale", "1.0")], 457),
        ([("Scale", "0")], 400),
        ([("Rate-Control", "maybe")], 400),
    ]:
        response = await client.request("PLAY", rig.url, play_headers(session, *headers))
        assert response.status == status, (headers, response)
    unknown = await client.request("PLAY", rig.url, [("Session", "0123456789abcdef")])
    assert unknown.status == 454
    await client.close()


async def test_go_to_time_pause_and_resume(rig: ReplayRig) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    first = await client.request(
        "PLAY", rig.url, play_headers(session, ("Range", f"clock={format_clock(frame_wall(0))}-"))
    )
    assert first.status == 200
    # Go-to-time while playing: the new delivery starts at the clean point with D set and
    # the new CSeq byte; nothing of the old one follows the response (PB-15, PB-17).
    jump = await client.request(
        "PLAY",
        rig.url,
        play_headers(
            session,
            ("Range", f"clock={format_clock(frame_wall(25))}-"),
            ("Immediate", "yes"),
            ("Rate-Control", "no"),
        ),
    )
    assert parse_range(jump.headers.get("Range") or "").start == frame_wall(20)
    client.frames.clear()
    first_packet = parse_rtp((await client.frame(0)).data)
    assert first_packet.extension[9] == client.cseq
    assert first_packet.extension[8] & (FLAG_C | FLAG_D) == FLAG_C | FLAG_D
    assert Unit(0, [first_packet]).frame == 20
    assert (await client.request("PAUSE", rig.url, [session])).status == 200
    client.frames.clear()
    resumed = await client.request("PLAY", rig.url, [session, ("Rate-Control", "no")])
    assert resumed.status == 200
    resume_start = parse_range(resumed.headers.get("Range") or "").start
    # PB-19: it goes on after the last unit sent before PAUSE (not back to a clean point:
    # the client's decoder holds what came before).
    stored = [u.wall_ns for u in rig.clip.video]
    assert resume_start in stored and resume_start > frame_wall(20)
    packets, _ = await read_until_bye(client)
    units = units_of(packets)
    assert units[0].wall_ns == resume_start and units[-1].frame == 79
    assert {p.extension[9] for _, p in packets} == {client.cseq}
    await client.close()


async def test_rate_control_paces_at_scale_times_real_time(rig: ReplayRig) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    span = f"clock={format_clock(frame_wall(0))}-{format_clock(frame_wall(19))}"
    loop_time = __import__("asyncio").get_running_loop().time
    began = loop_time()
    response = await client.request(
        "PLAY", rig.url, play_headers(session, ("Range", span), ("Scale", "2.0"))
    )
    assert response.headers.get("Scale") == "2.0"
    packets, _ = await read_until_bye(client)
    elapsed = loop_time() - began
    video = units_of(packets)
    assert [u.frame for u in video] == list(range(20))
    assert video[-1].flags & FLAG_T
    # 1.9 s of footage at twice real time: about 0.95 s (lower bound only: CI noise).
    assert elapsed >= 0.85
    # RTP times are rendering times: 50 ms apart at Scale 2.
    deltas = {
        (b.packets[0].timestamp - a.packets[0].timestamp) & 0xFFFFFFFF
        for a, b in itertools.pairwise(video)
    }
    assert deltas == {4500}
    await client.close()
