"""onvif-zeep-async (ONVIFCamera, the client Home Assistant uses) against a running Engine.

The library ships its own, older WSDLs and authenticates SOAP calls only with a WS-Security
UsernameToken (PasswordDigest by default, PasswordText with encrypt=False); it has no HTTP Digest
for SOAP (only for snapshot URIs). The tests drive its native path, the same client with its
aiohttp session given HTTP Digest instead (a deployment behind a Digest-only proxy, and the
engine's GEN-10 order: Digest checked before wsse), and the PasswordText refusal (DESIGN.md:
text passwords are not accepted). Which path the engine used is read from its Authenticator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import zeep.exceptions
from aiohttp import DigestAuthMiddleware
from onvif import ONVIFCamera, ONVIFService

from app.engine.onvif.security import Caller
from app.engine.runtime import Engine
from app.protocols.onvif.wsdl import NS_RECORDING, NS_SEARCH
from tests.engine.onvif.test_engine_interop_support import (
    SIMCAM,
    device_url,
    password,
    running_engine,
)

#: What HA asks its PullPoint subscription for (its interval is minutes; the engine caps it).
PULLPOINT_INTERVAL = dt.timedelta(seconds=60)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path, keyframes=1) as running:
        yield running


def auth_methods(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets the auth method ('wsse', 'digest', 'anonymous') of every request."""
    assert engine.onvif is not None
    authenticator = engine.onvif.authenticator
    seen: list[str] = []
    original: Callable[..., Caller] = authenticator.caller

    def caller(*args: Any) -> Caller:
        who = original(*args)
        seen.append(who.method)
        return who

    monkeypatch.setattr(authenticator, "caller", caller)
    return seen


def camera(engine: Engine, user: str = "admin", *, encrypt: bool = True) -> ONVIFCamera:
    parts = urlsplit(device_url(engine))
    assert parts.hostname is not None and parts.port is not None
    return ONVIFCamera(
        parts.hostname,
        parts.port,
        user,
        password(user),
        encrypt=encrypt,
        no_cache=True,  # no SQLite WSDL cache in the user's home directory
        adjust_time=True,
    )


def digest_only(service: ONVIFService, user: str) -> ONVIFService:
    """The service's calls without the UsernameToken, answered with HTTP Digest instead."""
    assert service.zeep_client is not None
    service.zeep_client.wsse = None
    service._session._middlewares = (DigestAuthMiddleware(user, password(user)),)
    return service


async def test_home_assistant_flow_with_username_token_gen10(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #3 acceptance: connects, device information, services, lists recordings (wsse)."""
    methods = auth_methods(engine, monkeypatch)
    cam = camera(engine)
    try:
        await cam.update_xaddrs()  # GetSystemDateAndTime unauthenticated, then GetServices
        assert cam.dt_diff is not None and abs(cam.dt_diff.total_seconds()) < 5
        assert cam.xaddrs[NS_RECORDING].endswith("/onvif/recording_service")
        devicemgmt = await cam.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        assert (info.Manufacturer, info.Model) == ("Custos", "Custos Recorder Engine")
        services = await devicemgmt.GetServices({"IncludeCapability": True})
        assert {NS_RECORDING, NS_SEARCH} <= {s.Namespace for s in services}
        capabilities = await cam.get_capabilities()
        assert capabilities is not None
        assert capabilities["Events"]["WSPullPointSupport"] is True

        recording = await cam.create_recording_service()
        recordings = await recording.GetRecordings()
        (simcam,) = [r for r in recordings if r.RecordingToken == SIMCAM]
        assert simcam.Configuration.Source.Name == "Simulated camera"
        tracks = [(t.TrackToken, t.Configuration.TrackType) for t in simcam.Tracks.Track]
        assert tracks == [("VIDEO001", "Video"), ("AUDIO001", "Audio"), ("META001", "Metadata")]
        search = await cam.create_search_service()
        summary = await search.GetRecordingSummary()
        assert summary.NumberRecordings == 1 and summary.DataFrom < summary.DataUntil
    finally:
        await cam.close()
    # The first GetSystemDateAndTime is sent without credentials (PRE_AUTH); all else is wsse.
    assert methods[0] == "anonymous" and set(methods[1:]) == {"wsse"}, methods


async def test_same_client_over_http_digest_pf12(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's calls with HTTP Digest (401 challenge once, then nc counting) instead."""
    methods = auth_methods(engine, monkeypatch)
    assert engine.onvif is not None
    faults_before = engine.onvif.faults
    cam = camera(engine, "viewer")
    try:
        await cam.update_xaddrs()
        recording = digest_only(await cam.create_recording_service(), "viewer")
        for _ in range(3):
            (item,) = await recording.GetRecordings()
            assert item.RecordingToken == SIMCAM
        devicemgmt = digest_only(await cam.create_devicemgmt_service(), "viewer")
        info = await devicemgmt.GetDeviceInformation()
        assert info.Manufacturer == "Custos"
    finally:
        await cam.close()
    # Per service: one anonymous request answered 401 + challenge, then Digest without 401s.
    # GetSystemDateAndTime anonymous, GetServices with wsse, then per service one anonymous
    # request answered 401 + challenge and Digest with a counted nc, never another 401.
    assert methods == [
        "anonymous",
        "wsse",
        "anonymous",
        "digest",
        "digest",
        "digest",
        "anonymous",
        "digest",
    ]
    assert engine.onvif.faults - faults_before == 2  # the two challenges, nothing else


async def test_password_text_is_refused_and_pullpoint_events_work_ev(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PasswordText → Sender/NotAuthorized (DESIGN.md); HA's PullPoint manager gets events."""
    plain = camera(engine, encrypt=False)
    try:
        devicemgmt = await plain.create_devicemgmt_service()
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await devicemgmt.GetDeviceInformation()
        assert [q.localname for q in refused.value.subcodes or ()] == ["NotAuthorized"]
    finally:
        await plain.close()

    cam = camera(engine)
    try:
        await cam.update_xaddrs()
        manager = await cam.create_pullpoint_manager(PULLPOINT_INTERVAL, lambda: None)
        try:
            await manager.set_synchronization_point()
            recording = await cam.create_recording_service()
            config = {
                "Source": {
                    "SourceId": "urn:test:ha",
                    "Name": "HA",
                    "Location": "here",
                    "Description": "via onvif-zeep-async",
                    "Address": "rtsp://192.0.2.1/live",
                },
                "Content": "HA",
                "MaximumRetentionTime": "PT0S",
            }
            token = await recording.CreateRecording({"RecordingConfiguration": config})
            pulled = await manager.get_service().PullMessages(
                {"Timeout": "PT5S", "MessageLimit": 20}
            )
            assert pulled.CurrentTime is not None and pulled.TerminationTime is not None
            created = [
                m
                for m in pulled.NotificationMessage
                if m.Topic._value_1.endswith("RecordingConfig/CreateRecording")
            ]
            assert len(created) == 1
            # Its old schema knows tt:Message, so zeep hands over an object, not XML.
            message = created[0].Message._value_1
            (item,) = message.Source.SimpleItem
            assert (item.Name, item.Value) == ("RecordingToken", token)
        finally:
            await manager.shutdown()
    finally:
        await cam.close()
