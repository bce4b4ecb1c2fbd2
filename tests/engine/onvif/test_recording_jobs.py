"""Recording Control + Receiver end to end: a simulated camera recorded through SOAP, restart, auth.

The camera is app.engine.simcam served by app.engine.rtsp on a loopback port; the client is the
independent zeep client over HTTP Digest. Waits are on the engine's event bus, never on sleeps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions

from app.core.media import TrackKind
from tests.engine.jobs.helpers import job_state_is, next_matching, receiver_state_is, rtsp_camera
from tests.engine.onvif.test_recording_support import (
    NOT_AUTHORIZED,
    RECEIVER_TYPE,
    call,
    fault,
    job_config,
    onvif_stack,
    plain,
    receiver_config,
    recording_config,
    snapshot,
    texts,
)
from tests.peers.onvif_zeep import service


async def test_auto_receiver_records_camera_appendix_c4(tmp_path: Path) -> None:
    """Appendix C #4, RC-12, RC-17, RC-18, RX-06.3, PF-24: job → ConfigureReceiver → Active."""
    async with rtsp_camera() as url, onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        job = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(token))
        (source,) = job.JobConfiguration.Source
        assert source.SourceToken.Type == RECEIVER_TYPE
        auto = source.SourceToken.Token
        await call(
            recv,
            "ConfigureReceiver",
            ReceiverToken=auto,
            Configuration=receiver_config(uri=url, mode="AutoConnect"),
        )
        got = await call(recv, "GetReceiver", ReceiverToken=auto)
        assert got.Configuration.MediaUri == url and got.Configuration.Mode == "AutoConnect"
        # AutoConnect and no Active job: nobody needs the stream yet (RX-G2).
        state = await call(recv, "GetReceiverState", ReceiverToken=auto)
        assert (state.State, state.AutoCreated) == ("NotConnected", True)

        with s.bus.subscribe() as sub:
            await call(rec, "SetRecordingJobMode", JobToken=job.JobToken, Mode="Active")
            await next_matching(sub, job_state_is(job.JobToken, "Active"))
            status = await call(rec, "GetRecordingJobState", JobToken=job.JobToken)
            assert (status.RecordingToken, status.State) == (token, "Active")
            (src,) = status.Sources
            assert src.SourceToken.Token == auto and src.State == "Active"
            tracks = {t.Destination: t.State for t in src.Tracks.Track}
            assert tracks == {"VIDEO001": "Active", "AUDIO001": "Active", "META001": "Idle"}
            state = await call(recv, "GetReceiverState", ReceiverToken=auto)
            assert (state.State, state.AutoCreated) == ("Connected", True)

            await call(rec, "SetRecordingJobMode", JobToken=job.JobToken, Mode="Idle")
            await next_matching(sub, receiver_state_is(auto, "NotConnected"))
        status = await call(rec, "GetRecordingJobState", JobToken=job.JobToken)
        assert status.State == "Idle"

        await s.store.flush()
        media = {m.track: m for m in await s.store.track_media(token)}
        assert media["VIDEO001"].frame_count > 0 and media["VIDEO001"].kind is TrackKind.VIDEO
        assert media["AUDIO001"].frame_count > 0
        assert media["META001"].frame_count == 0
        first = await s.store.first_frame(token, "VIDEO001")
        assert first is not None and first.keyframe


