"""Typed values the ONVIF client returns (no zeep objects leak out), and their converters.

Times are UTC int nanoseconds (app.core.time); absent optional times are None. Durations are the
device's text, verbatim (PF-07). Converters accept zeep objects or plain dicts, and read both
spellings where devices differ (PF-21: `Recording` and `RecordingToken` source items).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from app.core.time import from_datetime, parse_iso

NS_SCHEMA = "http://www.onvif.org/ver10/schema"
_TT = f"{{{NS_SCHEMA}}}"


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware_version: str
    serial_number: str
    hardware_id: str


@dataclasses.dataclass(frozen=True)
class ServiceInfo:
    """One entry of GetServices (or derived from legacy GetCapabilities)."""

    namespace: str
    xaddr: str
    version: tuple[int, int] | None
    #: The service's capability attributes as text (parse with `number`/`flag`).
    capabilities: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RecordingSource:
    source_id: str
    name: str
    location: str
    description: str
    address: str


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    token: str
    track_type: str
    description: str


@dataclasses.dataclass(frozen=True)
class RecordingItem:
    """GetRecordings: a recording's configuration and tracks."""

    token: str
    source: RecordingSource
    content: str
    maximum_retention_time: str
    tracks: tuple[TrackConfig, ...]


@dataclasses.dataclass(frozen=True)
class TrackInfo:
    token: str
    track_type: str
    description: str
    data_from: int | None
    data_to: int | None


@dataclasses.dataclass(frozen=True)
class RecordingInfo:
    """GetRecordingInformation / FindRecordings results."""

    token: str
    source: RecordingSource
    earliest: int | None
    latest: int | None
    content: str
    tracks: tuple[TrackInfo, ...]
    status: str


@dataclasses.dataclass(frozen=True)
class RecordingSummary:
    data_from: int | None
    data_until: int | None
    number_recordings: int


@dataclasses.dataclass(frozen=True)
class MediaAttributes:
    recording_token: str
    track_types: tuple[str, ...]
    start: int | None
    end: int | None


@dataclasses.dataclass(frozen=True)
class Notification:
    """One event: topic text, message time and the Source/Data simple items."""

    topic: str
    utc_time: int | None
    property_operation: str | None
    source: Mapping[str, str]
    data: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class EventResult:
    """One FindEvents result (a recording history event or a virtual start-state event)."""

    recording_token: str
    track_token: str
    time: int | None
    event: Notification
    start_state: bool


@dataclasses.dataclass(frozen=True)
class JobSource:
    source_token: str | None
    source_type: str | None
    auto_create_receiver: bool | None
    #: (SourceTag, Destination) pairs.
    tracks: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class RecordingJob:
    token: str
    recording_token: str
    mode: str
    priority: int
    sources: tuple[JobSource, ...]


@dataclasses.dataclass(frozen=True)
class JobState:
    recording_token: str
    state: str


@dataclasses.dataclass(frozen=True)
class Receiver:
    token: str
    mode: str
    media_uri: str
    stream_type: str | None
    transport: str | None


@dataclasses.dataclass(frozen=True)
class ReceiverState:
    state: str
    auto_created: bool


@dataclasses.dataclass(frozen=True)
class PullPoint:
    address: str
    termination: int | None


