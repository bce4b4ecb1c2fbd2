"""The ONVIF storage model: recordings, tracks, receivers, jobs: verbatim, checked, persistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.core.media import TrackKind
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import (
    SOURCE_TYPE_PROFILE,
    SOURCE_TYPE_RECEIVER,
    DurationError,
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    JobTrack,
    ReceiverConfig,
    ReceiverMode,
    RecordingConfig,
    RecordingStatus,
    Store,
    StreamType,
    Track,
    TransportProtocol,
    tokens,
)
from tests.engine.storage.helpers import H264, segment_files, video

# Every field at the lengths the DTT uses (Name 20, SourceId/Address 128), non-ASCII included.
CONFIG = RecordingConfig(
    source_id="urn:uuid:" + "a" * 119,
    name="Kamera Nord – Tor 1x",
    location="Lagerhalle 3, Rückseite",
    description="PTZ über dem Tor",
    address="rtsp://192.0.2.10/" + "x" * 110,
    content="  Einfahrt\nmit Leerzeichen  ",
    max_retention="PT60M",
)


async def test_recordings_keep_every_string_verbatim_and_survive_reopen(
    data_dir: Path, clock: FakeClock
) -> None:
    async with Store(data_dir, clock=clock) as store:
        rec = await store.create_recording(CONFIG)
        assert rec.token == "REC0001"
        assert rec.config == CONFIG
        assert rec.max_retention_ns == 3600 * NS_PER_SECOND
        assert rec.status is RecordingStatus.INITIATED
        assert rec.created_ns == clock.wall_ns()
        assert rec.tracks == (
            Track("VIDEO001", TrackKind.VIDEO),
            Track("AUDIO001", TrackKind.AUDIO),
            Track("META001", TrackKind.METADATA),
        )
        changed = RecordingConfig(name="B", max_retention="P1D")
        assert (await store.set_recording_config("REC0001", changed)).config == changed
        await store.set_recording_config("REC0001", CONFIG)
    async with Store(data_dir, clock=clock) as store:
        assert await store.recordings() == [rec]


async def test_generated_tokens_are_never_reused(store: Store) -> None:
    first = await store.create_recording(RecordingConfig())
    await store.delete_recording(first.token)
    second = await store.create_recording(RecordingConfig())
    assert (first.token, second.token) == ("REC0001", "REC0002")
    # A client-chosen token in the generated pattern is skipped, not duplicated.
    await store.create_recording(RecordingConfig(), token="REC0003")
    assert (await store.create_recording(RecordingConfig())).token == "REC0004"
    track = await store.create_track("Cam", TrackKind.VIDEO, "second view")
    assert track == Track("VIDEO002", TrackKind.VIDEO, "second view")
    await store.delete_track("Cam", "VIDEO002")
    assert (await store.create_track("Cam", TrackKind.VIDEO)).token == "VIDEO003"
    assert (await store.create_track("Cam", TrackKind.METADATA)).token == "META002"


@pytest.mark.parametrize(
    ("config", "token", "error", "message"),
    [
        (RecordingConfig(name="n" * 65), None, ConfigError, "name of 65 characters exceeds 64"),
        (RecordingConfig(max_retention="-P1D"), None, DurationError, "negative duration"),
        (RecordingConfig(max_retention="1 hour"), None, DurationError, "not an xs:duration"),
        (RecordingConfig(content="c" * 5000), None, ConfigError, "content of 5000 characters"),
        (RecordingConfig(), "t" * 65, ConfigError, "must be 1…64 characters"),
        (RecordingConfig(), "", ConfigError, "must be 1…64 characters"),
        (RecordingConfig(), "Cam", ConflictError, "recording 'Cam' exists already"),
    ],
)
async def test_bad_recordings_are_refused_by_name(
    store: Store, config: RecordingConfig, token: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await store.create_recording(config, token=token)
    assert [r.token for r in await store.recordings()] == ["Cam"]


async def test_tracks_are_created_described_limited_and_deleted(store: Store) -> None:
    assert await store.set_track_description("Cam", "AUDIO001", "mic") == Track(
        "AUDIO001", TrackKind.AUDIO, "mic"
    )
    with pytest.raises(NotFoundError, match="recording 'Cam' has no track 'X'"):
        await store.set_track_description("Cam", "X", "")
    with pytest.raises(NotFoundError, match="no recording 'Nope'"):
        await store.create_track("Nope", TrackKind.VIDEO)
    for _ in range(13):
        await store.create_track("Cam", TrackKind.AUDIO)
    with pytest.raises(LimitError, match="at most 16 tracks"):
        await store.create_track("Cam", TrackKind.AUDIO)
    await store.delete_track("Cam", "AUDIO001")
    tracks = (await store.recording("Cam")).tracks
    assert len(tracks) == 15 and "AUDIO001" not in [t.token for t in tracks]


async def test_deleting_a_recording_removes_media_jobs_and_auto_receivers(
    store: Store, data_dir: Path
) -> None:
    writer = await store.open_writer("Cam", "VIDEO001")
    for i in range(60):
        writer.append(video(i), H264)
    with pytest.raises(ConflictError, match="being recorded"):
        await store.delete_recording("Cam")
    await writer.close()
    job = await store.create_job(JobConfig("Cam", sources=(JobSource(auto_create_receiver=True),)))
    manual = await store.create_receiver(ReceiverConfig(media_uri="rtsp://cam/1"))
    assert len(segment_files(data_dir)) == 2
    await store.delete_recording("Cam")
    assert await store.recordings() == []
    assert await store.jobs() == []
    assert [r.token for r in await store.receivers()] == [manual.token]
    assert segment_files(data_dir) == []
    with pytest.raises(NotFoundError, match=f"no recording job '{job.token}'"):
        await store.job(job.token)


async def test_receivers_round_trip_and_refuse_bad_values(store: Store) -> None:
    config = ReceiverConfig(
        ReceiverMode.ALWAYS_CONNECT,
        "rtsp://user:secret@192.0.2.5/" + "s" * 200,
        StreamType.MULTICAST,
        TransportProtocol.UDP,
    )
    rec = await store.create_receiver(config)
    assert (rec.token, rec.config, rec.auto_created) == ("RECEIVER0001", config, False)
    assert await store.receiver(rec.token) == rec
    moved = ReceiverConfig(ReceiverMode.NEVER_CONNECT, "rtsp://other/")
    assert (await store.configure_receiver(rec.token, moved)).config == moved
    assert (await store.set_receiver_mode(rec.token, ReceiverMode.AUTO_CONNECT)).config == (
        ReceiverConfig(ReceiverMode.AUTO_CONNECT, "rtsp://other/")
    )
    bad_mode = ReceiverConfig("Unknown", "rtsp://x/")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="receiver mode 'Unknown' is not one of AlwaysConnect"):
        await store.create_receiver(bad_mode)
    with pytest.raises(NotFoundError, match="no receiver 'R9'"):
        await store.configure_receiver("R9", moved)
    await store.delete_receiver(rec.token)
    with pytest.raises(NotFoundError, match="no receiver"):
        await store.receiver(rec.token)


async def test_jobs_bind_tracks_resolve_auto_receivers_and_validate(
    store: Store, clock: FakeClock
) -> None:
    cam = await store.create_receiver(ReceiverConfig(media_uri="rtsp://cam/"))
    explicit = JobSource(cam.token, SOURCE_TYPE_RECEIVER, (JobTrack("video", "VIDEO001"),))
    job = await store.create_job(JobConfig("Cam", JobMode.ACTIVE, 3, (explicit,)), token="J1")
    assert job.config == JobConfig("Cam", JobMode.ACTIVE, 3, (explicit,))
    assert (job.state, job.activated_ns) == (JobState.IDLE, clock.wall_ns())

    # A source without tracks binds every track; AutoCreateReceiver yields a stored token.
    auto = await store.create_job(JobConfig("Cam", sources=(JobSource(auto_create_receiver=True),)))
    [source] = auto.config.sources
    assert source.auto_create_receiver is False and source.source_type == SOURCE_TYPE_RECEIVER
    assert source.tracks == (
        JobTrack("video", "VIDEO001"),
        JobTrack("audio", "AUDIO001"),
        JobTrack("metadata", "META001"),
    )
    receiver = await store.receiver(source.source_token or "")
    assert receiver.auto_created and receiver.config == ReceiverConfig()

    with pytest.raises(ConflictError, match=f"used by recording job\\(s\\) \\['{auto.token}'\\]"):
        await store.delete_receiver(receiver.token)
    # Full replacement drops the auto receiver nobody uses any more (SM-03).
    profile = JobSource("profile_1", SOURCE_TYPE_PROFILE, (JobTrack("video", "VIDEO001"),))
    clock.advance(NS_PER_SECOND)
    replaced = await store.set_job_config(
        auto.token, JobConfig("Cam", JobMode.ACTIVE, 1, (profile,))
    )
    assert replaced.config.sources == (profile,)
    assert replaced.activated_ns == clock.wall_ns()
    assert [r.token for r in await store.receivers()] == [cam.token]

    assert (await store.set_job_mode("J1", JobMode.IDLE)).config.mode is JobMode.IDLE
    await store.set_job_state("J1", JobState.ERROR)
    assert (await store.job("J1")).state is JobState.ERROR
    assert [j.token for j in await store.jobs()] == ["J1", auto.token]
    await store.delete_job("J1")
    assert [j.token for j in await store.jobs()] == [auto.token]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (JobConfig("Cam", "Running"), "job mode 'Running' is not one of Idle, Active"),  # type: ignore[arg-type]
        (JobConfig("Cam", priority=-1), "priority -1 must be ≥ 0"),
        (JobConfig("Cam", sources=(JobSource(),)), "neither a source token nor AutoCreateReceiver"),
        (JobConfig("Cam", sources=(JobSource("R404"),)), "no receiver 'R404'"),
        (
            JobConfig(
                "Cam", sources=(JobSource("P", SOURCE_TYPE_PROFILE, (JobTrack("v", "VIDEO404"),)),)
            ),
            "destination 'VIDEO404' is not a track",
        ),
        (
            JobConfig(
                "Cam",
                sources=(JobSource("P", SOURCE_TYPE_PROFILE, (JobTrack("v", "VIDEO001"),) * 2),),
            ),
            "repeats a SourceTag/Destination pair",
        ),
    ],
)
async def test_bad_jobs_are_refused_without_side_effects(
    store: Store, config: JobConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await store.create_job(config)
    assert await store.jobs() == []
    assert await store.receivers() == []


async def test_a_job_cannot_move_to_another_recording(store: Store) -> None:
    await store.create_recording(RecordingConfig(), token="Other")
    job = await store.create_job(JobConfig("Cam"))
    with pytest.raises(ConfigError, match="records into 'Cam'; it cannot be moved to 'Other'"):
        await store.set_job_config(job.token, JobConfig("Other"))
    with pytest.raises(NotFoundError, match="no recording 'Nope'"):
        await store.create_job(JobConfig("Nope"))


async def test_deleting_a_track_unbinds_it_from_jobs(store: Store) -> None:
    job = await store.create_job(JobConfig("Cam", sources=(JobSource("p", SOURCE_TYPE_PROFILE),)))
    await store.delete_track("Cam", "AUDIO001")
    [source] = (await store.job(job.token)).config.sources
    assert [t.destination for t in source.tracks] == ["VIDEO001", "META001"]


def test_limits_are_named() -> None:
    assert (tokens.MAX_TOKEN_CHARS, tokens.MAX_NAME_CHARS) == (64, 64)
