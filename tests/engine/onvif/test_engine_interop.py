"""Acceptance of issue #3 in one place: an independent client runs every operation of the five
services on ONE running Engine, over HTTP with Digest, every answer schema-valid (PF-03, GEN-10).

The client is tests/peers/onvif_zeep.py (zeep over the unmodified shared WSDLs, requests'
HTTP Digest); `validated_service` checks each answer, results and faults alike, against the
official XSDs. This is a smoke pass of every operation with one fault per service; the
per-service tests check the faults in depth. Device covers the issue's Profile G subset.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep.exceptions

from app.engine.runtime import Engine
from app.protocols.onvif.wsdl import (
    NS_DEVICE,
    NS_EVENTS,
    NS_RECEIVER,
    NS_RECORDING,
    NS_REPLAY,
    NS_SEARCH,
)
from tests.engine.onvif.harness import ACCOUNTS
from tests.engine.onvif.test_engine_interop_support import SIMCAM, device_url, running_engine
from tests.engine.onvif.test_recording_support import (
    ACTION_NOT_SUPPORTED,
    NO_RECORDING,
    UNKNOWN,
    UNKNOWN_TOKEN,
    call,
    fault,
    job_config,
    receiver_config,
    recording_config,
)
from tests.peers.onvif_zeep import schema_validator, validated_service

PROFILE_G = "onvif://www.onvif.org/Profile/G"
KEEP = dt.timedelta(seconds=10)
SERVICE_NAMES = {
    NS_DEVICE: "device",
    NS_EVENTS: "events",
    NS_RECORDING: "recording",
    NS_SEARCH: "search",
    NS_REPLAY: "replay",
    NS_RECEIVER: "receiver",
}
#: The Device operations the issue asks for (Profile G device set, spec §7.1); the other four
#: services are checked against every operation of their official WSDL binding.
DEVICE_SUBSET = frozenset(
    {
        "GetServices",
        "GetServiceCapabilities",
        "GetCapabilities",
        "GetDeviceInformation",
        "GetSystemDateAndTime",
        "GetScopes",
        "GetUsers",
        "CreateUsers",
        "DeleteUsers",
        "SetUser",
        "GetNetworkInterfaces",
        "GetHostname",
    }
)


class Device:
    """The running engine, its service addresses as GetServices lists them, and what was called."""

    def __init__(self, engine: Engine, xaddrs: dict[str, str]) -> None:
        self.engine = engine
        self.xaddrs = xaddrs
        #: service name → operations invoked on it (answered with a result or a fault).
        self.called: dict[str, set[str]] = {}

    def client(self, name: str, user: str | None = "admin") -> Any:
        secret = ACCOUNTS[user][0] if user is not None else None
        return _Counted(validated_service(name, self.xaddrs[name], user, secret), self, name)

    def binding_operations(self, name: str) -> set[str]:
        proxy = validated_service(name, self.xaddrs[name], None, None).proxy
        return set(proxy._binding._operations)


class _Counted:
    """A validated proxy that notes the operation names it is asked for."""

    def __init__(self, proxy: Any, device: Device, name: str) -> None:
        self._proxy = proxy
        self._called = device.called.setdefault(name, set())

    def __getattr__(self, operation: str) -> Any:
        self._called.add(operation)
        return getattr(self._proxy, operation)


async def test_every_operation_of_the_five_services_pf03_gen10(tmp_path: Path) -> None:
    """One Engine; Device subset + every RC/RS/RP/RX operation; answers valid; Digest auth."""
    # The schema validator takes seconds to build: once, off the loop, before the engine runs.
    await asyncio.to_thread(schema_validator)
    async with running_engine(tmp_path) as engine:
        proxy = validated_service("device", device_url(engine), "admin", ACCOUNTS["admin"][0])
        services = await call(proxy, "GetServices", IncludeCapability=False)
        device = Device(engine, {SERVICE_NAMES[s.Namespace]: s.XAddr for s in services})
        await device_profile_g_subset(device)
        await recording_control_every_operation(device)
        await receiver_every_operation(device)
        await search_every_operation_over_recorded_footage(device)
        await replay_every_operation(device)
        await protected_operation_refused_without_credentials(device)
    assert device.called["device"] >= DEVICE_SUBSET
    for name in ("recording", "search", "replay", "receiver"):
        missing = device.binding_operations(name) - device.called[name]
        assert not missing, f"{name} operations never called: {sorted(missing)}"


async def device_profile_g_subset(device: Device) -> None:
    """Device: every operation of the issue's subset, PRE_AUTH ones anonymously, one fault."""
    anonymous = device.client("device", None)
    clock = await call(anonymous, "GetSystemDateAndTime")
    now = dt.datetime.now(dt.UTC)
    utc = clock.UTCDateTime
    device_now = dt.datetime(
        utc.Date.Year,
        utc.Date.Month,
        utc.Date.Day,
        utc.Time.Hour,
        utc.Time.Minute,
        utc.Time.Second,
        tzinfo=dt.UTC,
    )
    assert abs((device_now - now).total_seconds()) < 5
    port = device.engine.http_port
    services = await call(anonymous, "GetServices", IncludeCapability=True)
    assert {s.Namespace for s in services} == set(SERVICE_NAMES)
    assert all(s.XAddr.startswith(f"http://127.0.0.1:{port}/onvif/") for s in services)
    assert all(s.Capabilities is not None for s in services)
    caps = await call(anonymous, "GetServiceCapabilities")
    assert caps.Security.HttpDigest is True
    legacy = await call(anonymous, "GetCapabilities", Category=["All"])
    assert legacy.Device.XAddr == device.xaddrs["device"]
    assert legacy.Events.XAddr == device.xaddrs["events"]
    hostname = await call(anonymous, "GetHostname")
    assert hostname.Name

    admin = device.client("device")
    info = await call(admin, "GetDeviceInformation")
    assert info.Manufacturer == "Custos"
    scopes = [s.ScopeItem for s in await call(admin, "GetScopes")]
    assert PROFILE_G in scopes
    await call(admin, "SetScopes", Scopes=["onvif://www.onvif.org/location/lab"])
    await call(admin, "AddScopes", ScopeItem=["onvif://www.onvif.org/name/custos-test"])
    after = [s.ScopeItem for s in await call(admin, "GetScopes")]
    assert {"onvif://www.onvif.org/location/lab", "onvif://www.onvif.org/name/custos-test"} <= set(
        after
    )
    await call(admin, "RemoveScopes", ScopeItem=["onvif://www.onvif.org/name/custos-test"])
    assert "onvif://www.onvif.org/name/custos-test" not in [
        s.ScopeItem for s in await call(admin, "GetScopes")
    ]
    mode = await call(admin, "GetDiscoveryMode")
    await call(admin, "SetDiscoveryMode", DiscoveryMode="NonDiscoverable")
    assert mode in ("Discoverable", "NonDiscoverable")
    interfaces = await call(admin, "GetNetworkInterfaces")
    assert interfaces and interfaces[0].token

    users = {u.Username: u.UserLevel for u in await call(admin, "GetUsers")}
    assert users == {"admin": "Administrator", "operator": "Operator", "viewer": "User"}
    await call(
        admin,
        "CreateUsers",
        User=[{"Username": "interop", "Password": "pw-1", "UserLevel": "User"}],
    )
    await call(
        admin,
        "SetUser",
        User=[{"Username": "interop", "Password": "pw-2", "UserLevel": "Operator"}],
    )
    as_new = validated_service("device", device.xaddrs["device"], "interop", "pw-2")
    assert (await call(as_new, "GetDeviceInformation")).Manufacturer == "Custos"
    await call(admin, "DeleteUsers", Username=["interop"])
    assert "interop" not in {u.Username for u in await call(admin, "GetUsers")}
    assert await fault(admin, "DeleteUsers", Username=["interop"]) == (
        "Sender",
        ("InvalidArgVal", "UsernameMissing"),
    )


