"""The ONVIF Recording Search service (tse, spec §2.2): a thin SOAP edge over app.engine.search.

Every operation reads its request with zeep, calls the domain search engine and returns the
response's children as plain values; the engine's errors become the faults of §2.A here
(InvalidToken, InvalidSource, InvalidFilterFault, ResourceProblem). Result calls await the
engine, which yields to the loop, so a blocked GetEventSearchResults never holds up another
request (GEN-14, PF-16).

    search = SearchService(store, SearchSessions(store, clock=clock), clock=clock)
    server = OnvifServer(authenticator, [..., search, ...])
    device_services_entry = search.capabilities()      # for the device's GetServices
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from app.core.errors import CustosError
from app.core.time import NS_PER_MS, Clock, format_iso
from app.engine.onvif.convert import duration_seconds, required, text, utc_ns
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.search import (
    AudioAttributes,
    EventFilter,
    FindEventResult,
    InvalidFilterError,
    InvalidSourceError,
    InvalidTokenError,
    MediaAttributes,
    RecordingInformation,
    RecordingSummary,
    SearchKind,
    SearchLimitError,
    SearchNotSupportedError,
    SearchResults,
    SearchScope,
    SearchSessions,
    VideoAttributes,
    media_attributes,
    recording_information,
    recording_summary,
)
from app.engine.storage import Store
from app.protocols.onvif.wsdl import NS_SCHEMA, NS_TOPICS
from app.protocols.soap.fault import SoapFault

#: Longest tt:ReferenceToken / tt:JobToken (GEN-09); a longer one cannot name anything.
MAX_TOKEN_CHARS = 64
#: Topic dialect of every Topic this service emits (EV-01).
TOPIC_DIALECT = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
#: Prefix of NS_TOPICS, declared on every response envelope so topic text resolves (A.2).
TOPIC_PREFIX = "tns1"
#: Search kinds the engine implements; the others answer the fault §2.A names, and their
#: capability stays unadvertised (RS-09, RS-11).
SUPPORTED_KINDS = frozenset({SearchKind.RECORDINGS, SearchKind.EVENTS})
#: Resolution of the times this service sends (format_iso, GEN-08).
WIRE_TIME_RESOLUTION_NS = NS_PER_MS

_TT = f"{{{NS_SCHEMA}}}"


class SearchService(OnvifService):
    """tse: summaries, recording information, media attributes and search sessions."""

    service = "search"
    faults = (
        (InvalidTokenError, "Sender", ("InvalidArgVal", "InvalidToken")),
        (InvalidSourceError, "Sender", ("InvalidArgVal", "InvalidSource")),
        (InvalidFilterError, "Sender", ("InvalidArgVal", "InvalidFilterFault")),
        (SearchLimitError, "Receiver", ("Action", "ResourceProblem")),
    )

    def __init__(self, store: Store, sessions: SearchSessions, *, clock: Clock) -> None:
        self._store = store
        self._sessions = sessions
        self._clock = clock
        #: The last GetRecordingSummary and its answer (never mutated).
        self._last_summary: tuple[RecordingSummary | None, dict[str, Any]] = (None, {})
        #: The last GetEventSearchResults page (state, events) and its answer (never mutated):
        #: clients running the same search over unchanged footage get equal pages.
        self._last_events: tuple[tuple[str, tuple[FindEventResult, ...]], dict[str, Any]] = (
            ("", ()),
            {},
        )

    def capabilities(self) -> dict[str, Any]:
        """tse:Capabilities (§6.2), also the Capabilities of the device's GetServices entry."""
        return {
            "MetadataSearch": SearchKind.METADATA in SUPPORTED_KINDS,
            "GeneralStartEvents": False,
        }

    def fault_for(self, exc: CustosError) -> SoapFault:
        if isinstance(exc, SearchNotSupportedError):
            return _not_supported(exc.subcode, exc.message)
        return super().fault_for(exc)

    # ------------------------------------------------------------------ information

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-01."""
        return {"Capabilities": self.capabilities()}

    @operation("GetRecordingSummary", AccessClass.READ_MEDIA)
    async def get_recording_summary(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-02: both dates always present (PF-08)."""
        summary = await recording_summary(self._store, self._clock.wall_ns())
        last, answer = self._last_summary
        # An unchanged summary is the same answer object: the server resends its bytes.
        if summary != last:
            answer = {
                "Summary": {
                    "DataFrom": format_iso(summary.data_from_ns),
                    "DataUntil": format_iso(summary.data_until_ns),
                    "NumberRecordings": summary.number_recordings,
                }
            }
            self._last_summary = (summary, answer)
        return answer

    @operation("GetRecordingInformation", AccessClass.READ_MEDIA)
    async def get_recording_information(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-03: an unknown token is InvalidToken, not NoRecording (PF-10)."""
        token = _token(req.RecordingToken, "RecordingToken")
        info = await recording_information(self._store, token)
        return {"RecordingInformation": recording_information_value(info)}

    @operation("GetMediaAttributes", AccessClass.READ_MEDIA)
    async def get_media_attributes(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-04: no tokens = every recording; recordings without data at Time are left out."""
        tokens = tuple(_token(t, "RecordingTokens") for t in req.RecordingTokens or ())
        found = await media_attributes(self._store, tokens, utc_ns(req.Time, "Time"))
        return {"MediaAttributes": [media_attributes_value(m) for m in found]}

    # ------------------------------------------------------------------ recordings

    @operation("FindRecordings", AccessClass.READ_MEDIA)
    async def find_recordings(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-05: a session over the recordings in scope (KeepAliveTime, PF-04)."""
        token = await self._sessions.find_recordings(
            search_scope(req.Scope),
            req.MaxMatches,
            duration_seconds(req.KeepAliveTime, "KeepAliveTime"),
        )
        return {"SearchToken": token}

    @operation("GetRecordingSearchResults", AccessClass.READ_MEDIA)
    async def get_recording_search_results(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-06 with the RS-S6 rules."""
        page = await self._results(req, SearchKind.RECORDINGS)
        infos = [r for r in page.results if isinstance(r, RecordingInformation)]
        return {
            "ResultList": {
                "SearchState": page.state.value,
                "RecordingInformation": [recording_information_value(i) for i in infos],
            }
        }

    # ------------------------------------------------------------------ events

    @operation("FindEvents", AccessClass.READ_MEDIA)
    async def find_events(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-07: EndPoint absent = forward to now; EndPoint < StartPoint = backward (RS-S7)."""
        include_start_state = bool(required(req.IncludeStartState, "IncludeStartState"))
        start = utc_ns(req.StartPoint, "StartPoint")
        end = None if req.EndPoint is None else utc_ns(req.EndPoint, "EndPoint")
        if end is not None and end < start:  # backward: StartPoint is the later bound
            start = _whole_tick(start)
        elif end is not None:
            end = _whole_tick(end)
        token = await self._sessions.find_events(
            start,
            end,
            search_scope(req.Scope),
            event_filter(ctx.envelope.payload),
            include_start_state,
            req.MaxMatches,
            duration_seconds(req.KeepAliveTime, "KeepAliveTime"),
        )
        return {"SearchToken": token}

    @operation("GetEventSearchResults", AccessClass.READ_MEDIA)
    async def get_event_search_results(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-08: results in the session's time order across responses."""
        page = await self._results(req, SearchKind.EVENTS)
        events = tuple(r for r in page.results if isinstance(r, FindEventResult))
        key = (page.state.value, events)
        last_key, answer = self._last_events
        if key != last_key:  # else "the same answer": the server resends its bytes
            answer = {
                "ResultList": {
                    "SearchState": page.state.value,
                    "Result": [find_event_result_value(e) for e in events],
                }
            }
            self._last_events = (key, answer)
        return answer

    # ------------------------------------------------------------------ PTZ and metadata

    @operation("FindPTZPosition", AccessClass.READ_MEDIA)
    async def find_ptz_position(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-09: the engine decides (no CanContainPTZ track → NotImplemented)."""
        token = await self._sessions.find_ptz_position()
        return {"SearchToken": token}

    @operation("GetPTZPositionSearchResults", AccessClass.READ_MEDIA)
    async def get_ptz_position_search_results(self, ctx: RequestContext, req: Any) -> None:
        """RS-10: answered like FindPTZPosition while PTZ search is unsupported."""
        raise _not_supported("NotImplemented", "PTZ position search is not supported")

    @operation("FindMetadata", AccessClass.READ_MEDIA)
    async def find_metadata(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-11: the engine decides (MetadataSearch=false → ActionNotSupported)."""
        token = await self._sessions.find_metadata()
        return {"SearchToken": token}

    @operation("GetMetadataSearchResults", AccessClass.READ_MEDIA)
    async def get_metadata_search_results(self, ctx: RequestContext, req: Any) -> None:
        """RS-12: answered like FindMetadata while metadata search is unsupported."""
        raise _not_supported("ActionNotSupported", "metadata search is not supported")

    # ------------------------------------------------------------------ session control

    @operation("GetSearchState", AccessClass.READ_MEDIA)
    async def get_search_state(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-13 (deprecated): Searching/Completed without side effects but the keep-alive."""
        state = await self._sessions.get_search_state(_token(req.SearchToken, "SearchToken"))
        return {"State": state.value}

    @operation("EndSearch", AccessClass.READ_MEDIA)
    async def end_search(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RS-14: the answer element is `Endpoint`, lower-case p (PF-04)."""
        reached = await self._sessions.end_search(_token(req.SearchToken, "SearchToken"))
        return {"Endpoint": format_iso(reached)}

    async def _results(self, req: Any, kind: SearchKind) -> SearchResults:
        wait = None if req.WaitTime is None else duration_seconds(req.WaitTime, "WaitTime")
        return await self._sessions.get_results(
            _token(req.SearchToken, "SearchToken"),
            kind,
            min_results=req.MinResults,
            max_results=req.MaxResults,
            # RS-S6: an out-of-range WaitTime is adapted, never faulted.
            wait_s=None if wait is None else max(wait, 0.0),
        )


# ---------------------------------------------------------------------- requests


def _token(value: Any, what: str) -> str:
    """A token from the request; absent is InvalidArgs, over-long can name nothing (GEN-09)."""
    token = str(required(value, what))
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidTokenError(
            f"{what} of {len(token)} characters exceeds {MAX_TOKEN_CHARS}: {token[:20]!r}..."
        )
    return token


def search_scope(value: Any) -> SearchScope:
    """tt:SearchScope; an absent Scope is the empty one (every recording, RS-S2)."""
    if value is None:
        return SearchScope()
    sources = tuple(text(s.Token) for s in value.IncludedSources or ())
    recordings = tuple(_token(r, "IncludedRecordings") for r in value.IncludedRecordings or ())
    flt = value.RecordingInformationFilter
    return SearchScope(sources, recordings, None if flt is None else str(flt))


def _whole_tick(later_bound_ns: int) -> int:
    """The later bound of a time range, covering its whole wire tick when it is tick-aligned.

    Media times are finer than the milliseconds sent (audio frames fall between them), so a
    DataTo or LatestRecording copied from our answers is up to 1 ms before the instant it
    stands for; searching up to it must still include that edge event (PF-06, EV-12, DTT
    3-1-13). A bound the client gave with finer precision is taken as it is.
    """
    if later_bound_ns % WIRE_TIME_RESOLUTION_NS:
        return later_bound_ns
    return later_bound_ns + WIRE_TIME_RESOLUTION_NS - 1


def _child(parent: etree._Element | None, local: str) -> etree._Element | None:
    """The first child named `local` in any namespace (GEN-07: lenient by local name)."""
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == local:
            return child
    return None


def event_filter(find_events: etree._Element) -> EventFilter:
    """tse:FindEvents/SearchFilter read from the raw request element.

    zeep keeps wsnt:TopicExpression as opaque xs:any content; the raw element also carries the
    namespace declarations that resolve the topic's prefixes (RS-07.3, PF-22).
    """
    search_filter = _child(find_events, "SearchFilter")
    topic = _child(search_filter, "TopicExpression")
    content = _child(search_filter, "MessageContent")
    if topic is None and content is None:
        return EventFilter()
    namespaces = {} if topic is None else {k or "": v for k, v in topic.nsmap.items()}
    return EventFilter(
        topic_expression=None if topic is None else "".join(topic.itertext()).strip(),
        topic_dialect=None if topic is None else topic.get("Dialect"),
        namespaces=namespaces,
        message_content=None if content is None else "".join(content.itertext()).strip(),
        message_content_dialect=None if content is None else content.get("Dialect"),
    )


def _not_supported(subcode: str, reason: str) -> SoapFault:
    """Receiver/ActionNotSupported, with /NotImplemented where §2.A names it (GEN-03)."""
    if subcode == "NotImplemented":
        return SoapFault.receiver("ActionNotSupported", "NotImplemented", reason=reason)
    return SoapFault.receiver("ActionNotSupported", reason=reason)


# ---------------------------------------------------------------------- responses


def recording_information_value(info: RecordingInformation) -> dict[str, Any]:
    """tt:RecordingInformation; Earliest/Latest only with data, equal to the track edges."""
    src = info.source
    value: dict[str, Any] = {
        "RecordingToken": info.token,
        "Source": {
            "SourceId": src.source_id,
            "Name": src.name,
            "Location": src.location,
            "Description": src.description,
            "Address": src.address,
        },
        "Content": info.content,
        "Track": [
            {
                "TrackToken": t.token,
                "TrackType": t.kind.value,
                "Description": t.description,
                "DataFrom": format_iso(t.data_from_ns),
                "DataTo": format_iso(t.data_to_ns),
            }
            for t in info.tracks
        ],
        "RecordingStatus": info.status,
    }
    # PF-08: optional dateTimes are omitted, never empty.
    if info.earliest_ns is not None and info.latest_ns is not None:
        value["EarliestRecording"] = format_iso(info.earliest_ns)
        value["LatestRecording"] = format_iso(info.latest_ns)
    return value


def media_attributes_value(found: MediaAttributes) -> dict[str, Any]:
    """tt:MediaAttributes: one of Video/Audio/MetadataAttributes per track (RS-04)."""
    tracks = []
    for track in found.tracks:
        t = track.track
        entry: dict[str, Any] = {
            "TrackInformation": {
                "TrackToken": t.token,
                "TrackType": t.kind.value,
                "Description": t.description,
                "DataFrom": format_iso(t.data_from_ns),
                "DataTo": format_iso(t.data_to_ns),
            }
        }
        attrs = track.attributes
        if isinstance(attrs, VideoAttributes):
            entry["VideoAttributes"] = {
                "Bitrate": attrs.bitrate_kbps,
                "Width": attrs.width,
                "Height": attrs.height,
                "Encoding": attrs.encoding,
                "Framerate": attrs.framerate,
            }
        elif isinstance(attrs, AudioAttributes):
            entry["AudioAttributes"] = {
                "Bitrate": attrs.bitrate_kbps,
                "Encoding": attrs.encoding,
                "Samplerate": attrs.samplerate_khz,
            }
        else:
            entry["MetadataAttributes"] = {
                "CanContainPTZ": attrs.can_contain_ptz,
                "CanContainAnalytics": attrs.can_contain_analytics,
                "CanContainNotifications": attrs.can_contain_notifications,
            }
        tracks.append(entry)
    return {
        "RecordingToken": found.recording_token,
        "TrackAttributes": tracks,
        "From": format_iso(found.from_ns),
        "Until": format_iso(found.until_ns),
    }


def find_event_result_value(result: FindEventResult) -> dict[str, Any]:
    """tt:FindEventResult (RS-07.8): Event is a wsnt:NotificationMessage holding a tt:Message."""
    if result.topic_namespace != NS_TOPICS:
        # Only tns1 is declared on the envelope; another namespace would leave a dangling prefix.
        raise ValueError(f"event topic namespace {result.topic_namespace!r} has no prefix")
    at = format_iso(result.time_ns)
    return {
        "RecordingToken": result.recording_token,
        "TrackToken": result.track_token,
        "Time": at,
        "Event": {
            "Topic": {
                "_value_1": f"{TOPIC_PREFIX}:{'/'.join(result.topic)}",
                "Dialect": TOPIC_DIALECT,
            },
            "Message": {"_value_1": _message(result, at)},
        },
        "StartStateEvent": result.start_state_event,
    }


def _message(result: FindEventResult, at: str) -> etree._Element:
    """tt:Message with UtcTime = Time and the item names of §4.3 exactly (PF-21)."""
    message = etree.Element(
        f"{_TT}Message",
        {"UtcTime": at, "PropertyOperation": result.property_operation},
        nsmap={"tt": NS_SCHEMA},
    )
    for part, items in (("Source", result.source), ("Data", result.data)):
        holder = etree.SubElement(message, f"{_TT}{part}")
        for name, value in items:
            etree.SubElement(holder, f"{_TT}SimpleItem", {"Name": name, "Value": value})
    return message
