"""JobController: recordings, tracks, receivers and recording jobs as the ONVIF services see them.

Every operation validates, raises the errors of jobs/errors.py, persists through the store, and
publishes its §4.2 notification. After each change the controller *reconciles*: it runs the
priority contest (SM-04), starts the ingest of every receiver that must be connected (RX-G2:
AlwaysConnect, or AutoConnect while an Active job wins a track it feeds), and attaches one
`Recorder` per (job, source) for the destination tracks that job won, so each track has at most
one writer. Job states are computed from what really happens (SM-03, RC-18): a track is Active
only while frames of its medium are being written; the controller publishes JobState
`Initialized` on create (and for every job at start-up), `Changed` when the state or the
Information changes, `Deleted` on delete (PF-23).

Concurrency: all on the engine loop. Mutations and reconciliation hold one lock (GEN-14);
ingest and writer callbacks only mark the states dirty, and a worker task recomputes them.

Configured sources (EngineConfig.sources) keep their own recorders on the default tracks of
their recordings. [ENGINE] Those tracks are *reserved*: a job naming one as a destination is
refused with BadConfiguration, such a recording cannot be deleted (CannotDelete) and such a
track cannot be deleted either; jobs may still write other tracks of the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from types import TracebackType

from app.core.errors import NotFoundError
from app.core.media import TrackKind
from app.core.time import format_iso
from app.engine import events
from app.engine.jobs import errors
from app.engine.jobs.receivers import IngestOptions, ReceiverRuntime
from app.engine.jobs.runtime import RESERVED_ERROR, JobRuntime
from app.engine.jobs.state import (
    JobStatus,
    TrackKey,
    job_config_element,
    recording_config_element,
    track_config_element,
)
from app.engine.jobs.validate import (
    MAX_RECEIVERS,
    MAX_RECORDING_JOBS,
    MAX_RECORDINGS,
    check_job,
    check_receiver_config,
    receivers_of,
    translated,
)
from app.engine.storage import (
    DeletedSegment,
    Job,
    JobConfig,
    JobMode,
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    Recording,
    RecordingConfig,
    Store,
    Track,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverStateInfo:
    """tt:ReceiverStateInformation."""

    state: str
    auto_created: bool


class JobController:
    """Owns the job/receiver runtime; use as `async with JobController(store, bus) as jobs:`."""

    def __init__(
        self,
        store: Store,
        bus: events.EventBus,
        *,
        reserved: Mapping[str, Collection[str]] | None = None,
        ingest: IngestOptions | None = None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._reserved = {rec: frozenset(tracks) for rec, tracks in (reserved or {}).items()}
        self._lock = asyncio.Lock()
        self._jobs: dict[str, Job] = {}
        self._receivers: dict[str, Receiver] = {}
        self._runtime = JobRuntime(
            store,
            bus,
            reserved=self._reserved,
            ingest=ingest or IngestOptions(),
            on_change=self._kick,
        )
        self._status: dict[str, JobStatus] = {}
        #: Tracks about to be deleted: no writer may hold them while the store removes them.
        self._closing_tracks: set[TrackKey] = set()
        self._dirty = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> JobController:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Restore every receiver and job from the store; Active jobs start recording (SM-09)."""
        async with self._lock:
            await self._reconcile()
            for token in self._jobs:
                self._publish_state(token, events.PropertyOperation.INITIALIZED)
        self._worker = asyncio.create_task(self._state_worker(), name="job states")

    async def close(self) -> None:
        """Stop every ingest and make everything recorded durable."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        async with self._lock:
            await self._runtime.close()

    # ---------------------------------------------------------------- recordings

    async def recordings(self) -> list[Recording]:
        return await self._store.recordings()

    async def recording(self, token: str) -> Recording:
        with translated(not_found=errors.NoRecordingError):
            return await self._store.recording(token)

    async def create_recording(
        self, config: RecordingConfig, *, token: str | None = None
    ) -> Recording:
        """RC-02: a recording with VIDEO001/AUDIO001/META001 (CreateRecording/CreateTrack)."""
        async with self._lock:
            if len(await self._store.recordings()) >= MAX_RECORDINGS:
                raise errors.MaxRecordingsError(f"there are {MAX_RECORDINGS} recordings already")
            with translated(limit=errors.MaxRecordingsError, conflict=errors.BadConfigurationError):
                recording = await self._store.create_recording(config, token=token)
            self._bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", recording.token)])
            for track in recording.tracks:
                self._emit_track(events.CREATE_TRACK, recording.token, track.token)
            return recording

    async def set_recording_config(self, token: str, config: RecordingConfig) -> Recording:
        """RC-05: full replacement; RecordingConfiguration event with the new configuration."""
        async with self._lock:
            with translated(not_found=errors.NoRecordingError):
                recording = await self._store.set_recording_config(token, config)
            self._bus.emit(
                events.RECORDING_CONFIGURATION,
                source=[("RecordingToken", token)],
                elements=[
                    events.ElementItem(
                        "Configuration",
                        "RecordingConfiguration",
                        recording_config_element(recording.config),
                    )
                ],
            )
            return recording

    async def delete_recording(self, token: str) -> None:
        """RC-03: its jobs stop and go (JobState Deleted), with auto receivers only they used."""
        async with self._lock:
            recording = await self.recording(token)
            if token in self._reserved:
                raise errors.CannotDeleteError(
                    f"recording {token!r} is recorded from a source in the engine configuration"
                )
            jobs = [j.token for j in self._jobs.values() if j.config.recording == token]
            async with self._tracks_released({(token, t.token) for t in recording.tracks}):
                with translated(
                    not_found=errors.NoRecordingError, conflict=errors.CannotDeleteError
                ):
                    await self._store.delete_recording(token)
            for job in jobs:
                self._publish_deleted(job)
            for track in recording.tracks:
                self._emit_track(events.DELETE_TRACK, token, track.token)
            self._bus.emit(events.DELETE_RECORDING, source=[("RecordingToken", token)])
            await self._reconcile()

    async def create_track(
        self, recording: str, kind: TrackKind | str, description: str = ""
    ) -> Track:
        """RC-08: a new track (VIDEO002 …); 'Extended' or another type is BadConfiguration."""
        try:
            kind = TrackKind(kind)
        except ValueError:
            raise errors.BadConfigurationError(
                f"track type {kind!r} is not one of Video, Audio, Metadata"
            ) from None
        async with self._lock:
            with translated(not_found=errors.NoRecordingError, limit=errors.MaxTracksError):
                track = await self._store.create_track(recording, kind, description)
            self._emit_track(events.CREATE_TRACK, recording, track.token)
            return track

    async def track(self, recording: str, token: str) -> Track:
        rec = await self.recording(recording)
        found = next((t for t in rec.tracks if t.token == token), None)
        if found is None:
            raise errors.NoTrackError(f"recording {recording!r} has no track {token!r}")
        return found

    async def set_track_config(self, recording: str, token: str, description: str) -> Track:
        """RC-11: only the description changes; TrackConfiguration event."""
        async with self._lock:
            await self.track(recording, token)
            track = await self._store.set_track_description(recording, token, description)
            self._bus.emit(
                events.TRACK_CONFIGURATION,
                source=[("RecordingToken", recording), ("TrackToken", token)],
                elements=[
                    events.ElementItem(
                        "Configuration", "TrackConfiguration", track_config_element(track)
                    )
                ],
            )
            return track

    async def delete_track(self, recording: str, token: str) -> None:
        """RC-09: data goes (DeleteTrackData), job bindings to it go (job config events)."""
        async with self._lock:
            await self.track(recording, token)
            if token in self._reserved.get(recording, ()):
                raise errors.CannotDeleteError(f"track {recording}/{token}: {RESERVED_ERROR}")
            async with self._tracks_released({(recording, token)}):
                media = [m for m in await self._store.track_media(recording) if m.track == token]
                with translated(not_found=errors.NoTrackError, conflict=errors.CannotDeleteError):
                    await self._store.delete_track(recording, token)
            if media and media[0].earliest_ns is not None and media[0].latest_ns is not None:
                self._emit_deleted_data(recording, token, media[0].earliest_ns, media[0].latest_ns)
            before = dict(self._jobs)
            await self._reconcile()
            for job_token, job in self._jobs.items():
                if before[job_token].config != job.config:
                    self._emit_job_config(job)
            self._emit_track(events.DELETE_TRACK, recording, token)

    # ---------------------------------------------------------------- receivers

    async def receivers(self) -> list[Receiver]:
        return list(self._receivers.values())

    async def receiver(self, token: str) -> Receiver:
        found = self._receivers.get(token)
        if found is None:
            raise errors.UnknownReceiverError(f"no receiver {token[:80]!r}")
        return found

    async def receiver_state(self, token: str) -> ReceiverStateInfo:
        """RX-08: NotConnected/Connecting/Connected and whether AutoCreateReceiver made it."""
        receiver = await self.receiver(token)
        return ReceiverStateInfo(self._runtime.receiver_state(token), receiver.auto_created)

    async def create_receiver(self, config: ReceiverConfig) -> Receiver:
        """RX-04: stored as given; an AlwaysConnect receiver starts connecting at once."""
        config = check_receiver_config(config)
        async with self._lock:
            if len(self._receivers) >= MAX_RECEIVERS:
                raise errors.MaxReceiversError(f"there are {MAX_RECEIVERS} receivers already")
            with translated(limit=errors.MaxReceiversError):
                receiver = await self._store.create_receiver(config)
            await self._reconcile()
            return receiver

    async def configure_receiver(self, token: str, config: ReceiverConfig) -> Receiver:
        """RX-06: full replacement; a changed URI or transport reconnects."""
        config = check_receiver_config(config)
        async with self._lock:
            await self.receiver(token)
            with translated(not_found=errors.UnknownReceiverError):
                receiver = await self._store.configure_receiver(token, config)
            await self._reconcile()
            return receiver

    async def set_receiver_mode(self, token: str, mode: ReceiverMode | str) -> Receiver:
        """RX-07: only the mode changes (Unknown or another string: InvalidArgVal)."""
        try:
            mode = ReceiverMode(mode)
        except ValueError:
            raise errors.InvalidReceiverModeError(
                f"receiver mode {mode!r} is not one of AlwaysConnect, NeverConnect, AutoConnect"
            ) from None
        async with self._lock:
            await self.receiver(token)
            with translated(not_found=errors.UnknownReceiverError):
                receiver = await self._store.set_receiver_mode(token, mode)
            await self._reconcile()
            return receiver

    async def delete_receiver(self, token: str) -> None:
        """RX-05: refused while a job uses it; otherwise disconnect, then remove."""
        async with self._lock:
            await self.receiver(token)
            users = [j.token for j in self._jobs.values() if token in receivers_of(j.config)]
            if users:
                raise errors.CannotDeleteReceiverError(
                    f"receiver {token!r} is used by recording job(s) {', '.join(users)}"
                )
            await self._runtime.stop_receiver(token)
            with translated(
                not_found=errors.UnknownReceiverError, conflict=errors.CannotDeleteReceiverError
            ):
                await self._store.delete_receiver(token)
            await self._reconcile()

    # ---------------------------------------------------------------- jobs

    async def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    async def job(self, token: str) -> Job:
        found = self._jobs.get(token)
        if found is None:
            raise errors.NoRecordingJobError(f"no recording job {token[:80]!r}")
        return found

    async def job_state(self, token: str) -> JobStatus:
        """RC-18: the state computed from what is really being written."""
        await self.job(token)
        return self._status[token]

    async def create_job(self, config: JobConfig) -> Job:
        """RC-12: validated, AutoCreateReceiver resolved, all tracks bound when none are given."""
        async with self._lock:
            if len(self._jobs) >= MAX_RECORDING_JOBS:
                raise errors.MaxRecordingJobsError(
                    f"there are {MAX_RECORDING_JOBS} recording jobs already"
                )
            config = await self._check_job(config, None)
            with translated(not_found=errors.NoRecordingError, limit=errors.MaxRecordingJobsError):
                job = await self._store.create_job(config)
            await self._reconcile()
            self._publish_state(job.token, events.PropertyOperation.INITIALIZED)
            return self._jobs[job.token]

    async def set_job_config(self, token: str, config: JobConfig) -> Job:
        """RC-15: full replacement (the recording cannot change); unused auto receivers go."""
        async with self._lock:
            await self.job(token)
            config = await self._check_job(config, token)
            with translated(not_found=errors.NoRecordingJobError):
                job = await self._store.set_job_config(token, config)
            await self._reconcile()
            self._emit_job_config(job)
            return job

    async def set_job_mode(self, token: str, mode: JobMode | str) -> Job:
        """RC-17: Idle or Active (anything else: BadMode); RecordingJobConfiguration event."""
        async with self._lock:
            await self.job(token)
            try:
                mode = JobMode(mode)
            except ValueError:
                raise errors.BadModeError(
                    f"recording job mode {mode!r} is not one of Idle, Active"
                ) from None
            with translated(not_found=errors.NoRecordingJobError, config=errors.BadModeError):
                job = await self._store.set_job_mode(token, mode)
            await self._reconcile()
            self._emit_job_config(job)
            return job

    async def delete_job(self, token: str) -> None:
        """RC-13: stop it, drop its unused auto receivers, let the next job take its tracks."""
        async with self._lock:
            await self.job(token)
            with translated(not_found=errors.NoRecordingJobError):
                await self._store.delete_job(token)
            await self._reconcile()
            self._publish_deleted(token)

    # ---------------------------------------------------------------- retention and status

    def track_data_deleted(self, segments: Iterable[DeletedSegment]) -> None:
        """DeleteTrackData for what a retention sweep removed (SM-06)."""
        for seg in segments:
            self._emit_deleted_data(seg.recording, seg.track, seg.start_ns, seg.end_ns)

    def winners(self) -> dict[TrackKey, str]:
        """The current outcome of the priority contest: (recording, track) → job token."""
        return self._runtime.winners

    def receiver_runtime(self, receiver: str) -> ReceiverRuntime | None:
        """The running side of a receiver, while it must be connected."""
        return self._runtime.receiver(receiver)

    def status(self) -> dict[str, object]:
        """JSON-able summary for /status (no URIs: they may carry credentials)."""
        return {
            "jobs": {t: s.state.value for t, s in self._status.items()},
            "receivers": {t: self._runtime.receiver_state(t) for t in self._receivers},
        }

    # ---------------------------------------------------------------- validation

    # ---------------------------------------------------------------- reconciliation

    async def _reconcile(self) -> None:
        """Reload the stored model, bring ingest and writers in line, update states (lock held)."""
        self._jobs = {j.token: j for j in await self._store.jobs()}
        self._receivers = {r.token: r for r in await self._store.receivers()}
        kinds = {
            r.token: {t.token: t.kind for t in r.tracks} for r in await self._store.recordings()
        }
        await self._runtime.apply(self._jobs, self._receivers, kinds, self._closing_tracks)
        await self._refresh_states()

    @contextlib.asynccontextmanager
    async def _tracks_released(self, keys: set[TrackKey]) -> AsyncIterator[None]:
        """Inside, no writer holds `keys` (the store refuses to delete written tracks).

        If the body fails, the writers come back; on success the caller reconciles anyway.
        """
        self._closing_tracks |= keys
        try:
            await self._reconcile()
            yield
        except BaseException:
            self._closing_tracks -= keys
            await self._reconcile()
            raise
        self._closing_tracks -= keys

    # ---------------------------------------------------------------- states

    def _kick(self) -> None:
        self._dirty.set()

    async def _state_worker(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            async with self._lock:
                try:
                    await self._refresh_states()
                except Exception:
                    log.exception("updating recording job states failed")

    async def _refresh_states(self) -> None:
        """Recompute every job's status; publish and persist the ones that changed.

        A job seen for the first time gets no Changed message: its creator sends Initialized.
        """
        for token, job in self._jobs.items():
            status = self._runtime.compute(job)
            old = self._status.get(token)
            if old == status:
                continue
            self._status[token] = status
            if old is not None:
                self._publish_state(token, events.PropertyOperation.CHANGED)
            if old is None or old.state is not status.state:
                with contextlib.suppress(NotFoundError):
                    await self._store.set_job_state(token, status.state)
        for token in [t for t in self._status if t not in self._jobs]:
            del self._status[token]

    # ---------------------------------------------------------------- events

    def _publish_state(self, token: str, operation: events.PropertyOperation) -> None:
        status = self._status[token]
        self._bus.emit(
            events.JOB_STATE,
            operation=operation,
            source=[("RecordingJobToken", token)],
            data=[("State", status.state.value)],
            elements=[
                events.ElementItem(
                    "Information", "RecordingJobStateInformation", status.information()
                )
            ],
        )

    def _publish_deleted(self, token: str) -> None:
        status = self._status.pop(token, None)
        if status is None:
            return
        self._bus.emit(
            events.JOB_STATE,
            operation=events.PropertyOperation.DELETED,
            source=[("RecordingJobToken", token)],
            data=[("State", status.state.value)],
            elements=[
                events.ElementItem(
                    "Information", "RecordingJobStateInformation", status.information()
                )
            ],
        )

    def _emit_job_config(self, job: Job) -> None:
        self._bus.emit(
            events.RECORDING_JOB_CONFIGURATION,
            source=[("RecordingJobToken", job.token)],
            elements=[
                events.ElementItem(
                    "Configuration", "RecordingJobConfiguration", job_config_element(job.config)
                )
            ],
        )

    def _emit_track(self, topic: events.Topic, recording: str, track: str) -> None:
        self._bus.emit(topic, source=[("RecordingToken", recording), ("TrackToken", track)])

    def _emit_deleted_data(self, recording: str, track: str, start_ns: int, end_ns: int) -> None:
        self._bus.emit(
            events.DELETE_TRACK_DATA,
            source=[("RecordingToken", recording), ("TrackToken", track)],
            data=[("StartTime", format_iso(start_ns)), ("EndTime", format_iso(end_ns))],
        )

    async def _check_job(self, config: JobConfig, token: str | None) -> JobConfig:
        return check_job(
            config,
            token,
            recording=await self.recording(config.recording),
            jobs=self._jobs,
            receivers=self._receivers,
            reserved=self._reserved.get(config.recording, frozenset()),
        )
