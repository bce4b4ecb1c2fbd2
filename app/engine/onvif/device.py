"""The ONVIF Device service: services and capabilities, identity, time, scopes, users, network.

GetServices and the legacy GetCapabilities are assembled from the services the runtime serves:
every OnvifService that has capabilities implements `capabilities() -> dict` (the value of its
`<ns>:Capabilities` element), which this service reads through getattr. XAddrs are built from
the scheme and host the client used (spec §6.4), never from a configured address.

    device = DeviceService(users, clock, services, info=DeviceInfo.for_host(data_dir))
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import fcntl
import hashlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import zeep.xsd

import app
from app.core.time import NS_PER_SECOND, Clock
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.users import (
    MAX_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_USERS,
    UserDirectory,
    UserLevel,
)
from app.protocols.onvif.wsdl import SERVICE_BY_NAME, catalog
from app.protocols.soap.fault import SoapFault

log = logging.getLogger(__name__)

#: The order services are listed in GetServices.
SERVICE_ORDER = ("device", "events", "recording", "search", "replay", "receiver")
#: [ENGINE] Version reported for every service (§6.4: pick one, keep it; clients must not gate).
SERVICE_VERSION = (21, 12)
PROFILE_G_SCOPE = "onvif://www.onvif.org/Profile/G"
SCOPE_PREFIX = "onvif://www.onvif.org/"
#: Longest scope URI and most configurable scopes accepted by Set/AddScopes.
MAX_SCOPE_LENGTH = 256
MAX_SCOPES = 32
#: Legacy GetCapabilities Recording/MaxStringLength (spec §6.1 suggests 256).
MAX_STRING_LENGTH = 256
#: Interfaces reported by GetNetworkInterfaces at most (a host with hundreds of veths exists).
MAX_INTERFACES = 64

_SYS_NET = Path("/sys/class/net")
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """GetDeviceInformation's answer; `for_host` derives a stable serial number."""

    manufacturer: str = "Custos"
    model: str = "Custos Recorder Engine"
    firmware_version: str = app.__version__
    serial_number: str = "0"
    hardware_id: str = "custos-engine"

    @classmethod
    def for_host(cls, data_dir: Path) -> DeviceInfo:
        """Serial number from the host name and the data directory (stable across restarts)."""
        seed = f"{socket.gethostname()}:{data_dir.resolve()}".encode()
        return cls(serial_number=hashlib.sha256(seed).hexdigest()[:16].upper())


@dataclasses.dataclass(frozen=True)
class InterfaceFacts:
    """One network interface as this host reports it (GetNetworkInterfaces)."""

    name: str
    mac: str
    mtu: int
    up: bool
    ipv4: tuple[tuple[str, int], ...] = ()  # (address, prefix length)


class Discovery(Protocol):
    """What SetDiscoveryMode drives (app/engine/onvif/discovery.py implements it)."""

    @property
    def discoverable(self) -> bool: ...

    async def set_discoverable(self, discoverable: bool) -> None: ...


