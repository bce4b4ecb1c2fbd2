"""Recording jobs and receivers driving the ingest: the domain side of Recording Control/Receiver.

    async with JobController(store, bus, reserved={"SimCam": {"VIDEO001", ...}}) as jobs:
        rec = await jobs.create_recording(RecordingConfig(name="Gate"))
        job = await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 1,
                                              (JobSource(auto_create_receiver=True),)))
        receiver = job.config.sources[0].source_token
        await jobs.configure_receiver(receiver, ReceiverConfig(media_uri="rtsp://cam/live"))
        await jobs.set_job_mode(job.token, JobMode.ACTIVE)
        (await jobs.job_state(job.token)).state        # Active once frames are written

Errors are the classes of `errors` (each carries its ONVIF fault); events go to the EventBus.
"""

from __future__ import annotations

from app.engine.jobs.controller import JobController, ReceiverStateInfo
from app.engine.jobs.receivers import CONNECTED, CONNECTING, NOT_CONNECTED, IngestOptions
from app.engine.jobs.state import JobStatus, SourceStatus, TrackStatus, aggregate, contest
from app.engine.jobs.validate import (
    MAX_RECEIVERS,
    MAX_RECORDING_JOBS,
    MAX_RECORDINGS,
    MAX_URI_CHARS,
)

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "MAX_RECEIVERS",
    "MAX_RECORDINGS",
    "MAX_RECORDING_JOBS",
    "MAX_URI_CHARS",
    "NOT_CONNECTED",
    "IngestOptions",
    "JobController",
    "JobStatus",
    "ReceiverStateInfo",
    "SourceStatus",
    "TrackStatus",
    "aggregate",
    "contest",
]
