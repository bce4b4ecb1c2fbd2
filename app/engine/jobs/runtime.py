"""The running side of recording jobs: receiver ingest loops and the recorders on their hubs.

`JobRuntime.apply` takes the stored model (jobs, receivers, track types) and makes reality match
it: the priority contest decides which job writes each destination track (SM-04), receivers are
connected while needed (RX-G2), and one `Recorder` per (job, source) writes exactly the tracks
that job won. Writers are always closed before others are opened, so a track changing hands
never has two writers. `compute` derives a job's tt:RecordingJobStateInformation from what is
really happening (SM-03, RC-18).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping

from app.core.errors import ConflictError, NotFoundError
from app.core.media import TrackKind
from app.engine import events
from app.engine.jobs.receivers import (
    CONNECTED,
    NOT_CONNECTED,
    IngestOptions,
    ReceiverRuntime,
)
from app.engine.jobs.state import (
    JobStatus,
    TrackKey,
    TrackStatus,
    contest,
    make_job_status,
    make_source_status,
)
from app.engine.recorder import Binding, Recorder, TrackFeed
from app.engine.storage import (
    SOURCE_TYPE_RECEIVER,
    Job,
    JobMode,
    JobState,
    JobTrack,
    Receiver,
    ReceiverMode,
    Store,
)

log = logging.getLogger(__name__)

RESERVED_ERROR = "the track is recorded from a source in the engine configuration"
INCOMPATIBLE_ERROR = "Incompatible Stream"

#: (job token, source position) — one recorder each.
FeedKey = tuple[str, int]


@dataclasses.dataclass(slots=True)
class _Feed:
    """One (job, source) writing the tracks it won from a receiver's hub."""

    receiver: str
    bindings: tuple[Binding, ...]
    recorder: Recorder | None
    #: Why the tracks could not be opened (another writer holds one), shown as track Error.
    error: str | None = None


