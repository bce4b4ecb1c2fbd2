"""The typed ONVIF client against fake services on the real SOAP framework (loopback, port 0).

The fakes answer through app.engine.onvif.server, so requests and answers are real SOAP 1.2
serialized from the official WSDLs; they record what the client sent so the Profile G client
rules (§7.2: every mandatory FindEvents child, paging until Completed, Digest nc) are asserted
on the wire.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from app.core.time import NS_PER_SECOND, FakeClock, SystemClock, format_iso, parse_iso
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.protocols.onvif.wsdl import NS_DEVICE, NS_RECORDING, NS_REPLAY, NS_SEARCH
from app.protocols.soap.fault import SoapFault
from app.remote.onvif.client import OnvifClient, duration_s
from app.remote.onvif.errors import NS_ERROR, NS_SOAP12, OnvifAuthError, OnvifFault
from app.remote.onvif.models import JobSource
from tests.engine.onvif.harness import Served, serve

T0 = parse_iso("2026-05-01T10:00:00Z")
TSE = f"{{{NS_SEARCH}}}"


class FakeDevice(OnvifService):
    service = "device"

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    @operation("GetSystemDateAndTime", AccessClass.PRE_AUTH)
    async def date(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        t = time.gmtime(self.clock.wall_ns() // NS_PER_SECOND)
        utc = {
            "Date": {"Year": t.tm_year, "Month": t.tm_mon, "Day": t.tm_mday},
            "Time": {"Hour": t.tm_hour, "Minute": t.tm_min, "Second": t.tm_sec},
        }
        return {
            "SystemDateAndTime": {
                "DateTimeType": "NTP",
                "DaylightSavings": False,
                "UTCDateTime": utc,
            }
        }

    @operation("GetServices", AccessClass.PRE_AUTH)
    async def services(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        entries = []
        for ns, path in (
            (NS_DEVICE, "device_service"),
            (NS_SEARCH, "search_service"),
            (NS_REPLAY, "replay_service"),
            (NS_RECORDING, "recording_service"),
        ):
            entries.append(
                {
                    "Namespace": ns,
                    "XAddr": f"{ctx.base_url}/onvif/{path}",
                    "Version": {"Major": 2, "Minor": 42},
                }
            )
        return {"Service": entries}

    @operation("GetDeviceInformation", AccessClass.READ_SYSTEM)
    async def info(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {
            "Manufacturer": "Custos",
            "Model": "Engine",
            "FirmwareVersion": "0.1.0",
            "SerialNumber": "SN-1",
            "HardwareId": "HW",
        }


def recording_information(token: str) -> dict[str, Any]:
    return {
        "RecordingToken": token,
        "Source": {
            "SourceId": "rtsp://cam/1",
            "Name": "Gate",
            "Location": "North",
            "Description": "",
            "Address": "rtsp://cam/1",
        },
        "EarliestRecording": format_iso(T0),
        "LatestRecording": format_iso(T0 + 3600 * NS_PER_SECOND),
        "Content": "c",
        "Track": [
            {
                "TrackToken": "VIDEO001",
                "TrackType": "Video",
                "Description": "",
                "DataFrom": format_iso(T0),
                "DataTo": format_iso(T0 + 3600 * NS_PER_SECOND),
            }
        ],
        "RecordingStatus": "Stopped",
    }


class FakeSearch(OnvifService):
    """Three recordings delivered two per page; FindEvents requests are kept for inspection."""

    service = "search"

    def __init__(self) -> None:
        self.pages = 0
        self.find_events: list[etree._Element] = []
        self.ended: list[str] = []

    @operation("GetRecordingSummary", AccessClass.READ_MEDIA)
    async def summary(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {
            "Summary": {
                "DataFrom": format_iso(T0),
                "DataUntil": format_iso(T0 + NS_PER_SECOND),
                "NumberRecordings": 3,
            }
        }

    @operation("GetRecordingInformation", AccessClass.READ_MEDIA)
    async def information(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        if req.RecordingToken != "REC_1":
            raise SoapFault.sender(
                "InvalidArgVal", "InvalidToken", reason=f"no recording {req.RecordingToken}"
            )
        return {"RecordingInformation": recording_information("REC_1")}

    @operation("FindRecordings", AccessClass.READ_MEDIA)
    async def find_recordings(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"SearchToken": "S_rec"}

    @operation("GetRecordingSearchResults", AccessClass.READ_MEDIA)
    async def recording_results(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        assert req.SearchToken == "S_rec" and req.WaitTime == "PT1S"
        self.pages += 1
        tokens = ["REC_1", "REC_2"] if self.pages == 1 else ["REC_3"]
        state = "Searching" if self.pages == 1 else "Completed"
        results = [recording_information(t) for t in tokens]
        return {"ResultList": {"SearchState": state, "RecordingInformation": results}}

    @operation("FindEvents", AccessClass.READ_MEDIA)
    async def find(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.find_events.append(ctx.envelope.payload)
        return {"SearchToken": "S_ev"}

    @operation("GetEventSearchResults", AccessClass.READ_MEDIA)
    async def event_results(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        raise SoapFault.receiver("Action", reason="search index is being rebuilt")

    @operation("EndSearch", AccessClass.READ_MEDIA)
    async def end(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.ended.append(req.SearchToken)
        return {"Endpoint": format_iso(T0)}


class FakeReplay(OnvifService):
    service = "replay"

    @operation("GetReplayUri", AccessClass.READ_MEDIA)
    async def uri(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        stream = req.StreamSetup.Stream
        return {"Uri": f"rtsp://127.0.0.1:8554/replay/{req.RecordingToken}?s={stream}"}


class FakeRecording(OnvifService):
    """CreateRecordingJob with AutoCreateReceiver answers a receiver source (PF-24)."""

    service = "recording"

    @operation("CreateRecordingJob", AccessClass.ACTUATE)
    async def create_job(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        config = req.JobConfiguration
        assert config.Source[0].AutoCreateReceiver is True
        return {
            "JobToken": "JOB_1",
            "JobConfiguration": {
                "RecordingToken": config.RecordingToken,
                "Mode": config.Mode,
                "Priority": config.Priority,
                "Source": [
                    {
                        "SourceToken": {
                            "Token": "RCV_1",
                            "Type": "http://www.onvif.org/ver10/schema/Receiver",
                        },
                        "Tracks": [{"SourceTag": "video", "Destination": "VIDEO001"}],
                    }
                ],
            },
        }

    @operation("GetRecordingJobState", AccessClass.READ_MEDIA)
    async def state(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"State": {"RecordingToken": "REC_1", "State": "Idle"}}


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[tuple[Served, FakeSearch]]:
    search = FakeSearch()
    services = [FakeDevice(SystemClock()), search, FakeReplay(), FakeRecording()]
    async with serve(services, tmp_path) as served:
        yield served, search


async def test_connect_reads_services_and_device_information(device: Any) -> None:
    """§7.2 GetServices; PF-12 Digest: one 401 round trip, then nc increments without one."""
    served, _ = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        services = await client.connect()
        assert [s.namespace for s in services][:2] == [NS_DEVICE, NS_SEARCH]
        assert services[1].version == (2, 42)
        assert client.xaddr("search") == served.address("search")
        before = client.transport.requests
        info = await client.get_device_information()
        assert info.manufacturer == "Custos" and info.serial_number == "SN-1"
        assert client.transport.requests - before == 2  # the first protected call: 401 + retry
        before = client.transport.requests
        await client.get_device_information()
        await client.get_device_information()
        assert client.transport.requests - before == 2  # no more challenges: nc does the work


async def test_rs02_rs03_typed_summary_and_information(device: Any) -> None:
    served, _ = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        await client.connect()
        summary = await client.get_recording_summary()
        assert (summary.data_from, summary.data_until) == (T0, T0 + NS_PER_SECOND)
        assert summary.number_recordings == 3
        info = await client.get_recording_information("REC_1")
        assert info.token == "REC_1" and info.source.name == "Gate"
        assert info.source.description == ""
        assert (info.earliest, info.latest) == (T0, T0 + 3600 * NS_PER_SECOND)
        assert info.tracks[0].token == "VIDEO001" and info.tracks[0].data_from == T0


async def test_pf11_faults_resolve_qnames(device: Any) -> None:
    served, _ = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        await client.connect()
        with pytest.raises(OnvifFault) as caught:
            await client.get_recording_information("REC_X")
    fault = caught.value
    assert fault.code == (NS_SOAP12, "Sender")
    assert fault.subcodes == ((NS_ERROR, "InvalidArgVal"), (NS_ERROR, "InvalidToken"))
    assert fault.not_found and fault.status == 400
    assert "REC_X" in fault.reason


async def test_rs05_find_recordings_pages_until_completed(device: Any) -> None:
    served, search = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        await client.connect()
        found = await client.find_recordings(wait="PT1S", page_size=2)
    assert [r.token for r in found] == ["REC_1", "REC_2", "REC_3"]
    assert search.pages == 2
    assert search.ended == []  # Completed sessions are dead: no EndSearch (PF-17)


async def test_rs07_find_events_sends_every_mandatory_child_and_ends_on_error(
    device: Any,
) -> None:
    """§7.2: StartPoint, Scope, SearchFilter, IncludeStartState, KeepAliveTime always sent."""
    served, search = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        await client.connect()
        with pytest.raises(OnvifFault) as caught:
            await client.find_events(
                T0 + 3600 * NS_PER_SECOND,
                T0,
                recordings=["REC_1"],
                topic="tns1:RecordingHistory//.",
                include_start_state=True,
            )
    assert caught.value.code == (NS_SOAP12, "Receiver") and caught.value.status == 500
    payload = search.find_events[0]
    children = [etree.QName(c).localname for c in payload]
    assert children == [
        "StartPoint",
        "EndPoint",
        "Scope",
        "SearchFilter",
        "IncludeStartState",
        "KeepAliveTime",
    ]
    assert payload.findtext(f"{TSE}StartPoint") == "2026-05-01T11:00:00.000Z"
    assert payload.findtext(f"{TSE}EndPoint") == "2026-05-01T10:00:00.000Z"
    assert payload.findtext(f"{TSE}IncludeStartState") == "true"
    topic = payload.find(f"{TSE}SearchFilter/{{http://docs.oasis-open.org/wsn/b-2}}TopicExpression")
    assert topic is not None and topic.text == "tns1:RecordingHistory//."
    assert topic.nsmap["tns1"] == "http://www.onvif.org/ver10/topics"
    assert search.ended == ["S_ev"]  # an abandoned session is ended


async def test_rs07_find_events_without_filter_still_sends_search_filter(device: Any) -> None:
    served, search = device
    async with OnvifClient(served.address("device"), "viewer", "viewer-pw") as client:
        await client.connect()
        with pytest.raises(OnvifFault):
            await client.find_events(T0)
    children = [etree.QName(c).localname for c in search.find_events[0]]
    assert children == ["StartPoint", "Scope", "SearchFilter", "IncludeStartState", "KeepAliveTime"]


async def test_replay_uri_and_recording_job_with_auto_receiver(device: Any) -> None:
    served, _ = device
    async with OnvifClient(served.address("device"), "admin", "admin-pw") as client:
        await client.connect()
        uri = await client.get_replay_uri("REC_1")
        assert uri == "rtsp://127.0.0.1:8554/replay/REC_1?s=RTP-Unicast"
        job = await client.create_recording_job(
            "REC_1", "Idle", 1, [JobSource(None, None, True, (("video", "VIDEO001"),))]
        )
        assert job.token == "JOB_1" and job.mode == "Idle" and job.priority == 1
        source = job.sources[0]
        assert source.source_token == "RCV_1"
        assert source.source_type == "http://www.onvif.org/ver10/schema/Receiver"
        assert source.tracks == (("video", "VIDEO001"),)
        state = await client.get_recording_job_state("JOB_1")
        assert (state.recording_token, state.state) == ("REC_1", "Idle")


async def test_wrong_password_is_an_auth_error(device: Any) -> None:
    served, _ = device
    async with OnvifClient(served.address("device"), "viewer", "nope") as client:
        await client.connect()  # GetSystemDateAndTime and GetServices are PRE_AUTH
        with pytest.raises(OnvifAuthError, match="viewer"):
            await client.get_device_information()


async def test_pf13_username_token_uses_the_device_clock(tmp_path: Path) -> None:
    """A device 1 h ahead: Created from our clock is outside its skew, from its clock is fine."""
    ahead = FakeClock(SystemClock().wall_ns() + 3600 * NS_PER_SECOND)
    async with serve([FakeDevice(ahead)], tmp_path, clock=ahead) as served:
        url = served.address("device")
        async with OnvifClient(url, "admin", "admin-pw", auth="wsse") as naive:
            with pytest.raises(OnvifFault) as caught:
                await naive.get_device_information()
            assert caught.value.not_authorized
        async with OnvifClient(url, "admin", "admin-pw", auth="wsse") as client:
            await client.connect()
            offset = client.transport.clock_offset_ns
            assert abs(offset - 3600 * NS_PER_SECOND) < 3 * NS_PER_SECOND
            assert (await client.get_device_information()).model == "Engine"
            assert (await client.get_device_information()).model == "Engine"  # fresh nonce


def test_pf07_duration_seconds() -> None:
    assert duration_s("PT10S") == 10
    assert duration_s("PT0.5S") == 0.5
    assert duration_s("P1DT1M") == 86_460
    assert duration_s("P1Y") == 365 * 86_400
