"""A typed asyncio ONVIF client (Profile G client set, spec §7.2) over the official WSDLs.

Requests are serialized and answers deserialized by zeep from the same offline catalog the engine
serves with (app.protocols.onvif.wsdl), so names and order are the schema's (PF-03/04); HTTP is
aiohttp through `SoapTransport` (Digest, UsernameToken, faults). What callers get back are the
dataclasses of `models`, never zeep objects.

    async with OnvifClient("http://nvr:80/onvif/device_service", "admin", "pw") as nvr:
        await nvr.connect()                       # clock offset + service addresses
        for rec in await nvr.find_recordings():
            uri = await nvr.get_replay_uri(rec.token)
"""

from __future__ import annotations

import asyncio
import calendar
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import isodate
from lxml import etree

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND, Clock, SystemClock, format_iso
from app.protocols.onvif.wsdl import (
    NS_DEVICE,
    NS_EVENTS,
    NS_RECEIVER,
    NS_RECORDING,
    NS_REPLAY,
    NS_SEARCH,
    NS_TOPICS,
    NS_WSNT,
    SERVICE_BY_NAME,
    Catalog,
    catalog,
)
from app.remote.http import Credentials
from app.remote.onvif import models as m
from app.remote.onvif.errors import OnvifError, OnvifFault
from app.remote.onvif.transport import AuthMode, SoapTransport

log = logging.getLogger(__name__)

#: Timeout of an ordinary call (blocking result calls add their WaitTime + RESULT_MARGIN_S).
DEFAULT_TIMEOUT_S = 10.0
#: PF-16: an HTTP timeout must exceed the device's WaitTime by a margin.
RESULT_MARGIN_S = 5.0
#: Most result pages fetched for one search before giving up (a stuck "Searching" device).
MAX_SEARCH_PAGES = 10_000
#: Results asked for per page (the engine caps a response at 1000 anyway).
DEFAULT_PAGE_SIZE = 100
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"

_NS_BY_SERVICE = {
    "device": NS_DEVICE,
    "events": NS_EVENTS,
    "recording": NS_RECORDING,
    "search": NS_SEARCH,
    "replay": NS_REPLAY,
    "receiver": NS_RECEIVER,
}
#: Legacy GetCapabilities category element → service namespace (PF-25).
_LEGACY_CATEGORIES = {
    "Device": NS_DEVICE,
    "Events": NS_EVENTS,
    "Recording": NS_RECORDING,
    "Search": NS_SEARCH,
    "Replay": NS_REPLAY,
    "Receiver": NS_RECEIVER,
}
_TDS = f"{{{NS_DEVICE}}}"
_TT = f"{{{m.NS_SCHEMA}}}"


def duration_s(text: str) -> float:
    """Seconds of an xs:duration (Y=365 d, M=30 d as in retention rules, PF-07)."""
    value: Any = isodate.parse_duration(text)
    if isinstance(value, isodate.Duration):
        days = float(value.years) * 365 + float(value.months) * 30
        return float(days * 86_400 + value.tdelta.total_seconds())
    return float(value.total_seconds())


