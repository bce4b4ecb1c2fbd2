"""REST conformance, ContentMgmt: CMSearchDescription → CMSearchResult over footage recorded with
gaps pages correctly (§3.1/§3.2: searchResultPostion, MORE/OK/NO MATCHES, total = Σ numOfMatches),
and every playbackURI plays in FFmpeg from the right instant (§3.4: the simulated camera's stamp
on the first decoded picture is that of a stored frame within one GOP of starttime).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import av

from app.core.time import NS_PER_SECOND, format_iso, parse_iso
from app.formats.stamp import Stamp, read_stamp
from tests.engine.media_checks import decode_stamps, stored_frames
from tests.engine.onvif.test_engine_interop_support import SIMCAM, password
from tests.engine.rest.test_conformance_support import (
    CHANNEL,
    GOP_NS,
    NS_PSIA,
    P,
    Peer,
    Reply,
    check_root,
    expect_status,
    http_is_error,
    psia,
    recording_with_gaps,
    text,
)

SEARCH = "/PSIA/ContentMgmt/search"
RUNS = 3
#: Gaps shorter than this between two matches are segment splits, not camera stops.
GAP_MIN_NS = NS_PER_SECOND
HOUR_NS = 3600 * NS_PER_SECOND
BASIC = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@dataclasses.dataclass(frozen=True)
class Match:
    track: str
    start_ns: int
    end_ns: int
    content_type: str
    codec: str
    uri: str


@dataclasses.dataclass(frozen=True)
class Page:
    status: str
    count: int
    matches: list[Match]


def description(
    search_id: str,
    start_ns: int,
    end_ns: int,
    *,
    position: int = 0,
    max_results: int = 100,
    track: str = CHANNEL,
    variant: bool = False,
) -> str:
    """§3.1; `variant` uses ISAPI's trackIDList, the correct spelling and no namespace."""
    tracks = "trackIDList" if variant else "trackList"
    pos = "searchResultPosition" if variant else "searchResultPostion"
    body = (
        f"<searchID>{search_id}</searchID><{tracks}><trackID>{track}</trackID></{tracks}>"
        f"<timeSpanList><timeSpan><startTime>{format_iso(start_ns, digits=0)}</startTime>"
        f"<endTime>{format_iso(end_ns, digits=0)}</endTime></timeSpan></timeSpanList>"
        f"<maxResults>{max_results}</maxResults><{pos}>{position}</{pos}>"
        "<metadataList><metadataDescriptor>//metadata.psia.org/VideoMotion</metadataDescriptor>"
        "</metadataList>"
    )
    return psia(body, "CMSearchDescription", None if variant else NS_PSIA)


def parse_page(reply: Reply, search_id: str) -> Page:
    doc = check_root(reply, "CMSearchResult", "search")
    assert reply.status == 200, f"search: HTTP {reply.status}"
    assert text(doc, "searchID") == search_id, f"searchID {text(doc, 'searchID')!r} not echoed"
    assert text(doc, "responseStatus") == "true", f"responseStatus {text(doc, 'responseStatus')!r}"
    status = text(doc, "responseStatusStrg")
    assert status in ("OK", "MORE", "NO MATCHES"), f"responseStatusStrg {status!r}"
    count = int(text(doc, "numOfMatches"))
    items = doc.find(P + "matchList")
    matches = []
    for item in items.iterchildren(P + "searchMatchItem") if items is not None else ():
        segment = item.find(P + "mediaSegmentDescriptor")
        assert segment is not None, "searchMatchItem without mediaSegmentDescriptor"
        matches.append(
            Match(
                track=text(item, "trackID"),
                start_ns=parse_iso(text(item, "timeSpan/startTime")),
                end_ns=parse_iso(text(item, "timeSpan/endTime")),
                content_type=text(segment, "contentType"),
                codec=text(segment, "codecType"),
                uri=text(segment, "playbackURI"),
            )
        )
    assert count == len(matches), f"numOfMatches {count} but {len(matches)} searchMatchItems"
    return Page(status, count, matches)


async def search(peer: Peer, doc: str, search_id: str) -> Page:
    return parse_page(await peer.request("POST", SEARCH, doc), search_id)


async def paged(peer: Peer, start_ns: int, end_ns: int, size: int) -> tuple[list[str], list[Match]]:
    """Page through a search as a client does: position += numOfMatches while MORE."""
    search_id = str(uuid.uuid4()).upper()
    statuses: list[str] = []
    matches: list[Match] = []
    while not statuses or statuses[-1] == "MORE":
        assert len(statuses) < 100, "paging does not end"
        doc = description(search_id, start_ns, end_ns, position=len(matches), max_results=size)
        page = await search(peer, doc, search_id)
        assert page.count <= size, f"{page.count} matches for maxResults {size}"
        statuses.append(page.status)
        matches += page.matches
    return statuses, matches