async def recording_control_every_operation(device: Device) -> None:
    """RC-01..RC-22: recordings, tracks, jobs with AutoCreateReceiver, state, unsupported export."""
    rec = device.client("recording")
    caps = await call(rec, "GetServiceCapabilities")
    assert caps.DynamicRecordings is True and caps.DynamicTracks is True
    listed = {r.RecordingToken for r in await call(rec, "GetRecordings")}
    assert SIMCAM in listed

    config = recording_config(retention="P1DT2H")
    token = await call(rec, "CreateRecording", RecordingConfiguration=config)
    got = await call(rec, "GetRecordingConfiguration", RecordingToken=token)
    assert got.Source.Address == config["Source"]["Address"]
    assert got.MaximumRetentionTime == dt.timedelta(days=1, hours=2)
    await call(
        rec,
        "SetRecordingConfiguration",
        RecordingToken=token,
        RecordingConfiguration=recording_config(content="changed"),
    )
    assert (await call(rec, "GetRecordingConfiguration", RecordingToken=token)).Content == "changed"
    options = await call(rec, "GetRecordingOptions", RecordingToken=token)
    assert int(options.Track.SpareTotal) >= 1

    track = await call(
        rec,
        "CreateTrack",
        RecordingToken=token,
        TrackConfiguration={"TrackType": "Video", "Description": "second view"},
    )
    assert track == "VIDEO002"
    await call(
        rec,
        "SetTrackConfiguration",
        RecordingToken=token,
        TrackToken=track,
        TrackConfiguration={"TrackType": "Video", "Description": "renamed"},
    )
    got_track = await call(rec, "GetTrackConfiguration", RecordingToken=token, TrackToken=track)
    assert (got_track.TrackType, got_track.Description) == ("Video", "renamed")
    await call(rec, "DeleteTrack", RecordingToken=token, TrackToken=track)

    job = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(token))
    (source,) = job.JobConfiguration.Source
    receiver = source.SourceToken.Token
    assert receiver and source.SourceToken.Type == "http://www.onvif.org/ver10/schema/Receiver"
    assert job.JobToken in {j.JobToken for j in await call(rec, "GetRecordingJobs")}
    await call(
        rec,
        "SetRecordingJobConfiguration",
        JobToken=job.JobToken,
        JobConfiguration=job_config(token, priority=5, sources=[plain_source(source)]),
    )
    got_job = await call(rec, "GetRecordingJobConfiguration", JobToken=job.JobToken)
    assert got_job.Priority == 5 and got_job.RecordingToken == token
    await call(rec, "SetRecordingJobMode", JobToken=job.JobToken, Mode="Idle")
    state = await call(rec, "GetRecordingJobState", JobToken=job.JobToken)
    assert (state.RecordingToken, state.State) == (token, "Idle")

    assert await fault(rec, "GetRecordingConfiguration", RecordingToken=UNKNOWN) == NO_RECORDING
    code, subcodes = await fault(
        rec,
        "OverrideSegmentDuration",
        TargetSegmentDuration="PT10S",
        Expiration="PT1H",
        RecordingConfiguration=token,
    )
    assert (code, subcodes[0]) == ("Receiver", "ActionNotSupported")
    export = {
        "SearchScope": {"IncludedRecordings": [token]},
        "FileFormat": "ONVIF",
        "StorageDestination": {"StorageToken": "Storage1"},
    }
    day = {"From": "2024-01-01T00:00:00Z", "Until": "2024-01-02T00:00:00Z"}
    # RC-19..21: a bad storage destination / unknown operation token is InvalidArgVal once the
    # export service is served, ActionNotSupported while it is not (both allowed by the spec).
    for operation, kwargs in (
        ("ExportRecordedData", export),
        ("StopExportRecordedData", {"OperationToken": UNKNOWN}),
        ("GetExportRecordedDataState", {"OperationToken": UNKNOWN}),
    ):
        code, subcodes = await fault(rec, operation, **kwargs)
        assert (code, subcodes[:1]) in (
            ("Sender", ("InvalidArgVal",)),
            ("Receiver", ACTION_NOT_SUPPORTED[1]),
        ), operation
    for operation, kwargs in (
        ("ListRecordedSegments", {"Time": day, "RecordingToken": token}),
        ("ExportRecordedSegments", {"Time": day, "RecordingToken": token}),
        ("StopExportRecordedSegments", {"OperationToken": UNKNOWN}),
    ):
        code, subcodes = await fault(rec, operation, **kwargs)
        assert (code, subcodes[:1]) == ("Receiver", ACTION_NOT_SUPPORTED[1]), operation

    await call(rec, "DeleteRecordingJob", JobToken=job.JobToken)
    await call(rec, "DeleteRecording", RecordingToken=token)
    assert token not in {r.RecordingToken for r in await call(rec, "GetRecordings")}


