"""Sending a session's media: RTP packets per track, RTCP sender reports and BYE, flow control.

Producers put access units into the session's bounded queue (`SessionOutput`); one writer task
per session packetizes them and hands the packets to each track's channel (interleaved on the
RTSP connection, or a UDP pair), waiting whenever the transport has paused writing. So memory
per session is bounded by MAX_QUEUED_UNITS plus the transport's high-water mark: a slow reader
blocks replay producers (`send`) and makes live producers drop to the next keyframe (`offer`).

RTP timestamps are the unit's media time plus a per-track offset chosen so the first packet
carries a random RTP time (announced in RTP-Info). Sender reports pair the RTP time of the last
unit with its wall clock (ReportMode.MEDIA_CLOCK), so a receiver recovers each frame's capture
time exactly.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from typing import Protocol

from app.core.errors import ProtocolError
from app.core.media import AccessUnit, TrackKind
from app.core.time import NS_PER_SECOND, Clock, unix_ns_to_ntp64
from app.engine.rtsp.resource import ExtensionHook, ReportMode, TrackDescription
from app.protocols.rtp.codec import Packetizer
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.rtcp import build_bye, build_sdes, build_sr

logger = logging.getLogger(__name__)

#: Access units a session may have queued before `send` waits and `offer` drops.
MAX_QUEUED_UNITS = 128
#: Seconds between RTCP sender reports of a playing track (RFC 3550 allows ~5 s; 1 s lets a
#: receiver map wall-clock time quickly after it joins).
REPORT_INTERVAL_S = 1.0

_RTP_MOD = 1 << 32


class PacketChannel(Protocol):
    """Carries one track's RTP and RTCP packets to the client."""

    def send_rtp(self, packets: list[bytes]) -> None:
        """Send packets (silently dropped once the channel is closed)."""
        ...

    def send_rtcp(self, packet: bytes) -> None: ...

    async def wait_writable(self) -> None:
        """Return once the transport accepts more data; raise ConnectionError once it is gone."""
        ...

    def close(self) -> None: ...


class TrackSender:
    """RTP state of one track of one session: SSRC, sequence numbers, timestamp offset, counts."""

    def __init__(
        self,
        index: int,
        track: TrackDescription,
        channel: PacketChannel,
        packetizer: Packetizer,
        rng: random.Random,
    ) -> None:
        self.index = index
        self.track = track
        self.channel = channel
        self.packetizer = packetizer
        self.ssrc = rng.getrandbits(32)
        self.next_seq = rng.getrandbits(16)
        #: The RTP time of the first unit (announced in RTP-Info before it is sent).
        self.initial_rtptime = rng.getrandbits(32)
        self._offset: int | None = None
        self.packet_count = 0
        self.octet_count = 0
        self.last_rtp: int | None = None
        self.last_wall_ns = 0
        self.last_sent_mono_ns = 0

    @property
    def timeline_fixed(self) -> bool:
        return self._offset is not None

    def rtp_timestamp(self, media_time: int) -> int:
        if self._offset is None:
            self._offset = self.initial_rtptime - media_time
        return (media_time + self._offset) % _RTP_MOD

    def build_packets(
        self, unit: AccessUnit, media_time: int, extension: ExtensionHook | None
    ) -> list[bytes]:
        """The RTP packets of one unit (raises ProtocolError when the payload is malformed)."""
        chunks = self.packetizer.packetize(unit.data)
        timestamp = self.rtp_timestamp(media_time)
        count = len(chunks)
        packets = []
        for i, chunk in enumerate(chunks):
            ext = extension(i, count) if extension is not None else None
            packet = RtpPacket(
                payload_type=self.track.payload_type,
                sequence=self.next_seq,
                timestamp=(timestamp + chunk.ts_offset) % _RTP_MOD,
                ssrc=self.ssrc,
                payload=chunk.payload,
                marker=chunk.marker,
                extension_profile=ext[0] if ext is not None else None,
                extension=ext[1] if ext is not None else b"",
            )
            packets.append(packet.to_bytes())
            self.next_seq = (self.next_seq + 1) & 0xFFFF
            self.octet_count += len(chunk.payload)
        self.packet_count += count
        self.last_rtp = timestamp
        self.last_wall_ns = unit.wall_ns
        return packets

    def sender_report(self, mode: ReportMode, wall_ns: int, mono_ns: int, cname: str) -> bytes:
        """SR + SDES CNAME compound for this track (call only after a packet was sent)."""
        assert self.last_rtp is not None
        if mode is ReportMode.ZERO:
            ntp, rtp = 0, 0
        elif mode is ReportMode.CURRENT_TIME:
            elapsed = max(0, mono_ns - self.last_sent_mono_ns)
            ntp = unix_ns_to_ntp64(wall_ns)
            rtp = (self.last_rtp + elapsed * self.track.params.clock_rate // NS_PER_SECOND) % (
                _RTP_MOD
            )
        else:
            ntp, rtp = unix_ns_to_ntp64(self.last_wall_ns), self.last_rtp
        report = build_sr(self.ssrc, ntp, rtp, self.packet_count, self.octet_count)
        return report + build_sdes(self.ssrc, cname)


@dataclasses.dataclass(slots=True)
class _Queued:
    track: int
    unit: AccessUnit
    media_time: int
    extension: ExtensionHook | None
    #: The delivery (PLAY) the unit belongs to; see SessionOutput.clear.
    generation: int


