"""PSIA System service: deviceInfo, time, status, reboot/factoryReset (refused), Network, Storage,
Video inputs (spec §2.1)."""

from __future__ import annotations

import asyncio
import os
import shutil

from lxml import etree

from app.core.time import NS_PER_SECOND, format_iso, parse_iso
from app.engine.rest.context import (
    MAX_NAME_CHARS,
    MAX_TIME_ZONE_CHARS,
    RestContext,
    channels,
)
from app.engine.rest.registry import (
    Access,
    Method,
    Node,
    RestRequest,
    RestResponse,
    status_response,
    xml_response,
)
from app.engine.rest.status import bad_parameters, not_found, not_supported
from app.engine.rest.xml import child, new_root, text_child

#: A PUT Time whose localTime is this close to the recorder clock is a round trip, not a set.
CLOCK_TOLERANCE_S = 60
TIME_MODES = ("NTP", "manual")
#: The single storage volume: the engine's data directory.
VOLUME_ID = "1"


class System:
    """Handlers of the System service over one RestContext."""

    def __init__(self, ctx: RestContext) -> None:
        self.ctx = ctx

    # ---------------------------------------------------------------- deviceInfo
    def _device_info(self) -> etree._Element:
        ctx = self.ctx
        root = new_root("DeviceInfo")
        text_child(root, "deviceName", ctx.settings.device_name)
        text_child(root, "deviceID", ctx.device_id())
        text_child(root, "deviceDescription", ctx.info.model)
        text_child(root, "deviceManufacturer", ctx.info.manufacturer)
        text_child(root, "model", ctx.info.model)
        text_child(root, "serialNumber", ctx.info.serial_number)
        facts = list(ctx.interfaces())
        text_child(root, "macAddress", facts[0].mac if facts else "00:00:00:00:00:00")
        text_child(root, "firmwareVersion", ctx.info.firmware_version)
        text_child(root, "hardwareVersion", ctx.info.hardware_id)
        text_child(root, "deviceType", "NVR")
        return root

    async def get_device_info(self, request: RestRequest) -> RestResponse:
        return xml_response(self._device_info())

    async def put_device_info(self, request: RestRequest) -> RestResponse:
        doc = request.doc("DeviceInfo")
        name = doc.text("deviceName")
        if name is not None:
            if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
                raise bad_parameters(f"deviceName must be 1…{MAX_NAME_CHARS} printable characters")
            self.ctx.settings.device_name = name
            await asyncio.to_thread(self.ctx.settings.save)
        return status_response(request)

    # ---------------------------------------------------------------- time
    def _time(self, *, options: bool = False) -> etree._Element:
        settings = self.ctx.settings
        root = new_root("Time")
        mode = text_child(root, "timeMode", settings.time_mode)
        text_child(root, "localTime", format_iso(self.ctx.clock.wall_ns(), digits=0))
        zone = text_child(root, "timeZone", settings.time_zone)
        if options:
            mode.set("opt", ",".join(TIME_MODES))
            zone.set("min", "1")
            zone.set("max", str(MAX_TIME_ZONE_CHARS))
        return root

    async def get_time(self, request: RestRequest) -> RestResponse:
        return xml_response(self._time())

    async def time_capabilities(self, request: RestRequest) -> RestResponse:
        return xml_response(self._time(options=True))

    async def put_time(self, request: RestRequest) -> RestResponse:
        doc = request.doc("Time")
        settings = self.ctx.settings
        mode = doc.text("timeMode")
        if mode is not None:
            canonical = {m.lower(): m for m in TIME_MODES}.get(mode.lower())
            if canonical is None:
                raise bad_parameters(f"timeMode must be NTP or manual, not {mode[:40]!r}")
            mode = canonical
        zone = doc.text("timeZone")
        if zone is not None and (
            not zone or len(zone) > MAX_TIME_ZONE_CHARS or not zone.isprintable()
        ):
            raise bad_parameters(f"timeZone must be 1…{MAX_TIME_ZONE_CHARS} printable characters")
        local = doc.text("localTime")
        if local:
            try:
                wanted = parse_iso(local)
            except ValueError:
                raise bad_parameters(f"localTime {local[:40]!r} is not an xs:dateTime") from None
            if abs(wanted - self.ctx.clock.wall_ns()) > CLOCK_TOLERANCE_S * NS_PER_SECOND:
                # The recorder stamps evidence with the host's UTC clock; it is never set here.
                raise not_supported("the recorder clock follows the host and cannot be set")
        settings.time_mode = mode or settings.time_mode
        settings.time_zone = zone or settings.time_zone
        await asyncio.to_thread(settings.save)
        return status_response(request)

    # ---------------------------------------------------------------- status, operations
    async def get_status(self, request: RestRequest) -> RestResponse:
        ctx = self.ctx
        root = new_root("DeviceStatus")
        text_child(root, "currentDeviceTime", format_iso(ctx.clock.wall_ns(), digits=0))
        uptime = (ctx.clock.monotonic_ns() - ctx.started_mono_ns) // NS_PER_SECOND
        text_child(root, "deviceUpTime", max(uptime, 0))
        cpus = child(root, "CPUList")
        cpu = child(cpus, "CPU")
        text_child(cpu, "cpuDescription", f"{os.cpu_count() or 1} cores")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        text_child(cpu, "cpuUtilization", min(100, round(100 * load / (os.cpu_count() or 1))))
        total, available = await asyncio.to_thread(_memory_mb)
        memories = child(root, "MemoryList")
        memory = child(memories, "Memory")
        text_child(memory, "memoryDescription", "RAM (MB)")
        text_child(memory, "memoryUsage", max(total - available, 0))
        text_child(memory, "memoryAvailable", available)
        return xml_response(root)

    async def refuse_operation(self, request: RestRequest) -> RestResponse:
        raise not_supported(f"{request.url} is not supported by this recorder")

    # ---------------------------------------------------------------- network
    def _interface(self, parent: etree._Element | None, index: int) -> etree._Element:
        facts = list(self.ctx.interfaces())[index]
        element = (
            new_root("NetworkInterface") if parent is None else child(parent, "NetworkInterface")
        )
        text_child(element, "id", index + 1)
        address = child(element, "IPAddress")
        text_child(address, "ipVersion", "v4")
        text_child(address, "addressingType", "static")
        ipv4 = facts.ipv4[0] if facts.ipv4 else ("0.0.0.0", 0)
        text_child(address, "ipAddress", ipv4[0])
        text_child(address, "subnetMask", _mask(ipv4[1]))
        link = child(element, "Link")
        text_child(link, "MACAddress", facts.mac)
        text_child(link, "MTU", facts.mtu)
        return element

    async def get_interfaces(self, request: RestRequest) -> RestResponse:
        root = new_root("NetworkInterfaceList")
        for index in range(len(list(self.ctx.interfaces()))):
            self._interface(root, index)
        return xml_response(root)

    async def get_interface(self, request: RestRequest) -> RestResponse:
        count = len(list(self.ctx.interfaces()))
        ident = request.ids[-1]
        if not ident.isdigit() or not 1 <= int(ident) <= count:
            raise not_found(f"no network interface {ident[:40]!r}")
        return xml_response(self._interface(None, int(ident) - 1))

    # ---------------------------------------------------------------- storage
    async def _volume(self, parent: etree._Element | None) -> etree._Element:
        element = new_root("StorageVolume") if parent is None else child(parent, "StorageVolume")
        text_child(element, "id", VOLUME_ID)
        text_child(element, "volumeName", "recordings")
        text_child(element, "volumePath", "/recordings")
        text_child(element, "storageType", "internal")
        total, free = await self._disk()
        text_child(element, "capacity", total)
        text_child(element, "freeSpace", free)
        return element

    async def _disk(self) -> tuple[int, int]:
        """(capacity, free) in MB of the data directory's file system."""
        if self.ctx.data_dir is None:
            return 0, 0
        usage = await asyncio.to_thread(shutil.disk_usage, self.ctx.data_dir)
        return usage.total >> 20, usage.free >> 20

    def _check_volume(self, request: RestRequest) -> None:
        if request.ids[-1] != VOLUME_ID:
            raise not_found(f"no storage volume {request.ids[-1][:40]!r}")

    async def get_volumes(self, request: RestRequest) -> RestResponse:
        root = new_root("StorageVolumeList")
        await self._volume(root)
        return xml_response(root)

    async def get_volume(self, request: RestRequest) -> RestResponse:
        self._check_volume(request)
        return xml_response(await self._volume(None))

    async def get_volume_status(self, request: RestRequest) -> RestResponse:
        self._check_volume(request)
        root = new_root("StorageVolumeStatus")
        text_child(root, "enabled", True)
        total, free = await self._disk()
        text_child(root, "capacity", total)
        text_child(root, "freeSpace", free)
        return xml_response(root)

    # ---------------------------------------------------------------- video inputs
    async def get_inputs(self, request: RestRequest) -> RestResponse:
        root = new_root("VideoInputChannelList")
        for n, rec in await channels(self.ctx.store):
            _input(child(root, "VideoInputChannel"), n, rec.config.name or rec.token)
        return xml_response(root)

    async def get_input(self, request: RestRequest) -> RestResponse:
        ident = request.ids[-1]
        for n, rec in await channels(self.ctx.store):
            if str(n) == ident:
                return xml_response(_input(new_root("VideoInputChannel"), n, rec.config.name))
        raise not_found(f"no video input channel {ident[:40]!r}")

    # ---------------------------------------------------------------- tree
    def node(self) -> Node:
        a, o, v = Access.ADMINISTRATOR, Access.OPERATOR, Access.VIEWER
        refuse = self.refuse_operation
        system = Node.service("System", "Device identity, time, status and operations")
        system.add(
            Node.resource(
                "deviceInfo",
                get=Method(self.get_device_info, v, "Device identity", result="DeviceInfo"),
                put=Method(
                    self.put_device_info,
                    a,
                    "Set the device name",
                    inbound="DeviceInfo",
                    notes="only deviceName is writable; other leaves are ignored",
                ),
            )
        )
        system.add(
            Node.resource(
                "time",
                get=Method(self.get_time, v, "Device time and time zone", result="Time"),
                put=Method(
                    self.put_time,
                    o,
                    "Set time mode and time zone",
                    inbound="Time",
                    notes="localTime more than 60 s from the recorder clock is notSupport",
                ),
                capabilities=self.time_capabilities,
            )
        )
        system.add(
            Node.resource(
                "status",
                get=Method(self.get_status, v, "Uptime, CPU, memory", result="DeviceStatus"),
            )
        )
        for name in ("reboot", "factoryReset", "updateFirmware"):
            system.add(
                Node.resource(
                    name,
                    put=Method(
                        refuse,
                        a,
                        f"{name} (not supported: answers statusCode 4 notSupport)",
                        query=("mode",) if name == "factoryReset" else (),
                    ),
                )
            )
        network = system.add(Node.service("Network"))
        interfaces = network.add(
            Node.resource(
                "interfaces",
                get=Method(
                    self.get_interfaces, v, "Network interfaces", result="NetworkInterfaceList"
                ),
            )
        )
        interfaces.add_item(
            Node.resource(
                "interface",
                get=Method(
                    self.get_interface, v, "One network interface", result="NetworkInterface"
                ),
                put=Method(
                    refuse, a, "Change the interface (not supported)", inbound="NetworkInterface"
                ),
            )
        )
        storage = system.add(Node.service("Storage"))
        volumes = storage.add(
            Node.resource(
                "volumes",
                get=Method(self.get_volumes, v, "Storage volumes", result="StorageVolumeList"),
            )
        )
        volume = volumes.add_item(
            Node.resource(
                "volume", get=Method(self.get_volume, v, "One volume", result="StorageVolume")
            )
        )
        volume.add(
            Node.resource(
                "status",
                get=Method(self.get_volume_status, v, "Volume state", result="StorageVolumeStatus"),
            )
        )
        inputs = system.add(Node.service("Video")).add(Node.service("inputs"))
        input_channels = inputs.add(
            Node.resource(
                "channels",
                get=Method(self.get_inputs, v, "Video inputs", result="VideoInputChannelList"),
            )
        )
        input_channels.add_item(
            Node.resource(
                "channel", get=Method(self.get_input, v, "One input", result="VideoInputChannel")
            )
        )
        return system


def _mask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return ".".join(str((bits >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _memory_mb() -> tuple[int, int]:
    """(total, available) MB from /proc/meminfo; zeros where it is missing."""
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                values[key] = int(rest.split()[0]) if rest.split() else 0
    except (OSError, ValueError):
        return 0, 0
    return values.get("MemTotal", 0) >> 10, values.get("MemAvailable", 0) >> 10


def _input(element: etree._Element, channel: int, name: str) -> etree._Element:
    text_child(element, "id", channel)
    text_child(element, "inputPort", channel)
    text_child(element, "name", name or f"channel {channel}")
    return element
