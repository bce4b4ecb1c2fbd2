"""Typed results of the REST client, read tolerantly from PSIA/ISAPI documents (local names)."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import quote, urlsplit

from app.core.time import parse_iso
from app.remote.rest.errors import RestLimitError, RestProtocolError
from app.remote.rest.xml import (
    NS_XLINK,
    Element,
    children,
    expect_root,
    find,
    findbool,
    findint,
    findtext,
)

#: Most nodes read from an indexr document (a hostile device could send millions).
MAX_INDEX_NODES = 10_000
#: Most searchMatchItems read from one CMSearchResult page (servers send at most a few hundred).
MAX_MATCHES_PER_PAGE = 10_000
#: §3.2: the three values of responseStatusStrg.
SEARCH_OK, SEARCH_MORE, SEARCH_NONE = "OK", "MORE", "NO MATCHES"
_BASIC_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceInfo:
    """System/deviceInfo (§2.1)."""

    device_name: str
    device_id: str
    model: str
    serial_number: str
    mac_address: str
    firmware_version: str
    manufacturer: str = ""
    hardware_version: str = ""
    device_type: str = ""

    @classmethod
    def from_xml(cls, root: Element, resource: str) -> DeviceInfo:
        expect_root(root, "DeviceInfo", resource)
        return cls(
            device_name=findtext(root, "deviceName"),
            device_id=findtext(root, "deviceID"),
            model=findtext(root, "model"),
            serial_number=findtext(root, "serialNumber"),
            mac_address=findtext(root, "macAddress"),
            firmware_version=findtext(root, "firmwareVersion"),
            # Hikvision and the engine say deviceManufacturer; some PSIA devices manufacturer.
            manufacturer=findtext(root, "deviceManufacturer") or findtext(root, "manufacturer"),
            hardware_version=findtext(root, "hardwareVersion"),
            device_type=findtext(root, "deviceType"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What /PSIA/indexr lists: every resource path, compared case-insensitively (HR-01)."""

    paths: frozenset[str]
    known: bool = True

    @classmethod
    def from_indexr(cls, root: Element) -> Capabilities:
        found: set[str] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            for res in children(node, "Resource"):
                href = res.get(f"{{{NS_XLINK}}}href") or res.get("href") or ""
                if href:
                    found.add(_path_key(href))
                nested = find(res, "ResourceList")
                if nested is not None:
                    stack.append(nested)
                if len(found) > MAX_INDEX_NODES:
                    raise RestLimitError(f"indexr lists more than {MAX_INDEX_NODES} resources")
        return cls(frozenset(found))

    @classmethod
    def unknown(cls) -> Capabilities:
        """A device without /PSIA/indexr: nothing is known, so every feature is tried."""
        return cls(frozenset(), known=False)

    def has(self, path: str) -> bool:
        return not self.known or _path_key(path) in self.paths

    @property
    def content_mgmt(self) -> bool:
        """ContentMgmt (recording search) is optional in PSIA; sniff before offering search."""
        return self.has("/PSIA/ContentMgmt") or self.has("/PSIA/ContentMgmt/search")

    @property
    def search(self) -> bool:
        return self.has("/PSIA/ContentMgmt/search")

    @property
    def manual_record(self) -> bool:
        """Manual record start/stop (§2.4); its `<ID>` members are not listed, the parent is."""
        return self.has("/PSIA/ContentMgmt/record/control/manual/start/tracks")


