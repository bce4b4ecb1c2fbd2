"""ONVIF Recording Control service (trc, spec §2.1 RC-01…RC-25): a thin edge over JobController.

Handlers turn zeep's request values into the domain types of app.engine.storage, call the job
controller, and return the response children; the controller validates, persists before it
returns (RC-02.6, SM-09) and publishes the §4.2 notifications. Every client string, including
MaximumRetentionTime, is stored and echoed verbatim (GEN-12, PF-07); SourceId and Address are
xs:anyURI, whose whitespace the schema collapses (zeep applies that when reading the request).
Faults come from the jobs/errors.py table (PF-10). Export (RC-19…21) and the object-storage
operations (RC-22…25) are post-IEC: not advertised, answered ActionNotSupported (RC-22 adds
NotImplemented).
"""

from __future__ import annotations

from typing import Any

from app.core.media import TrackKind
from app.engine.jobs import MAX_RECORDING_JOBS, MAX_RECORDINGS, JobController
from app.engine.jobs import errors as job_errors
from app.engine.jobs.state import (
    job_config_element,
    recording_config_element,
    track_config_element,
)
from app.engine.onvif.convert import jobs_faults, required, text, wire_enum
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.storage import (
    SOURCE_TYPE_RECEIVER,
    Job,
    JobConfig,
    JobMode,
    JobSource,
    JobTrack,
    Recording,
    RecordingConfig,
)
from app.engine.storage.catalog import MAX_TRACKS_PER_RECORDING
from app.protocols.soap.fault import SoapFault

#: Encodings the ingest and the store record (tt:VideoEncoding/AudioEncoding names, §6.1).
RECORDED_ENCODINGS = ("H264", "H265", "JPEG", "G711", "AAC")
#: Bit-rate limits advertised in kbit/s (A.5); informative, the store does not enforce them.
MAX_RATE_KBPS = 16384
MAX_TOTAL_RATE_KBPS = 262144