def basic_ns(text_: str) -> int:
    m = BASIC.match(text_)
    assert m, f"{text_!r} is not the ISO 8601 basic form YYYYMMDDThhmmssZ (HR-16)"
    y, mo, d, h, mi, s = m.groups()
    return parse_iso(f"{y}-{mo}-{d}T{h}:{mi}:{s}Z")


def with_credentials(uri: str, user: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=f"{user}:{password(user)}@{parts.netloc}"))


def first_stamp(uri: str) -> Stamp:
    with av.open(uri, options={"rtsp_transport": "tcp", "timeout": "10000000"}) as container:
        for frame in container.decode(video=0):
            return read_stamp(frame.to_ndarray(format="gray"))
    raise AssertionError(f"{uri}: no picture decoded")


async def test_search_pages_and_playback_uris_play_from_starttime(tmp_path: Path) -> None:
    played: list[tuple[str, int, Stamp]] = []  # (uri, starttime, first stamp)
    async with recording_with_gaps(tmp_path, runs=RUNS) as engine, Peer(engine, "viewer") as peer:
        assert engine.rtsp is not None
        now = time.time_ns()
        window = (now - HOUR_NS, now + HOUR_NS)
        search_id = str(uuid.uuid4())
        whole = await search(peer, description(search_id, *window), search_id)
        assert whole.status == "OK", f"one page of 100 answered {whole.status!r}"
        matches = whole.matches
        assert len(matches) >= RUNS, f"{len(matches)} matches for {RUNS} recorded runs"
        gaps = 0
        for before, after in itertools.pairwise(matches):
            assert before.start_ns < before.end_ns <= after.start_ns, "matches overlap or unsorted"
            gaps += after.start_ns - before.end_ns >= GAP_MIN_NS
        assert gaps == RUNS - 1, f"{gaps} gaps between matches, the camera stopped {RUNS - 1}x"
        prefix = f"rtsp://127.0.0.1:{engine.rtsp.port}/PSIA/Streaming/tracks/{CHANNEL}"
        for match in matches:
            assert (match.track, match.content_type) == (CHANNEL, "video"), match
            assert match.codec.startswith("H.264"), f"codecType {match.codec!r}"
            parts = urlsplit(match.uri)
            assert match.uri.startswith(prefix) and parts.path.rstrip("/").endswith(CHANNEL)
            query = parse_qs(parts.query)
            start = basic_ns(query["starttime"][0])
            end = basic_ns(query["endtime"][0])
            assert start <= match.start_ns < start + NS_PER_SECOND, "starttime is not the start"
            assert abs(end - match.end_ns) < NS_PER_SECOND, "endtime is not the end"

        for size in (1, 2):
            statuses, pages = await paged(peer, *window, size)
            assert statuses == ["MORE"] * (len(statuses) - 1) + ["OK"], statuses
            assert pages == matches, f"paging by {size} differs from one page"
        variant_id = str(uuid.uuid4())
        variant = await search(peer, description(variant_id, *window, variant=True), variant_id)
        assert variant.matches == matches, "trackIDList/searchResultPosition/no namespace differ"
        empty_id = str(uuid.uuid4())
        empty = await search(peer, description(empty_id, 10**18, 10**18 + HOUR_NS), empty_id)
        assert (empty.status, empty.count) == ("NO MATCHES", 0)

        # §3.2: errors are ResponseStatus documents.
        reply = await peer.request("POST", SEARCH, description("x", *window, track="999"))
        http_is_error(reply, (400, 403), "unknown track")
        reply = await peer.request("POST", SEARCH, description("x", window[1], window[0]))
        expect_status(reply, "start after end", 6)
        reply = await peer.request("POST", SEARCH, "<CMSearchDescription><searchID>")
        expect_status(reply, "malformed search", 5)

        # §3.4: every playbackURI, a mid-run starttime, and the extended time form.
        uris = [m.uri for m in matches]
        first = matches[0]
        mid = (first.start_ns + first.end_ns) // 2 // NS_PER_SECOND * NS_PER_SECOND
        mid_basic = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(mid // NS_PER_SECOND))
        uris.append(f"{prefix}?starttime={mid_basic}")
        uris.append(f"{prefix}?starttime={format_iso(mid, digits=0)}")
        for uri in uris:
            given = parse_qs(urlsplit(uri).query)["starttime"][0]
            start = basic_ns(given.replace("-", "").replace(":", ""))
            stamp = await asyncio.to_thread(first_stamp, with_credentials(uri, "viewer"))
            played.append((uri, start, stamp))
    stored = stored_frames(tmp_path, SIMCAM)
    timeline = list(zip((f.ref.wall_ns for f in stored), decode_stamps(stored), strict=True))
    for uri, start, stamp in played:
        near = [wall for wall, s in timeline if s == stamp and abs(wall - start) <= GOP_NS]
        assert near, (
            f"{uri}: first picture {stamp} is no stored frame within one GOP of starttime "
            f"{format_iso(start)}"
        )