@dataclasses.dataclass(frozen=True, slots=True)
class StreamingChannel:
    """Streaming/channels/<ID> (§2.3) with the live RTSP URL built per HR-20."""

    id: str
    name: str
    enabled: bool
    video_codec: str
    width: int | None
    height: int | None
    rtsp_port: int | None
    rtsp_url: str

    @classmethod
    def from_xml(cls, el: Element, host: str, default_rtsp_port: int) -> StreamingChannel:
        """`host` is the device's host as the client reached it (URL form): the device's own
        view of its address (`Extensions/rtspURL`) may be a NAT-internal one."""
        channel_id = findtext(el, "id")
        if not channel_id:
            raise RestProtocolError("a StreamingChannel has no <id>")
        port = findint(el, "Transport/rtspPortNo")
        if port is not None and not 0 < port < 65536:
            port = None
        netloc = f"{host}:{port or default_rtsp_port}"
        return cls(
            id=channel_id,
            name=findtext(el, "channelName"),
            enabled=findbool(el, "enabled", default=True),
            video_codec=findtext(el, "Video/videoCodecType"),
            width=findint(el, "Video/videoResolutionWidth"),
            height=findint(el, "Video/videoResolutionHeight"),
            rtsp_port=port,
            rtsp_url=f"rtsp://{netloc}/PSIA/Streaming/channels/{quote(channel_id, safe='')}",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Track:
    """ContentMgmt/record/tracks/<ID> (§2.4)."""

    id: str
    channel: str
    enabled: bool
    description: str
    guid: str
    source_url: str

    @classmethod
    def from_xml(cls, el: Element) -> Track:
        return cls(
            id=findtext(el, "id"),
            channel=findtext(el, "Channel"),
            enabled=findbool(el, "Enable", default=True),
            description=findtext(el, "Description"),
            guid=findtext(el, "TrackGUID"),
            source_url=findtext(el, "SrcDescriptor/SrcUrl"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SearchMatch:
    """One searchMatchItem: a contiguous recorded span of one track (§3.2, §3.3)."""

    track_id: str
    start_ns: int
    end_ns: int
    content_type: str
    codec: str
    playback_uri: str
    source_id: str = ""
    metadata: tuple[str, ...] = ()

    @classmethod
    def from_xml(cls, el: Element) -> SearchMatch:
        segment = find(el, "mediaSegmentDescriptor")
        start, end = findtext(el, "timeSpan/startTime"), findtext(el, "timeSpan/endTime")
        meta = find(el, "metadataMatches")
        start_ns, end_ns = parse_time(start), parse_time(end)
        if end_ns < start_ns:
            raise ValueError(f"timeSpan ends ({end}) before it starts ({start})")
        return cls(
            track_id=findtext(el, "trackID"),
            start_ns=start_ns,
            end_ns=end_ns,
            content_type=findtext(segment, "contentType") if segment is not None else "",
            codec=findtext(segment, "codecType") if segment is not None else "",
            playback_uri=findtext(segment, "playbackURI") if segment is not None else "",
            source_id=findtext(el, "sourceID"),
            metadata=tuple((d.text or "").strip() for d in children(meta, "metadataDescriptor"))
            if meta is not None
            else (),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SearchPage:
    """One CMSearchResult (§3.2); `status` is OK, MORE or NO MATCHES."""

    search_id: str
    status: str
    matches: tuple[SearchMatch, ...]
    total: int | None = None

    @classmethod
    def from_xml(cls, root: Element, resource: str) -> SearchPage:
        expect_root(root, "CMSearchResult", resource)
        status = findtext(root, "responseStatusStrg").upper()
        if status not in (SEARCH_OK, SEARCH_MORE, SEARCH_NONE):
            raise RestProtocolError(f"{resource}: responseStatusStrg {status[:40]!r}")
        match_list = find(root, "matchList")
        elements = list(children(match_list, "searchMatchItem")) if match_list is not None else []
        if len(elements) > MAX_MATCHES_PER_PAGE:
            raise RestLimitError(
                f"{resource}: {len(elements)} matches in one page (> {MAX_MATCHES_PER_PAGE})"
            )
        try:
            matches = tuple(SearchMatch.from_xml(el) for el in elements)
        except ValueError as exc:
            raise RestProtocolError(f"{resource}: a search match has a bad time: {exc}") from None
        return cls(findtext(root, "searchID"), status, matches, findint(root, "totalMatches"))


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResult:
    """Every match of a search, in the device's order; `complete` is False when the client's
    max-results cap cut it short. `total` is the device's totalMatches when it sent one."""

    matches: tuple[SearchMatch, ...]
    pages: int
    complete: bool
    total: int | None = None


def _path_key(href: str) -> str:
    """The resource path below the root: /PSIA and its /ISAPI alias, any case, absolute or
    relative hrefs all name the same resource (HR-01)."""
    path = urlsplit(href).path.rstrip("/").lower()
    for root in ("/psia", "/isapi"):
        if path == root or path.startswith(root + "/"):
            return path[len(root) :]
    return path


def parse_time(text: str) -> int:
    """xs:dateTime (HR-16) or the basic form 20170314T103201Z of playback URIs → Unix ns."""
    m = _BASIC_TIME.match(text)
    if m:
        y, mo, d, h, mi, s = m.groups()
        text = f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"
    return parse_iso(text)
