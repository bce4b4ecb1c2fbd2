"""One received track: raw RTP/RTCP bytes → ordered packets → access units with both times.

Bad packets are dropped and counted, never fatal on their own; a track that produces nothing
but errors for MAX_ERRORS_IN_A_ROW packets, or whose SSRC changes, ends the run (the receiver
reconnects, which gives the new stream a new media timeline).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from app.core.errors import PeerError, ProtocolError
from app.core.media import AccessUnit, CodecParams, TrackKind
from app.core.time import Clock
from app.engine.ingest.reorder import ReorderBuffer
from app.protocols.rtp.codec import DepacketizeError, Depacketizer
from app.protocols.rtp.formats import depacketizer_for
from app.protocols.rtp.packet import RtpError, RtpPacket, parse_rtp
from app.protocols.rtp.rtcp import Bye, RtcpError, SenderReport, parse_rtcp
from app.protocols.rtp.timing import RtpTimestampUnwrapper, WallClockMapper

#: Consecutive malformed packets (RTP, payload or RTCP) after which the stream is called broken.
MAX_ERRORS_IN_A_ROW = 50
#: Per-track errors written to the log per run; the rest are only counted.
MAX_LOGGED_ERRORS = 5

log = logging.getLogger("app.engine.ingest")

#: Receives (track index, unit, current params) for every access unit.
FrameHandler = Callable[[int, AccessUnit, CodecParams], None]


@dataclasses.dataclass(slots=True)
class TrackStats:
    """Counters of one track over one run."""

    packets: int = 0
    bytes: int = 0
    frames: int = 0
    #: Malformed RTP packets, payloads the depacketizer refused and malformed RTCP.
    errors: int = 0
    #: Packets of another payload type (comfort noise, FEC …), ignored.
    foreign: int = 0
    #: Units the depacketizer dropped because packets were lost.
    lost_units: int = 0
    #: Video units before the first keyframe of the run (undecodable, not delivered).
    skipped: int = 0
    sender_reports: int = 0
    late: int = 0


class Track:
    """Depacketizes and timestamps one media stream of a session."""

    def __init__(
        self,
        index: int,
        params: CodecParams,
        payload_type: int,
        *,
        clock: Clock,
        on_frame: FrameHandler,
        label: str,
        reorder_window: int = 0,
    ) -> None:
        self.index = index
        self.params = params
        self.payload_type = payload_type
        self.label = label
        self.stats = TrackStats()
        self._clock = clock
        self._on_frame = on_frame
        self._depacketizer: Depacketizer = depacketizer_for(params)
        self._unwrapper = RtpTimestampUnwrapper()
        self._mapper = WallClockMapper(params.clock_rate)
        self._reorder = ReorderBuffer(reorder_window) if reorder_window else None
        self._ssrc: int | None = None
        self._errors_in_a_row = 0
        self._waiting_for_key = params.kind is TrackKind.VIDEO
        self.bye = False

    @property
    def synced(self) -> bool:
        """True once an RTCP sender report maps this track to the camera's clock."""
        return self._mapper.synced

    def on_rtp(self, data: bytes) -> None:
        """One RTP packet as received; PeerError if the stream cannot go on."""
        self.stats.packets += 1
        self.stats.bytes += len(data)
        try:
            packet = parse_rtp(data)
        except RtpError as exc:
            self._error(exc)
            return
        if packet.payload_type != self.payload_type:
            self.stats.foreign += 1
            return
        if self._ssrc is None:
            self._ssrc = packet.ssrc
        elif packet.ssrc != self._ssrc:
            raise PeerError(
                f"{self.label}: SSRC changed from {self._ssrc:#010x} to {packet.ssrc:#010x}"
                " (the camera restarted the stream)"
            )
        if self._reorder is None:
            self._depacketize(packet)
            return
        for ordered in self._reorder.push(packet):
            self._depacketize(ordered)
        self.stats.late = self._reorder.late

    def on_rtcp(self, data: bytes) -> None:
        """One RTCP compound packet: sender reports feed the wall-clock mapping."""
        try:
            packets = parse_rtcp(data)
        except RtcpError as exc:
            self._error(exc)
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                if self._ssrc is None or packet.ssrc == self._ssrc:
                    self._sender_report(packet)
            elif isinstance(packet, Bye) and (self._ssrc is None or self._ssrc in packet.ssrcs):
                self.bye = True

    def _sender_report(self, report: SenderReport) -> None:
        jump = self._mapper.on_sender_report(report.ntp_timestamp, report.rtp_timestamp)
        self.stats.sender_reports += 1
        if jump is not None:
            log.warning(
                "%s: camera clock jumped by %+.3f s at RTP time %d",
                self.label,
                jump.delta_ns / 1e9,
                jump.rtp_timestamp,
            )

    def _depacketize(self, packet: RtpPacket) -> None:
        try:
            units = self._depacketizer.push(packet)
        except DepacketizeError as exc:
            self._error(exc)
            return
        finally:
            self.stats.lost_units = self._depacketizer.lost_units
        self._errors_in_a_row = 0
        receive_ns = self._clock.wall_ns()
        for unit in units:
            if unit.new_params is not None:
                self.params = unit.new_params
            if self._waiting_for_key:
                if not unit.keyframe:
                    self.stats.skipped += 1
                    continue
                self._waiting_for_key = False
            media_ts = self._unwrapper.unwrap(unit.rtp_timestamp)
            wall_ns, source = self._mapper.map(media_ts, receive_ns)
            self.stats.frames += 1
            self._on_frame(
                self.index,
                AccessUnit(unit.data, media_ts, wall_ns, unit.keyframe, source),
                self.params,
            )

    def _error(self, exc: ProtocolError) -> None:
        self.stats.errors += 1
        self._errors_in_a_row += 1
        if self.stats.errors <= MAX_LOGGED_ERRORS:
            more = (
                " (further errors are only counted)"
                if self.stats.errors == MAX_LOGGED_ERRORS
                else ""
            )
            log.warning("%s: dropped a malformed packet: %s%s", self.label, exc.message, more)
        if self._errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
            raise PeerError(
                f"{self.label}: {self._errors_in_a_row} malformed packets in a row"
                f" (last: {exc.message})"
            )


def describe(index: int, params: CodecParams) -> str:
    """'track 0 (Video H264/90000)' for logs and error messages."""
    return f"track {index} ({params.kind.value} {params.codec.value}/{params.clock_rate})"
