"""Pure rules of recording jobs: the priority contest, state aggregation, event payload shapes.

No I/O here: the controller feeds in what it knows (jobs, receiver and writer states) and
publishes what comes out. Payload dicts mirror the tt: schema types element by element (names
and order), so the SOAP edge can serialize them as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from app.engine.storage import (
    Job,
    JobConfig,
    JobMode,
    JobState,
    RecordingConfig,
    Track,
)

#: (recording token, track token): the unit the priority contest is decided for (SM-04).
TrackKey = tuple[str, str]


def contest(jobs: Sequence[Job]) -> dict[TrackKey, str]:
    """Per destination track, the token of the job allowed to write it (SM-04).

    Only jobs in mode Active compete; the highest priority wins, equal priorities go to the job
    activated most recently ([ENGINE], from the schema annotation), and a job created later wins
    a tie of both (so the outcome never depends on dict order). `jobs` is in creation order.
    """
    best: dict[TrackKey, tuple[int, int, int, str]] = {}
    for order, job in enumerate(jobs):
        if job.config.mode is not JobMode.ACTIVE:
            continue
        rank = (job.config.priority, job.activated_ns, order, job.token)
        for source in job.config.sources:
            for binding in source.tracks:
                key = (job.config.recording, binding.destination)
                if key not in best or rank[:3] > best[key][:3]:
                    best[key] = rank
    return {key: rank[3] for key, rank in best.items()}


def aggregate(states: Iterable[JobState]) -> JobState:
    """SM-03: Error if any is Error, Active if all are, Idle if none is, else PartiallyActive."""
    seen = set(states)
    if JobState.ERROR in seen:
        return JobState.ERROR
    if not seen or seen == {JobState.IDLE}:
        return JobState.IDLE
    if seen == {JobState.ACTIVE}:
        return JobState.ACTIVE
    return JobState.PARTIALLY_ACTIVE


@dataclasses.dataclass(frozen=True, slots=True)
class TrackStatus:
    """tt:RecordingJobStateTrack; `has_medium` is False when the stream lacks the SourceTag."""

    source_tag: str
    destination: str
    state: JobState
    error: str | None = None
    has_medium: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class SourceStatus:
    """tt:RecordingJobStateSource."""

    source_token: str
    source_type: str
    state: JobState
    tracks: tuple[TrackStatus, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class JobStatus:
    """tt:RecordingJobStateInformation of one job, as GetRecordingJobState answers it."""

    token: str
    recording: str
    state: JobState
    sources: tuple[SourceStatus, ...]

    def information(self) -> dict[str, Any]:
        """The tt:RecordingJobStateInformation structure (the JobState event's Information)."""
        return {
            "RecordingToken": self.recording,
            "State": self.state.value,
            "Sources": [
                {
                    "SourceToken": {"Token": s.source_token, "Type": s.source_type},
                    "State": s.state.value,
                    "Tracks": {"Track": [_track_information(t) for t in s.tracks]},
                }
                for s in self.sources
            ],
        }


def _track_information(track: TrackStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"SourceTag": track.source_tag, "Destination": track.destination}
    if track.error is not None:
        out["Error"] = track.error
    out["State"] = track.state.value
    return out


def aggregate_tracks(tracks: Sequence[TrackStatus]) -> JobState:
    """A source's state from its tracks' states.

    [ENGINE] Bindings whose medium the connected stream does not have (the default META001
    binding of a camera without metadata) are left out when other bindings have their medium,
    so a job records 'Active' when it records everything the source offers; their own track
    state stays Idle.
    """
    counted = [t for t in tracks if t.has_medium] or list(tracks)
    return aggregate(t.state for t in counted)


def make_source_status(
    source_token: str, source_type: str, tracks: Sequence[TrackStatus]
) -> SourceStatus:
    return SourceStatus(source_token, source_type, aggregate_tracks(tracks), tuple(tracks))


def make_job_status(job: Job, sources: Sequence[SourceStatus]) -> JobStatus:
    """The job's status; its state follows the same rule over all of its tracks."""
    tracks = [t for s in sources for t in s.tracks]
    return JobStatus(job.token, job.config.recording, aggregate_tracks(tracks), tuple(sources))


# ---------------------------------------------------------------- payload shapes


def job_config_element(config: JobConfig) -> dict[str, Any]:
    """tt:RecordingJobConfiguration as stored (AutoCreateReceiver never appears, PF-24)."""
    return {
        "RecordingToken": config.recording,
        "Mode": config.mode.value,
        "Priority": config.priority,
        "Source": [
            {
                "SourceToken": {"Token": s.source_token, "Type": s.source_type},
                "Tracks": [
                    {"SourceTag": t.source_tag, "Destination": t.destination} for t in s.tracks
                ],
            }
            for s in config.sources
        ],
    }


def recording_config_element(config: RecordingConfig) -> dict[str, Any]:
    """tt:RecordingConfiguration with every string exactly as stored (SM-07)."""
    return {
        "Source": {
            "SourceId": config.source_id,
            "Name": config.name,
            "Location": config.location,
            "Description": config.description,
            "Address": config.address,
        },
        "Content": config.content,
        "MaximumRetentionTime": config.max_retention,
    }


def track_config_element(track: Track) -> dict[str, Any]:
    """tt:TrackConfiguration."""
    return {"TrackType": track.kind.value, "Description": track.description}