def plain_source(source: Any) -> dict[str, Any]:
    """A job source answered by the device, as request values (the receiver it created)."""
    return {
        "SourceToken": {"Token": source.SourceToken.Token, "Type": source.SourceToken.Type},
        "Tracks": [],
    }


async def receiver_every_operation(device: Device) -> None:
    """RX-01..RX-08: create, read, configure, mode, state, delete; unknown token fault."""
    recv = device.client("receiver")
    caps = await call(recv, "GetServiceCapabilities")
    assert caps.SupportedReceivers >= 1 and caps.RTP_RTSP_TCP is True
    created = await call(recv, "CreateReceiver", Configuration=receiver_config())
    assert created.Configuration.MediaUri == "rtsp://192.0.2.10/live"
    assert created.Token in {r.Token for r in await call(recv, "GetReceivers")}
    new_uri = "rtsp://192.0.2.11:8554/other?x=1"
    await call(
        recv,
        "ConfigureReceiver",
        ReceiverToken=created.Token,
        Configuration=receiver_config(uri=new_uri),
    )
    got = await call(recv, "GetReceiver", ReceiverToken=created.Token)
    assert got.Configuration.MediaUri == new_uri and got.Configuration.Mode == "NeverConnect"
    await call(recv, "SetReceiverMode", ReceiverToken=created.Token, Mode="NeverConnect")
    state = await call(recv, "GetReceiverState", ReceiverToken=created.Token)
    assert (state.State, state.AutoCreated) == ("NotConnected", False)
    await call(recv, "DeleteReceiver", ReceiverToken=created.Token)
    assert await fault(recv, "GetReceiver", ReceiverToken=created.Token) == UNKNOWN_TOKEN


