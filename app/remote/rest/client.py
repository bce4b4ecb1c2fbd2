"""A typed asyncio client of the IEC 62676-2-2 / PSIA REST API for the recorders panel.

The flow of spec §5.5: identify the device (deviceInfo), sniff what it offers (indexr), list its
streaming channels with their live RTSP URLs and its recorded tracks, search recordings with
CMSearchDescription pages until OK or NO MATCHES, play a match's playbackURI over RTSP, fetch a
channel's JPEG picture, start and stop manual recording. XML is read by local names (namespace
variants, Extensions and unknown elements are tolerated); refusals raise errors.py classes.

    async with RestClient("http://nvr:80", "admin", "pw") as nvr:
        device = await nvr.add_device()
        for channel in device.channels:
            print(channel.id, channel.rtsp_url)
        if device.capabilities.search:
            result = await nvr.search(["101"], start_ns, end_ns, max_results=500)
            uri = with_credentials(nvr.playback_uri(result.matches[0]), "admin", "pw")
"""

from __future__ import annotations

import dataclasses
import ssl
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND, format_iso
from app.remote.http import Credentials
from app.remote.rest import models as m
from app.remote.rest.errors import (
    RestLimitError,
    RestNotFoundError,
    RestNotSupportedError,
    RestProtocolError,
)
from app.remote.rest.transport import RestTransport
from app.remote.rest.xml import Element, Fields, document, items

#: Timeout of one request.
DEFAULT_TIMEOUT_S = 10.0
#: Matches asked for per search page (§3.1: clients use 40–200; the engine clamps to 200).
DEFAULT_PAGE_SIZE = 100
#: Most matches one `search` collects unless the caller asks for another cap.
DEFAULT_MAX_RESULTS = 10_000
#: Most pages fetched for one search (a device stuck answering MORE).
MAX_SEARCH_PAGES = 1_000
#: Largest JPEG picture accepted (a 4K snapshot is about 2 MB).
MAX_PICTURE_BYTES = 8 * 1024 * 1024
#: Most channels or tracks read from one list document.
MAX_LIST_ITEMS = 1_024
#: RFC 2326 default port, when a channel does not state its rtspPortNo.
DEFAULT_RTSP_PORT = 554


@dataclasses.dataclass(frozen=True, slots=True)
class RestDevice:
    """What `add_device` learns: identity, the resources offered and the live channels."""

    base_url: str
    info: m.DeviceInfo
    capabilities: m.Capabilities
    channels: tuple[m.StreamingChannel, ...]


