"""The ONVIF replay RTSP resource: one recording of the store served for Profile G playback.

    resource = ReplayResource(store, "Gate", clock)
    server.mount("replay/Gate", resource)      # or: await ReplayMount(store).attach(server)

DESCRIBE answers one media section per track that holds data (a=x-onvif-track, codec from the
stored parameters, a=range:clock= of the footage). Each session gets a `ReplayProducer`: PLAY is
planned by plan.py, the frames are chosen by walk.py, and every packet carries the 0xABAC
extension (extension.py). With Rate-Control yes units leave at |Scale| × real time of their
stored wall clocks and RTP times are rendering times; with Rate-Control no they leave as fast
as the session output accepts them (it blocks: no unbounded buffering) and RTP times follow
the stored wall clocks, also in reverse (PB-33).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Callable

from app.core.media import TrackKind
from app.core.time import NS_PER_SECOND, Clock, SystemClock
from app.engine.replay.extension import extension_hook
from app.engine.replay.plan import Extent, PlayPlan, plan_play
from app.engine.replay.walk import (
    Delivery,
    FrameFilter,
    ReplayTrack,
    TrackCursor,
    closing,
    walk_forward,
    walk_reverse,
)
from app.engine.rtsp.resource import (
    MediaOutput,
    PlayRequest,
    PlayResult,
    ReportMode,
    RequestContext,
    ResourceDescription,
    RtspStatusError,
    TrackDescription,
    payload_type_for,
)
from app.engine.storage import FrameRef, RecordingStatus, Store, TrackMedia
from app.protocols.rtp.formats import sdp_media_for
from app.protocols.rtsp.headers import FramesMode
from app.protocols.rtsp.range import INVALID_RANGE, clock_range
from app.protocols.sdp import Origin, SessionDescription

logger = logging.getLogger(__name__)

#: The feature tag of the ONVIF replay extensions (PB-10).
ONVIF_REPLAY = "onvif-replay"
#: How often a play that reached the live edge looks for newly stored frames.
LIVE_POLL_S = 0.2
#: SDP attribute naming the recording track of a media section (PB-06).
TRACK_ATTRIBUTE = "x-onvif-track"


class ReplayResource:
    """Serves one recording; the recording is looked up on every request (deleted → 404)."""

    features: frozenset[str] = frozenset({ONVIF_REPLAY})

    def __init__(
        self,
        store: Store,
        recording_token: str,
        clock: Clock | None = None,
        *,
        session_timeout_s: Callable[[], float] | None = None,
        live_poll_s: float = LIVE_POLL_S,
    ) -> None:
        self.store = store
        self.recording_token = recording_token
        self.clock = clock or SystemClock()
        #: The replay SessionTimeout (Replay Control, RP-10) new sessions should advertise.
        self.session_timeout_s = session_timeout_s
        self.live_poll_s = live_poll_s
        self._sdp_id = str(secrets.randbits(31))

    async def describe(self, context: RequestContext) -> ResourceDescription:
        token = self.recording_token
        recording = await self.store.recording(token)  # NotFoundError → 404
        media = [m for m in await self.store.track_media(token) if m.frame_count > 0]
        if not media:
            raise RtspStatusError(404, f"recording {token!r} holds no media yet")
        tracks: list[TrackDescription] = []
        sections = []
        for i, track in enumerate(media):
            last = await self.store.last_frame(token, track.track)
            if last is None:  # deleted by retention since track_media: describe again
                raise RtspStatusError(503, f"track {track.track!r} changed while described")
            params = await self.store.params_for_frame(last)
            payload_type = payload_type_for(params, i)
            description = TrackDescription(f"trackID={i}", params, payload_type)
            section = sdp_media_for(params, payload_type, description.control)
            extra = (("recvonly", None), (TRACK_ATTRIBUTE, track.track))
            sections.append(dataclasses.replace(section, attributes=section.attributes + extra))
            tracks.append(description)
        extent = _extent(media)
        host = context.server_host or "0.0.0.0"
        footage = clock_range(extent.earliest_ns, extent.latest_ns).to_header()
        sdp = SessionDescription(
            origin=Origin(
                session_id=self._sdp_id,
                session_version=str(extent.latest_ns // NS_PER_SECOND),
                address_type="IP6" if ":" in host else "IP4",
                address=host,
            ),
            session_name=recording.config.name or token,
            connection="IN IP4 0.0.0.0",
            attributes=(("control", "*"), ("range", footage)),
            media=tuple(sections),
        )
        return ResourceDescription(sdp=sdp, tracks=tuple(tracks))

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> ReplayProducer:
        tracks = []
        for index, (track, section) in enumerate(
            zip(description.tracks, description.sdp.media, strict=True)
        ):
            token = section.attribute(TRACK_ATTRIBUTE) or ""
            params = track.params
            tracks.append(ReplayTrack(index, token, params.kind, params.codec, params.clock_rate))
        return ReplayProducer(self, tuple(tracks))

    async def is_recording(self) -> bool:
        """The recording is being written to (its footage grows)."""
        recording = await self.store.recording(self.recording_token)
        return recording.status is RecordingStatus.RECORDING


@dataclasses.dataclass(slots=True)
class _Pacer:
    """Rate control: when each unit leaves, and its rendering time (RTP time, PB-33)."""

    scale: float
    start_mono_ns: int
    anchor_wall_ns: int | None = None

    def offsets(self, delivery: Delivery, now_mono_ns: int) -> tuple[int, int]:
        """(send time, rendering time) in monotonic ns."""
        if self.anchor_wall_ns is None or delivery.after_gap:
            # Across a recording gap playback jumps on instead of waiting through it.
            if self.anchor_wall_ns is not None:
                self.start_mono_ns = max(now_mono_ns, self.start_mono_ns)
            self.anchor_wall_ns = delivery.pace_ns
        speed = abs(self.scale)
        due = self.start_mono_ns + int(abs(delivery.pace_ns - self.anchor_wall_ns) / speed)
        render = self.start_mono_ns + int(
            abs(delivery.frame.ref.wall_ns - self.anchor_wall_ns) / speed
        )
        return due, render


class ReplayProducer:
    """One session's replay: positions on PLAY, sends on `run`, remembers where PAUSE left it."""

    def __init__(self, resource: ReplayResource, tracks: tuple[ReplayTrack, ...]) -> None:
        self._resource = resource
        self._store = resource.store
        self._clock = resource.clock
        self._tracks = tracks
        self._plan: PlayPlan | None = None
        self._key: FrameRef | None = None
        self._set_up: tuple[ReplayTrack, ...] = ()
        self._start_mono_ns = 0
        #: RTP time bases fixed on the first PLAY of the session, so times stay comparable.
        self._mono_epoch_ns: int | None = None
        self._wall_epoch_ns: int | None = None
        self._position_ns: int | None = None
        self._paused = False

    # ------------------------------------------------------------------ StreamProducer
    async def play(self, request: PlayRequest, output: MediaOutput) -> PlayResult:
        set_up = tuple(self._tracks[i] for i in request.tracks if i < len(self._tracks))
        if not set_up:
            raise RtspStatusError(455, "PLAY before any track was set up")
        primary = _primary(set_up)
        media = await self._store.track_media(self._resource.recording_token)
        primary_media = next((m for m in media if m.track == primary.token), None)
        if primary_media is None or primary_media.earliest_ns is None:
            raise RtspStatusError(INVALID_RANGE, f"track {primary.token!r} holds no footage")
        extent = _extent([primary_media])
        resume = self._resume_point() if self._paused else None
        plan = plan_play(request, extent, previous=self._plan, resume_ns=resume)
        key = None
        if resume is not None and request.range is None and not plan.reverse:
            # PB-19: go on after the last unit sent. The client's decoder still holds the
            # pictures before it, so going back to the clean point would repeat frames.
            key = await self._first_frame_from(primary, plan)
        if key is None:
            key = await self._clean_point(primary, primary_media, plan)
        self._plan, self._key, self._paused = plan, key, False
        self._set_up = (primary,) if plan.reverse else _forward_tracks(set_up, plan)
        self._start_mono_ns = self._clock.monotonic_ns()
        if self._mono_epoch_ns is None:
            self._mono_epoch_ns = self._start_mono_ns
            self._wall_epoch_ns = key.wall_ns
        output.set_report_mode(ReportMode.CURRENT_TIME if plan.rate_control else ReportMode.ZERO)
        first_rtp = self._rtp_time(primary, key.wall_ns, self._start_mono_ns, plan)
        if plan.reverse:
            shown = plan.reverse_reported_ns or min(plan.start_ns, extent.latest_ns)
        else:
            shown = key.wall_ns
        return PlayResult(
            range=clock_range(shown, plan.end_ns),
            headers=plan.echo_headers(request),
            rtptimes={primary.index: output.rtp_timestamp(primary.index, first_rtp)},
        )

    async def run(self, output: MediaOutput) -> None:
        plan, key = self._plan, self._key
        if plan is None or key is None:
            return
        pacer = _Pacer(plan.scale, self._start_mono_ns) if plan.rate_control else None
        async for delivery in self._deliveries(plan, key):
            track = delivery.track
            render = 0
            if pacer is not None:
                due, render = pacer.offsets(delivery, self._clock.monotonic_ns())
                delay = due - self._clock.monotonic_ns()
                if delay > 0:
                    await asyncio.sleep(delay / NS_PER_SECOND)
            frame = delivery.frame
            rtp = self._rtp_time(track, frame.ref.wall_ns, render, plan)
            hook = extension_hook(frame.ref.wall_ns, plan.cseq, delivery.marks)
            await output.send(track.index, frame.to_access_unit(), rtp_time=rtp, extension=hook)
            if track is self._set_up[0]:
                self._position_ns = frame.ref.wall_ns

    async def pause(self) -> None:
        self._paused = True

    async def close(self) -> None:
        self._plan = self._key = None

    # ------------------------------------------------------------------ helpers
    def _resume_point(self) -> int | None:
        if self._position_ns is None or self._plan is None:
            return None
        return self._position_ns + (-1 if self._plan.reverse else 1)

    async def _clean_point(self, track: ReplayTrack, media: TrackMedia, plan: PlayPlan) -> FrameRef:
        """Where delivery starts (PB-18): the clean point at or before the start inside the
        footage and in reverse; the first one after it when a forward start lies in a gap."""
        store, recording = self._store, self._resource.recording_token
        start = plan.start_ns
        inside = any(s.start_ns <= start <= s.end_ns for s in media.slices)
        if plan.reverse or inside:
            key = await store.keyframe_at_or_before(recording, track.token, start)
            if key is not None:
                return key
        async for ref in store.frames(recording, track.token, start, _end_excl(plan)):
            if ref.keyframe:
                return ref
        raise RtspStatusError(INVALID_RANGE, "no clean point in the requested Range")

    async def _first_frame_from(self, track: ReplayTrack, plan: PlayPlan) -> FrameRef | None:
        store, recording = self._store, self._resource.recording_token
        reads = store.frames(recording, track.token, plan.start_ns, _end_excl(plan), page=1)
        async with closing(reads) as frames:
            async for ref in frames:
                return ref
        return None

    def _deliveries(self, plan: PlayPlan, key: FrameRef) -> AsyncIterator[Delivery]:
        store, recording = self._store, self._resource.recording_token
        primary = self._set_up[0]
        if plan.reverse:
            return walk_reverse(
                store,
                recording,
                primary,
                key,
                start_ns=plan.start_ns,
                end_ns=plan.end_ns,
                frames=FrameFilter(primary, plan.frames, plan.interval_ns),
                interval_ns=plan.interval_ns,
            )
        cursors = [
            TrackCursor(
                store,
                recording,
                track,
                key.wall_ns,
                plan.end_ns,
                FrameFilter(track, plan.frames, plan.interval_ns),
            )
            for track in self._set_up
        ]
        end_ns = plan.end_ns
        return walk_forward(
            cursors, live=lambda: self._growing(end_ns), wait_for_data=self._wait_for_data
        )

    async def _growing(self, end_ns: int | None) -> bool:
        """More footage of this play may yet be stored (PB-35): the recording is being written
        and, for a closed range, its newest frame has not passed the range end yet (a range
        ending in the future plays on to that end, not to the live edge of the PLAY)."""
        if not await self._resource.is_recording():
            return False
        if end_ns is None:
            return True
        newest = await self._store.last_frame(self._resource.recording_token, self._set_up[0].token)
        return newest is not None and newest.wall_ns <= end_ns

    async def _wait_for_data(self) -> None:
        # The store announces no new frames; a bounded poll rate is the documented contract.
        await asyncio.sleep(self._resource.live_poll_s)

    def _rtp_time(self, track: ReplayTrack, wall_ns: int, render_ns: int, plan: PlayPlan) -> int:
        """Rendering time with rate control, else the stored wall clock, in the track's ticks."""
        if plan.rate_control:
            assert self._mono_epoch_ns is not None
            return (render_ns - self._mono_epoch_ns) * track.clock_rate // NS_PER_SECOND
        assert self._wall_epoch_ns is not None
        return (wall_ns - self._wall_epoch_ns) * track.clock_rate // NS_PER_SECOND


def _primary(tracks: tuple[ReplayTrack, ...]) -> ReplayTrack:
    """The track that positions the play: the first video track, else the first track."""
    return next((t for t in tracks if t.kind is TrackKind.VIDEO), tracks[0])


def _forward_tracks(set_up: tuple[ReplayTrack, ...], plan: PlayPlan) -> tuple[ReplayTrack, ...]:
    primary = _primary(set_up)
    others = [t for t in set_up if t is not primary]
    if plan.frames is FramesMode.INTRA:
        # Scanning key frames: audio would be chopped into meaningless snippets.
        others = [t for t in others if t.kind is not TrackKind.AUDIO]
    return (primary, *others)


def _extent(media: list[TrackMedia]) -> Extent:
    earliest = min(m.earliest_ns for m in media if m.earliest_ns is not None)
    latest = max(m.latest_ns for m in media if m.latest_ns is not None)
    return Extent(earliest, latest)


def _end_excl(plan: PlayPlan) -> int:
    return (1 << 62) if plan.end_ns is None else plan.end_ns + 1
