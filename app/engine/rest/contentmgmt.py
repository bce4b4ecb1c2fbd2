"""PSIA ContentMgmt (RaCM): tracks, search with paging, dailyDistribution, manual record control.

A search match is one recorded slice of a track's video clipped to a requested time span
(§3.3 [I]); results are sorted by start time and kept per searchID for five minutes, so the
pages of one search stay consistent while recording goes on. Manual record start/stop sets the
recording jobs that write the recording Active/Idle through the JobController.
"""

from __future__ import annotations

import calendar
import collections
import dataclasses
import time
from urllib.parse import quote

from lxml import etree

from app.core.time import NS_PER_SECOND, format_iso, parse_iso
from app.engine.rest.context import (
    RestContext,
    channels,
    recording_of,
    stable_uuid,
    stream_id,
    video_track,
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
from app.engine.rest.status import bad_parameters, not_supported
from app.engine.rest.streaming import CHANNELS_PATH, CODEC_NAMES
from app.engine.rest.xml import Doc, child, new_root, text_child
from app.engine.storage import JobMode, Recording, TrackMedia

#: Results per page when the request names none, and the most per page (§5.4).
DEFAULT_MAX_RESULTS = 40
MAX_RESULTS = 200
#: Most tracks / time spans one search may name.
MAX_SEARCH_TRACKS = 64
MAX_TIME_SPANS = 32
#: How long a searchID's result set is kept, and how many are kept (§3.2: ~5 minutes).
SEARCH_CACHE_S = 300
MAX_CACHED_SEARCHES = 256
#: Longest searchID accepted (a GUID is 36 characters, braces 38).
MAX_SEARCH_ID_CHARS = 64
#: Where RTSP playback of a track lives (§3.4).
TRACKS_PATH = "PSIA/Streaming/tracks"
#: metadataDescriptor of continuous recording in our results [I].
RECORD_TYPE = "recordType.meta.psia.org/timing"
_CONTENT_TYPES = frozenset({"video", "mixed", "all"})


@dataclasses.dataclass(frozen=True)
class Match:
    """One searchMatchItem."""

    track_id: str
    start_ns: int
    end_ns: int
    name: str
    size: int
    codec: str


@dataclasses.dataclass(frozen=True)
class _Search:
    key: tuple[object, ...]
    matches: tuple[Match, ...]
    created_mono_ns: int


def basic_time(ns: int) -> str:
    """HR-16 playback-URI form YYYYMMDDThhmmssZ (whole seconds)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns // NS_PER_SECOND))


def _ceil_second(ns: int) -> int:
    return -(-ns // NS_PER_SECOND) * NS_PER_SECOND


def matches_of(
    track_id: str, media: TrackMedia, spans: list[tuple[int, int]], token: str
) -> list[Match]:
    """The slices of `media` clipped to each span, with an estimated byte size (§3.3)."""
    found = []
    codec = CODEC_NAMES.get(media.codec, "H.264") if media.codec is not None else "H.264"
    for piece in media.slices:
        for low, high in spans:
            start, end = max(piece.start_ns, low), min(piece.end_ns, high)
            if start > end:
                continue
            whole = max(piece.end_ns - piece.start_ns, 1)
            per_frame = media.bytes // max(media.frame_count, 1)
            size = per_frame * max(1, piece.frame_count * (end - start) // whole)
            found.append(Match(track_id, start, end, f"{token}_{piece.run_id}", size, codec))
    return found


class ContentMgmt:
    """Handlers of the ContentMgmt service."""

    def __init__(self, ctx: RestContext) -> None:
        self.ctx = ctx
        self._searches: collections.OrderedDict[str, _Search] = collections.OrderedDict()

    # ---------------------------------------------------------------- tracks
    async def _track(self, element: etree._Element, n: int, rec: Recording, host: str) -> None:
        ident = stream_id(n)
        text_child(element, "id", ident)
        text_child(element, "Channel", n)
        text_child(element, "Enable", True)
        text_child(element, "Description", rec.config.description or rec.config.name)
        text_child(element, "TrackGUID", stable_uuid("track", rec.token))
        text_child(element, "Duration", rec.config.max_retention)
        text_child(element, "DefaultRecordingMode", "CMR")
        text_child(element, "LoopEnable", True)
        source = child(element, "SrcDescriptor")
        text_child(source, "SrcGUID", stable_uuid("source", rec.token))
        text_child(source, "SrcChannel", n)
        text_child(source, "StreamHint", "main")
        text_child(source, "SrcDriver", "RTSP")
        text_child(source, "SrcType", "H.264")
        text_child(source, "SrcUrl", f"{self.ctx.rtsp_base(host)}/{CHANNELS_PATH}/{ident}")
        text_child(source, "SrcLogin", "")
        extensions = child(element, "Extensions")
        text_child(extensions, "recordingToken", rec.token)
        text_child(extensions, "recordingStatus", rec.status.value)

    async def get_tracks(self, request: RestRequest) -> RestResponse:
        root = new_root("TrackList")
        for n, rec in await channels(self.ctx.store):
            await self._track(child(root, "Track"), n, rec, request.host)
        return xml_response(root)

    async def get_track(self, request: RestRequest) -> RestResponse:
        n, rec = await recording_of(self.ctx.store, request.ids[0])
        root = new_root("Track")
        await self._track(root, n, rec, request.host)
        return xml_response(root)

    async def put_track(self, request: RestRequest) -> RestResponse:
        await recording_of(self.ctx.store, request.ids[0])
        request.doc("Track")
        raise not_supported("track schedules and retention are set through ONVIF")

    # ---------------------------------------------------------------- manual record
    async def _set_jobs(self, request: RestRequest, mode: JobMode) -> RestResponse:
        _, rec = await recording_of(self.ctx.store, request.ids[0])
        jobs = [j for j in await self.ctx.jobs.jobs() if j.config.recording == rec.token]
        if not jobs:
            raise not_supported(f"recording {rec.token!r} has no recording job to start or stop")
        for job in jobs:
            await self.ctx.jobs.set_job_mode(job.token, mode)
        return status_response(request)

    async def start_record(self, request: RestRequest) -> RestResponse:
        return await self._set_jobs(request, JobMode.ACTIVE)

    async def stop_record(self, request: RestRequest) -> RestResponse:
        return await self._set_jobs(request, JobMode.IDLE)

    # ---------------------------------------------------------------- search
    async def search(self, request: RestRequest) -> RestResponse:
        if request.method == "GET" and not request.body.strip():
            return xml_response(_search_profile())
        doc = request.doc("CMSearchDescription")
        search_id = doc.text("searchID")
        if not search_id or len(search_id) > MAX_SEARCH_ID_CHARS:
            raise bad_parameters(f"searchID must be 1…{MAX_SEARCH_ID_CHARS} characters")
        max_results = doc.integer("maxResults")
        max_results = DEFAULT_MAX_RESULTS if max_results is None else max_results
        position = doc.integer("searchResultPostion", "searchResultPosition") or 0
        if max_results < 1 or position < 0:
            raise bad_parameters("maxResults must be ≥ 1 and searchResultPostion ≥ 0")
        max_results = min(max_results, MAX_RESULTS)
        track_ids = _track_ids(doc)
        spans = _spans(doc)
        types = doc.child("contentTypeList")
        wanted = [t.value().lower() for t in types.children("contentType")] if types else []
        video = not wanted or any(t in _CONTENT_TYPES for t in wanted)
        key = (tuple(track_ids), tuple(spans), video)
        matches = await self._matches(search_id, key, track_ids, spans, video)
        page = matches[position : position + max_results]
        root = new_root("CMSearchResult")
        text_child(root, "searchID", search_id)
        text_child(root, "responseStatus", True)
        if not page:
            state = "NO MATCHES"
        else:
            state = "MORE" if position + len(page) < len(matches) else "OK"
        text_child(root, "responseStatusStrg", state)
        text_child(root, "numOfMatches", len(page))
        text_child(root, "totalMatches", len(matches))
        match_list = child(root, "matchList")
        base = self.ctx.rtsp_base(request.host)
        for match in page:
            _match_item(child(match_list, "searchMatchItem"), match, base)
        return xml_response(root)

    async def _matches(
        self,
        search_id: str,
        key: tuple[object, ...],
        track_ids: list[str],
        spans: list[tuple[int, int]],
        video: bool,
    ) -> tuple[Match, ...]:
        now = self.ctx.clock.monotonic_ns()
        for old_id, old in list(self._searches.items()):
            if now - old.created_mono_ns > SEARCH_CACHE_S * NS_PER_SECOND:
                del self._searches[old_id]
        cached = self._searches.get(search_id)
        if cached is not None and cached.key == key:
            return cached.matches
        chosen = {stream_id(n): rec for n, rec in await channels(self.ctx.store)}
        if track_ids:
            unknown = [t for t in track_ids if _canonical(t) not in chosen]
            if unknown:
                raise bad_parameters(f"no track {unknown[0][:40]!r}")
            chosen = {t: chosen[t] for t in dict.fromkeys(_canonical(t) for t in track_ids)}
        found: list[Match] = []
        if video:
            media = {(m.recording, m.track): m for m in await self.ctx.store.track_media()}
            for ident, rec in chosen.items():
                token = video_track(rec)
                m = media.get((rec.token, token or ""))
                if m is not None:
                    found.extend(matches_of(ident, m, spans, rec.token))
        found.sort(key=lambda m: (m.start_ns, m.track_id, m.end_ns))
        result = tuple(found)
        self._searches[search_id] = _Search(key, result, now)
        self._searches.move_to_end(search_id)
        while len(self._searches) > MAX_CACHED_SEARCHES:
            self._searches.popitem(last=False)
        return result

    # ---------------------------------------------------------------- calendar
    async def daily_distribution(self, request: RestRequest) -> RestResponse:
        _, rec = await recording_of(self.ctx.store, request.ids[0])
        doc = request.doc("trackDailyParam")
        year, month = doc.integer("year"), doc.integer("monthOfYear")
        if year is None or month is None or not 1970 <= year <= 9999 or not 1 <= month <= 12:
            raise bad_parameters("year (1970…9999) and monthOfYear (1…12) are required")
        days = calendar.monthrange(year, month)[1]
        first = calendar.timegm((year, month, 1, 0, 0, 0)) * NS_PER_SECOND
        day_ns = 86_400 * NS_PER_SECOND
        recorded = [False] * days
        token = video_track(rec)
        for m in await self.ctx.store.track_media(rec.token):
            if m.track != token:
                continue
            for piece in m.slices:
                low = max(0, (piece.start_ns - first) // day_ns)
                high = min(days - 1, (piece.end_ns - first) // day_ns)
                for day in range(low, high + 1):
                    recorded[day] = True
        root = new_root("trackDailyDistribution")
        day_list = child(root, "dayList")
        for day in range(days):
            item = child(day_list, "day")
            text_child(item, "id", day + 1)
            text_child(item, "dayOfMonth", day + 1)
            text_child(item, "record", recorded[day])
        return xml_response(root)

    # ---------------------------------------------------------------- tree
    def node(self) -> Node:
        v, o = Access.VIEWER, Access.OPERATOR
        content = Node.service("ContentMgmt", "Recorded tracks, search and record control")
        record = content.add(Node.service("record"))
        tracks = record.add(
            Node.resource(
                "tracks", get=Method(self.get_tracks, v, "Recorded tracks", result="TrackList")
            )
        )
        track = tracks.add_item(
            Node.resource(
                "track",
                get=Method(self.get_track, v, "One track", result="Track"),
                put=Method(self.put_track, o, "Change the track (not supported)", inbound="Track"),
            )
        )
        track.add(
            Node.resource(
                "dailyDistribution",
                post=Method(
                    self.daily_distribution,
                    v,
                    "Days of a month with recordings",
                    inbound="trackDailyParam",
                    result="trackDailyDistribution",
                ),
            )
        )
        manual = record.add(Node.service("control")).add(Node.service("manual"))
        for name, handler in (("start", self.start_record), ("stop", self.stop_record)):
            op = Method(handler, o, f"Manual record {name}: recording jobs Active/Idle")
            manual.add(Node.service(name)).add(Node.service("tracks")).add_item(
                Node.resource("track", put=op, post=op)
            )
        search = Method(
            self.search,
            v,
            "Search recorded footage",
            inbound="CMSearchDescription",
            result="CMSearchResult",
            notes="page with searchResultPostion while MORE; GET without body: CMSearchProfile",
        )
        content.add(Node.resource("search", post=search, get=search))
        return content


def _search_profile() -> etree._Element:
    """[I] What a bodiless GET of search answers: the criteria this search understands."""
    root = new_root("CMSearchProfile")
    text_child(root, "searchByTrackID", True)
    text_child(root, "searchByTimeSpan", True)
    text_child(root, "searchByMetadata", False)
    text_child(root, "maxResults", MAX_RESULTS)
    text_child(root, "contentType", "video").set("opt", "video,mixed")
    return root


def _canonical(track_id: str) -> str:
    """102 (sub stream) names the same track as 101."""
    return track_id[:-1] + "1" if track_id.endswith("02") else track_id


def _track_ids(doc: Doc) -> list[str]:
    holder = doc.child("trackList", "trackIDList")
    ids = [t.value() for t in holder.children("trackID")] if holder is not None else []
    if len(ids) > MAX_SEARCH_TRACKS:
        raise bad_parameters(f"at most {MAX_SEARCH_TRACKS} trackIDs per search, got {len(ids)}")
    return ids


def _spans(doc: Doc) -> list[tuple[int, int]]:
    holder = doc.child("timeSpanList")
    spans = []
    for span in holder.children("timeSpan") if holder is not None else ():
        texts = (span.text("startTime"), span.text("endTime"))
        try:
            start, end = (parse_iso(t) if t else None for t in texts)
        except ValueError as exc:
            raise bad_parameters(f"timeSpan: {exc}") from None
        low, high = start or 0, end or (1 << 62)
        if low > high:
            raise bad_parameters(f"timeSpan starts after it ends ({texts[0]} > {texts[1]})")
        spans.append((low, high))
    if len(spans) > MAX_TIME_SPANS:
        raise bad_parameters(f"at most {MAX_TIME_SPANS} timeSpans per search, got {len(spans)}")
    return spans or [(0, 1 << 62)]


def _match_item(item: etree._Element, match: Match, rtsp_base: str) -> None:
    text_child(item, "sourceID", "{" + stable_uuid("source", match.name.rsplit("_", 1)[0]) + "}")
    text_child(item, "trackID", match.track_id)
    start, end = match.start_ns // NS_PER_SECOND * NS_PER_SECOND, _ceil_second(match.end_ns)
    span = child(item, "timeSpan")
    text_child(span, "startTime", format_iso(start, digits=0))
    text_child(span, "endTime", format_iso(end, digits=0))
    segment = child(item, "mediaSegmentDescriptor")
    text_child(segment, "contentType", "video")
    text_child(segment, "codecType", match.codec)
    uri = (
        f"{rtsp_base}/{TRACKS_PATH}/{match.track_id}?starttime={basic_time(start)}"
        f"&endtime={basic_time(end)}&name={quote(match.name)}&size={match.size}"
    )
    text_child(segment, "playbackURI", uri)
    text_child(child(item, "metadataMatches"), "metadataDescriptor", RECORD_TYPE)