async def test_everything_survives_a_restart_sm09(tmp_path: Path) -> None:
    """SM-09, RX-G7, RX-06.2: recordings, tracks, jobs, receivers and their texts persist."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        created = await s.raw_ok(
            "recording",
            "<trc:CreateRecording><trc:RecordingConfiguration><tt:Source>"
            "<tt:SourceId>urn:x</tt:SourceId><tt:Name>Gate</tt:Name><tt:Location/>"
            "<tt:Description/><tt:Address>http://192.0.2.1/</tt:Address></tt:Source>"
            "<tt:Content>c</tt:Content><tt:MaximumRetentionTime>PT60M</tt:MaximumRetentionTime>"
            "</trc:RecordingConfiguration></trc:CreateRecording>",
        )
        (token,) = texts(created, "trc:RecordingToken")
        await call(
            rec,
            "CreateTrack",
            RecordingToken=token,
            TrackConfiguration={"TrackType": "Audio", "Description": "second mic"},
        )
        job = await call(
            rec, "CreateRecordingJob", JobConfiguration=job_config(token, mode="Active", priority=3)
        )
        auto = job.JobConfiguration.Source[0].SourceToken.Token
        # NeverConnect: the job stays Active in mode without anything to connect to.
        await call(
            recv,
            "ConfigureReceiver",
            ReceiverToken=auto,
            Configuration=receiver_config(uri="rtsp://192.0.2.7:554/" + "p" * 100),
        )
        manual = await call(
            recv, "CreateReceiver", Configuration=receiver_config(mode="NeverConnect")
        )
        await call(recv, "SetReceiverMode", ReceiverToken=manual.Token, Mode="AlwaysConnect")
        await call(recv, "SetReceiverMode", ReceiverToken=manual.Token, Mode="NeverConnect")
        before = await snapshot(s)

    async with onvif_stack(tmp_path, generation=1) as s:
        assert await snapshot(s) == before
        got = await s.raw_ok(
            "recording",
            f"<trc:GetRecordingConfiguration><trc:RecordingToken>{token}</trc:RecordingToken>"
            "</trc:GetRecordingConfiguration>",
        )
        assert texts(got, "trc:RecordingConfiguration/tt:MaximumRetentionTime") == ["PT60M"]
        recv = s.client("receiver")
        state = await call(recv, "GetReceiverState", ReceiverToken=auto)
        assert state.AutoCreated is True
        state = await call(recv, "GetReceiverState", ReceiverToken=manual.Token)
        assert (state.State, state.AutoCreated) == ("NotConnected", False)
        (_, jobs, receivers) = before
        assert jobs[0]["JobConfiguration"]["Mode"] == "Active"
        assert receivers[1]["Configuration"]["Mode"] == "NeverConnect"


def _status_of(fn: Any, **kwargs: Any) -> int:
    with pytest.raises(zeep.exceptions.TransportError) as info:
        fn(**kwargs)
    return int(info.value.status_code)


async def test_user_level_may_read_not_change_gen11_pf15(tmp_path: Path) -> None:
    """GEN-10, GEN-11, PF-15: User reads, gets NotAuthorized on ACTUATE; no credentials → 401."""
    async with onvif_stack(tmp_path) as s:
        admin = s.client("recording")
        token = await call(admin, "CreateRecording", RecordingConfiguration=recording_config())
        job = (await call(admin, "CreateRecordingJob", JobConfiguration=job_config(token))).JobToken
        receiver = (
            await call(s.client("receiver"), "CreateReceiver", Configuration=receiver_config())
        ).Token
        before = await snapshot(s)

        viewer = s.client("recording", "viewer")
        viewer_recv = s.client("receiver", "viewer")
        reads: list[tuple[Any, str, dict[str, Any]]] = [
            (viewer, "GetRecordings", {}),
            (viewer, "GetRecordingConfiguration", {"RecordingToken": token}),
            (viewer, "GetRecordingOptions", {"RecordingToken": token}),
            (viewer, "GetTrackConfiguration", {"RecordingToken": token, "TrackToken": "VIDEO001"}),
            (viewer, "GetRecordingJobs", {}),
            (viewer, "GetRecordingJobConfiguration", {"JobToken": job}),
            (viewer, "GetRecordingJobState", {"JobToken": job}),
            (viewer_recv, "GetReceivers", {}),
            (viewer_recv, "GetReceiver", {"ReceiverToken": receiver}),
            (viewer_recv, "GetReceiverState", {"ReceiverToken": receiver}),
        ]
        for proxy, operation, kwargs in reads:
            await call(proxy, operation, **kwargs)
        track = {"TrackType": "Video", "Description": ""}
        writes: list[tuple[Any, str, dict[str, Any]]] = [
            (viewer, "CreateRecording", {"RecordingConfiguration": recording_config()}),
            (viewer, "DeleteRecording", {"RecordingToken": token}),
            (
                viewer,
                "SetRecordingConfiguration",
                {"RecordingToken": token, "RecordingConfiguration": recording_config()},
            ),
            (viewer, "CreateTrack", {"RecordingToken": token, "TrackConfiguration": track}),
            (viewer, "DeleteTrack", {"RecordingToken": token, "TrackToken": "VIDEO001"}),
            (
                viewer,
                "SetTrackConfiguration",
                {"RecordingToken": token, "TrackToken": "VIDEO001", "TrackConfiguration": track},
            ),
            (viewer, "CreateRecordingJob", {"JobConfiguration": job_config(token)}),
            (viewer, "DeleteRecordingJob", {"JobToken": job}),
            (
                viewer,
                "SetRecordingJobConfiguration",
                {"JobToken": job, "JobConfiguration": job_config(token)},
            ),
            (viewer, "SetRecordingJobMode", {"JobToken": job, "Mode": "Active"}),
            (viewer_recv, "CreateReceiver", {"Configuration": receiver_config()}),
            (viewer_recv, "DeleteReceiver", {"ReceiverToken": receiver}),
            (
                viewer_recv,
                "ConfigureReceiver",
                {"ReceiverToken": receiver, "Configuration": receiver_config()},
            ),
            (viewer_recv, "SetReceiverMode", {"ReceiverToken": receiver, "Mode": "AutoConnect"}),
        ]
        for proxy, operation, kwargs in writes:
            assert await fault(proxy, operation, **kwargs) == NOT_AUTHORIZED, operation

        # No credentials, or a wrong password: HTTP 401 before anything runs (GEN-10).
        anonymous = s.anonymous("recording")
        assert await asyncio.to_thread(_status_of, anonymous.GetRecordings) == 401
        assert (
            await asyncio.to_thread(
                _status_of,
                anonymous.CreateRecording,
                RecordingConfiguration=recording_config(),
            )
            == 401
        )
        wrong = service("recording", s.served.address("recording"), "admin", "not-the-password")
        assert (
            await asyncio.to_thread(_status_of, wrong.DeleteRecording, RecordingToken=token) == 401
        )
        assert await snapshot(s) == before

        # Operator is enough for ACTUATE (GEN-11).
        operator = s.client("recording", "operator")
        created = await call(operator, "CreateRecording", RecordingConfiguration=recording_config())
        assert created in [i["RecordingToken"] for i in plain(await call(admin, "GetRecordings"))]
