"""Device service through the independent zeep client: services, capabilities, identity, time,
scopes, users, network facts (issue #3; spec §6.4, §7.1, PF-25, GEN-10/11).

Every answer is schema-validated by `validated_service`; faults are checked by subcode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions
from lxml import etree

import app
from app.core.time import NS_PER_SECOND, FakeClock, parse_iso
from app.engine.events import EventBus
from app.engine.onvif.device import (
    PROFILE_G_SCOPE,
    CachedInterfaces,
    DeviceInfo,
    DeviceService,
    InterfaceFacts,
    host_interfaces,
)
from app.engine.onvif.events import EventsService
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.users import UserDirectory, UserLevel
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.peers.onvif_zeep import validated_service

TDS = "http://www.onvif.org/ver10/device/wsdl"
TEV = "http://www.onvif.org/ver10/events/wsdl"
TRC = "http://www.onvif.org/ver10/recording/wsdl"
TT = "http://www.onvif.org/ver10/schema"
#: 2026-01-01T00:00:00Z, the FakeClock's default start.
START_NS = 1_767_225_600 * NS_PER_SECOND

FACTS = [InterfaceFacts("eth7", "02:00:00:00:00:07", 1400, True, (("192.0.2.7", 24),))]


class FakeRecording(OnvifService):
    """Stands in for Recording Control: only its capabilities matter here."""

    service = "recording"

    def capabilities(self) -> dict[str, Any]:
        return {
            "DynamicRecordings": True,
            "DynamicTracks": False,
            "Encoding": ["H264", "H265"],
            "MaxRate": 16384,
            "MaxTotalRate": 262144,
            "MaxRecordings": 32,
            "MaxRecordingJobs": 64,
            "Options": True,
            "MetadataRecording": True,
        }

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH)
    async def caps(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"Capabilities": self.capabilities()}


class FakeDiscovery:
    def __init__(self) -> None:
        self.discoverable = False

    async def set_discoverable(self, discoverable: bool) -> None:
        self.discoverable = discoverable


async def open_users(data_dir: Path) -> UserDirectory:
    users = await asyncio.to_thread(
        UserDirectory.open, data_dir, {"CUSTOS_ADMIN_PASSWORD": ACCOUNTS["admin"][0]}
    )
    for name, (password, level) in ACCOUNTS.items():
        if name != "admin":
            users.create(name, password, level)
    return users


@contextlib.asynccontextmanager
async def device_endpoint(
    tmp_path: Path, *, discovery: FakeDiscovery | None = None
) -> AsyncIterator[tuple[Served, DeviceService]]:
    clock = FakeClock(START_NS + 3_723 * NS_PER_SECOND + 456_000_000)  # 01:02:03.456
    users = await open_users(tmp_path)
    others: list[OnvifService] = [EventsService(EventBus(clock=clock), clock), FakeRecording()]
    device = DeviceService(
        users,
        clock,
        others,
        info=DeviceInfo(serial_number="SN-1"),
        discovery=discovery,
        interfaces=lambda: FACTS,
        hostname=lambda: "recorder-7",
    )
    async with serve([device, *others], tmp_path, users=users, clock=clock) as served:
        yield served, device


def call(served: Served, op: str, user: str | None = "admin", **kwargs: Any) -> Any:
    password = ACCOUNTS[user][0] if user else None
    proxy = validated_service("device", served.address("device"), user, password)
    return getattr(proxy, op)(**kwargs)


def fault_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        fn(*args, **kwargs)
    return [q.localname for q in info.value.subcodes or []]


async def test_get_services_xaddrs_follow_request_host_and_list_capabilities_6_4(
    tmp_path: Path,
) -> None:
    """§6.4: XAddr uses the host the client used; Capabilities only with IncludeCapability."""
    async with device_endpoint(tmp_path) as (served, _):
        port = served.url.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost"):
            base = f"http://{host}:{port}"
            proxy = validated_service("device", f"{base}/onvif/device_service", None, None)
            services = await asyncio.to_thread(proxy.GetServices, IncludeCapability=True)
            assert [s.Namespace for s in services] == [TDS, TEV, TRC]
            assert [s.XAddr for s in services] == [
                f"{base}/onvif/device_service",
                f"{base}/onvif/event_service",
                f"{base}/onvif/recording_service",
            ]
            assert all((s.Version.Major, s.Version.Minor) == (21, 12) for s in services)
            caps = {s.Namespace: s.Capabilities._value_1 for s in services}
        # The device WSDL does not know trc:/tev:Capabilities: the client hands them over as XML.
        rec, tev = caps[TRC], caps[TEV]
        assert isinstance(rec, etree._Element) and isinstance(tev, etree._Element)
        assert (rec.get("DynamicRecordings"), rec.get("DynamicTracks")) == ("true", "false")
        assert (
            tev.get("MaxPullPoints") == "32" and tev.get("WSSubscriptionPolicySupport") == "false"
        )
        assert caps[TDS].Security.HttpDigest is True and caps[TDS].Security.UsernameToken is True
        bare = await asyncio.to_thread(call, served, "GetServices", None, IncludeCapability=False)
        assert all(s.Capabilities is None for s in bare)


async def test_get_services_raw_capability_element_is_service_qualified_6_4(
    tmp_path: Path,
) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        proxy = validated_service("device", served.address("device"), None, None)
        await asyncio.to_thread(proxy.GetServices, IncludeCapability=True)
        envelope = proxy.last_received
        assert envelope is not None
        found = envelope.findall(f".//{{{TDS}}}Service/{{{TDS}}}Capabilities/*")
        assert [etree.QName(e).namespace for e in found] == [TDS, TEV, TRC]
        trc = found[2]
        # PF-25: integers without decimals, lists space-separated.
        assert trc.get("MaxRecordings") == "32" and trc.get("Encoding") == "H264 H265"


async def test_legacy_get_capabilities_all_has_extension_blocks_pf25(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        proxy = validated_service("device", served.address("device"), None, None)
        caps = await asyncio.to_thread(proxy.GetCapabilities, Category=["All"])
        assert caps.Device.XAddr == served.url + "/onvif/device_service"
        assert caps.Events.XAddr == served.url + "/onvif/event_service"
        assert caps.Events.WSPullPointSupport is True
        # zeep's client lets the leading xs:any of CapabilitiesExtension swallow Recording, so
        # read that block from the wire.
        envelope = proxy.last_received
        assert envelope is not None
        rec = envelope.find(f".//{{{TT}}}Extension/{{{TT}}}Recording")
        assert rec is not None
        assert [(etree.QName(c).localname, c.text) for c in rec] == [
            ("XAddr", served.url + "/onvif/recording_service"),
            ("ReceiverSource", "false"),
            ("MediaProfileSource", "false"),
            ("DynamicRecordings", "true"),
            ("DynamicTracks", "false"),
            ("MaxStringLength", "256"),
        ]
        assert envelope.find(f".//{{{TT}}}Extension/{{{TT}}}Search") is None
        assert caps.Media is None
        none = await asyncio.to_thread(call, served, "GetCapabilities", None)
        assert none.Device.XAddr == caps.Device.XAddr and none.Extension is not None
        events = await asyncio.to_thread(call, served, "GetCapabilities", None, Category=["Events"])
        assert events.Device is None and events.Events is not None and events.Extension is None


async def test_legacy_get_capabilities_unknown_category_no_such_service(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        codes = await asyncio.to_thread(
            fault_of, lambda: call(served, "GetCapabilities", None, Category=["PTZ"])
        )
        assert codes == ["ActionNotSupported", "NoSuchService"]


async def test_device_information_and_service_capabilities(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        info = await asyncio.to_thread(call, served, "GetDeviceInformation", "viewer")
        assert info.Manufacturer == "Custos"
        assert info.FirmwareVersion == app.__version__
        assert (info.SerialNumber, info.HardwareId) == ("SN-1", "custos-engine")
        caps = await asyncio.to_thread(call, served, "GetServiceCapabilities", None)
        assert caps.Security.HttpDigest is True and caps.Security.MaxUsers == 100
        assert caps.Security.HashingAlgorithms == ["MD5"]
        assert caps.System.DiscoveryNotSupported is True


async def test_system_date_and_time_is_pre_auth_utc_from_clock_gen08(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        answer = await asyncio.to_thread(call, served, "GetSystemDateAndTime", None)
        utc = answer.UTCDateTime
        assert (utc.Date.Year, utc.Date.Month, utc.Date.Day) == (2026, 1, 1)
        assert (utc.Time.Hour, utc.Time.Minute, utc.Time.Second) == (1, 2, 3)
        assert answer.TimeZone.TZ == "UTC0" and answer.DaylightSavings is False


async def test_scopes_include_profile_g_fixed_pf25(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, device):
        scopes = await asyncio.to_thread(call, served, "GetScopes", "viewer")
        fixed = [s.ScopeItem for s in scopes if s.ScopeDef == "Fixed"]
        assert fixed[0] == PROFILE_G_SCOPE
        assert any(s.startswith("onvif://www.onvif.org/hardware/") for s in fixed)
        configurable = [s.ScopeItem for s in scopes if s.ScopeDef == "Configurable"]
        assert configurable == [
            "onvif://www.onvif.org/name/Custos",
            "onvif://www.onvif.org/location/unknown",
        ]
        assert device.scopes() == fixed + configurable


async def test_scope_changes_keep_fixed_scopes(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, device):
        room = "onvif://www.onvif.org/location/room/7"
        await asyncio.to_thread(call, served, "AddScopes", ScopeItem=[room])
        assert device.scopes()[-1] == room
        codes = await asyncio.to_thread(
            fault_of, lambda: call(served, "RemoveScopes", ScopeItem=[PROFILE_G_SCOPE])
        )
        assert codes == ["OperationProhibited", "FixedScope"]
        codes = await asyncio.to_thread(
            fault_of, lambda: call(served, "RemoveScopes", ScopeItem=[room + "x"])
        )
        assert codes == ["InvalidArgVal", "NoScope"]
        removed = await asyncio.to_thread(call, served, "RemoveScopes", ScopeItem=[room])
        assert removed == [room] and room not in device.scopes()
        await asyncio.to_thread(call, served, "SetScopes", Scopes=["onvif://www.onvif.org/name/X"])
        assert device.scopes()[0] == PROFILE_G_SCOPE
        assert device.scopes()[-1] == "onvif://www.onvif.org/name/X"
        codes = await asyncio.to_thread(
            fault_of, lambda: call(served, "SetScopes", "operator", Scopes=["a:b"])
        )
        assert codes == ["NotAuthorized"]


async def test_users_round_trip_without_passwords_core_8_4(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        new = [
            {"Username": "alice", "Password": "pw-a", "UserLevel": "Operator"},
            {"Username": "bob", "Password": "pw-b", "UserLevel": "User"},
        ]
        await asyncio.to_thread(call, served, "CreateUsers", User=new)
        listed = await asyncio.to_thread(call, served, "GetUsers")
        assert [(u.Username, u.UserLevel, u.Password) for u in listed] == [
            ("admin", "Administrator", None),
            ("alice", "Operator", None),
            ("bob", "User", None),
            ("operator", "Operator", None),
            ("viewer", "User", None),
        ]
        # The new account works at once, with its level.
        info = await asyncio.to_thread(
            lambda: validated_service(
                "device", served.address("device"), "bob", "pw-b"
            ).GetDeviceInformation()
        )
        assert info.Manufacturer == "Custos"
        await asyncio.to_thread(
            call,
            served,
            "SetUser",
            User=[{"Username": "bob", "Password": "pw-b2", "UserLevel": "Operator"}],
        )
        assert served.users.get("bob").level is UserLevel.OPERATOR
        assert served.users.password_of("bob") == "pw-b2"
        await asyncio.to_thread(call, served, "DeleteUsers", Username=["alice", "bob"])
        names = [u.name for u in served.users.list()]
        assert names == ["admin", "operator", "viewer"]


@pytest.mark.parametrize(
    ("user", "codes"),
    [
        ({"Username": "viewer", "Password": "x", "UserLevel": "User"}, ["UsernameClash"]),
        ({"Username": "n" * 65, "Password": "x", "UserLevel": "User"}, ["UsernameTooLong"]),
        ({"Username": "p", "Password": "x" * 129, "UserLevel": "User"}, ["PasswordTooLong"]),
        ({"Username": "a", "Password": "x", "UserLevel": "Anonymous"}, ["AnonymousNotAllowed"]),
        ({"Username": "", "Password": "x", "UserLevel": "User"}, ["UsernameTooShort"]),
    ],
)
async def test_create_users_faults_create_nobody_core_8_4_4(
    tmp_path: Path, user: dict[str, str], codes: list[str]
) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        good = {"Username": "first-ok", "Password": "pw", "UserLevel": "User"}
        got = await asyncio.to_thread(
            fault_of, lambda: call(served, "CreateUsers", User=[good, user])
        )
        assert got == ["OperationProhibited", *codes]
        assert [u.name for u in served.users.list()] == ["admin", "operator", "viewer"]


async def test_delete_and_set_user_faults_change_nothing_core_8_4_5(tmp_path: Path) -> None:
    async with device_endpoint(tmp_path) as (served, _):
        before = [(u.name, u.level, u.password) for u in served.users.list()]
        cases: list[tuple[str, dict[str, Any], list[str]]] = [
            (
                "DeleteUsers",
                {"Username": ["viewer", "ghost"]},
                ["InvalidArgVal", "UsernameMissing"],
            ),
            ("DeleteUsers", {"Username": ["admin"]}, ["InvalidArgVal", "FixedUser"]),
            (
                "SetUser",
                {"User": [{"Username": "ghost", "Password": "x", "UserLevel": "User"}]},
                ["InvalidArgVal", "UsernameMissing"],
            ),
            (
                "SetUser",
                {"User": [{"Username": "admin", "Password": "x", "UserLevel": "User"}]},
                ["InvalidArgVal", "FixedUser"],
            ),
            (
                "SetUser",
                {"User": [{"Username": "viewer", "Password": "x" * 200, "UserLevel": "User"}]},
                ["OperationProhibited", "PasswordTooLong"],
            ),
            (
                "SetUser",
                {"User": [{"Username": "viewer", "Password": "x", "UserLevel": "Anonymous"}]},
                ["OperationProhibited", "AnonymousNotAllowed"],
            ),
        ]
        for op, kwargs, codes in cases:
            got = await asyncio.to_thread(fault_of, call, served, op, **kwargs)
            assert got == codes, op
        assert [(u.name, u.level, u.password) for u in served.users.list()] == before


async def test_user_operations_need_their_access_class_gen11(tmp_path: Path) -> None:
    """Core: GetUsers is READ_SYSTEM_SECRET (Administrator only), user changes WRITE_SYSTEM."""
    async with device_endpoint(tmp_path) as (served, _):
        for user in ("operator", "viewer"):
            codes = await asyncio.to_thread(fault_of, call, served, "GetUsers", user)
            assert codes == ["NotAuthorized"]
            codes = await asyncio.to_thread(
                fault_of, call, served, "DeleteUsers", user, Username=["viewer"]
            )
            assert codes == ["NotAuthorized"]
        assert len(served.users.list()) == 3


async def test_network_facts_hostname_and_discovery_mode(tmp_path: Path) -> None:
    discovery = FakeDiscovery()
    async with device_endpoint(tmp_path, discovery=discovery) as (served, _):
        interfaces = await asyncio.to_thread(call, served, "GetNetworkInterfaces", "viewer")
        assert len(interfaces) == 1
        eth = interfaces[0]
        assert (eth.token, eth.Enabled, eth.Info.Name, eth.Info.MTU) == ("eth7", True, "eth7", 1400)
        assert eth.Info.HwAddress == "02:00:00:00:00:07"
        manual = eth.IPv4.Config.Manual[0]
        assert (manual.Address, manual.PrefixLength) == ("192.0.2.7", 24)
        host = await asyncio.to_thread(call, served, "GetHostname", None)
        assert (host.Name, host.FromDHCP) == ("recorder-7", False)
        mode = await asyncio.to_thread(call, served, "GetDiscoveryMode")
        assert mode == "NonDiscoverable"
        await asyncio.to_thread(call, served, "SetDiscoveryMode", DiscoveryMode="Discoverable")
        assert discovery.discoverable is True
        assert await asyncio.to_thread(call, served, "GetDiscoveryMode") == "Discoverable"
        codes = await asyncio.to_thread(fault_of, lambda: call(served, "SetHostname", Name="other"))
        assert codes == ["ActionNotSupported"]


def test_host_interfaces_reads_this_host() -> None:
    facts = host_interfaces()
    assert facts, "at least the loopback interface exists"
    assert all(f.mtu > 0 and f.mac.count(":") == 5 for f in facts)


async def test_onvif_zeep_async_connects_and_reads_device(tmp_path: Path) -> None:
    """Home Assistant's client: time handshake, GetServices, device information (UsernameToken)."""
    from onvif import ONVIFCamera

    async with device_endpoint(tmp_path) as (served, _):
        host, port = served.url.removeprefix("http://").split(":")
        # Its WS-Security Created comes from the real clock; align our fake one with it.
        camera = ONVIFCamera(host, int(port), "viewer", ACCOUNTS["viewer"][0], adjust_time=True)
        try:
            await camera.update_xaddrs()
            assert camera.xaddrs[TRC] == served.url + "/onvif/recording_service"
            device = await camera.create_devicemgmt_service()
            info = await device.GetDeviceInformation()
            assert info.Manufacturer == "Custos" and info.SerialNumber == "SN-1"
            services = await device.GetServices({"IncludeCapability": False})
            assert {s.Namespace for s in services} == {TDS, TEV, TRC}
            caps = await camera.get_capabilities()
            assert caps is not None and caps["Events"]["WSPullPointSupport"] is True
        finally:
            await camera.close()


def test_clock_start_constant_matches_fake_clock() -> None:
    assert FakeClock().wall_ns() == START_NS == parse_iso("2026-01-01T00:00:00Z")


def test_interface_facts_are_read_once_per_ttl() -> None:
    reads: list[float] = []
    now = [100.0]

    def read() -> list[InterfaceFacts]:
        reads.append(now[0])
        return [InterfaceFacts(f"eth{len(reads)}", "02:00:00:00:00:01", 1500, True, ())]

    cached = CachedInterfaces(read, ttl_s=5.0, now=lambda: now[0])
    assert [f.name for f in cached()] == ["eth1"]
    now[0] += 4.9
    assert [f.name for f in cached()] == ["eth1"]  # within the TTL: no second read
    now[0] += 0.1
    assert [f.name for f in cached()] == ["eth2"]
    assert reads == [100.0, 105.0]
