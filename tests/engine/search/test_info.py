"""RecordingSummary, RecordingInformation, MediaAttributes and FindRecordings scopes (RS-02..05)."""

from __future__ import annotations

import pytest

from app.core.media import TrackKind
from app.core.time import FakeClock
from app.engine.search import (
    AudioAttributes,
    InvalidFilterError,
    InvalidSourceError,
    InvalidTokenError,
    MetadataAttributes,
    RecordingInformation,
    SearchKind,
    SearchScope,
    SearchSessions,
    VideoAttributes,
    media_attributes,
    recording_information,
    recording_summary,
)
from app.engine.storage import JobConfig, JobSource, ReceiverConfig, RecordingConfig, Store
from tests.engine.search.conftest import FRAME_END_GATE, S
from tests.engine.storage.helpers import T0


async def test_recording_information_edges_and_tracks(store: Store) -> None:
    gate = await recording_information(store, "Gate")
    assert gate.source.source_id == "urn:cam:gate" and gate.source.location == "North"
    assert [(t.token, t.kind) for t in gate.tracks] == [
        ("VIDEO001", TrackKind.VIDEO),
        ("AUDIO001", TrackKind.AUDIO),
    ]
    assert gate.earliest_ns == T0 == min(t.data_from_ns for t in gate.tracks)
    assert gate.latest_ns == T0 + 8 * S + FRAME_END_GATE == max(t.data_to_ns for t in gate.tracks)
    assert gate.status == "Stopped"
    empty = await recording_information(store, "Empty")
    assert (empty.tracks, empty.earliest_ns, empty.latest_ns) == ((), None, None)
    assert empty.status == "Initiated"
    with pytest.raises(InvalidTokenError):
        await recording_information(store, "deadbeef")


async def test_summary(store: Store, clock: FakeClock) -> None:
    summary = await recording_summary(store, clock.wall_ns())
    yard = await recording_information(store, "Yard")
    assert (summary.data_from_ns, summary.data_until_ns) == (T0, yard.latest_ns)
    assert summary.number_recordings == 3


async def test_media_attributes_at_a_time(store: Store) -> None:
    got = await media_attributes(store, (), T0 + 2 * S)
    assert [m.recording_token for m in got] == ["Gate", "Yard"]
    gate = {t.track.token: t.attributes for t in got[0].tracks}
    video = gate["VIDEO001"]
    assert isinstance(video, VideoAttributes)
    assert (video.width, video.height, video.encoding) == (1280, 720, "H264")
    assert video.framerate == pytest.approx(25.0)
    assert video.bitrate_kbps is not None and video.bitrate_kbps > 0
    audio = gate["AUDIO001"]
    assert isinstance(audio, AudioAttributes)
    assert (audio.encoding, audio.samplerate_khz) == ("AAC", 48)
    assert got[0].from_ns == got[0].until_ns == T0 + 2 * S
    # In the gap nothing of Gate is present.
    assert [m.recording_token for m in await media_attributes(store, ("Gate",), T0 + 6 * S)] == []
    with pytest.raises(InvalidTokenError):
        await media_attributes(store, ("nope",), T0)
    assert MetadataAttributes().can_contain_ptz is False


async def find(sessions: SearchSessions, scope: SearchScope) -> list[str]:
    token = await sessions.find_recordings(scope, None, 10)
    page = await sessions.get_results(token, SearchKind.RECORDINGS, max_results=100)
    assert all(isinstance(r, RecordingInformation) for r in page.results)
    return [r.token for r in page.results if isinstance(r, RecordingInformation)]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ('boolean(//Track[TrackType = "Video"])', ["Gate", "Yard"]),
        ('boolean(//Track[TrackType = "Audio"])', ["Gate"]),
        ('boolean(//Track[TrackType = "Metadata"])', []),
        (
            'boolean(//Track[TrackType = "Video"]) and boolean(//Track[TrackType = "Audio"])',
            ["Gate"],
        ),
        ('not(boolean(//Track[TrackType = "Audio"]))', ["Yard", "Empty"]),
        ('boolean(//Source[Location = "North"])', ["Gate"]),
        ('contains(//Source/Name, "ar")', ["Yard"]),
        ('boolean(//Track[DataTo >= "2026-01-01T00:00:15Z"])', ["Yard"]),
        ('boolean(//.[RecordingStatus = "Initiated"])', ["Empty"]),
    ],
)
async def test_find_recordings_filter(
    store: Store, clock: FakeClock, flt: str, expected: list[str]
) -> None:
    sessions = SearchSessions(store, clock=clock)
    assert await find(sessions, SearchScope(recording_information_filter=flt)) == expected


async def test_find_recordings_scope(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    assert await find(sessions, SearchScope()) == ["Gate", "Yard", "Empty"]
    await store.create_recording(RecordingConfig(source_id="other"), token="Job")
    receiver = await store.create_receiver(ReceiverConfig(), token="RCV1")
    await store.create_job(JobConfig("Job", sources=(JobSource(source_token=receiver.token),)))
    # A source matches a recording's SourceId or a job's SourceToken; union with recordings.
    scope = SearchScope(included_sources=("urn:cam:gate", "RCV1"), included_recordings=("Empty",))
    assert await find(sessions, scope) == ["Gate", "Empty", "Job"]
    with pytest.raises(InvalidSourceError):
        await sessions.find_recordings(SearchScope(included_sources=("urn:none",)), None, 10)
    with pytest.raises(InvalidTokenError):
        await sessions.find_recordings(SearchScope(included_recordings=("zz",)), None, 10)
    with pytest.raises(InvalidFilterError):
        await sessions.find_recordings(
            SearchScope(recording_information_filter="//Track"), None, 10
        )
    token = await sessions.find_recordings(SearchScope(), 1, 10)
    page = await sessions.get_results(token, SearchKind.RECORDINGS)
    assert len(page.results) == 1
