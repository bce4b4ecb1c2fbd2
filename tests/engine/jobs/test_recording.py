"""Recording jobs end to end: a simulated camera over RTSP on loopback, recorded by a job.

Every wait is on an event of the bus (JobState, Receiver/ChangeState, ConnectionFailed).
"""

from __future__ import annotations

import socket
from pathlib import Path

from app.core.config import EngineConfig
from app.engine import events
from app.engine.events import PropertyOperation
from app.engine.runtime import Engine, EngineSettings
from app.engine.storage import (
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    ReceiverConfig,
    ReceiverMode,
    RecordingConfig,
    RecordingStatus,
)
from tests.engine.jobs.helpers import (
    FAST_INGEST,
    controller,
    job_state_is,
    next_matching,
    receiver_state_is,
    rtsp_camera,
)


async def test_auto_created_receiver_records_until_idle(tmp_path: Path) -> None:
    """Appendix C #4: AutoCreateReceiver → ConfigureReceiver → Active → frames; Idle → Stopped."""
    async with rtsp_camera() as url, controller(tmp_path) as (store, bus, jobs):
        rec = await jobs.create_recording(RecordingConfig(name="Gate"))
        job = await jobs.create_job(
            JobConfig(rec.token, JobMode.IDLE, 1, (JobSource(auto_create_receiver=True),))
        )
        receiver = job.config.sources[0].source_token
        assert receiver is not None
        sub = bus.subscribe()
        await jobs.configure_receiver(receiver, ReceiverConfig(media_uri=url))
        # AutoConnect with no Active job: nothing connects yet.
        assert (await jobs.receiver_state(receiver)).state == "NotConnected"
        await jobs.set_job_mode(job.token, JobMode.ACTIVE)

        active = await next_matching(sub, job_state_is(job.token, "Active"))
        assert active.property_operation is PropertyOperation.CHANGED
        assert (await jobs.receiver_state(receiver)).state == "Connected"
        status = await jobs.job_state(job.token)
        assert status.state is JobState.ACTIVE
        tracks = {t.destination: t for t in status.sources[0].tracks}
        assert tracks["VIDEO001"].state is JobState.ACTIVE
        assert tracks["AUDIO001"].state is JobState.ACTIVE
        # The camera has no metadata stream: that binding idles without holding the job back.
        assert tracks["META001"].state is JobState.IDLE and not tracks["META001"].has_medium
        info = active.element("Information")
        assert info is not None and info.value == status.information()

        await store.flush()
        assert (await jobs.recording(rec.token)).status is RecordingStatus.RECORDING

        await jobs.set_job_mode(job.token, JobMode.IDLE)
        # Nobody needs the AutoConnect receiver any more: it disconnects.
        await next_matching(sub, receiver_state_is(receiver, "NotConnected"))
        assert (await jobs.job_state(job.token)).state is JobState.IDLE
        assert (await jobs.recording(rec.token)).status is RecordingStatus.STOPPED
        media = {m.track: m for m in await store.track_media(rec.token)}
        video = media["VIDEO001"]
        assert video.frame_count > 0 and len(video.slices) == 1
        assert media["AUDIO001"].frame_count > 0
        assert media["META001"].frame_count == 0
        first = await store.first_frame(rec.token, "VIDEO001")
        assert first is not None and first.keyframe
        assert video.earliest_ns is not None and video.latest_ns is not None
        assert video.earliest_ns <= video.latest_ns