class RestClient:
    """One PSIA device at `base_url` (http[s]://host[:port]); use as an async context manager.

    Credentials go in `user`/`password`, never in the address. `ssl_context` pins a device's
    (often self-signed, AU-04) certificate for https.
    """

    def __init__(
        self,
        base_url: str,
        user: str | None = None,
        password: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(base_url)
        if "@" in parts.netloc:
            # Not echoed: the address would carry the password into logs and dialogs.
            raise ConfigError("give REST credentials as user and password, not in the address")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"REST device address must be http(s)://host[:port], not {base_url!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"REST device address must have no path or query: {base_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.host = _url_host(parts.hostname)
        self._own_session = session is None
        self._session = session
        self._credentials = Credentials(user, password or "") if user is not None else None
        self._ssl_context = ssl_context
        self._timeout_s = timeout_s
        self._transport: RestTransport | None = None

    async def __aenter__(self) -> RestClient:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._transport = RestTransport(
            self._session,
            self.base_url,
            self._credentials,
            timeout_s=self._timeout_s,
            ssl_context=self._ssl_context,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self._transport = None

    @property
    def transport(self) -> RestTransport:
        if self._transport is None:
            raise ConfigError("RestClient used outside `async with`")
        return self._transport

    async def get(self, path: str) -> Element:
        """GET a resource under the device (`/PSIA/...`) as an XML element."""
        return await self.transport.xml("GET", path)

    # ---------------------------------------------------------------- device
    async def device_info(self) -> m.DeviceInfo:
        path = "/PSIA/System/deviceInfo"
        return m.DeviceInfo.from_xml(await self.get(path), f"GET {path}")

    async def capabilities(self) -> m.Capabilities:
        """The resource tree of /PSIA/indexr; `Capabilities.unknown()` when a device has none."""
        try:
            root = await self.get("/PSIA/indexr")
        except (RestNotFoundError, RestNotSupportedError):
            return m.Capabilities.unknown()
        return m.Capabilities.from_indexr(root)

    async def add_device(self) -> RestDevice:
        """Identify the device, sniff its resource tree, list its channels (§5.5 steps 2–3).

        Raises RestAuthError for wrong credentials, so the panel can ask again."""
        info = await self.device_info()
        capabilities = await self.capabilities()
        return RestDevice(self.base_url, info, capabilities, tuple(await self.channels()))

    async def channels(self) -> list[m.StreamingChannel]:
        """Streaming channels with live RTSP URLs (without credentials: see with_credentials)."""
        path = "/PSIA/Streaming/channels"
        elements = _bounded(
            items(await self.get(path), "StreamingChannelList", "StreamingChannel", f"GET {path}"),
            path,
        )
        return [m.StreamingChannel.from_xml(el, self.host, DEFAULT_RTSP_PORT) for el in elements]

    async def tracks(self) -> list[m.Track]:
        path = "/PSIA/ContentMgmt/record/tracks"
        elements = _bounded(items(await self.get(path), "TrackList", "Track", f"GET {path}"), path)
        return [m.Track.from_xml(el) for el in elements]

    # ---------------------------------------------------------------- search
    async def search_page(
        self,
        track_ids: Sequence[str],
        start_ns: int,
        end_ns: int,
        *,
        search_id: str,
        position: int = 0,
        max_results: int = DEFAULT_PAGE_SIZE,
    ) -> m.SearchPage:
        """One CMSearchDescription → CMSearchResult round trip (§3.1, §3.2)."""
        if end_ns < start_ns:
            raise ConfigError(f"search ends ({end_ns}) before it starts ({start_ns})")
        fields: Fields = [
            ("searchID", search_id),
            ("trackList", [("trackID", t) for t in track_ids]),
            (
                "timeSpanList",
                [
                    (
                        "timeSpan",
                        [
                            ("startTime", format_iso(start_ns, digits=0)),
                            ("endTime", format_iso(_ceil_s(end_ns), digits=0)),
                        ],
                    )
                ],
            ),
            ("maxResults", str(max_results)),
            # sic: the wire name is misspelt (§3.1).
            ("searchResultPostion", str(position)),
        ]
        path = "/PSIA/ContentMgmt/search"
        root = await self.transport.xml("POST", path, document("CMSearchDescription", fields))
        return m.SearchPage.from_xml(root, f"POST {path}")

    async def search(
        self,
        track_ids: Sequence[str],
        start_ns: int,
        end_ns: int,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_results: int = DEFAULT_MAX_RESULTS,
    ) -> m.SearchResult:
        """Matches of `track_ids` (all tracks when empty) between two instants, paging with one
        searchID while the device answers MORE (§5.5 step 5), at most `max_results` of them."""
        if page_size < 1 or max_results < 1:
            raise ConfigError(
                f"page_size ({page_size}) and max_results ({max_results}) must be ≥ 1"
            )
        search_id = str(uuid.uuid4()).upper()
        matches: list[m.SearchMatch] = []
        total: int | None = None
        for pages in range(1, MAX_SEARCH_PAGES + 1):
            page = await self.search_page(
                track_ids,
                start_ns,
                end_ns,
                search_id=search_id,
                position=len(matches),
                max_results=min(page_size, max_results - len(matches)),
            )
            total = page.total if page.total is not None else total
            matches.extend(page.matches)
            if len(matches) >= max_results:
                # Cut to the cap; complete only if the device had nothing after it.
                done = page.status != m.SEARCH_MORE and len(matches) == max_results
                return m.SearchResult(tuple(matches[:max_results]), pages, done, total)
            if page.status != m.SEARCH_MORE:
                return m.SearchResult(tuple(matches), pages, True, total)
            if not page.matches:
                raise RestProtocolError(
                    f"POST /PSIA/ContentMgmt/search: MORE with no matches at position "
                    f"{len(matches)}"
                )
        raise RestLimitError(
            f"POST /PSIA/ContentMgmt/search: still MORE after {MAX_SEARCH_PAGES} pages"
        )

    # ---------------------------------------------------------------- playback and pictures
    def playback_uri(self, match: m.SearchMatch) -> str:
        """The match's playbackURI pointed at the host this client reaches the device on.

        The device's port, path and query are kept; its host is replaced because a device
        behind NAT states an internal address, and because credentials are later added to
        this URI: they must only ever go to the device the user added."""
        if not match.playback_uri:
            raise RestProtocolError(f"search match of track {match.track_id!r} has no playbackURI")
        parts = urlsplit(match.playback_uri)
        if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
            raise RestProtocolError(f"playbackURI is not an rtsp URL: {match.playback_uri[:200]!r}")
        port = f":{parts.port}" if parts.port is not None else ""
        return urlunsplit(parts._replace(netloc=f"{self.host}{port}"))

    def track_uri(
        self, track_id: str, start_ns: int, end_ns: int | None = None, *, rtsp_port: int
    ) -> str:
        """A playback URI built as clients do when they scrub (§3.4): basic-form times, UTC."""
        query = f"starttime={_basic(start_ns)}"
        if end_ns is not None:
            query += f"&endtime={_basic(_ceil_s(end_ns))}"
        netloc = f"{self.host}:{rtsp_port}"
        return f"rtsp://{netloc}/PSIA/Streaming/tracks/{quote(track_id, safe='')}?{query}"

    async def picture(self, channel_id: str) -> bytes:
        """The channel's snapshot JPEG (§2.3 `picture`)."""
        path = f"/PSIA/Streaming/channels/{quote(channel_id, safe='')}/picture"
        answer = await self.transport.binary(path, max_bytes=MAX_PICTURE_BYTES)
        if not answer.body.startswith(b"\xff\xd8"):
            kind = answer.content_type or "no Content-Type"
            raise RestProtocolError(f"GET {path}: answer is not a JPEG ({kind})")
        return answer.body

    # ---------------------------------------------------------------- manual record
    async def record_start(self, track_id: str) -> None:
        """Start manual recording of a track; RestNotSupportedError if the device cannot."""
        await self._record("start", track_id)

    async def record_stop(self, track_id: str) -> None:
        await self._record("stop", track_id)

    async def _record(self, action: str, track_id: str) -> None:
        path = f"/PSIA/ContentMgmt/record/control/manual/{action}/tracks/{quote(track_id, safe='')}"
        try:
            # PUT in the PSIA era (HR-06), POST in current ISAPI documents (HR-07).
            await self.transport.xml("PUT", path)
        except RestNotSupportedError as exc:
            if exc.status != 405:
                raise
            await self.transport.xml("POST", path)


def with_credentials(uri: str, user: str, password: str) -> str:
    """`uri` with user:password in its authority, as FFmpeg and PyAV take RTSP credentials.
    The result holds a password: hand it to the player, never to a log."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def _bounded(elements: list[Element], path: str) -> list[Element]:
    if len(elements) > MAX_LIST_ITEMS:
        raise RestLimitError(f"GET {path}: {len(elements)} items (> {MAX_LIST_ITEMS})")
    return elements


def _basic(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns // NS_PER_SECOND))


def _ceil_s(ns: int) -> int:
    # Whole seconds on the wire: round an end up so the last partial second is included.
    return -(-ns // NS_PER_SECOND) * NS_PER_SECOND


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
