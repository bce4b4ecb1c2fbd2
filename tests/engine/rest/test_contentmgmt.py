"""ContentMgmt over HTTP: tracks, CMSearchDescription → CMSearchResult paging, playbackURIs,
dailyDistribution and manual record control."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.core.media import Codec, TrackKind
from app.core.time import NS_PER_SECOND, format_iso
from app.engine.rest.contentmgmt import basic_time, matches_of
from app.engine.storage import JobConfig, RecordingConfig, Slice, Store, TrackMedia
from tests.engine.rest.rest_harness import PSIA, RestRig, serve_rest
from tests.engine.storage.helpers import FRAME_NS, H264, T0, video

S = NS_PER_SECOND
#: Recording "Gate" (channel 1, track 101): RUNS runs of 2 frames, one every second.
RUNS = 90
#: Recording "Yard" (track 201): one run of 50 frames at T0 + 500 s.
YARD_START = T0 + 500 * S


async def populate(store: Store) -> None:
    await store.create_recording(RecordingConfig(name="Gate"), token="Gate")
    await store.create_recording(RecordingConfig(name="Yard"), token="Yard")
    writer = await store.open_writer("Gate", "VIDEO001")
    for run in range(RUNS):
        for i in range(2):
            writer.append(video(i, t0=T0 + run * S), H264)
        writer.end_run("gap")
    await writer.close()
    writer = await store.open_writer("Yard", "VIDEO001")
    for i in range(50):
        writer.append(video(i, t0=YARD_START), H264)
    await writer.close()
    await store.flush()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[RestRig]:
    async with serve_rest(tmp_path / "data", populate=populate) as served:
        yield served


def search_body(
    search_id: str,
    position: int,
    max_results: int = 40,
    *,
    tracks: tuple[str, ...] = ("101",),
    start: int = T0 - S,
    end: int = T0 + 1000 * S,
    list_name: str = "trackList",
    position_name: str = "searchResultPostion",
    namespace: str = ' xmlns="urn:psialliance-org"',
) -> bytes:
    track_xml = "".join(f"<trackID>{t}</trackID>" for t in tracks)
    return (
        f'<CMSearchDescription version="1.0"{namespace}><searchID>{search_id}</searchID>'
        f"<{list_name}>{track_xml}</{list_name}><timeSpanList><timeSpan>"
        f"<startTime>{format_iso(start, digits=0)}</startTime>"
        f"<endTime>{format_iso(end, digits=0)}</endTime></timeSpan></timeSpanList>"
        f"<maxResults>{max_results}</maxResults><{position_name}>{position}</{position_name}>"
        "<metadataList><metadataDescriptor>//metadata.psia.org/VideoMotion</metadataDescriptor>"
        "</metadataList><unknownElement>ignored</unknownElement></CMSearchDescription>"
    ).encode()


def page(response: bytes) -> tuple[str, int, list[etree._Element]]:
    root = etree.fromstring(response)
    assert root.tag == PSIA + "CMSearchResult"
    assert root.findtext(PSIA + "responseStatus") == "true"
    items = root.findall(f"{PSIA}matchList/{PSIA}searchMatchItem")
    assert int(root.findtext(PSIA + "numOfMatches")) == len(items)
    return root.findtext(PSIA + "responseStatusStrg"), len(items), items


async def test_search_pages_more_more_ok_covering_every_slice_once(rig: RestRig) -> None:
    states, starts = [], []
    async with rig.client("viewer") as client:
        position = 0
        while True:
            response = await client.post(
                "/PSIA/ContentMgmt/search", content=search_body("C77384AD-1", position)
            )
            assert response.status_code == 200
            state, count, items = page(response.content)
            states.append(state)
            starts += [i.findtext(f"{PSIA}timeSpan/{PSIA}startTime") for i in items]
            position += count
            if state != "MORE":
                break
    assert states == ["MORE", "MORE", "OK"]
    assert starts == [format_iso(T0 + run * S, digits=0) for run in range(RUNS)]


async def test_a_page_past_the_end_and_an_empty_window_are_no_matches(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        past = await client.post("/PSIA/ContentMgmt/search", content=search_body("s1", 90))
        empty = await client.post(
            "/PSIA/ContentMgmt/search",
            content=search_body("s2", 0, start=T0 + 2000 * S, end=T0 + 3000 * S),
        )
    for response in (past, empty):
        state, count, _ = page(response.content)
        assert (state, count) == ("NO MATCHES", 0)


async def test_match_items_carry_playback_uris_of_their_span(rig: RestRig) -> None:
    body = search_body(
        "s3",
        0,
        5,
        tracks=("201",),
        start=YARD_START + S,
        end=YARD_START + 100 * S,
        list_name="trackIDList",
        position_name="searchResultPosition",
        namespace="",
    )
    async with rig.client("viewer") as client:
        state, count, items = page(
            (await client.post("/ISAPI/ContentMgmt/search", content=body)).content
        )
    assert (state, count) == ("OK", 1)
    item = items[0]
    assert item.findtext(PSIA + "trackID") == "201"
    end = YARD_START + 49 * FRAME_NS
    assert item.findtext(f"{PSIA}timeSpan/{PSIA}startTime") == format_iso(YARD_START + S, digits=0)
    assert item.findtext(f"{PSIA}timeSpan/{PSIA}endTime") == format_iso(-(-end // S) * S, digits=0)
    uri = item.findtext(f"{PSIA}mediaSegmentDescriptor/{PSIA}playbackURI")
    port = rig.rtsp.port
    expected = (
        rf"rtsp://127\.0\.0\.1:{port}/PSIA/Streaming/tracks/201\?starttime="
        rf"{basic_time(YARD_START + S)}&endtime={basic_time(-(-end // S) * S)}"
        r"&name=Yard_\d+&size=\d+"
    )
    assert re.fullmatch(expected, uri)
    assert item.findtext(f"{PSIA}mediaSegmentDescriptor/{PSIA}codecType") == "H.264"


async def test_search_results_stay_fixed_per_search_id(rig: RestRig) -> None:
    def total(response: bytes) -> int:
        return int(etree.fromstring(response).findtext(PSIA + "totalMatches"))

    async with rig.client("viewer") as client:
        first = await client.post(
            "/PSIA/ContentMgmt/search", content=search_body("keep", 0, tracks=())
        )
        await rig.store.delete_recording("Yard")
        second = await client.post(
            "/PSIA/ContentMgmt/search", content=search_body("keep", 40, tracks=())
        )
        fresh = await client.post(
            "/PSIA/ContentMgmt/search", content=search_body("new", 0, tracks=())
        )
    # Paging one searchID sees the set of its first page (Yard's slice included) …
    assert total(first.content) == total(second.content) == RUNS + 1
    # … a new search sees the store as it is now.
    assert total(fresh.content) == RUNS


@pytest.mark.parametrize(
    ("body", "sub"),
    [
        (search_body("x", 0, tracks=("999",)), "badParameters"),
        (search_body("x", 0, start=T0 + 10 * S, end=T0), "badParameters"),
        (search_body("x", -1), "badParameters"),
        (search_body("", 0), "badParameters"),
        (b"<CMSearchResult/>", "badXmlContent"),
        (b"<CMSearchDescription>", "badXmlFormat"),
    ],
)
async def test_bad_searches_get_400(rig: RestRig, body: bytes, sub: str) -> None:
    async with rig.client("viewer") as client:
        response = await client.post("/PSIA/ContentMgmt/search", content=body)
    assert response.status_code == 400
    assert etree.fromstring(response.content).findtext(PSIA + "subStatusCode") == sub


async def test_tracks_and_daily_distribution(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        tracks = etree.fromstring((await client.get("/PSIA/ContentMgmt/record/tracks")).content)
        body = b"<trackDailyParam><year>2026</year><monthOfYear>1</monthOfYear></trackDailyParam>"
        days = await client.post(
            "/PSIA/ContentMgmt/record/tracks/101/dailyDistribution", content=body
        )
    assert [t.findtext(PSIA + "id") for t in tracks] == ["101", "201"]
    src = tracks[0].findtext(f"{PSIA}SrcDescriptor/{PSIA}SrcUrl")
    assert src == f"rtsp://127.0.0.1:{rig.rtsp.port}/PSIA/Streaming/channels/101"
    recorded = [
        (d.findtext(PSIA + "dayOfMonth"), d.findtext(PSIA + "record"))
        for d in etree.fromstring(days.content).iter(PSIA + "day")
    ]
    # T0 is 2026-01-01T00:00:00Z: only the first of January holds footage.
    assert len(recorded) == 31 and recorded[0] == ("1", "true")
    assert {r for _, r in recorded[1:]} == {"false"}


async def test_manual_record_start_stop_drives_the_recording_jobs(rig: RestRig) -> None:
    job = await rig.jobs.create_job(JobConfig(recording="Gate"))
    url = "/PSIA/ContentMgmt/record/control/manual/{}/tracks/101"
    async with rig.client("viewer") as viewer:
        refused = await viewer.put(url.format("start"))
    async with rig.client("operator") as client:
        started = await client.put(url.format("start"))
        mode_started = (await rig.jobs.job(job.token)).config.mode.value
        stopped = await client.post(url.format("stop"))
        no_job = await client.put("/PSIA/ContentMgmt/record/control/manual/start/tracks/201")
    assert refused.status_code == 403
    assert started.status_code == 200 and mode_started == "Active"
    assert stopped.status_code == 200
    assert (await rig.jobs.job(job.token)).config.mode.value == "Idle"
    assert no_job.status_code == 403
    assert etree.fromstring(no_job.content).findtext(PSIA + "subStatusCode") == "notSupport"


@settings(max_examples=60)
@given(
    runs=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 5_000)), max_size=8),
    low=st.integers(0, 20_000),
    width=st.integers(0, 20_000),
)
def test_matches_lie_inside_both_slice_and_span(
    runs: list[tuple[int, int]], low: int, width: int
) -> None:
    slices, t = [], 0
    for i, (gap, length) in enumerate(runs):
        t += gap
        slices.append(Slice(i, t, t + length, 10))
        t += length + 1
    media = TrackMedia(
        "R", "V", TrackKind.VIDEO, Codec.H264, 0, t, 10 * len(runs), 1000, tuple(slices)
    )
    found = matches_of("101", media, [(low, low + width)], "R")
    overlapping = [s for s in slices if s.start_ns <= low + width and s.end_ns >= low]
    assert len(found) == len(overlapping)
    for match, piece in zip(found, overlapping, strict=True):
        assert match.start_ns == max(piece.start_ns, low)
        assert match.end_ns == min(piece.end_ns, low + width)
        assert match.name == f"R_{piece.run_id}" and match.size > 0