class RecordingService(OnvifService):
    """Recording Control over a JobController (`service = "recording"`)."""

    service = "recording"
    faults = jobs_faults()

    def __init__(self, jobs: JobController, *, export_formats: tuple[str, ...] = ()) -> None:
        self._jobs = jobs
        #: The recordings of the last GetRecordings answer and that answer (never mutated).
        self._last_recordings: tuple[tuple[Recording, ...], dict[str, Any]] = ((), {})
        #: Formats ExportRecordedData serves (app/engine/onvif/export.py); () = not served.
        self.export_formats = export_formats

    def capabilities(self) -> dict[str, Any]:
        """trc:Capabilities attributes (§6.1, A.5), also embedded by GetServices (RC-01.2).

        Integers stay ints so the float-typed attributes read '32', not '32.0' (PF-25);
        SupportedExportFileFormats is absent unless export is served (§5 EX-06).
        """
        caps: dict[str, Any] = {
            "DynamicRecordings": True,
            "DynamicTracks": True,
            "Encoding": list(RECORDED_ENCODINGS),
            "MaxRate": MAX_RATE_KBPS,
            "MaxTotalRate": MAX_TOTAL_RATE_KBPS,
            "MaxRecordings": MAX_RECORDINGS,
            "MaxRecordingJobs": MAX_RECORDING_JOBS,
            "Options": True,
            "MetadataRecording": True,
        }
        if self.export_formats:
            caps["SupportedExportFileFormats"] = list(self.export_formats)
        return caps

    # ---------------------------------------------------------------- capabilities

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-01."""
        return {"Capabilities": self.capabilities()}

    # ---------------------------------------------------------------- recordings

    @operation("CreateRecording", AccessClass.ACTUATE)
    async def create_recording(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-02: VIDEO001/AUDIO001/META001 are created with it."""
        config = _recording_config(required(req.RecordingConfiguration, "RecordingConfiguration"))
        recording = await self._jobs.create_recording(config)
        return {"RecordingToken": recording.token}

    @operation("DeleteRecording", AccessClass.ACTUATE)
    async def delete_recording(self, ctx: RequestContext, req: Any) -> None:
        """RC-03: its tracks, jobs and the auto-created receivers only they used go with it."""
        await self._jobs.delete_recording(text(req.RecordingToken))

    @operation("GetRecordings", AccessClass.READ_MEDIA)
    async def get_recordings(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-04: every recording with all tracks; Tracks present even when empty (PF-08)."""
        recordings = await self._jobs.recordings()
        last_recordings, answer = self._last_recordings
        # The store hands out the same Recording objects until it changes: the same answer
        # object then lets the server resend its bytes (OnvifServer, `operation`).
        if len(recordings) != len(last_recordings) or any(
            a is not b for a, b in zip(recordings, last_recordings, strict=True)
        ):
            answer = {"RecordingItem": [_recording_item(r) for r in recordings]}
            self._last_recordings = (tuple(recordings), answer)
        return answer

    @operation("SetRecordingConfiguration", AccessClass.ACTUATE)
    async def set_recording_configuration(self, ctx: RequestContext, req: Any) -> None:
        """RC-05: full replacement."""
        config = _recording_config(required(req.RecordingConfiguration, "RecordingConfiguration"))
        await self._jobs.set_recording_config(text(req.RecordingToken), config)

    @operation("GetRecordingConfiguration", AccessClass.READ_MEDIA)
    async def get_recording_configuration(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-06."""
        recording = await self._jobs.recording(text(req.RecordingToken))
        return {"RecordingConfiguration": recording_config_element(recording.config)}

    @operation("GetRecordingOptions", AccessClass.READ_MEDIA)
    async def get_recording_options(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-07: spare jobs (engine-wide) and tracks (per recording; any type may use one)."""
        recording = await self._jobs.recording(text(req.RecordingToken))
        spare_jobs = max(0, MAX_RECORDING_JOBS - len(await self._jobs.jobs()))
        spare_tracks = max(0, MAX_TRACKS_PER_RECORDING - len(recording.tracks))
        return {
            "Options": {
                "Job": {"Spare": spare_jobs},
                "Track": {
                    "SpareTotal": spare_tracks,
                    "SpareVideo": spare_tracks,
                    "SpareAudio": spare_tracks,
                    "SpareMetadata": spare_tracks,
                },
            }
        }

    # ---------------------------------------------------------------- tracks

    @operation("CreateTrack", AccessClass.ACTUATE)
    async def create_track(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-08: 'Extended' (or any other type) is BadConfiguration."""
        config = required(req.TrackConfiguration, "TrackConfiguration")
        track = await self._jobs.create_track(
            text(req.RecordingToken),
            wire_enum(TrackKind, config.TrackType, job_errors.BadConfigurationError, "track type"),
            text(config.Description),
        )
        return {"TrackToken": track.token}

    @operation("DeleteTrack", AccessClass.ACTUATE)
    async def delete_track(self, ctx: RequestContext, req: Any) -> None:
        """RC-09: data and job bindings of the track go too."""
        await self._jobs.delete_track(text(req.RecordingToken), text(req.TrackToken))

    @operation("GetTrackConfiguration", AccessClass.READ_MEDIA)
    async def get_track_configuration(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-10: NoRecording is checked before NoTrack."""
        track = await self._jobs.track(text(req.RecordingToken), text(req.TrackToken))
        return {"TrackConfiguration": track_config_element(track)}

    @operation("SetTrackConfiguration", AccessClass.ACTUATE)
    async def set_track_configuration(self, ctx: RequestContext, req: Any) -> None:
        """RC-11: only Description changes; an 'Extended' type is still BadConfiguration."""
        config = required(req.TrackConfiguration, "TrackConfiguration")
        recording, token = text(req.RecordingToken), text(req.TrackToken)
        await self._jobs.track(recording, token)  # unknown tokens fault before the type does
        wire_enum(TrackKind, config.TrackType, job_errors.BadConfigurationError, "track type")
        await self._jobs.set_track_config(recording, token, text(config.Description))

    # ---------------------------------------------------------------- jobs

    @operation("CreateRecordingJob", AccessClass.ACTUATE)
    async def create_recording_job(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-12: the answer carries the configuration as used (auto receivers resolved)."""
        job = await self._jobs.create_job(_job_config(req.JobConfiguration))
        return {"JobToken": job.token, "JobConfiguration": job_config_element(job.config)}

    @operation("DeleteRecordingJob", AccessClass.ACTUATE)
    async def delete_recording_job(self, ctx: RequestContext, req: Any) -> None:
        """RC-13."""
        await self._jobs.delete_job(text(req.JobToken))

    @operation("GetRecordingJobs", AccessClass.READ_MEDIA)
    async def get_recording_jobs(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-14: AutoCreateReceiver never appears (PF-24)."""
        return {"JobItem": [_job_item(job) for job in await self._jobs.jobs()]}

    @operation("SetRecordingJobConfiguration", AccessClass.ACTUATE)
    async def set_recording_job_configuration(
        self, ctx: RequestContext, req: Any
    ) -> dict[str, Any]:
        """RC-15: full replacement (GEN-13); the response mirrors what is now stored."""
        token = text(req.JobToken)
        await self._jobs.job(token)  # NoRecordingJob before any complaint about the body
        job = await self._jobs.set_job_config(token, _job_config(req.JobConfiguration))
        return {"JobConfiguration": job_config_element(job.config)}

    @operation("GetRecordingJobConfiguration", AccessClass.READ_MEDIA)
    async def get_recording_job_configuration(
        self, ctx: RequestContext, req: Any
    ) -> dict[str, Any]:
        """RC-16."""
        job = await self._jobs.job(text(req.JobToken))
        return {"JobConfiguration": job_config_element(job.config)}

    @operation("SetRecordingJobMode", AccessClass.ACTUATE)
    async def set_recording_job_mode(self, ctx: RequestContext, req: Any) -> None:
        """RC-17: anything but Idle/Active is BadMode (checked after the token)."""
        await self._jobs.set_job_mode(text(req.JobToken), text(req.Mode))

    @operation("GetRecordingJobState", AccessClass.READ_MEDIA)
    async def get_recording_job_state(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-18: the state computed from what is really written, not the mode."""
        status = await self._jobs.job_state(text(req.JobToken))
        return {"State": status.information()}

    # ---------------------------------------------------------------- post-IEC

    @operation("OverrideSegmentDuration", AccessClass.ACTUATE)
    async def override_segment_duration(self, ctx: RequestContext, req: Any) -> None:
        """RC-22: object storage only; the engine answers NotImplemented ([ENGINE])."""
        raise SoapFault.receiver(
            "ActionNotSupported",
            "NotImplemented",
            reason="OverrideSegmentDuration needs object storage, which this device has not",
        )


# ---------------------------------------------------------------- wire ↔ domain


def _recording_config(value: Any) -> RecordingConfig:
    """tt:RecordingConfiguration → RecordingConfig, strings untouched (RC-02.2, GEN-12)."""
    if getattr(value, "Target", None) is not None:
        raise job_errors.BadConfigurationError(
            "RecordingConfiguration/Target (external storage) is not supported"
        )
    source = required(value.Source, "RecordingConfiguration/Source")
    return RecordingConfig(
        source_id=text(source.SourceId),
        name=text(source.Name),
        location=text(source.Location),
        description=text(source.Description),
        address=text(source.Address),
        content=text(value.Content),
        max_retention=text(value.MaximumRetentionTime),
    )


def _job_config(value: Any) -> JobConfig:
    """tt:RecordingJobConfiguration → JobConfig; unsupported post-IEC parts are refused."""
    value = required(value, "JobConfiguration")
    if getattr(value, "ScheduleToken", None) is not None:
        raise job_errors.BadConfigurationError("recording job ScheduleToken is not supported")
    if getattr(value, "EventFilter", None) is not None:
        raise job_errors.BadConfigurationError("recording job EventFilter is not supported")
    mode = wire_enum(JobMode, value.Mode, job_errors.BadConfigurationError, "recording job mode")
    return JobConfig(
        recording=text(value.RecordingToken),
        mode=mode,
        priority=int(required(value.Priority, "JobConfiguration/Priority")),
        sources=tuple(_job_source(s) for s in value.Source or ()),
    )


def _job_source(value: Any) -> JobSource:
    if value is None:  # an empty <tt:Source/>: neither token nor AutoCreateReceiver
        return JobSource()
    reference = value.SourceToken
    token: str | None = None
    source_type = SOURCE_TYPE_RECEIVER  # SM-03: a token without Type names a receiver
    if reference is not None:
        token = text(reference.Token)
        if reference.Type is not None:
            source_type = text(reference.Type)
    return JobSource(
        source_token=token,
        source_type=source_type,
        tracks=tuple(JobTrack(text(t.SourceTag), text(t.Destination)) for t in value.Tracks or ()),
        auto_create_receiver=bool(value.AutoCreateReceiver),
    )


def _recording_item(recording: Recording) -> dict[str, Any]:
    return {
        "RecordingToken": recording.token,
        "Configuration": recording_config_element(recording.config),
        "Tracks": {
            "Track": [
                {"TrackToken": t.token, "Configuration": track_config_element(t)}
                for t in recording.tracks
            ]
        },
    }


def _job_item(job: Job) -> dict[str, Any]:
    return {"JobToken": job.token, "JobConfiguration": job_config_element(job.config)}