class OnvifClient:
    """One device (the embedded engine or a remote NVR); use as an async context manager."""

    def __init__(
        self,
        device_url: str,
        user: str | None = None,
        password: str | None = None,
        *,
        auth: AuthMode = "digest",
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.device_url = device_url
        self.timeout_s = timeout_s
        self._own_session = session is None
        self._session = session
        self._credentials = Credentials(user, password) if user and password is not None else None
        self._auth: AuthMode = auth
        self._clock = clock or SystemClock()
        self._transport: SoapTransport | None = None
        self._catalog: Catalog | None = None
        #: namespace → XAddr, from GetServices / GetCapabilities.
        self.xaddrs: dict[str, str] = {}
        self.services: list[m.ServiceInfo] = []

    async def __aenter__(self) -> OnvifClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        # Loading the WSDLs takes a few hundred ms of CPU: keep it off the event loop.
        self._catalog = await asyncio.to_thread(catalog)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._transport = SoapTransport(
            self._session, self._credentials, auth=self._auth, clock=self._clock
        )

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def transport(self) -> SoapTransport:
        if self._transport is None:
            raise RuntimeError("OnvifClient used outside `async with` (call open() first)")
        return self._transport

    # ------------------------------------------------------------------ generic call

    async def call(
        self,
        service: str,
        operation: str,
        *,
        url: str | None = None,
        timeout_s: float | None = None,
        authenticate: bool = True,
        **values: Any,
    ) -> Any:
        """Call `operation` of `service` with the request's children as keyword values.

        Returns zeep's unwrapped answer (one child → its value); typed wrappers below convert it.
        """
        result, _ = await self._call(service, operation, url, timeout_s, authenticate, values)
        return result

    async def _call(
        self,
        service: str,
        operation: str,
        url: str | None,
        timeout_s: float | None,
        authenticate: bool,
        values: dict[str, Any],
    ) -> tuple[Any, etree._Element]:
        assert self._catalog is not None, "OnvifClient used outside `async with`"
        info = self._catalog.operation(service, operation)
        op: Any = info.operation
        try:
            message = op.input.serialize(**values)
        except Exception as exc:  # noqa: BLE001 - zeep's validation errors have many types
            raise ConfigError(f"bad {operation} request values: {exc}") from None
        target = url or self.xaddr(service)
        root = await self.transport.post(
            target,
            message.content,
            info.action,
            timeout_s=timeout_s or self.timeout_s,
            authenticate=authenticate,
        )
        try:
            return op.output.deserialize(root), root
        except Exception as exc:  # noqa: BLE001 - a device's malformed answer
            raise OnvifError(f"{target} answered {operation} unreadably: {exc}") from None

    def xaddr(self, service: str) -> str:
        """The service's address from GetServices; the device URL until connect() ran."""
        namespace = _NS_BY_SERVICE.get(service, SERVICE_BY_NAME[service].namespace)
        return self.xaddrs.get(namespace, self.device_url)

    # ------------------------------------------------------------------ device

    async def connect(self) -> list[m.ServiceInfo]:
        """Learn the device clock offset (for UsernameToken) and the service addresses."""
        self.transport.clock_offset_ns = await self.clock_offset_ns()
        return await self.get_services()

    async def clock_offset_ns(self) -> int:
        """Device UTC minus our UTC, from GetSystemDateAndTime (PRE_AUTH, sent unauthenticated)."""
        before = self._clock.wall_ns()
        _, root = await self._call(
            "device", "GetSystemDateAndTime", self.device_url, None, False, {}
        )
        after = self._clock.wall_ns()
        utc = root.find(f".//{_TT}UTCDateTime")
        if utc is None:
            return 0  # devices that only report local time: assume they are in sync
        date, time_ = utc.find(f"{_TT}Date"), utc.find(f"{_TT}Time")

        def part(el: etree._Element | None, name: str) -> int:
            value = m.number(el.findtext(f"{_TT}{name}") if el is not None else None)
            return int(value or 0)

        device_s = calendar.timegm(
            (
                part(date, "Year"),
                part(date, "Month"),
                part(date, "Day"),
                part(time_, "Hour"),
                part(time_, "Minute"),
                part(time_, "Second"),
                0,
                0,
                0,
            )
        )
        return device_s * NS_PER_SECOND - (before + after) // 2

    async def get_device_information(self) -> m.DeviceInfo:
        r = await self.call("device", "GetDeviceInformation", url=self.device_url)
        return m.DeviceInfo(
            manufacturer=m.text(m.field(r, "Manufacturer")),
            model=m.text(m.field(r, "Model")),
            firmware_version=m.text(m.field(r, "FirmwareVersion")),
            serial_number=m.text(m.field(r, "SerialNumber")),
            hardware_id=m.text(m.field(r, "HardwareId")),
        )

    async def get_services(self) -> list[m.ServiceInfo]:
        """GetServices with capabilities; falls back to legacy GetCapabilities (PF-25)."""
        try:
            _, root = await self._call(
                "device",
                "GetServices",
                self.device_url,
                None,
                True,
                {"IncludeCapability": True},
            )
            services = [_service_info(el) for el in root.iter(f"{_TDS}Service")]
        except OnvifFault as fault:
            if not fault.not_supported:
                raise
            log.info("%s has no GetServices; using GetCapabilities", self.device_url)
            services = await self._legacy_services()
        self.services = services
        self.xaddrs = {s.namespace: s.xaddr for s in services if s.xaddr}
        return services

    async def _legacy_services(self) -> list[m.ServiceInfo]:
        _, root = await self._call(
            "device", "GetCapabilities", self.device_url, None, True, {"Category": ["All"]}
        )
        found: list[m.ServiceInfo] = []
        for el in root.iter():
            if not isinstance(el.tag, str):
                continue
            name = etree.QName(el).localname
            xaddr = el.findtext(f"{_TT}XAddr")
            if name in _LEGACY_CATEGORIES and xaddr:
                attrs = {k: v for k, v in el.attrib.items() if isinstance(k, str)}
                found.append(m.ServiceInfo(_LEGACY_CATEGORIES[name], xaddr.strip(), None, attrs))
        return found

    async def get_service_capabilities(self, service: str) -> dict[str, str]:
        """The service's Capabilities attributes as text (parse with models.number/flag)."""
        _, root = await self._call(service, "GetServiceCapabilities", None, None, True, {})
        caps = next(
            (
                el
                for el in root.iter()
                if isinstance(el.tag, str) and el.tag.endswith("}Capabilities")
            ),
            None,
        )
        return {} if caps is None else {str(k): str(v) for k, v in caps.attrib.items()}

    # ------------------------------------------------------------------ recordings

    async def get_recordings(self) -> list[m.RecordingItem]:
        items = await self.call("recording", "GetRecordings")
        return [m.to_recording_item(i) for i in _as_list(items)]

    async def create_recording(
        self, source: m.RecordingSource, content: str, maximum_retention_time: str
    ) -> str:
        config = {
            "Source": {
                "SourceId": source.source_id,
                "Name": source.name,
                "Location": source.location,
                "Description": source.description,
                "Address": source.address,
            },
            "Content": content,
            "MaximumRetentionTime": maximum_retention_time,
        }
        return m.text(
            await self.call("recording", "CreateRecording", RecordingConfiguration=config)
        )

    async def delete_recording(self, token: str) -> None:
        await self.call("recording", "DeleteRecording", RecordingToken=token)

    async def get_recording_summary(self) -> m.RecordingSummary:
        return m.to_summary(await self.call("search", "GetRecordingSummary"))

    async def get_recording_information(self, token: str) -> m.RecordingInfo:
        r = await self.call("search", "GetRecordingInformation", RecordingToken=token)
        return m.to_recording_info(r)

    async def get_media_attributes(
        self, tokens: Sequence[str], time_ns: int
    ) -> list[m.MediaAttributes]:
        r = await self.call(
            "search", "GetMediaAttributes", RecordingTokens=list(tokens), Time=format_iso(time_ns)
        )
        return [m.to_media_attributes(a) for a in _as_list(r)]

    async def get_replay_uri(
        self, token: str, *, stream: str = "RTP-Unicast", protocol: str = "RTSP"
    ) -> str:
        setup = {"Stream": stream, "Transport": {"Protocol": protocol}}
        r = await self.call("replay", "GetReplayUri", StreamSetup=setup, RecordingToken=token)
        return m.text(r)

    # ------------------------------------------------------------------ search sessions

    async def find_recordings(
        self,
        *,
        recordings: Iterable[str] = (),
        sources: Iterable[str] = (),
        recording_filter: str | None = None,
        max_matches: int | None = None,
        keep_alive: str = "PT30S",
        page_size: int = DEFAULT_PAGE_SIZE,
        wait: str = "PT5S",
    ) -> list[m.RecordingInfo]:
        """FindRecordings, then GetRecordingSearchResults until Completed (RS-05/06, §7.2)."""
        scope = _scope(recordings, sources, recording_filter)
        token = await self.call(
            "search",
            "FindRecordings",
            Scope=scope,
            MaxMatches=max_matches,
            KeepAliveTime=keep_alive,
        )
        pages = self._pages("GetRecordingSearchResults", m.text(token), page_size, wait)
        return [m.to_recording_info(r) async for r in _items(pages, "RecordingInformation")]

    async def find_events(
        self,
        start: int,
        end: int | None = None,
        *,
        recordings: Iterable[str] = (),
        topic: str | None = None,
        include_start_state: bool = False,
        max_matches: int | None = None,
        keep_alive: str = "PT30S",
        page_size: int = DEFAULT_PAGE_SIZE,
        wait: str = "PT5S",
    ) -> list[m.EventResult]:
        """FindEvents with every child the CTT looks for, then results until Completed (RS-07/08).

        `end` before `start` searches backwards (PF-19). `topic` is a ConcreteSet expression with
        the `tns1` prefix, e.g. "tns1:RecordingHistory//.".
        """
        search_filter: dict[str, Any] = {}
        if topic is not None:
            expression = etree.Element(
                f"{{{NS_WSNT}}}TopicExpression",
                Dialect=CONCRETE_SET,
                nsmap={"wsnt": NS_WSNT, "tns1": NS_TOPICS},
            )
            expression.text = topic
            search_filter = {"_value_1": [expression]}
        token = await self.call(
            "search",
            "FindEvents",
            StartPoint=format_iso(start),
            EndPoint=format_iso(end) if end is not None else None,
            Scope=_scope(recordings, (), None),
            SearchFilter=search_filter,
            IncludeStartState=include_start_state,
            MaxMatches=max_matches,
            KeepAliveTime=keep_alive,
        )
        pages = self._pages("GetEventSearchResults", m.text(token), page_size, wait)
        return [m.to_event_result(r) async for r in _items(pages, "Result")]

    async def _pages(self, operation: str, token: str, page_size: int, wait: str) -> Any:
        """Result lists until SearchState is Completed; EndSearch if the caller stops early."""
        timeout = self.timeout_s + duration_s(wait) + RESULT_MARGIN_S
        completed = False
        try:
            for _ in range(MAX_SEARCH_PAGES):
                page = await self.call(
                    "search",
                    operation,
                    SearchToken=token,
                    MaxResults=page_size,
                    WaitTime=wait,
                    timeout_s=timeout,
                )
                completed = m.text(m.field(page, "SearchState")) == "Completed"
                yield page
                if completed:
                    return
            raise OnvifError(f"search {token} did not complete in {MAX_SEARCH_PAGES} pages")
        finally:
            if not completed:
                await self.end_search(token)

    async def end_search(self, token: str) -> None:
        """EndSearch; a dead session (InvalidToken) counts as ended (PF-17)."""
        try:
            await self.call("search", "EndSearch", SearchToken=token)
        except OnvifFault as fault:
            if not fault.not_found and not fault.has_subcode("InvalidToken"):
                raise

    # ------------------------------------------------------------------ recording jobs

    async def get_recording_jobs(self) -> list[m.RecordingJob]:
        items = await self.call("recording", "GetRecordingJobs")
        return [
            m.to_job(m.text(m.field(i, "JobToken")), m.field(i, "JobConfiguration"))
            for i in _as_list(items)
        ]

    async def create_recording_job(
        self, recording_token: str, mode: str, priority: int, sources: Iterable[m.JobSource]
    ) -> m.RecordingJob:
        """PF-24: with AutoCreateReceiver the answer names the new receiver in its Source."""
        config = m.job_configuration(recording_token, mode, priority, sources)
        r = await self.call("recording", "CreateRecordingJob", JobConfiguration=config)
        return m.to_job(m.text(m.field(r, "JobToken")), m.field(r, "JobConfiguration"))

    async def set_recording_job_mode(self, token: str, mode: str) -> None:
        await self.call("recording", "SetRecordingJobMode", JobToken=token, Mode=mode)

    async def get_recording_job_state(self, token: str) -> m.JobState:
        r = await self.call("recording", "GetRecordingJobState", JobToken=token)
        return m.JobState(m.text(m.field(r, "RecordingToken")), m.text(m.field(r, "State")))

    async def delete_recording_job(self, token: str) -> None:
        await self.call("recording", "DeleteRecordingJob", JobToken=token)

    # ------------------------------------------------------------------ receivers

    async def get_receivers(self) -> list[m.Receiver]:
        return [m.to_receiver(r) for r in _as_list(await self.call("receiver", "GetReceivers"))]

    async def create_receiver(self, configuration: dict[str, Any]) -> m.Receiver:
        r = await self.call("receiver", "CreateReceiver", Configuration=configuration)
        return m.to_receiver(r)

    async def configure_receiver(self, token: str, configuration: dict[str, Any]) -> None:
        await self.call(
            "receiver", "ConfigureReceiver", ReceiverToken=token, Configuration=configuration
        )

    async def set_receiver_mode(self, token: str, mode: str) -> None:
        await self.call("receiver", "SetReceiverMode", ReceiverToken=token, Mode=mode)

    async def get_receiver_state(self, token: str) -> m.ReceiverState:
        r = await self.call("receiver", "GetReceiverState", ReceiverToken=token)
        return m.ReceiverState(m.text(m.field(r, "State")), bool(m.field(r, "AutoCreated", False)))

    async def delete_receiver(self, token: str) -> None:
        await self.call("receiver", "DeleteReceiver", ReceiverToken=token)

    # ------------------------------------------------------------------ events (PullPoint)

    async def create_pull_point(self, initial_termination: str = "PT60S") -> m.PullPoint:
        r = await self.call(
            "events", "CreatePullPointSubscription", InitialTerminationTime=initial_termination
        )
        address = m.text(m.field(m.field(r, "SubscriptionReference"), "Address"))
        return m.PullPoint(
            address or self.xaddr("events"), m.timestamp(m.field(r, "TerminationTime"))
        )

    async def pull_messages(
        self, pull_point: m.PullPoint, *, wait: str = "PT5S", limit: int = 100
    ) -> list[m.Notification]:
        r = await self.call(
            "events",
            "PullMessages",
            url=pull_point.address,
            Timeout=wait,
            MessageLimit=limit,
            timeout_s=self.timeout_s + duration_s(wait) + RESULT_MARGIN_S,
        )
        return [m.to_notification(n) for n in m.field(r, "NotificationMessage", [])]

    async def unsubscribe(self, pull_point: m.PullPoint) -> None:
        await self.call("events", "Unsubscribe", url=pull_point.address)


def _service_info(el: etree._Element) -> m.ServiceInfo:
    version = el.find(f"{_TDS}Version")
    major = m.number(version.findtext(f"{_TT}Major")) if version is not None else None
    minor = m.number(version.findtext(f"{_TT}Minor")) if version is not None else None
    caps_holder = el.find(f"{_TDS}Capabilities")
    caps = next(iter(caps_holder), None) if caps_holder is not None else None
    attrs = {} if caps is None else {str(k): str(v) for k, v in caps.attrib.items()}
    return m.ServiceInfo(
        namespace=(el.findtext(f"{_TDS}Namespace") or "").strip(),
        xaddr=(el.findtext(f"{_TDS}XAddr") or "").strip(),
        version=(int(major), int(minor)) if major is not None and minor is not None else None,
        capabilities=attrs,
    )


def _scope(
    recordings: Iterable[str], sources: Iterable[str], recording_filter: str | None
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "IncludedSources": [{"Token": s} for s in sources],
        "IncludedRecordings": list(recordings),
    }
    if recording_filter is not None:
        scope["RecordingInformationFilter"] = recording_filter
    return scope


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


async def _items(pages: Any, name: str) -> Any:
    async for page in pages:
        for item in _as_list(m.field(page, name)):
            yield item