async def test_priority_handover_between_live_jobs(tmp_path: Path) -> None:
    """SM-04 with data flowing: J3 (prio 3) preempts J1 (prio 2); deleting J3 gives it back."""
    async with rtsp_camera(audio=False) as url, controller(tmp_path) as (store, bus, jobs):
        rec = await jobs.create_recording(RecordingConfig())
        receiver = await jobs.create_receiver(ReceiverConfig(media_uri=url))
        source = (JobSource(receiver.token),)
        sub = bus.subscribe()
        j1 = await jobs.create_job(JobConfig(rec.token, JobMode.ACTIVE, 2, source))
        await next_matching(sub, job_state_is(j1.token, "Active"))
        j2 = await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 4, source))
        j3 = await jobs.create_job(JobConfig(rec.token, JobMode.ACTIVE, 3, source))
        await next_matching(sub, job_state_is(j3.token, "Active"))
        assert (await jobs.job_state(j1.token)).state is JobState.IDLE
        assert (await jobs.job_state(j2.token)).state is JobState.IDLE
        await jobs.delete_job(j3.token)
        await next_matching(sub, job_state_is(j1.token, "Active"))
        await store.flush()
        video = next(m for m in await store.track_media(rec.token) if m.track == "VIDEO001")
        # One writer at a time: each handover is a new run (slice) of the same track.
        assert len(video.slices) == 3


async def test_unreachable_camera_fails_visibly(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    uri = f"rtsp://admin:hunter2@127.0.0.1:{port}/live"
    async with controller(tmp_path) as (_store, bus, jobs):
        rec = await jobs.create_recording(RecordingConfig())
        sub = bus.subscribe()
        receiver = await jobs.create_receiver(ReceiverConfig(ReceiverMode.AUTO_CONNECT, uri))
        job = await jobs.create_job(
            JobConfig(rec.token, JobMode.ACTIVE, 0, (JobSource(receiver.token),))
        )
        failed = await next_matching(sub, lambda n: n.topic == events.RECEIVER_CONNECTION_FAILED)
        assert failed.source == (("ReceiverToken", receiver.token),)
        media_uri = failed.item("MediaUri")
        assert media_uri == f"rtsp://admin:***@127.0.0.1:{port}/live"  # never the password
        await next_matching(sub, job_state_is(job.token, "Error"))
        status = await jobs.job_state(job.token)
        assert status.state is JobState.ERROR
        assert all(t.error for t in status.sources[0].tracks)
        assert (await jobs.receiver_state(receiver.token)).state != "Connected"
        # It keeps trying at the back-off pace: another attempt, another event.
        await next_matching(sub, lambda n: n.topic == events.RECEIVER_CONNECTION_FAILED)
        # NeverConnect stops the attempts; the job idles instead of failing.
        await jobs.set_receiver_mode(receiver.token, ReceiverMode.NEVER_CONNECT)
        assert (await jobs.job_state(job.token)).state is JobState.IDLE
        assert (await jobs.receiver_state(receiver.token)).state == "NotConnected"


async def test_engine_restart_resumes_active_jobs(tmp_path: Path) -> None:
    settings = EngineSettings(
        data_dir=tmp_path,
        config=EngineConfig(sources=()),
        rtsp_port=0,
        http_port=0,
        ingest=FAST_INGEST,
    )
    async with rtsp_camera(audio=False) as url:
        async with Engine(settings) as engine:
            jobs = engine.jobs
            assert jobs is not None
            rec = await jobs.create_recording(RecordingConfig(name="Gate"))
            receiver = await jobs.create_receiver(ReceiverConfig(media_uri=url))
            sub = engine.events.subscribe()
            job = await jobs.create_job(
                JobConfig(rec.token, JobMode.ACTIVE, 1, (JobSource(receiver.token),))
            )
            await next_matching(sub, job_state_is(job.token, "Active"))

        async with Engine(settings) as engine:
            jobs = engine.jobs
            assert jobs is not None
            sub = engine.events.subscribe(initial=True)
            await next_matching(sub, job_state_is(job.token, "Active"))
            assert (await jobs.receiver(receiver.token)).config.media_uri == url
            assert engine.store is not None
            await engine.store.flush()
            video = next(
                m for m in await engine.store.track_media(rec.token) if m.track == "VIDEO001"
            )
            assert len(video.slices) == 2  # one run per engine life, a gap between