# ------------------------------------------------------------------ converters


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj.name` for zeep objects and `obj[name]` for dicts; `default` when absent."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    return default if value is None else value


def text(obj: Any) -> str:
    """Text of a simple value or of a simpleContent object (`_value_1`, e.g. wsa:Address)."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return obj
    inner = field(obj, "_value_1")
    return str(inner) if inner is not None else str(obj)


def timestamp(value: Any) -> int | None:
    """A zeep datetime or ISO text → UTC ns; naive times are UTC (GEN-08)."""
    if value is None or value == "":
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return from_datetime(value)
    return parse_iso(str(value))


def number(value: str | None) -> int | float | None:
    """A numeric attribute as devices write it: '32', '32.0', '1e2' (PF-25: float, then int)."""
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        return None
    return int(parsed) if parsed.is_integer() else parsed


def flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def to_source(obj: Any) -> RecordingSource:
    return RecordingSource(
        source_id=text(field(obj, "SourceId")),
        name=text(field(obj, "Name")),
        location=text(field(obj, "Location")),
        description=text(field(obj, "Description")),
        address=text(field(obj, "Address")),
    )


def to_recording_item(obj: Any) -> RecordingItem:
    config = field(obj, "Configuration")
    tracks = field(field(obj, "Tracks"), "Track", [])
    return RecordingItem(
        token=text(field(obj, "RecordingToken")),
        source=to_source(field(config, "Source")),
        content=text(field(config, "Content")),
        maximum_retention_time=text(field(config, "MaximumRetentionTime")),
        tracks=tuple(
            TrackConfig(
                token=text(field(t, "TrackToken")),
                track_type=text(field(field(t, "Configuration"), "TrackType")),
                description=text(field(field(t, "Configuration"), "Description")),
            )
            for t in tracks
        ),
    )


def to_recording_info(obj: Any) -> RecordingInfo:
    return RecordingInfo(
        token=text(field(obj, "RecordingToken")),
        source=to_source(field(obj, "Source")),
        earliest=timestamp(field(obj, "EarliestRecording")),
        latest=timestamp(field(obj, "LatestRecording")),
        content=text(field(obj, "Content")),
        tracks=tuple(
            TrackInfo(
                token=text(field(t, "TrackToken")),
                track_type=text(field(t, "TrackType")),
                description=text(field(t, "Description")),
                data_from=timestamp(field(t, "DataFrom")),
                data_to=timestamp(field(t, "DataTo")),
            )
            for t in field(obj, "Track", [])
        ),
        status=text(field(obj, "RecordingStatus")),
    )


def to_summary(obj: Any) -> RecordingSummary:
    return RecordingSummary(
        data_from=timestamp(field(obj, "DataFrom")),
        data_until=timestamp(field(obj, "DataUntil")),
        number_recordings=int(field(obj, "NumberRecordings", 0)),
    )


def to_media_attributes(obj: Any) -> MediaAttributes:
    types = []
    for attrs in field(obj, "TrackAttributes", []):
        info = field(attrs, "TrackInformation")
        types.append(text(field(info, "TrackType")))
    return MediaAttributes(
        recording_token=text(field(obj, "RecordingToken")),
        track_types=tuple(types),
        start=timestamp(field(obj, "From")),
        end=timestamp(field(obj, "Until")),
    )


def to_event_result(obj: Any) -> EventResult:
    return EventResult(
        recording_token=text(field(obj, "RecordingToken")),
        track_token=text(field(obj, "TrackToken")),
        time=timestamp(field(obj, "Time")),
        event=to_notification(field(obj, "Event")),
        start_state=bool(field(obj, "StartStateEvent", False)),
    )


def to_notification(holder: Any) -> Notification:
    """A wsnt:NotificationMessageHolderType: topic text plus the tt:Message payload (xs:any).

    zeep hands the xs:any payload over as XML when it cannot resolve it, but as a typed object
    once tt:Message is in its schema set (the catalog has onvif.xsd): both are read.
    """
    topic = " ".join(text(field(holder, "Topic")).split())
    message = field(field(holder, "Message"), "_value_1")
    element = message[0] if isinstance(message, list) and message else message
    if isinstance(element, etree._Element):
        utc = element.get("UtcTime")
        return Notification(
            topic=topic,
            utc_time=timestamp(utc) if utc else None,
            property_operation=element.get("PropertyOperation"),
            source=_simple_items(element.find(f"{_TT}Source")),
            data=_simple_items(element.find(f"{_TT}Data")),
        )
    if element is None or isinstance(element, str):
        return Notification(topic, None, None, {}, {})
    operation = field(element, "PropertyOperation")
    return Notification(
        topic=topic,
        utc_time=timestamp(field(element, "UtcTime")),
        property_operation=text(operation) if operation is not None else None,
        source=_typed_simple_items(field(element, "Source")),
        data=_typed_simple_items(field(element, "Data")),
    )


def _simple_items(parent: etree._Element | None) -> dict[str, str]:
    if parent is None:
        return {}
    return {
        item.get("Name", ""): item.get("Value", "")
        for item in parent
        if etree.QName(item).localname == "SimpleItem"
    }


def _typed_simple_items(parent: Any) -> dict[str, str]:
    """tt:ItemList as zeep's object: SimpleItem values are the wire text (xs:anySimpleType)."""
    return {
        text(field(item, "Name")): text(field(item, "Value"))
        for item in field(parent, "SimpleItem", [])
    }


def to_job(token: str, config: Any) -> RecordingJob:
    return RecordingJob(
        token=token,
        recording_token=text(field(config, "RecordingToken")),
        mode=text(field(config, "Mode")),
        priority=int(field(config, "Priority", 0)),
        sources=tuple(to_job_source(s) for s in field(config, "Source", [])),
    )


def to_job_source(obj: Any) -> JobSource:
    ref = field(obj, "SourceToken")
    return JobSource(
        source_token=text(field(ref, "Token")) if ref is not None else None,
        source_type=field(ref, "Type"),
        auto_create_receiver=field(obj, "AutoCreateReceiver"),
        tracks=tuple(
            (text(field(t, "SourceTag")), text(field(t, "Destination")))
            for t in field(obj, "Tracks", [])
        ),
    )


def job_configuration(
    recording_token: str,
    mode: str,
    priority: int,
    sources: Iterable[JobSource],
) -> dict[str, Any]:
    """A RecordingJobConfiguration value for Create/SetRecordingJobConfiguration."""
    values: list[dict[str, Any]] = []
    for source in sources:
        value: dict[str, Any] = {}
        if source.source_token is not None:
            value["SourceToken"] = {"Token": source.source_token, "Type": source.source_type}
        if source.auto_create_receiver is not None:
            value["AutoCreateReceiver"] = source.auto_create_receiver
        value["Tracks"] = [{"SourceTag": s, "Destination": d} for s, d in source.tracks]
        values.append(value)
    return {"RecordingToken": recording_token, "Mode": mode, "Priority": priority, "Source": values}


def to_receiver(obj: Any) -> Receiver:
    config = field(obj, "Configuration")
    setup = field(config, "StreamSetup")
    return Receiver(
        token=text(field(obj, "Token")),
        mode=text(field(config, "Mode")),
        media_uri=text(field(config, "MediaUri")),
        stream_type=field(setup, "Stream"),
        transport=field(field(setup, "Transport"), "Protocol"),
    )


def receiver_configuration(
    media_uri: str,
    *,
    mode: str = "AutoConnect",
    stream: str = "RTP-Unicast",
    protocol: str = "RTSP",
) -> dict[str, Any]:
    return {
        "Mode": mode,
        "MediaUri": media_uri,
        "StreamSetup": {"Stream": stream, "Transport": {"Protocol": protocol}},
    }