class DeviceService(OnvifService):
    """tds: the entry point every ONVIF client calls first."""

    service = "device"

    def __init__(
        self,
        users: UserDirectory,
        clock: Clock,
        services: Sequence[OnvifService],
        *,
        info: DeviceInfo | None = None,
        name: str = "Custos",
        location: str = "unknown",
        discovery: Discovery | None = None,
        interfaces: Callable[[], Sequence[InterfaceFacts]] | None = None,
        hostname: Callable[[], str] = socket.gethostname,
        tls: bool = False,
    ) -> None:
        """`tls`: the engine also serves this service over HTTPS (capability TLS1.2)."""
        self._tls = tls
        self._users = users
        self._clock = clock
        self._services = services
        self.info = info or DeviceInfo()
        self._discovery = discovery
        self._interfaces = interfaces or CachedInterfaces()
        self._hostname = hostname
        self._fixed_scopes = (
            PROFILE_G_SCOPE,
            SCOPE_PREFIX + "type/Network_Video_Storage",
            SCOPE_PREFIX + "hardware/" + _scope_segment(self.info.model),
        )
        self._scopes = [SCOPE_PREFIX + "name/" + _scope_segment(name)]
        self._scopes.append(SCOPE_PREFIX + "location/" + _scope_segment(location))
        self._user_lock = asyncio.Lock()

    # ------------------------------------------------------------ capabilities

    def capabilities(self) -> dict[str, Any]:
        """tds:DeviceServiceCapabilities (what GetServices reports for the device)."""
        return {
            "Network": {
                "IPFilter": False,
                "ZeroConfiguration": False,
                "IPVersion6": False,
                "DynDNS": False,
                "Dot11Configuration": False,
                "HostnameFromDHCP": False,
                "NTP": 0,
            },
            "Security": {
                "TLS1.0": False,
                "TLS1.1": False,
                "TLS1.2": self._tls,
                "OnboardKeyGeneration": False,
                "AccessPolicyConfig": False,
                "DefaultAccessPolicy": True,
                "Dot1X": False,
                "RemoteUserHandling": False,
                "X.509Token": False,
                "SAMLToken": False,
                "KerberosToken": False,
                "UsernameToken": True,
                "HttpDigest": True,
                "RELToken": False,
                "MaxUsers": MAX_USERS,
                "MaxUserNameLength": MAX_NAME_LENGTH,
                "MaxPasswordLength": MAX_PASSWORD_LENGTH,
                "HashingAlgorithms": ["MD5"],
            },
            "System": {
                "DiscoveryResolve": False,
                "DiscoveryBye": True,
                "RemoteDiscovery": False,
                "SystemBackup": False,
                "SystemLogging": False,
                "HttpFirmwareUpgrade": False,
                "HttpSystemBackup": False,
                "HttpSystemLogging": False,
                "HttpSupportInformation": False,
                "StorageConfiguration": False,
                "DiscoveryNotSupported": self._discovery is None,
                "NetworkConfigNotSupported": True,
                "UserConfigNotSupported": False,
            },
            "Misc": {},
        }

    def _served(self) -> list[OnvifService]:
        """This service and the others, in SERVICE_ORDER, one per WSDL."""
        by_name: dict[str, OnvifService] = {"device": self}
        for service in self._services:
            by_name.setdefault(service.service, service)
        return [by_name[name] for name in SERVICE_ORDER if name in by_name]

    @operation("GetServices", AccessClass.PRE_AUTH)
    async def get_services(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """§6.4: one entry per served service, XAddr on the host the client used."""
        include = bool(req.IncludeCapability)
        entries = []
        for service in self._served():
            spec = SERVICE_BY_NAME[service.service]
            entry: dict[str, Any] = {
                "Namespace": spec.namespace,
                "XAddr": ctx.base_url + spec.path,
                "Version": {"Major": SERVICE_VERSION[0], "Minor": SERVICE_VERSION[1]},
            }
            caps = _capabilities_of(service)
            if include and caps is not None:
                element = (
                    catalog()
                    .documents[spec.name]
                    .types.get_element(f"{{{spec.namespace}}}Capabilities")
                )
                entry["Capabilities"] = {"_value_1": zeep.xsd.AnyObject(element, element(**caps))}  # type: ignore[no-untyped-call]
            entries.append(entry)
        return {"Service": entries}

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"Capabilities": self.capabilities()}

    @operation("GetCapabilities", AccessClass.PRE_AUTH)
    async def get_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """Legacy capabilities; Recording/Search/Replay/Receiver only under Extension (PF-25)."""
        categories = {str(c) for c in (req.Category or []) if c} or {"All"}
        served = {s.service: s for s in self._served()}
        unsupported = categories - {"All", "Device", "Events"}
        if unsupported or ("Events" in categories and "events" not in served):
            missing = sorted(unsupported or {"Events"})
            raise SoapFault.receiver(
                "ActionNotSupported",
                "NoSuchService",
                reason=f"this device has no {', '.join(missing)} service",
            )
        every = "All" in categories
        caps: dict[str, Any] = {}
        if every or "Device" in categories:
            caps["Device"] = self._legacy_device(ctx.base_url)
        if (every or "Events" in categories) and "events" in served:
            caps["Events"] = {
                "XAddr": ctx.base_url + SERVICE_BY_NAME["events"].path,
                "WSSubscriptionPolicySupport": False,
                "WSPullPointSupport": True,
                "WSPausableSubscriptionManagerInterfaceSupport": False,
            }
        if every:
            extension = _legacy_extension(ctx.base_url, served)
            if extension:
                caps["Extension"] = extension
        return {"Capabilities": caps}

    def _legacy_device(self, base_url: str) -> dict[str, Any]:
        return {
            "XAddr": base_url + SERVICE_BY_NAME["device"].path,
            "Network": {
                "IPFilter": False,
                "ZeroConfiguration": False,
                "IPVersion6": False,
                "DynDNS": False,
            },
            "System": {
                "DiscoveryResolve": False,
                "DiscoveryBye": True,
                "RemoteDiscovery": False,
                "SystemBackup": False,
                "SystemLogging": False,
                "FirmwareUpgrade": False,
                "SupportedVersions": [{"Major": SERVICE_VERSION[0], "Minor": SERVICE_VERSION[1]}],
            },
            "IO": {"InputConnectors": 0, "RelayOutputs": 0},
            "Security": {
                "TLS1.1": False,
                "TLS1.2": self._tls,
                "OnboardKeyGeneration": False,
                "AccessPolicyConfig": False,
                "X.509Token": False,
                "SAMLToken": False,
                "KerberosToken": False,
                "RELToken": False,
            },
        }

    # ------------------------------------------------------------ identity and time

    @operation("GetDeviceInformation", AccessClass.READ_SYSTEM, cacheable=True)
    async def get_device_information(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {
            "Manufacturer": self.info.manufacturer,
            "Model": self.info.model,
            "FirmwareVersion": self.info.firmware_version,
            "SerialNumber": self.info.serial_number,
            "HardwareId": self.info.hardware_id,
        }

    @operation("GetSystemDateAndTime", AccessClass.PRE_AUTH)
    async def get_system_date_and_time(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """UTC from the injected clock; the engine keeps no local zone (time is UTC, always)."""
        now = _date_time(self._clock.wall_ns())
        return {
            "SystemDateAndTime": {
                # The engine never sets the host clock; it is expected to be NTP-disciplined.
                "DateTimeType": "NTP",
                "DaylightSavings": False,
                "TimeZone": {"TZ": "UTC0"},
                "UTCDateTime": now,
                "LocalDateTime": now,
            }
        }

    # ------------------------------------------------------------ scopes and discovery

    def scopes(self) -> list[str]:
        """Every scope URI, fixed first (what WS-Discovery announces and matches)."""
        return [*self._fixed_scopes, *self._scopes]

    @operation("GetScopes", AccessClass.READ_SYSTEM)
    async def get_scopes(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        fixed = [{"ScopeDef": "Fixed", "ScopeItem": s} for s in self._fixed_scopes]
        configurable = [{"ScopeDef": "Configurable", "ScopeItem": s} for s in self._scopes]
        return {"Scopes": fixed + configurable}

    @operation("SetScopes", AccessClass.WRITE_SYSTEM)
    async def set_scopes(self, ctx: RequestContext, req: Any) -> None:
        """Replace the configurable scopes (the fixed ones stay)."""
        self._scopes = _checked_scopes(req.Scopes or [], limit=MAX_SCOPES)

    @operation("AddScopes", AccessClass.WRITE_SYSTEM)
    async def add_scopes(self, ctx: RequestContext, req: Any) -> None:
        added = _checked_scopes(req.ScopeItem or [], limit=MAX_SCOPES)
        merged = self._scopes + [s for s in added if s not in self._scopes]
        if len(merged) > MAX_SCOPES:
            raise SoapFault.receiver(
                "Action", "TooManyScopes", reason=f"at most {MAX_SCOPES} configurable scopes"
            )
        self._scopes = merged

    @operation("RemoveScopes", AccessClass.WRITE_SYSTEM)
    async def remove_scopes(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        items = [str(s) for s in (req.ScopeItem or [])]
        for item in items:
            if item in self._fixed_scopes:
                raise SoapFault.sender(
                    "OperationProhibited", "FixedScope", reason=f"scope {item!r} is fixed"
                )
            if item not in self._scopes:
                raise SoapFault.sender("InvalidArgVal", "NoScope", reason=f"no scope {item!r}")
        self._scopes = [s for s in self._scopes if s not in items]
        return {"ScopeItem": items}

    @operation("GetDiscoveryMode", AccessClass.READ_SYSTEM)
    async def get_discovery_mode(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        on = self._discovery is not None and self._discovery.discoverable
        return {"DiscoveryMode": "Discoverable" if on else "NonDiscoverable"}

    @operation("SetDiscoveryMode", AccessClass.WRITE_SYSTEM)
    async def set_discovery_mode(self, ctx: RequestContext, req: Any) -> None:
        mode = str(req.DiscoveryMode)
        if mode not in ("Discoverable", "NonDiscoverable"):
            raise SoapFault.sender("InvalidArgVal", reason=f"unknown DiscoveryMode {mode!r}")
        if self._discovery is None:
            if mode == "Discoverable":
                raise SoapFault.receiver(
                    "ActionNotSupported", reason="WS-Discovery is not available on this engine"
                )
            return
        await self._discovery.set_discoverable(mode == "Discoverable")

    # ------------------------------------------------------------ network (read-only facts)

    @operation("GetHostname", AccessClass.PRE_AUTH)
    async def get_hostname(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"HostnameInformation": {"FromDHCP": False, "Name": self._hostname()}}

    @operation("GetNetworkInterfaces", AccessClass.READ_SYSTEM)
    async def get_network_interfaces(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        facts = list(await asyncio.to_thread(self._interfaces))[:MAX_INTERFACES]
        return {"NetworkInterfaces": [_interface(f) for f in facts]}

    # ------------------------------------------------------------ users

    @operation("GetUsers", AccessClass.READ_SYSTEM_SECRET)
    async def get_users(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """Names and levels; passwords are never returned (Core 8.4.3)."""
        return {
            "User": [{"Username": u.name, "UserLevel": u.level.value} for u in self._users.list()]
        }

    @operation("CreateUsers", AccessClass.WRITE_SYSTEM)
    async def create_users(self, ctx: RequestContext, req: Any) -> None:
        """All or nothing: every entry is checked before the first one is created."""
        async with self._user_lock:
            existing = {u.name for u in self._users.list()}
            wanted: list[tuple[str, str, UserLevel]] = []
            for entry in req.User or []:
                name, password = str(entry.Username or ""), entry.Password
                _check_name(name)
                if name in existing or any(name == w[0] for w in wanted):
                    raise _prohibited("UsernameClash", f"user {name!r} exists already")
                if password is None or password == "":
                    raise _prohibited("Password", f"user {name!r} needs a password")
                _check_password(str(password))
                wanted.append((name, str(password), _level(entry.UserLevel)))
            if len(existing) + len(wanted) > MAX_USERS:
                raise SoapFault.receiver(
                    "Action", "TooManyUsers", reason=f"this device keeps at most {MAX_USERS} users"
                )
            for name, password, level in wanted:
                await asyncio.to_thread(self._users.create, name, password, level)
                log.info("ONVIF user %r created by %r", name, ctx.caller.user)

    @operation("DeleteUsers", AccessClass.WRITE_SYSTEM)
    async def delete_users(self, ctx: RequestContext, req: Any) -> None:
        async with self._user_lock:
            users = {u.name: u for u in self._users.list()}
            names = [str(n) for n in (req.Username or [])]
            for name in names:
                if name not in users:
                    raise SoapFault.sender(
                        "InvalidArgVal", "UsernameMissing", reason=f"no user {name!r}"
                    )
            _keep_an_administrator(users, removed=set(names), demoted=set())
            for name in dict.fromkeys(names):
                await asyncio.to_thread(self._users.delete, name)
                log.info("ONVIF user %r deleted by %r", name, ctx.caller.user)

    @operation("SetUser", AccessClass.WRITE_SYSTEM)
    async def set_user(self, ctx: RequestContext, req: Any) -> None:
        """Change passwords and levels, all or nothing (one atomic write of the user file)."""
        async with self._user_lock:
            users = {u.name: u for u in self._users.list()}
            changes: list[tuple[str, str, UserLevel]] = []
            for entry in req.User or []:
                name = str(entry.Username or "")
                if name not in users:
                    raise SoapFault.sender(
                        "InvalidArgVal", "UsernameMissing", reason=f"no user {name!r}"
                    )
                if entry.Password is None or entry.Password == "":
                    raise _prohibited("PasswordTooWeak", "an empty password is not accepted")
                _check_password(str(entry.Password))
                changes.append((name, str(entry.Password), _level(entry.UserLevel)))
            demoted = {n for n, _, lv in changes if lv is not UserLevel.ADMINISTRATOR}
            _keep_an_administrator(users, removed=set(), demoted=demoted)
            await asyncio.to_thread(self._users.update, changes)
            for name, _, _ in changes:
                log.info("ONVIF user %r changed by %r", name, ctx.caller.user)


def _capabilities_of(service: OnvifService) -> dict[str, Any] | None:
    method = getattr(service, "capabilities", None)
    if not callable(method):
        return None
    caps: dict[str, Any] = method()
    return caps


def _legacy_extension(base_url: str, served: dict[str, OnvifService]) -> dict[str, Any]:
    """tt:CapabilitiesExtension blocks from the other services' capabilities (spec §6.1-6.3)."""
    extension: dict[str, Any] = {}

    def xaddr(name: str) -> str:
        return base_url + SERVICE_BY_NAME[name].path

    if "recording" in served:
        caps = _capabilities_of(served["recording"]) or {}
        extension["Recording"] = {
            "XAddr": xaddr("recording"),
            "ReceiverSource": "receiver" in served,
            "MediaProfileSource": False,
            "DynamicRecordings": bool(caps.get("DynamicRecordings", False)),
            "DynamicTracks": bool(caps.get("DynamicTracks", False)),
            "MaxStringLength": MAX_STRING_LENGTH,
        }
    if "search" in served:
        caps = _capabilities_of(served["search"]) or {}
        extension["Search"] = {
            "XAddr": xaddr("search"),
            "MetadataSearch": bool(caps.get("MetadataSearch", False)),
        }
    if "replay" in served:
        extension["Replay"] = {"XAddr": xaddr("replay")}
    if "receiver" in served:
        caps = _capabilities_of(served["receiver"]) or {}
        extension["Receiver"] = {
            "XAddr": xaddr("receiver"),
            "RTP_Multicast": bool(caps.get("RTP_Multicast", False)),
            "RTP_TCP": bool(caps.get("RTP_TCP", False)),
            "RTP_RTSP_TCP": bool(caps.get("RTP_RTSP_TCP", True)),
            "SupportedReceivers": int(caps.get("SupportedReceivers", 0)),
            "MaximumRTSPURILength": int(caps.get("MaximumRTSPURILength", 128)),
        }
    return extension


def _date_time(ns: int) -> dict[str, Any]:
    t = time.gmtime(ns // NS_PER_SECOND)
    return {
        "Time": {"Hour": t.tm_hour, "Minute": t.tm_min, "Second": t.tm_sec},
        "Date": {"Year": t.tm_year, "Month": t.tm_mon, "Day": t.tm_mday},
    }


def _scope_segment(text: str) -> str:
    """A scope path segment: spaces and reserved characters percent-encoded (RFC 3986)."""
    return quote(text, safe="")


def _checked_scopes(items: Sequence[Any], *, limit: int) -> list[str]:
    scopes = [str(s).strip() for s in items]
    if len(scopes) > limit:
        raise SoapFault.receiver(
            "Action", "TooManyScopes", reason=f"at most {limit} configurable scopes"
        )
    for scope in scopes:
        if not scope or len(scope) > MAX_SCOPE_LENGTH or any(c.isspace() for c in scope):
            raise SoapFault.sender("InvalidArgVal", reason=f"scope {scope[:64]!r} is no URI")
    return list(dict.fromkeys(scopes))


def _prohibited(subcode: str, reason: str) -> SoapFault:
    return SoapFault.sender("OperationProhibited", subcode, reason=reason)


def _check_name(name: str) -> None:
    if not name:
        raise _prohibited("UsernameTooShort", "the user name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise _prohibited(
            "UsernameTooLong", f"user name of {len(name)} characters (max {MAX_NAME_LENGTH})"
        )
    if not name.isprintable() or ":" in name:
        raise SoapFault.sender(
            "InvalidArgVal", reason=f"user name {name!r} must be printable and have no ':'"
        )


def _check_password(password: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise _prohibited(
            "PasswordTooLong",
            f"password of {len(password)} characters (max {MAX_PASSWORD_LENGTH})",
        )


def _level(value: Any) -> UserLevel:
    text = str(value)
    if text == "Anonymous":
        raise _prohibited("AnonymousNotAllowed", "user level Anonymous is not allowed")
    try:
        return UserLevel(text)
    except ValueError:
        raise SoapFault.sender("InvalidArgVal", reason=f"unsupported user level {text!r}") from None


def _keep_an_administrator(users: dict[str, Any], *, removed: set[str], demoted: set[str]) -> None:
    left = [
        u
        for u in users.values()
        if u.level is UserLevel.ADMINISTRATOR and u.name not in removed and u.name not in demoted
    ]
    if not left:
        raise SoapFault.sender(
            "InvalidArgVal", "FixedUser", reason="the last administrator cannot be removed"
        )


def _interface(facts: InterfaceFacts) -> dict[str, Any]:
    return {
        "token": facts.name[:64],
        "Enabled": facts.up,
        "Info": {"Name": facts.name, "HwAddress": facts.mac, "MTU": facts.mtu},
        "IPv4": {
            "Enabled": bool(facts.ipv4),
            "Config": {
                "Manual": [{"Address": a, "PrefixLength": p} for a, p in facts.ipv4],
                "DHCP": False,
            },
        },
    }


def host_interfaces() -> list[InterfaceFacts]:
    """This host's interfaces from /sys/class/net (Linux); loopback only when it is alone."""
    found: list[InterfaceFacts] = []
    try:
        names = sorted(p.name for p in _SYS_NET.iterdir())
    except OSError:
        names = [name for _, name in socket.if_nameindex()]
    for name in names[: MAX_INTERFACES * 2]:
        base = _SYS_NET / name
        mac = _read(base / "address") or "00:00:00:00:00:00"
        mtu = int(_read(base / "mtu") or 1500)
        up = (_read(base / "operstate") or "unknown") in ("up", "unknown")
        found.append(InterfaceFacts(name, mac, mtu, up, _ipv4_of(name)))
    real = [f for f in found if f.name != "lo"]
    return real or found


#: How long host interface facts are reused: reading sysfs and ioctls for every deviceInfo or
#: GetNetworkInterfaces answer costs more than the rest of the answer, and addresses rarely change.
INTERFACE_FACTS_TTL_S = 5.0


class CachedInterfaces:
    """`read()` (host_interfaces by default) at most once per `ttl_s` seconds."""

    def __init__(
        self,
        read: Callable[[], Sequence[InterfaceFacts]] = host_interfaces,
        *,
        ttl_s: float = INTERFACE_FACTS_TTL_S,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._now = now
        self._facts: Sequence[InterfaceFacts] = ()
        self._read_at: float | None = None

    def __call__(self) -> Sequence[InterfaceFacts]:
        now = self._now()
        if self._read_at is None or now - self._read_at >= self._ttl_s:
            self._facts, self._read_at = tuple(self._read()), now
        return self._facts


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ipv4_of(name: str) -> tuple[tuple[str, int], ...]:
    """The primary IPv4 address of interface `name` (SIOCGIFADDR), or () if it has none."""
    request = array.array("B", struct.pack("256s", name.encode()[:15]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            address = socket.inet_ntoa(request.tobytes()[20:24])
            fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, request)
            mask = socket.inet_ntoa(request.tobytes()[20:24])
        except OSError:
            return ()
    prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    return ((address, prefix),)