class JobRuntime:
    """Receiver runtimes and recorders; every method runs on the loop under the owner's lock."""

    def __init__(
        self,
        store: Store,
        bus: events.EventBus,
        *,
        reserved: Mapping[str, frozenset[str]],
        ingest: IngestOptions,
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._bus = bus
        self._reserved = reserved
        self._ingest = ingest
        self._on_change = on_change
        self._runtimes: dict[str, ReceiverRuntime] = {}
        self._feeds: dict[FeedKey, _Feed] = {}
        self._winners: dict[TrackKey, str] = {}

    @property
    def winners(self) -> dict[TrackKey, str]:
        """(recording, track) → the job token that won it."""
        return dict(self._winners)

    def receiver(self, token: str) -> ReceiverRuntime | None:
        return self._runtimes.get(token)

    def receiver_state(self, token: str) -> str:
        runtime = self._runtimes.get(token)
        return runtime.state if runtime is not None else NOT_CONNECTED

    async def apply(
        self,
        jobs: Mapping[str, Job],
        receivers: Mapping[str, Receiver],
        kinds: Mapping[str, Mapping[str, TrackKind]],
        closing: Collection[TrackKey] = (),
    ) -> None:
        """Make ingest and writers match the model; `closing` tracks get no writer at all."""
        self._winners = contest(list(jobs.values()))
        needed = {t for t, r in receivers.items() if r.config.mode is ReceiverMode.ALWAYS_CONNECT}
        desired = self._desired_feeds(jobs, kinds, closing)
        needed |= {receiver for receiver, _ in desired.values()}
        needed -= {t for t, r in receivers.items() if r.config.mode is ReceiverMode.NEVER_CONNECT}
        desired = {k: v for k, v in desired.items() if v[0] in needed}
        for key, feed in list(self._feeds.items()):
            if desired.get(key) != (feed.receiver, feed.bindings):
                await self._close_feed(key)
        for token, runtime in list(self._runtimes.items()):
            model = receivers.get(token)
            if model is None or token not in needed or _reconnect_needed(runtime, model):
                await self.stop_receiver(token)
            else:
                runtime.config = model.config
        for token in sorted(needed):
            if token not in self._runtimes and token in receivers:
                runtime = ReceiverRuntime(
                    receivers[token], bus=self._bus, options=self._ingest, on_change=self._on_change
                )
                self._runtimes[token] = runtime
                runtime.start()
        for key, (receiver, bindings) in desired.items():
            if key not in self._feeds:
                await self._open_feed(key, jobs[key[0]].config.recording, receiver, bindings)

    async def stop_receiver(self, token: str) -> None:
        """Detach its recorders and disconnect it (ChangeState → NotConnected)."""
        for key in [k for k, f in self._feeds.items() if f.receiver == token]:
            await self._close_feed(key)
        runtime = self._runtimes.pop(token, None)
        if runtime is not None:
            await runtime.stop()

    async def close(self) -> None:
        for token in list(self._runtimes):
            await self.stop_receiver(token)
        for key in list(self._feeds):
            await self._close_feed(key)

    def _desired_feeds(
        self,
        jobs: Mapping[str, Job],
        kinds: Mapping[str, Mapping[str, TrackKind]],
        closing: Collection[TrackKey],
    ) -> dict[FeedKey, tuple[str, tuple[Binding, ...]]]:
        """(job, source position) → (receiver, bindings it won) for every Active job."""
        desired = {}
        for job in jobs.values():
            if job.config.mode is not JobMode.ACTIVE:
                continue
            recording = job.config.recording
            reserved = self._reserved.get(recording, frozenset())
            track_kinds = kinds.get(recording, {})
            for pos, source in enumerate(job.config.sources):
                if source.source_type != SOURCE_TYPE_RECEIVER or source.source_token is None:
                    continue
                won = tuple(
                    Binding(b.source_tag, b.destination, track_kinds[b.destination])
                    for b in source.tracks
                    if self._winners.get((recording, b.destination)) == job.token
                    and b.destination in track_kinds
                    and b.destination not in reserved
                    and (recording, b.destination) not in closing
                )
                if won:
                    desired[(job.token, pos)] = (source.source_token, won)
        return desired

    async def _open_feed(
        self, key: FeedKey, recording: str, receiver: str, bindings: tuple[Binding, ...]
    ) -> None:
        recorder = Recorder(self._store, recording, bindings, on_feed=self._on_change)
        try:
            await recorder.open()
        except (ConflictError, NotFoundError) as exc:
            log.warning("recording job %s cannot write its tracks: %s", key[0], exc.message)
            self._feeds[key] = _Feed(receiver, bindings, None, exc.message)
            return
        self._feeds[key] = _Feed(receiver, bindings, recorder)
        self._runtimes[receiver].hub.add_sink(recorder)

    async def _close_feed(self, key: FeedKey) -> None:
        feed = self._feeds.pop(key)
        if feed.recorder is None:
            return
        runtime = self._runtimes.get(feed.receiver)
        if runtime is not None:
            with contextlib.suppress(ConflictError):
                runtime.hub.remove_sink(feed.recorder)
        try:
            await feed.recorder.close()
        except Exception:
            log.exception("closing the recorder of job %s failed", key[0])

    # ---------------------------------------------------------------- states

    def compute(self, job: Job) -> JobStatus:
        """The job's state per track, source and job, from the live situation."""
        sources = []
        for pos, source in enumerate(job.config.sources):
            feed = self._feeds.get((job.token, pos))
            runtime = self._runtimes.get(source.source_token or "")
            tracks = [self._track_status(job, b, feed, runtime) for b in source.tracks]
            sources.append(
                make_source_status(source.source_token or "", source.source_type, tracks)
            )
        return make_job_status(job, sources)

    def _track_status(
        self,
        job: Job,
        binding: JobTrack,
        feed: _Feed | None,
        runtime: ReceiverRuntime | None,
    ) -> TrackStatus:
        def status(state: JobState, error: str | None = None, medium: bool = True) -> TrackStatus:
            return TrackStatus(binding.source_tag, binding.destination, state, error, medium)

        recording = job.config.recording
        if job.config.mode is not JobMode.ACTIVE:
            return status(JobState.IDLE)
        if binding.destination in self._reserved.get(recording, ()):
            return status(JobState.ERROR, RESERVED_ERROR)
        if self._winners.get((recording, binding.destination)) != job.token or feed is None:
            # Lost the contest, or the receiver is NeverConnect: nothing failed, nothing flows.
            return status(JobState.IDLE)
        if feed.error is not None:
            return status(JobState.ERROR, feed.error)
        if runtime is None or runtime.state != CONNECTED:
            # Not connected because it failed is an error; not connected yet is just idle.
            failure = runtime.failure if runtime is not None else None
            return status(JobState.ERROR if failure else JobState.IDLE, failure)
        assert feed.recorder is not None
        match feed.recorder.feed(binding.destination):
            case TrackFeed.ACTIVE:
                return status(JobState.ACTIVE)
            case TrackFeed.INCOMPATIBLE:
                return status(JobState.ERROR, INCOMPATIBLE_ERROR)
            case TrackFeed.NO_MEDIUM:
                return status(JobState.IDLE, medium=False)
            case _:
                return status(JobState.IDLE)


def _reconnect_needed(runtime: ReceiverRuntime, model: Receiver) -> bool:
    old, new = runtime.config, model.config
    return (old.media_uri, old.protocol, old.stream) != (new.media_uri, new.protocol, new.stream)
