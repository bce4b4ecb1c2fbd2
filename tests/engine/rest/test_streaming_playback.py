"""Streaming channels, the JPEG picture, RTSP playback of playbackURIs (FFmpeg, stamped video)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest
from lxml import etree

from app.core.time import NS_PER_SECOND, NS_PER_US, format_iso
from app.engine.live import LiveHub
from app.engine.rest.playback import Window, window_of
from app.engine.rtsp import LiveResource, RtspStatusError
from app.engine.storage import Store
from app.formats.stamp import read_stamp
from app.protocols.rtsp.range import format_clock
from tests.engine.replay.footage import RUNS, START_NS, footage, frame_wall, record
from tests.engine.rest.rest_harness import PSIA, RestRig, serve_rest
from tests.engine.rtsp.helpers import RawClient

#: FFmpeg's socket timeout (µs): a hung server fails the test instead of the CI job.
FFMPEG_TIMEOUT_US = "10000000"
S = NS_PER_SECOND


async def populate(store: Store) -> None:
    await record(store, footage())


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[RestRig]:
    async with serve_rest(tmp_path / "data", populate=populate) as served:
        yield served


def decode_stamps(url: str) -> list[tuple[int, int]]:
    """(stamp index, capture µs) of every decoded video picture of an RTSP URL."""
    stamps = []
    options = {"rtsp_transport": "tcp", "timeout": FFMPEG_TIMEOUT_US}
    with av.open(url, options=options) as container:
        for picture in container.decode(container.streams.video[0]):
            stamp = read_stamp(picture.to_ndarray(format="gray"))
            stamps.append((stamp.index, stamp.capture_us))
    return stamps


def jpeg_stamp(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r", format="image2pipe") as container:
        picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (1024, 576)
        return read_stamp(picture.to_ndarray(format="gray")).index


async def test_picture_is_the_newest_keyframe_as_jpeg_and_is_cached(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        first = await client.get("/PSIA/Streaming/channels/101/picture")
        second = await client.get("/PSIA/Streaming/channels/102/picture")
        missing = await client.get("/PSIA/Streaming/channels/201/picture")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.content[:2] == b"\xff\xd8" and second.content == first.content
    # Run 2 holds frames 60…79 with a keyframe every 20 frames: 60 is the newest keyframe.
    assert await asyncio.to_thread(jpeg_stamp, first.content) == 60
    assert missing.status_code == 404


async def test_channels_list_only_recordings_with_a_live_mount(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        before = etree.fromstring((await client.get("/PSIA/Streaming/channels")).content)
        rig.rtsp.mount("live/Gate", LiveResource(LiveHub("Gate")))
        after = etree.fromstring((await client.get("/PSIA/Streaming/channels")).content)
        one = etree.fromstring((await client.get("/PSIA/streaming/channels/101")).content)
        caps = etree.fromstring(
            (await client.get("/PSIA/Streaming/channels/101/capabilities")).content
        )
    assert len(before) == 0 and len(after) == 1
    port = rig.rtsp.port
    assert one.findtext(f"{PSIA}Extensions/{PSIA}rtspURL") == (
        f"rtsp://127.0.0.1:{port}/PSIA/Streaming/channels/101"
    )
    assert one.findtext(f"{PSIA}Transport/{PSIA}rtspPortNo") == str(port)
    assert one.findtext(f"{PSIA}Video/{PSIA}videoResolutionWidth") == "1024"
    assert one.findtext(f"{PSIA}Video/{PSIA}videoCodecType") == "H.264"
    assert caps.find(f"{PSIA}Video/{PSIA}videoCodecType").get("opt")


async def test_rtsp_channel_alias_describes_the_live_mount(rig: RestRig) -> None:
    rig.rtsp.mount("live/Gate", LiveResource(LiveHub("Gate")))
    client = await RawClient.connect("127.0.0.1", rig.rtsp.port)
    try:
        direct = await client.request("DESCRIBE", rig.rtsp.url("live/Gate"))
        alias = await client.request("DESCRIBE", rig.rtsp.url("PSIA/Streaming/channels/101"))
        unknown = await client.request("DESCRIBE", rig.rtsp.url("PSIA/Streaming/channels/901"))
    finally:
        await client.close()
    assert alias.status == direct.status
    assert unknown.status == 404


async def test_search_playback_uris_play_from_their_start_in_ffmpeg(rig: RestRig) -> None:
    body = (
        "<CMSearchDescription><searchID>play</searchID><trackList><trackID>101</trackID>"
        f"</trackList><timeSpanList><timeSpan><startTime>{format_iso(START_NS - S, digits=0)}"
        f"</startTime><endTime>{format_iso(START_NS + 60 * S, digits=0)}</endTime></timeSpan>"
        "</timeSpanList><maxResults>10</maxResults></CMSearchDescription>"
    ).encode()
    async with rig.client("viewer") as client:
        result = etree.fromstring(
            (await client.post("/PSIA/ContentMgmt/search", content=body)).content
        )
    uris = [u.text for u in result.iter(PSIA + "playbackURI")]
    assert len(uris) == len(RUNS)
    for uri, run in zip(uris, RUNS, strict=True):
        stamps = await asyncio.to_thread(decode_stamps, uri)
        assert [index for index, _ in stamps] == list(run)
        assert [us * NS_PER_US for _, us in stamps] == [frame_wall(n) for n in run]


async def test_a_hand_built_uri_starts_at_starttime_and_stops_at_endtime(rig: RestRig) -> None:
    start, end = frame_wall(20), frame_wall(30)
    uri = rig.rtsp.url(
        f"PSIA/Streaming/tracks/101/?starttime={format_clock(start)}&endtime={format_clock(end)}"
    )
    stamps = await asyncio.to_thread(decode_stamps, uri)
    assert [index for index, _ in stamps] == list(range(20, 31))


def test_window_of_reads_query_forms_and_the_control_segment() -> None:
    start, end = START_NS + 2 * S, START_NS + 3 * S
    basic = f"rtsp://h/PSIA/Streaming/tracks/101?starttime={format_clock(start)}"
    assert window_of(basic) == Window(start, None)
    extended = (
        f"rtsp://h/PSIA/Streaming/tracks/101?StartTime={format_iso(start, digits=0)}"
        f"&endtime={format_iso(end, digits=0)}&name=x&size=1"
    )
    assert window_of(extended) == Window(start, end)
    segment = Window(start, end).segment()
    assert window_of(f"rtsp://h/PSIA/Streaming/tracks/101/{segment}/trackID=0") == Window(
        start, end
    )
    assert window_of("rtsp://h/PSIA/Streaming/tracks/101") is None
    for bad in (
        "starttime=yesterday",
        f"starttime={format_clock(end)}&endtime={format_clock(start)}",
    ):
        with pytest.raises(RtspStatusError) as caught:
            window_of(f"rtsp://h/PSIA/Streaming/tracks/101?{bad}")
        assert caught.value.status == 400
