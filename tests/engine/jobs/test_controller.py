"""JobController without a camera: validation, faults, AutoCreateReceiver, events, restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.core.media import TrackKind
from app.core.time import NS_PER_SECOND
from app.engine import events
from app.engine.events import PropertyOperation
from app.engine.jobs import MAX_RECEIVERS, errors
from app.engine.storage import (
    SOURCE_TYPE_PROFILE,
    SOURCE_TYPE_RECEIVER,
    DeletedSegment,
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    JobTrack,
    ReceiverConfig,
    ReceiverMode,
    RecordingConfig,
    StreamType,
)
from tests.engine.jobs.helpers import controller

AUTO = JobSource(auto_create_receiver=True)
NEVER = ReceiverConfig(mode=ReceiverMode.NEVER_CONNECT)


def _topics(notifications: list[events.Notification]) -> list[str]:
    return [n.topic_text for n in notifications]


async def test_auto_create_receiver_lifecycle(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, bus, jobs):
        rec = await jobs.create_recording(RecordingConfig(name="Gate"))
        sub = bus.subscribe()
        job = await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 1, (AUTO,)))

        (source,) = job.config.sources
        assert source.source_token is not None and source.source_type == SOURCE_TYPE_RECEIVER
        assert not source.auto_create_receiver  # never echoed (PF-24)
        assert source.tracks == (
            JobTrack("video", "VIDEO001"),
            JobTrack("audio", "AUDIO001"),
            JobTrack("metadata", "META001"),
        )
        auto = source.source_token
        receiver = await jobs.receiver(auto)
        assert receiver.auto_created and receiver.config == ReceiverConfig()
        state = await jobs.receiver_state(auto)
        assert (state.state, state.auto_created) == ("NotConnected", True)

        (initialized,) = sub.take()  # PF-23: Initialized, with Information
        assert initialized.topic == events.JOB_STATE
        assert initialized.property_operation is PropertyOperation.INITIALIZED
        assert initialized.source == (("RecordingJobToken", job.token),)
        assert initialized.item("State") == "Idle"
        info = initialized.element("Information")
        assert info is not None and info.value["RecordingToken"] == rec.token
        assert [t["State"] for t in info.value["Sources"][0]["Tracks"]["Track"]] == ["Idle"] * 3

        with pytest.raises(errors.CannotDeleteReceiverError, match=job.token):
            await jobs.delete_receiver(auto)

        # SetRecordingJobConfiguration no longer naming it: the auto receiver goes.
        other = await jobs.create_receiver(NEVER)
        config = JobConfig(rec.token, JobMode.IDLE, 1, (JobSource(other.token),))
        await jobs.set_job_config(job.token, config)
        with pytest.raises(errors.UnknownReceiverError):
            await jobs.receiver(auto)
        assert [r.token for r in await jobs.receivers()] == [other.token]

        # DeleteRecordingJob takes its auto receiver along.
        job2 = await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 1, (AUTO,)))
        auto2 = job2.config.sources[0].source_token
        assert auto2 is not None and auto2 != auto
        await jobs.delete_job(job2.token)
        assert [r.token for r in await jobs.receivers()] == [other.token]

        # So does DeleteRecording, with JobState Deleted for every job of it (RC-03.3).
        job3 = await jobs.create_job(JobConfig(rec.token, JobMode.ACTIVE, 1, (AUTO,)))
        sub.take()
        await jobs.delete_recording(rec.token)
        got = sub.take()
        assert _topics(got) == [
            "tns1:RecordingConfig/JobState",
            "tns1:RecordingConfig/JobState",
            "tns1:RecordingConfig/DeleteTrack",
            "tns1:RecordingConfig/DeleteTrack",
            "tns1:RecordingConfig/DeleteTrack",
            "tns1:RecordingConfig/DeleteRecording",
        ]
        assert {n.item("RecordingJobToken") for n in got[:2]} == {job.token, job3.token}
        assert {n.property_operation for n in got[:2]} == {PropertyOperation.DELETED}
        assert await jobs.jobs() == []
        assert [r.token for r in await jobs.receivers()] == [other.token]


async def test_priority_contest_example(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, _bus, jobs):
        rec = await jobs.create_recording(RecordingConfig())
        receiver = await jobs.create_receiver(NEVER)

        def job(mode: JobMode, priority: int) -> JobConfig:
            return JobConfig(rec.token, mode, priority, (JobSource(receiver.token),))

        j1 = await jobs.create_job(job(JobMode.ACTIVE, 2))
        j2 = await jobs.create_job(job(JobMode.IDLE, 4))
        j3 = await jobs.create_job(job(JobMode.ACTIVE, 3))
        winners = jobs.winners()
        assert {winners[(rec.token, t.token)] for t in rec.tracks} == {j3.token}
        await jobs.delete_job(j3.token)
        assert set(jobs.winners().values()) == {j1.token}
        await jobs.set_job_mode(j2.token, JobMode.ACTIVE)
        assert set(jobs.winners().values()) == {j2.token}
        # A NeverConnect receiver connects nobody: every job is Idle, none in Error.
        for token in (j1.token, j2.token):
            assert (await jobs.job_state(token)).state is JobState.IDLE


async def test_faults_carry_the_right_subcodes(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, _bus, jobs):
        rec = await jobs.create_recording(RecordingConfig())
        receiver = await jobs.create_receiver(NEVER)
        src = (JobSource(receiver.token),)
        cases: list[tuple[type[Exception], JobConfig]] = [
            (errors.NoRecordingError, JobConfig("deadbeef", JobMode.IDLE, 0, src)),
            (errors.BadConfigurationError, JobConfig(rec.token, "Paused", 0, src)),  # type: ignore[arg-type]
            (errors.BadConfigurationError, JobConfig(rec.token, JobMode.IDLE, -1, src)),
            (errors.BadConfigurationError, JobConfig(rec.token, JobMode.IDLE, 0, (JobSource(),))),
            (
                errors.BadConfigurationError,
                JobConfig(rec.token, JobMode.IDLE, 0, (JobSource("nope"),)),
            ),
            (
                errors.BadConfigurationError,
                JobConfig(rec.token, JobMode.IDLE, 0, (JobSource("p", SOURCE_TYPE_PROFILE),)),
            ),
            (
                errors.BadConfigurationError,
                JobConfig(
                    rec.token,
                    JobMode.IDLE,
                    0,
                    (JobSource(receiver.token, tracks=(JobTrack("video", "VIDEO009"),)),),
                ),
            ),
        ]
        for error, config in cases:
            with pytest.raises(error):
                await jobs.create_job(config)
        assert await jobs.jobs() == []

        job = await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 0, src))
        with pytest.raises(errors.BadModeError, match="'Paused'") as bad_mode:
            await jobs.set_job_mode(job.token, "Paused")
        assert bad_mode.value.fault == ("Sender", "InvalidArgVal", "BadMode")
        other = await jobs.create_recording(RecordingConfig())
        with pytest.raises(errors.BadConfigurationError, match="cannot be moved"):
            await jobs.set_job_config(job.token, JobConfig(other.token, JobMode.IDLE, 0, src))
        for call in (
            jobs.job("deadbeef"),
            jobs.job_state("deadbeef"),
            jobs.delete_job("deadbeef"),
            jobs.set_job_mode("deadbeef", JobMode.IDLE),
        ):
            with pytest.raises(errors.NoRecordingJobError) as missing:
                await call
            assert isinstance(missing.value, NotFoundError)
            assert missing.value.fault == ("Sender", "InvalidArgVal", "NoRecordingJob")
        for rcall in (
            jobs.receiver("deadbeef"),
            jobs.receiver_state("deadbeef"),
            jobs.delete_receiver("deadbeef"),
            jobs.set_receiver_mode("deadbeef", ReceiverMode.AUTO_CONNECT),
            jobs.configure_receiver("deadbeef", ReceiverConfig()),
        ):
            with pytest.raises(errors.UnknownReceiverError):
                await rcall
        with pytest.raises(errors.InvalidReceiverModeError) as bad:
            await jobs.set_receiver_mode(receiver.token, "Unknown")
        assert bad.value.fault == ("Sender", "InvalidArgVal", None)
        with pytest.raises(errors.NoRecordingError):
            await jobs.recording("deadbeef")
        with pytest.raises(errors.NoTrackError):
            await jobs.track(rec.token, "deadbeef")
        with pytest.raises(errors.BadConfigurationError, match="Extended"):
            await jobs.create_track(rec.token, "Extended")
        with pytest.raises(errors.BadConfigurationError, match="source name of 65"):
            await jobs.create_recording(RecordingConfig(name="x" * 65))


async def test_receiver_configuration_rules_and_limit(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, _bus, jobs):
        secret = "rtsp://admin:hunter2@camera.invalid:554/stream"
        uri_1024 = "rtsp://camera.invalid/" + "a" * (1024 - 22)
        stored = await jobs.create_receiver(ReceiverConfig(ReceiverMode.NEVER_CONNECT, uri_1024))
        assert stored.config.media_uri == uri_1024  # echoed exactly (RX-04.1)
        for bad in (
            ReceiverConfig(media_uri=uri_1024 + "a"),
            ReceiverConfig(media_uri="ftp://camera.invalid/x"),
            ReceiverConfig(stream=StreamType.MULTICAST),
            ReceiverConfig(mode="Unknown"),  # type: ignore[arg-type]
        ):
            with pytest.raises(errors.BadConfigurationError) as info:
                await jobs.create_receiver(bad)
            assert info.value.fault == ("Sender", "InvalidArgVal", "BadConfiguration")
        with pytest.raises(errors.BadConfigurationError) as info:
            await jobs.configure_receiver(stored.token, ReceiverConfig(media_uri=secret + " x"))
        assert "hunter2" not in info.value.message
        await jobs.configure_receiver(
            stored.token, ReceiverConfig(ReceiverMode.NEVER_CONNECT, secret)
        )
        assert (await jobs.receiver(stored.token)).config.media_uri == secret
        await jobs.set_receiver_mode(stored.token, ReceiverMode.AUTO_CONNECT)
        assert (await jobs.receiver(stored.token)).config.mode is ReceiverMode.AUTO_CONNECT

        for _ in range(MAX_RECEIVERS - 1):
            await jobs.create_receiver(NEVER)
        with pytest.raises(errors.MaxReceiversError) as full:
            await jobs.create_receiver(NEVER)
        assert isinstance(full.value, LimitError)
        assert full.value.fault == ("Receiver", "Action", "MaxReceivers")
        rec = await jobs.create_recording(RecordingConfig())
        with pytest.raises(errors.MaxReceiversError):
            await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 0, (AUTO,)))
        # Not in use: deleting works and frees a place.
        await jobs.delete_receiver(stored.token)
        await jobs.create_job(JobConfig(rec.token, JobMode.IDLE, 0, (AUTO,)))


async def test_configuration_events(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, bus, jobs):
        sub = bus.subscribe()
        rec = await jobs.create_recording(RecordingConfig(name="Gate", max_retention="PT60M"))
        got = sub.take()
        assert _topics(got) == [
            "tns1:RecordingConfig/CreateRecording",
            *["tns1:RecordingConfig/CreateTrack"] * 3,
        ]
        assert [n.item("TrackToken") for n in got[1:]] == ["VIDEO001", "AUDIO001", "META001"]

        await jobs.set_recording_config(rec.token, RecordingConfig(name="Yard", content="c"))
        (changed,) = sub.take()
        assert changed.topic == events.RECORDING_CONFIGURATION
        element = changed.element("Configuration")
        assert element is not None and element.type_name == "RecordingConfiguration"
        assert element.value["Source"]["Name"] == "Yard"
        assert element.value["MaximumRetentionTime"] == "PT0S"

        track = await jobs.create_track(rec.token, TrackKind.VIDEO, "second")
        assert track.token == "VIDEO002"
        await jobs.set_track_config(rec.token, "VIDEO002", "renamed")
        created, configured = sub.take()
        assert created.source == (("RecordingToken", rec.token), ("TrackToken", "VIDEO002"))
        assert configured.topic == events.TRACK_CONFIGURATION
        cfg = configured.element("Configuration")
        assert cfg is not None and cfg.value == {"TrackType": "Video", "Description": "renamed"}

        receiver = await jobs.create_receiver(NEVER)
        bindings = (JobTrack("video", "VIDEO001"), JobTrack("video2", "VIDEO002"))
        job = await jobs.create_job(
            JobConfig(rec.token, JobMode.IDLE, 0, (JobSource(receiver.token, tracks=bindings),))
        )
        await jobs.set_job_mode(job.token, JobMode.ACTIVE)
        initialized, job_cfg = sub.take()
        assert initialized.property_operation is PropertyOperation.INITIALIZED
        assert job_cfg.topic == events.RECORDING_JOB_CONFIGURATION
        payload = job_cfg.element("Configuration")
        assert payload is not None and payload.value["Mode"] == "Active"

        # DeleteTrack drops the job's binding to it and says so (RC-09.2).
        await jobs.delete_track(rec.token, "VIDEO002")
        got = sub.take()
        # The job's Information lost a track (JobState Changed), then its configuration did.
        assert _topics(got) == [
            "tns1:RecordingConfig/JobState",
            "tns1:RecordingConfig/RecordingJobConfiguration",
            "tns1:RecordingConfig/DeleteTrack",
        ]
        assert got[0].property_operation is PropertyOperation.CHANGED
        assert (await jobs.job(job.token)).config.sources[0].tracks == bindings[:1]

        jobs.track_data_deleted(
            [
                DeletedSegment(
                    rec.token, "VIDEO001", 5 * NS_PER_SECOND, 65 * NS_PER_SECOND, 1, 1, "x"
                )
            ]
        )
        (data,) = sub.take()
        assert data.topic == events.DELETE_TRACK_DATA
        assert data.data == (
            ("StartTime", "1970-01-01T00:00:05.000Z"),
            ("EndTime", "1970-01-01T00:01:05.000Z"),
        )


async def test_configured_sources_keep_their_tracks(tmp_path: Path) -> None:
    reserved = {"CFG": {"VIDEO001", "AUDIO001", "META001"}}
    async with controller(tmp_path, reserved=reserved) as (store, _bus, jobs):
        await store.create_recording(RecordingConfig(), token="CFG")
        receiver = await jobs.create_receiver(NEVER)
        with pytest.raises(errors.BadConfigurationError, match="engine configuration"):
            await jobs.create_job(JobConfig("CFG", JobMode.ACTIVE, 0, (JobSource(receiver.token),)))
        extra = await jobs.create_track("CFG", TrackKind.VIDEO)
        ok = JobSource(receiver.token, tracks=(JobTrack("video", extra.token),))
        await jobs.create_job(JobConfig("CFG", JobMode.ACTIVE, 0, (ok,)))
        with pytest.raises(errors.CannotDeleteError):
            await jobs.delete_recording("CFG")
        with pytest.raises(errors.CannotDeleteError):
            await jobs.delete_track("CFG", "VIDEO001")


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    async with controller(tmp_path) as (_store, _bus, jobs):
        rec = await jobs.create_recording(RecordingConfig(name="Gate"))
        manual = await jobs.create_receiver(NEVER)
        job = await jobs.create_job(
            JobConfig(rec.token, JobMode.ACTIVE, 7, (JobSource(manual.token), AUTO))
        )
        before_jobs, before_receivers = await jobs.jobs(), await jobs.receivers()

    async with controller(tmp_path) as (_store, bus, jobs):
        assert await jobs.jobs() == before_jobs
        assert await jobs.receivers() == before_receivers
        assert [r.auto_created for r in await jobs.receivers()] == [False, True]
        # The restored job's state is there for a new subscriber (EV-02).
        sub = bus.subscribe(initial=True)
        (state,) = sub.take()
        assert state.item("RecordingJobToken") == job.token
        assert state.property_operation is PropertyOperation.INITIALIZED
        assert set(jobs.winners().values()) == {job.token}


def test_errors_keep_their_kinds() -> None:
    assert issubclass(errors.BadConfigurationError, ConfigError)
    assert issubclass(errors.CannotDeleteError, errors.JobsError)
    assert errors.MaxRecordingJobsError.fault == ("Receiver", "Action", "MaxRecordingJobs")
    assert errors.NoRecordingError("x").fault == ("Sender", "InvalidArgVal", "NoRecording")


async def test_a_refused_delete_gives_the_writers_back(tmp_path: Path) -> None:
    async with controller(tmp_path) as (store, _bus, jobs):
        rec = await jobs.create_recording(RecordingConfig())
        # Active with an (unconfigured) auto receiver: it wins its tracks and holds their writers.
        await jobs.create_job(JobConfig(rec.token, JobMode.ACTIVE, 0, (AUTO,)))
        lock = await store.add_evidence_lock(rec.token, 0, NS_PER_SECOND, "case 17")
        with pytest.raises(errors.CannotDeleteError, match="evidence lock"):
            await jobs.delete_recording(rec.token)
        with pytest.raises(ConflictError, match="already has a writer"):
            await store.open_writer(rec.token, "VIDEO001")
        await store.remove_evidence_lock(lock.id)
        await jobs.delete_recording(rec.token)
        assert await jobs.jobs() == [] and await jobs.receivers() == []
