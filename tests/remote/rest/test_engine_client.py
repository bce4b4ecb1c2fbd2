"""The app's RestClient against the real Engine's /PSIA endpoint: what the recorders panel does.

The engine runs in-process on loopback ports 0 with a simulated camera whose footage is already
recorded; the client reaches it over HTTP with Digest exactly as a remote NVR. Checks are made
against the engine's own facts (its DeviceInfo, its RTSP port, its stored frames and their
simulated-camera stamps), not against what the client read.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import pytest

from app.core.errors import ErrorKind
from app.core.time import NS_PER_SECOND, format_iso
from app.engine.runtime import Engine
from app.formats.stamp import Stamp, read_stamp
from app.remote.rest.client import RestClient, with_credentials
from app.remote.rest.errors import (
    RestAuthError,
    RestNotFoundError,
    RestNotSupportedError,
    RestPermissionError,
)
from tests.engine.media_checks import decode_stamps, stored_frames
from tests.engine.onvif.test_engine_interop_support import (
    CAMERA_SIZE,
    SIMCAM,
    password,
    running_engine,
)
from tests.engine.rest.test_conformance_support import GOP_NS, recording_with_gaps

CHANNEL = "101"
HOUR_NS = 3600 * NS_PER_SECOND
#: Camera stops while recording_with_gaps records: RUNS runs, RUNS - 1 gaps.
RUNS = 3
#: Gaps shorter than this between two matches are segment splits, not camera stops.
GAP_MIN_NS = NS_PER_SECOND
#: FFmpeg's socket timeout (µs): a hung server fails the test instead of the CI job.
FFMPEG_TIMEOUT_US = "10000000"


def base_url(engine: Engine) -> str:
    return f"http://127.0.0.1:{engine.http_port}"


def first_picture(uri: str) -> tuple[tuple[int, int], Stamp]:
    """(width, height) and simulated-camera stamp of the first decoded picture of an RTSP URI."""
    options = {"rtsp_transport": "tcp", "timeout": FFMPEG_TIMEOUT_US}
    with av.open(uri, options=options) as container:
        for frame in container.decode(video=0):
            size = (frame.width, frame.height)
            return size, read_stamp(frame.to_ndarray(format="gray"))
    raise AssertionError(f"{uri}: no picture decoded")


def jpeg_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), mode="r", format="image2pipe") as container:
        picture = next(container.decode(video=0))
        return picture.width, picture.height


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with running_engine(tmp_path) as running:
        yield running


async def test_add_device_channels_tracks_picture_and_refusals(engine: Engine) -> None:
    assert engine.rest is not None and engine.rtsp is not None
    expected = engine.rest.ctx.info
    async with RestClient(base_url(engine), "admin", password("admin")) as nvr:
        device = await nvr.add_device()
        info = device.info
        assert (info.manufacturer, info.model, info.serial_number) == (
            expected.manufacturer,
            expected.model,
            expected.serial_number,
        )
        assert info.firmware_version == expected.firmware_version and info.device_type == "NVR"
        assert info.device_id == engine.rest.ctx.device_id()
        assert str(uuid.UUID(info.device_id)) == info.device_id
        assert info.device_name and len(info.mac_address.split(":")) == 6
        caps = device.capabilities
        assert caps.known and caps.search and caps.content_mgmt and caps.manual_record
        assert caps.has("/PSIA/System/deviceInfo") and caps.has("/isapi/streaming/channels/")
        assert not caps.has("/PSIA/PTZ")

        (channel,) = device.channels
        live = f"rtsp://127.0.0.1:{engine.rtsp.port}/PSIA/Streaming/channels/{CHANNEL}"
        assert (channel.id, channel.rtsp_url, channel.rtsp_port) == (
            CHANNEL,
            live,
            engine.rtsp.port,
        )
        assert (channel.video_codec, channel.width, channel.height) == ("H.264", *CAMERA_SIZE)
        assert channel.enabled and channel.name

        (track,) = await nvr.tracks()
        assert (track.id, track.channel, track.enabled) == (CHANNEL, "1", True)
        assert track.source_url == live

        jpeg = await nvr.picture(CHANNEL)
        assert jpeg[:2] == b"\xff\xd8" and await asyncio.to_thread(jpeg_size, jpeg) == CAMERA_SIZE

        # One round trip per request once the Digest nonce is known, also when concurrent:
        # each request in flight holds its own Digest session, so nc never goes backwards.
        before = nvr.transport.round_trips
        infos = await asyncio.gather(*(nvr.device_info() for _ in range(8)))
        assert set(infos) == {info}
        assert nvr.transport.round_trips - before <= 8 + 7  # at most one challenge per session
        before = nvr.transport.round_trips
        await nvr.device_info()
        assert nvr.transport.round_trips - before == 1

        with pytest.raises(RestNotFoundError) as missing:
            await nvr.get("/PSIA/System/noSuchThing")
        assert missing.value.status == 404 and missing.value.kind is ErrorKind.NOT_FOUND
        assert "GET /PSIA/System/noSuchThing" in str(missing.value)
        with pytest.raises(RestNotFoundError) as no_channel:
            await nvr.picture("901")
        assert "/PSIA/Streaming/channels/901/picture" in str(no_channel.value)
        # The simulated camera's recording is owned by its source, not by a recording job.
        with pytest.raises(RestNotSupportedError) as manual:
            await nvr.record_start(CHANNEL)
        assert manual.value.sub_status_code == "notSupport"
        assert "/PSIA/ContentMgmt/record/control/manual/start/tracks/101" in str(manual.value)

    # The live RTSP URL plays (credentials as PyAV takes them).
    size, _ = await asyncio.to_thread(
        first_picture, with_credentials(live, "viewer", password("viewer"))
    )
    assert size == CAMERA_SIZE

    async with RestClient(base_url(engine), "viewer", password("viewer")) as nvr:
        with pytest.raises(RestPermissionError) as low:
            await nvr.record_stop(CHANNEL)
        assert low.value.status == 403 and low.value.sub_status_code == "lowPrivilege"

    for user, secret in (("admin", "wrong-pw"), ("nobody", "x")):
        async with RestClient(base_url(engine), user, secret) as nvr:
            with pytest.raises(RestAuthError) as refused:
                await nvr.add_device()
        assert refused.value.status == 401 and refused.value.kind is ErrorKind.UNAUTHENTICATED
        assert "GET /PSIA/System/deviceInfo" in str(refused.value)
        assert secret not in str(refused.value) and secret not in repr(refused.value)
    async with RestClient(base_url(engine)) as anonymous:
        with pytest.raises(RestAuthError, match="credentials required"):
            await anonymous.device_info()


async def test_search_pages_cap_and_playback_from_the_requested_instant(tmp_path: Path) -> None:
    played: list[tuple[str, int, Stamp]] = []  # (uri, requested start, first stamp)
    async with recording_with_gaps(tmp_path, runs=RUNS) as engine:
        assert engine.rtsp is not None
        now = time.time_ns()
        window = (now - HOUR_NS, now + HOUR_NS)
        async with RestClient(base_url(engine), "viewer", password("viewer")) as nvr:
            whole = await nvr.search([CHANNEL], *window)
            matches = whole.matches
            assert whole.complete and whole.pages == 1 and whole.total == len(matches)
            assert len(matches) >= RUNS
            gaps = 0
            for before, after in itertools.pairwise(matches):
                assert before.start_ns < before.end_ns <= after.start_ns, "unsorted or overlap"
                gaps += after.start_ns - before.end_ns >= GAP_MIN_NS
            assert gaps == RUNS - 1, f"{gaps} gaps, the camera stopped {RUNS - 1} times"
            for match in matches:
                assert (match.track_id, match.content_type) == (CHANNEL, "video")
                assert match.codec.startswith("H.264")
                assert match.metadata == ("recordType.meta.psia.org/timing",)

            # Several pages: same matches in the same order, one page per page_size matches.
            for size in (1, 2):
                paged = await nvr.search([CHANNEL], *window, page_size=size)
                assert paged.matches == matches and paged.complete
                assert paged.pages == -(-len(matches) // size)
                assert paged.total == len(matches)
            # The cap: the first matches only, flagged incomplete.
            capped = await nvr.search([CHANNEL], *window, page_size=2, max_results=RUNS - 1)
            assert capped.matches == matches[: RUNS - 1] and not capped.complete
            every_track = await nvr.search([], *window)
            assert every_track.matches == matches
            empty = await nvr.search([CHANNEL], 10**18, 10**18 + HOUR_NS)
            assert (empty.matches, empty.complete, empty.total) == ((), True, 0)

            # playbackURIs of each match, and a scrub into the middle of the second run.
            uris = [(nvr.playback_uri(match), match.start_ns) for match in matches]
            second = matches[1]
            mid = (second.start_ns + second.end_ns) // 2 // NS_PER_SECOND * NS_PER_SECOND
            scrub = nvr.track_uri(CHANNEL, mid, second.end_ns, rtsp_port=engine.rtsp.port)
            uris.append((scrub, mid))
            for uri, start in uris:
                parts = urlsplit(uri)
                assert (parts.hostname, parts.port) == ("127.0.0.1", engine.rtsp.port)
                assert parts.path == f"/PSIA/Streaming/tracks/{CHANNEL}"
                assert parse_qs(parts.query)["starttime"] == [
                    time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start // NS_PER_SECOND))
                ]
                secret = with_credentials(uri, "viewer", password("viewer"))
                _, stamp = await asyncio.to_thread(first_picture, secret)
                played.append((uri, start // NS_PER_SECOND * NS_PER_SECOND, stamp))

    # The first picture of every URI is a stored frame within one GOP of its starttime.
    stored = stored_frames(tmp_path, SIMCAM)
    timeline = list(zip((f.ref.wall_ns for f in stored), decode_stamps(stored), strict=True))
    # Recording went on after the search: frames up to its last match must all be in a match.
    searched = [wall for wall, _ in timeline if wall <= matches[-1].end_ns]
    assert len(searched) > len(timeline) // 2
    outside = [w for w in searched if not any(x.start_ns <= w <= x.end_ns for x in matches)]
    assert not outside, f"{len(outside)} stored frames are in no search match"
    for uri, start, stamp in played:
        near = [wall for wall, s in timeline if s == stamp and abs(wall - start) <= GOP_NS]
        assert near, f"{uri}: first picture {stamp} is not within a GOP of {format_iso(start)}"
    assert len(played) == len(matches) + 1