class SessionOutput:
    """The bounded unit queue and writer task of one session (implements MediaOutput)."""

    def __init__(
        self,
        senders: dict[int, TrackSender],
        *,
        clock: Clock,
        cname: str,
        max_queue: int = MAX_QUEUED_UNITS,
        report_interval_s: float = REPORT_INTERVAL_S,
    ) -> None:
        self.senders = senders
        self.cname = cname
        self.max_queue = max_queue
        self.report_interval_s = report_interval_s
        self.report_mode = ReportMode.MEDIA_CLOCK
        #: Units dropped by the live drop policy, and units whose payload failed to packetize.
        self.dropped_units = 0
        self.bad_units = 0
        #: Sender reports go out only while the session plays.
        self.reporting = False
        self._clock = clock
        self._queue: collections.deque[_Queued] = collections.deque()
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._resync = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._next_report = 0.0
        self._key_track = _key_track(senders)
        self._generation = 0

    # ------------------------------------------------------------------ MediaOutput
    @property
    def tracks(self) -> tuple[int, ...]:
        return tuple(self.senders)

    async def send(
        self,
        track: int,
        unit: AccessUnit,
        *,
        rtp_time: int | None = None,
        extension: ExtensionHook | None = None,
    ) -> None:
        if track not in self.senders:
            return
        while len(self._queue) >= self.max_queue:
            self._check_open()
            self._space.clear()
            await self._space.wait()
        self._check_open()
        media_time = unit.media_ts if rtp_time is None else rtp_time
        self._append(_Queued(track, unit, media_time, extension, self._generation))

    def offer(self, track: int, unit: AccessUnit) -> bool:
        if track not in self.senders or self._closed:
            return False
        resync_point = unit.keyframe and (self._key_track is None or track == self._key_track)
        if self._resync and not resync_point:
            self.dropped_units += 1
            return False
        self._resync = False
        if len(self._queue) >= self.max_queue:
            # The client falls behind: throw the backlog away and restart at a keyframe.
            self.dropped_units += len(self._queue)
            self._queue.clear()
            self._space.set()
            if not resync_point:
                self.dropped_units += 1
                self._resync = True
                return False
        self._append(_Queued(track, unit, unit.media_ts, None, self._generation))
        return True

    async def drain(self) -> None:
        while not self._idle.is_set():
            await self._idle.wait()
        self._check_open()

    def rtp_timestamp(self, track: int, media_time: int) -> int:
        return self.senders[track].rtp_timestamp(media_time)

    def set_report_mode(self, mode: ReportMode) -> None:
        self.report_mode = mode

    # ------------------------------------------------------------------ lifecycle
    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the writer task (idempotent)."""
        self._key_track = _key_track(self.senders)
        if self._task is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._next_report = loop.time() + self.report_interval_s
            self._task = loop.create_task(self._run(), name="rtsp-session-writer")

    def clear(self) -> None:
        """Forget queued units (PAUSE, a new PLAY): they belong to the previous delivery.

        A unit the writer holds while it waits for the transport is dropped too, so nothing
        of the old delivery follows the new PLAY response (PB-17).
        """
        self._generation += 1
        self._queue.clear()
        self._space.set()
        self._resync = False
        self._idle.set()

    def send_bye(self) -> None:
        """RTCP SR (if anything was sent) + SDES + BYE on every track: the stream ended."""
        wall, mono = self._clock.wall_ns(), self._clock.monotonic_ns()
        for sender in self.senders.values():
            if sender.last_rtp is not None:
                report = sender.sender_report(self.report_mode, wall, mono, self.cname)
            else:
                report = build_sdes(sender.ssrc, self.cname)
            sender.channel.send_rtcp(report + build_bye((sender.ssrc,)))

    async def close(self) -> None:
        """Stop the writer and close the channels (queued units are dropped)."""
        self._closed = True
        self._queue.clear()
        self._space.set()
        self._ready.set()
        self._idle.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for sender in self.senders.values():
            sender.channel.close()

    # ------------------------------------------------------------------ writer
    def _append(self, item: _Queued) -> None:
        self._queue.append(item)
        self._idle.clear()
        self._ready.set()

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError("the RTSP session is closed")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    self._idle.set()
                    self._ready.clear()
                    delay = max(0.0, self._next_report - loop.time())
                    try:
                        async with asyncio.timeout(delay):
                            await self._ready.wait()
                    except TimeoutError:
                        pass
                if loop.time() >= self._next_report:
                    self._next_report = loop.time() + self.report_interval_s
                    self._send_reports()
                if self._queue:
                    item = self._queue.popleft()
                    self._space.set()
                    await self._write(item)
        except ConnectionError as exc:
            logger.debug("session writer stopped: %s", exc)
        finally:
            self._closed = True
            self._space.set()
            self._idle.set()

    async def _write(self, item: _Queued) -> None:
        sender = self.senders[item.track]
        await sender.channel.wait_writable()
        if item.generation != self._generation:
            return
        # Packetize only now: sequence numbers are taken in the order packets hit the wire.
        try:
            packets = sender.build_packets(item.unit, item.media_time, item.extension)
        except ProtocolError as exc:
            self.bad_units += 1
            logger.warning("track %d: unit not sent: %s", item.track, exc.message)
            return
        except Exception:
            # A packetizer or extension-hook bug costs this unit, not the whole session.
            self.bad_units += 1
            logger.exception("track %d: packetizing a unit failed", item.track)
            return
        sender.channel.send_rtp(packets)
        sender.last_sent_mono_ns = self._clock.monotonic_ns()

    def _send_reports(self) -> None:
        if not self.reporting:
            return
        wall, mono = self._clock.wall_ns(), self._clock.monotonic_ns()
        for sender in self.senders.values():
            if sender.last_rtp is not None:
                sender.channel.send_rtcp(
                    sender.sender_report(self.report_mode, wall, mono, self.cname)
                )


def _key_track(senders: dict[int, TrackSender]) -> int | None:
    """The track whose keyframes restart a live stream after drops: the first video track."""
    for index, sender in senders.items():
        if sender.track.params.kind is TrackKind.VIDEO:
            return index
    return None
