"""The pure job rules: priority contest (SM-04), state aggregation (SM-03), payload shapes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.media import TrackKind
from app.engine.jobs.state import (
    TrackStatus,
    aggregate,
    aggregate_tracks,
    contest,
    job_config_element,
    make_job_status,
    make_source_status,
    recording_config_element,
    track_config_element,
)
from app.engine.storage import (
    SOURCE_TYPE_RECEIVER,
    Job,
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    JobTrack,
    RecordingConfig,
    Track,
)

ACTIVE, IDLE = JobMode.ACTIVE, JobMode.IDLE
VIDEO = (JobTrack("video", "VIDEO001"),)


def _job(
    token: str,
    mode: JobMode,
    priority: int,
    activated: int = 0,
    tracks: tuple[JobTrack, ...] = VIDEO,
) -> Job:
    source = JobSource("RCV", SOURCE_TYPE_RECEIVER, tracks)
    return Job(token, JobConfig("REC", mode, priority, (source,)), JobState.IDLE, activated)


def test_the_spec_example() -> None:
    j1, j2, j3 = _job("J1", ACTIVE, 2, 1), _job("J2", IDLE, 4), _job("J3", ACTIVE, 3, 2)
    assert contest([j1, j2, j3]) == {("REC", "VIDEO001"): "J3"}
    assert contest([j1, j2]) == {("REC", "VIDEO001"): "J1"}  # J3 deleted: J1 takes over


def test_ties_go_to_the_most_recently_activated_then_the_newest_job() -> None:
    early, late = _job("A", ACTIVE, 5, activated=200), _job("B", ACTIVE, 5, activated=100)
    assert contest([early, late]) == {("REC", "VIDEO001"): "A"}
    same1, same2 = _job("A", ACTIVE, 5, 100), _job("B", ACTIVE, 5, 100)
    assert contest([same1, same2]) == {("REC", "VIDEO001"): "B"}


def test_contest_is_per_track() -> None:
    both = (JobTrack("video", "VIDEO001"), JobTrack("audio", "AUDIO001"))
    high = _job("HIGH", ACTIVE, 9, tracks=(JobTrack("video", "VIDEO001"),))
    low = _job("LOW", ACTIVE, 1, tracks=both)
    assert contest([high, low]) == {("REC", "VIDEO001"): "HIGH", ("REC", "AUDIO001"): "LOW"}


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from([ACTIVE, IDLE]), st.integers(0, 5), st.integers(0, 5)),
        max_size=8,
    )
)
def test_contest_winner_is_an_active_job_with_the_highest_priority(
    specs: list[tuple[JobMode, int, int]],
) -> None:
    jobs = [_job(f"J{i}", mode, prio, act) for i, (mode, prio, act) in enumerate(specs)]
    active = [j for j in jobs if j.config.mode is ACTIVE]
    winners = contest(jobs)
    if not active:
        assert winners == {}
        return
    winner = next(j for j in jobs if j.token == winners[("REC", "VIDEO001")])
    best = max((j.config.priority, j.activated_ns) for j in active)
    assert winner.config.mode is ACTIVE
    assert (winner.config.priority, winner.activated_ns) == best


def test_aggregation_rules() -> None:
    a, i, e = JobState.ACTIVE, JobState.IDLE, JobState.ERROR
    assert aggregate([]) is i
    assert aggregate([i, i]) is i
    assert aggregate([a, a]) is a
    assert aggregate([a, i]) is JobState.PARTIALLY_ACTIVE
    assert aggregate([a, e, i]) is e


def test_media_the_stream_lacks_do_not_hold_a_job_back() -> None:
    video = TrackStatus("video", "VIDEO001", JobState.ACTIVE)
    meta = TrackStatus("metadata", "META001", JobState.IDLE, has_medium=False)
    assert aggregate_tracks([video, meta]) is JobState.ACTIVE
    assert aggregate_tracks([meta]) is JobState.IDLE
    audio_idle = TrackStatus("audio", "AUDIO001", JobState.IDLE)
    assert aggregate_tracks([video, audio_idle, meta]) is JobState.PARTIALLY_ACTIVE


def test_information_follows_the_schema_order() -> None:
    job = _job("J1", ACTIVE, 1)
    tracks = [
        TrackStatus("video", "VIDEO001", JobState.ACTIVE),
        TrackStatus("audio", "AUDIO001", JobState.ERROR, "Incompatible Stream"),
    ]
    status = make_job_status(job, [make_source_status("RCV", SOURCE_TYPE_RECEIVER, tracks)])
    assert status.state is JobState.ERROR
    info = status.information()
    assert list(info) == ["RecordingToken", "State", "Sources"]
    (source,) = info["Sources"]
    assert source["SourceToken"] == {"Token": "RCV", "Type": SOURCE_TYPE_RECEIVER}
    assert source["State"] == "Error"
    ok, bad = source["Tracks"]["Track"]
    assert ok == {"SourceTag": "video", "Destination": "VIDEO001", "State": "Active"}
    assert list(bad) == ["SourceTag", "Destination", "Error", "State"]
    assert bad["Error"] == "Incompatible Stream"


def test_configuration_payloads_echo_the_stored_values() -> None:
    job = _job("J1", ACTIVE, 3)
    assert job_config_element(job.config) == {
        "RecordingToken": "REC",
        "Mode": "Active",
        "Priority": 3,
        "Source": [
            {
                "SourceToken": {"Token": "RCV", "Type": SOURCE_TYPE_RECEIVER},
                "Tracks": [{"SourceTag": "video", "Destination": "VIDEO001"}],
            }
        ],
    }
    config = RecordingConfig("urn:x", "Gate", "Here", "Desc", "http://a", "C", "PT60M")
    element = recording_config_element(config)
    assert element["Source"]["Name"] == "Gate" and element["MaximumRetentionTime"] == "PT60M"
    assert track_config_element(Track("AUDIO002", TrackKind.AUDIO, "mic")) == {
        "TrackType": "Audio",
        "Description": "mic",
    }