async def search_every_operation_over_recorded_footage(device: Device) -> None:
    """RS-01..RS-13 on the simulated camera's recording: both directions, start state, faults."""
    search = device.client("search")
    caps = await call(search, "GetServiceCapabilities")
    assert caps.MetadataSearch is False
    summary = await call(search, "GetRecordingSummary")
    assert summary.NumberRecordings >= 1 and summary.DataFrom <= summary.DataUntil
    info = await call(search, "GetRecordingInformation", RecordingToken=SIMCAM)
    video = next(t for t in info.Track if t.TrackType == "Video")
    assert info.EarliestRecording == video.DataFrom and video.DataFrom < video.DataTo
    middle = video.DataFrom + (video.DataTo - video.DataFrom) / 2
    attrs = await call(search, "GetMediaAttributes", RecordingTokens=[SIMCAM], Time=middle)
    assert attrs[0].RecordingToken == SIMCAM
    assert "Video" in {a.TrackInformation.TrackType for a in attrs[0].TrackAttributes}

    ended = await call(search, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    state = await call(search, "GetSearchState", SearchToken=ended)
    assert state in ("Queued", "Searching", "Completed")
    await call(search, "EndSearch", SearchToken=ended)
    token = await call(search, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    page = await call(
        search, "GetRecordingSearchResults", SearchToken=token, MaxResults=10, WaitTime=KEEP
    )
    assert page.SearchState == "Completed"
    assert SIMCAM in {r.RecordingToken for r in page.RecordingInformation}

    start, end = video.DataFrom - dt.timedelta(seconds=1), video.DataTo + dt.timedelta(seconds=1)
    forward = await find_events(search, start, end, include_start_state=False)
    assert forward and all(r.RecordingToken == SIMCAM for r in forward)
    times = [r.Time for r in forward]
    assert times == sorted(times)
    backward = await find_events(search, end, start, include_start_state=False)
    assert [r.Time for r in backward] == sorted(times, reverse=True)
    with_state = await find_events(search, middle, end, include_start_state=True)
    assert any(r.StartStateEvent for r in with_state)

    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ptz = {
        "MinPosition": {"PanTilt": {"x": -1, "y": -1}},
        "MaxPosition": {"PanTilt": {"x": 1, "y": 1}},
        "EnterOrExit": False,
    }
    metadata = {"MetadataStreamFilter": "boolean(//Object)"}
    unsupported: tuple[tuple[str, dict[str, Any]], ...] = (
        ("FindPTZPosition", {"StartPoint": when, "Scope": {}, "SearchFilter": ptz}),
        ("GetPTZPositionSearchResults", {"SearchToken": UNKNOWN}),
        ("FindMetadata", {"StartPoint": when, "Scope": {}, "MetadataFilter": metadata}),
        ("GetMetadataSearchResults", {"SearchToken": UNKNOWN}),
        ("SearchImageByImage", {"StartPoint": when, "TargetImageURI": "http://192.0.2.1/a.jpg"}),
        ("GetImageSearchResults", {"SearchToken": UNKNOWN}),
        ("SearchImageByNL", {"StartPoint": when, "Text": "a red car"}),
        ("GetNLSearchResults", {"SearchToken": UNKNOWN}),
    )
    for operation, kwargs in unsupported:
        if operation.startswith(("Find", "SearchImage")):
            kwargs["KeepAliveTime"] = KEEP
        code, subcodes = await fault(search, operation, **kwargs)
        assert (code, subcodes[0]) == ("Receiver", "ActionNotSupported"), operation
    assert await fault(search, "EndSearch", SearchToken=ended) == (
        "Sender",
        ("InvalidArgVal", "InvalidToken"),
    )


async def find_events(
    search: Any, start: dt.datetime, end: dt.datetime, *, include_start_state: bool
) -> list[Any]:
    """FindEvents, then GetEventSearchResults until Completed (RS-07/08)."""
    token = await call(
        search,
        "FindEvents",
        StartPoint=start,
        EndPoint=end,
        Scope={"IncludedRecordings": [SIMCAM]},
        SearchFilter={},
        IncludeStartState=include_start_state,
        KeepAliveTime=KEEP,
    )
    results: list[Any] = []
    while True:
        page = await call(
            search,
            "GetEventSearchResults",
            SearchToken=token,
            MinResults=1,
            MaxResults=100,
            WaitTime=dt.timedelta(seconds=5),
        )
        results.extend(page.Result or [])
        if page.SearchState == "Completed":
            return results


async def replay_every_operation(device: Device) -> None:
    """RP-01..RP-10: capabilities, URI of the recording on the engine's RTSP port, configuration."""
    replay = device.client("replay")
    caps = await call(replay, "GetServiceCapabilities")
    assert caps.ReversePlayback is True and caps.RTP_RTSP_TCP is True
    setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    uri = await call(replay, "GetReplayUri", StreamSetup=setup, RecordingToken=SIMCAM)
    assert device.engine.rtsp is not None
    assert uri.startswith(f"rtsp://127.0.0.1:{device.engine.rtsp.port}/") and uri.endswith(SIMCAM)
    await call(
        replay, "SetReplayConfiguration", Configuration={"SessionTimeout": dt.timedelta(minutes=2)}
    )
    config = await call(replay, "GetReplayConfiguration")
    assert config.SessionTimeout == dt.timedelta(minutes=2)
    assert await fault(replay, "GetReplayUri", StreamSetup=setup, RecordingToken=UNKNOWN) == (
        NO_RECORDING
    )


async def protected_operation_refused_without_credentials(device: Device) -> None:
    """GEN-10/11: anonymous → HTTP 401 with a Digest challenge; viewer → NotAuthorized fault."""
    anonymous = device.client("recording", None)
    with pytest.raises(zeep.exceptions.TransportError) as refused:
        await call(anonymous, "GetRecordings")
    assert refused.value.status_code == 401
    response = await asyncio.to_thread(
        requests.post,
        device.xaddrs["recording"],
        data=(
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
            f'<GetRecordings xmlns="{NS_RECORDING}"/></s:Body></s:Envelope>'
        ).encode(),
        headers={"Content-Type": "application/soap+xml"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Digest ")
    viewer = device.client("recording", "viewer")
    code, subcodes = await fault(
        viewer, "CreateRecording", RecordingConfiguration=recording_config()
    )
    assert (code, subcodes) == ("Sender", ("NotAuthorized",))
