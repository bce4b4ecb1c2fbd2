"""The app's OnvifClient against the real Engine: every Profile G client call the GUI makes.

The engine runs in-process on loopback ports 0 with a simulated camera whose footage is already
recorded; the client talks SOAP over HTTP to it exactly as to a remote NVR (ARCHITECTURE: the
GUI reaches the embedded engine only this way). Recording jobs record a second simulated camera
served over RTSP, and the job's state change arrives through a PullPoint subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.time import NS_PER_SECOND
from app.engine.runtime import Engine
from app.protocols.onvif.wsdl import NS_DEVICE, NS_RECEIVER, NS_RECORDING, NS_REPLAY, NS_SEARCH
from app.remote.onvif import models as m
from app.remote.onvif.client import OnvifClient
from app.remote.onvif.errors import OnvifFault
from tests.engine.jobs.helpers import rtsp_camera
from tests.engine.onvif.test_engine_interop_support import (
    SIMCAM,
    device_url,
    password,
    running_engine,
)

#: Longest wait for one expected notification (the machine is shared).
EVENT_WAIT_PULLS = 30


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path) as running:
        yield running


@pytest.mark.parametrize("auth", ["digest", "wsse"])
async def test_search_side_of_the_gui_rs_pf12_pf13(engine: Engine, auth: str) -> None:
    """connect, device info, recordings, summary, information, attributes, searches, replay."""
    async with OnvifClient(device_url(engine), "viewer", password("viewer"), auth=auth) as nvr:  # type: ignore[arg-type]
        services = await nvr.connect()
        assert abs(nvr.transport.clock_offset_ns) < 5 * NS_PER_SECOND
        namespaces = {s.namespace for s in services}
        assert {NS_DEVICE, NS_RECORDING, NS_SEARCH, NS_REPLAY, NS_RECEIVER} <= namespaces
        port = engine.http_port
        assert nvr.xaddr("search") == f"http://127.0.0.1:{port}/onvif/search_service"
        search_caps = next(s for s in services if s.namespace == NS_SEARCH).capabilities
        assert m.flag(search_caps.get("MetadataSearch")) is False

        info = await nvr.get_device_information()
        assert (info.manufacturer, info.model) == ("Custos", "Custos Recorder Engine")
        (item,) = await nvr.get_recordings()
        assert item.token == SIMCAM and item.source.name == "Simulated camera"
        assert [t.token for t in item.tracks] == ["VIDEO001", "AUDIO001", "META001"]

        summary = await nvr.get_recording_summary()
        assert summary.number_recordings == 1
        recording = await nvr.get_recording_information(SIMCAM)
        video = next(t for t in recording.tracks if t.track_type == "Video")
        assert video.data_from is not None and video.data_to is not None
        assert recording.earliest == video.data_from and recording.latest == video.data_to
        assert summary.data_from == recording.earliest
        middle = (video.data_from + video.data_to) // 2
        (attrs,) = await nvr.get_media_attributes([SIMCAM], middle)
        assert attrs.recording_token == SIMCAM and "Video" in attrs.track_types

        found = await nvr.find_recordings()
        assert [r.token for r in found] == [SIMCAM]
        assert found[0].earliest == recording.earliest

        start, end = video.data_from - NS_PER_SECOND, video.data_to + NS_PER_SECOND
        forward = await nvr.find_events(start, end, recordings=[SIMCAM])
        assert forward and all(e.recording_token == SIMCAM for e in forward)
        times = [e.time for e in forward]
        assert all(t is not None for t in times) and times == sorted(times)  # type: ignore[type-var]
        topics = {e.event.topic for e in forward}
        assert "tns1:RecordingHistory/Track/State" in topics
        backward = await nvr.find_events(end, start, recordings=[SIMCAM])
        assert [e.time for e in backward] == sorted(times, reverse=True)  # type: ignore[type-var]
        assert not any(e.start_state for e in forward)
        with_state = await nvr.find_events(
            middle, end, recordings=[SIMCAM], include_start_state=True
        )
        states = [e for e in with_state if e.start_state]
        assert states and all(e.time == middle for e in states)
        assert {e.event.data.get("IsDataPresent") for e in states if e.track_token} == {"true"}
        only_history = await nvr.find_events(
            start, end, recordings=[SIMCAM], topic="tns1:RecordingHistory/Recording//."
        )
        assert {e.event.topic for e in only_history} == {"tns1:RecordingHistory/Recording/State"}

        uri = await nvr.get_replay_uri(SIMCAM)
        assert engine.rtsp is not None
        assert uri == f"rtsp://127.0.0.1:{engine.rtsp.port}/replay/{SIMCAM}"
        with pytest.raises(OnvifFault) as missing:
            await nvr.get_replay_uri("nothing-here")
        assert missing.value.not_found and missing.value.has_subcode("NoRecording")


async def test_recording_job_auto_receiver_and_pullpoint_job_state_rc12_ev(
    engine: Engine,
) -> None:
    """AutoCreateReceiver job → ConfigureReceiver → Active; JobState arrives on a PullPoint."""
    async with (
        rtsp_camera() as camera_url,
        OnvifClient(device_url(engine), "operator", password("operator")) as nvr,
    ):
        await nvr.connect()
        token = await nvr.create_recording(
            m.RecordingSource("urn:test:cam2", "Cam 2", "Yard", "second camera", camera_url),
            "Yard camera",
            "P30D",
        )
        (created,) = [r for r in await nvr.get_recordings() if r.token == token]
        assert created.maximum_retention_time == "P30D"  # read back verbatim (PF-07)
        job = await nvr.create_recording_job(token, "Idle", 1, [m.JobSource(None, None, True, ())])
        (source,) = job.sources
        assert source.source_type == "http://www.onvif.org/ver10/schema/Receiver"
        receiver = source.source_token
        assert receiver is not None
        await nvr.configure_receiver(
            receiver, m.receiver_configuration(camera_url, mode="AutoConnect")
        )
        assert (await nvr.get_receiver_state(receiver)) == m.ReceiverState("NotConnected", True)
        (listed,) = [r for r in await nvr.get_receivers() if r.token == receiver]
        assert listed.media_uri == camera_url and listed.mode == "AutoConnect"

        pull_point = await nvr.create_pull_point("PT60S")
        try:
            await nvr.set_recording_job_mode(job.token, "Active")
            active = await _next_job_state(nvr, pull_point, job.token, "Active")
            assert active.property_operation == "Changed"
            state = await nvr.get_recording_job_state(job.token)
            assert state == m.JobState(token, "Active")
            assert (await nvr.get_receiver_state(receiver)).state == "Connected"
            await nvr.set_recording_job_mode(job.token, "Idle")
            await _next_job_state(nvr, pull_point, job.token, "Idle")
        finally:
            await nvr.unsubscribe(pull_point)
        with pytest.raises(OnvifFault):
            await nvr.pull_messages(pull_point, wait="PT1S")
        assert [j.token for j in await nvr.get_recording_jobs()] == [job.token]
        await nvr.delete_recording_job(job.token)
        await nvr.delete_recording(token)
        assert [r.token for r in await nvr.get_recordings()] == [SIMCAM]


async def _next_job_state(
    nvr: OnvifClient, pull_point: m.PullPoint, job: str, state: str
) -> m.Notification:
    """The next JobState notification of `job` reaching `state` (others are skipped)."""
    for _ in range(EVENT_WAIT_PULLS):
        for note in await nvr.pull_messages(pull_point, wait="PT2S"):
            if (
                note.topic == "tns1:RecordingConfig/JobState"
                and note.source.get("RecordingJobToken") == job
                and note.data.get("State") == state
            ):
                return note
    raise AssertionError(f"no JobState {state} of {job} within {EVENT_WAIT_PULLS} pulls")


async def test_concurrent_digest_requests_each_use_their_own_nonce_count(engine: Engine) -> None:
    """The engine refuses an nc lower than one it saw (replay); 20 calls at once all pass."""
    async with OnvifClient(device_url(engine), "viewer", password("viewer")) as nvr:
        await nvr.connect()
        before = nvr.transport.requests
        answers = await asyncio.gather(*(nvr.get_recording_summary() for _ in range(20)))
        assert {a.number_recordings for a in answers} == {1}
        # One challenge round trip at most per request that had no idle Digest session.
        assert nvr.transport.requests - before <= 40
        again = nvr.transport.requests
        await nvr.get_recording_summary()
        assert nvr.transport.requests == again + 1  # sequential calls reuse a pooled nonce
