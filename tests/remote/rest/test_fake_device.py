"""RestClient against a fake aiohttp device on loopback: vendor variants it must read, and
oversized, hostile or misbehaving answers it must refuse with a clear error."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from lxml import etree

from app.core.errors import ConfigError
from app.engine.rest.tls import CERT_FILE, self_signed, server_context
from app.remote.rest import client as client_module
from app.remote.rest.client import MAX_PICTURE_BYTES, RestClient
from app.remote.rest.errors import (
    RestAuthError,
    RestBusyError,
    RestError,
    RestLimitError,
    RestNotSupportedError,
    RestPermissionError,
    RestProtocolError,
    RestRequestError,
)
from app.remote.rest.xml import MAX_XML_RESPONSE_BYTES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HIK = "http://www.hikvision.com/ver20/XMLSchema"
XML = "application/xml"
SECRET = "s3cret-pw"


@dataclasses.dataclass
class Fake:
    url: str
    routes: dict[tuple[str, str], Handler]
    seen: list[tuple[str, str, str | None, bytes]]  # method, path, Authorization, body


@contextlib.asynccontextmanager
async def fake_device(*, tls_dir: Path | None = None) -> AsyncIterator[Fake]:
    routes: dict[tuple[str, str], Handler] = {}
    seen: list[tuple[str, str, str | None, bytes]] = []

    async def dispatch(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path, request.headers.get("Authorization"), body))
        handler = routes.get((request.method, request.path))
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        context = server_context(*self_signed(tls_dir)) if tls_dir is not None else None
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        scheme = "https" if tls_dir is not None else "http"
        yield Fake(f"{scheme}://127.0.0.1:{port}", routes, seen)
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    async with fake_device() as device:
        yield device


def xml(body: str | bytes, status: int = 200) -> Handler:
    data = body.encode() if isinstance(body, str) else body

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, status=status, content_type=XML)

    return handle


def status_doc(code: int, sub: str, ns: str = "urn:psialliance-org") -> str:
    return (
        f'<ResponseStatus version="1.0" xmlns="{ns}"><requestURL>/x</requestURL>'
        f"<statusCode>{code}</statusCode><statusString>S</statusString>"
        f"<subStatusCode>{sub}</subStatusCode></ResponseStatus>"
    )


def result_page(status: str, items: list[tuple[str, str]], ns: str = "") -> str:
    xmlns = f' xmlns="{ns}"' if ns else ""
    matches = "".join(
        f"<searchMatchItem><sourceID>s</sourceID><trackID>101</trackID><unknownLeaf>?</unknownLeaf>"
        f"<timeSpan><startTime>{a}</startTime><endTime>{b}</endTime></timeSpan>"
        "<mediaSegmentDescriptor><contentType>video</contentType><codecType>H.264</codecType>"
        f"<playbackURI>rtsp://10.1.2.3:5554/ISAPI/Streaming/tracks/101?starttime={a}</playbackURI>"
        "</mediaSegmentDescriptor><Extensions><x>1</x></Extensions></searchMatchItem>"
        for a, b in items
    )
    return (
        f'<CMSearchResult version="2.0"{xmlns}><searchID>X</searchID>'
        f"<responseStatus>true</responseStatus><responseStatusStrg>{status}</responseStatusStrg>"
        f"<numOfMatches>{len(items)}</numOfMatches><matchList>{matches}</matchList>"
        "</CMSearchResult>"
    )


async def test_hikvision_namespace_lone_items_and_unknown_elements_are_read(fake: Fake) -> None:
    fake.routes["GET", "/PSIA/System/deviceInfo"] = xml(
        f'<DeviceInfo version="2.0" xmlns="{HIK}"><deviceName>Gate NVR</deviceName>'
        "<deviceID>8a2c</deviceID><model>DS-7608</model><serialNumber>SN1</serialNumber>"
        "<macAddress>aa:bb:cc:dd:ee:ff</macAddress><firmwareVersion>V4.1</firmwareVersion>"
        "<manufacturer>Hik</manufacturer><Extensions><selfExt>1</selfExt></Extensions>"
        "</DeviceInfo>"
    )
    # No indexr (404): capabilities unknown, so every feature is offered.
    fake.routes["GET", "/PSIA/Streaming/channels"] = xml(
        "<StreamingChannel><id>201</id><channelName>Yard</channelName><enabled>1</enabled>"
        "<Transport><rtspPortNo>8554</rtspPortNo></Transport><Video><videoCodecType>H.265"
        "</videoCodecType><videoResolutionWidth>2560</videoResolutionWidth></Video>"
        "<Extensions><rtspURL>rtsp://192.168.0.9/elsewhere</rtspURL></Extensions>"
        "</StreamingChannel>"
    )
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        device = await nvr.add_device()
    assert device.info.model == "DS-7608" and device.info.manufacturer == "Hik"
    assert not device.capabilities.known and device.capabilities.search
    (channel,) = device.channels
    host = fake.url.split("//")[1].split(":")[0]
    # Built from the address the user gave, not the device's own (maybe NAT-internal) view.
    assert channel.rtsp_url == f"rtsp://{host}:8554/PSIA/Streaming/channels/201"
    assert (channel.video_codec, channel.width, channel.height) == ("H.265", 2560, None)


async def test_search_follows_more_with_positions_and_rebinds_playback_host(fake: Fake) -> None:
    pages = [
        result_page("MORE", [("2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z")] * 2, HIK),
        result_page("MORE", [("2024-01-01T00:02:00Z", "2024-01-01T01:03:00+01:00")] * 2),
        result_page("OK", [("20240101T010000Z", "20240101T010100Z")]),
    ]
    positions: list[str] = []

    async def search(request: web.Request) -> web.StreamResponse:
        doc = etree.fromstring(await request.read())
        assert etree.QName(doc).namespace == "urn:psialliance-org"
        ns = {"p": "urn:psialliance-org"}
        positions.append(doc.findtext("p:searchResultPostion", namespaces=ns) or "")
        assert doc.findtext("p:trackList/p:trackID", namespaces=ns) == "101"
        return await xml(pages[len(positions) - 1])(request)

    fake.routes["POST", "/PSIA/ContentMgmt/search"] = search
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        result = await nvr.search(["101"], 0, 10**19, page_size=2)
        assert positions == ["0", "2", "4"] and result.pages == 3 and result.complete
        assert len(result.matches) == 5 and result.total is None
        # An offset is honoured: 01:03+01:00 is 00:03Z, one minute after the start.
        assert result.matches[2].end_ns == result.matches[2].start_ns + 60 * 10**9
        assert result.matches[4].start_ns == 1_704_070_800 * 10**9
        uri = nvr.playback_uri(result.matches[0])
        assert uri.startswith("rtsp://127.0.0.1:5554/ISAPI/Streaming/tracks/101?starttime=")


async def test_search_refuses_a_device_stuck_on_more(fake: Fake) -> None:
    fake.routes["POST", "/PSIA/ContentMgmt/search"] = xml(result_page("MORE", []))
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        with pytest.raises(RestProtocolError, match="MORE with no matches at position 0"):
            await nvr.search([], 0, 1)
    fake.routes["POST", "/PSIA/ContentMgmt/search"] = xml(
        result_page("MORE", [("2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z")] * 3)
    )
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        capped = await nvr.search([], 0, 1, page_size=3, max_results=7)
        assert len(capped.matches) == 7 and capped.pages == 3 and not capped.complete
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client_module, "MAX_SEARCH_PAGES", 4)
        async with RestClient(fake.url, "admin", SECRET) as nvr:
            with pytest.raises(RestLimitError, match="still MORE after 4 pages"):
                await nvr.search([], 0, 1, page_size=3)


async def test_oversized_and_hostile_answers_are_refused(fake: Fake) -> None:
    big = b"<DeviceInfo>" + b"<x>y</x>" * (MAX_XML_RESPONSE_BYTES // 8) + b"</DeviceInfo>"
    fake.routes["GET", "/PSIA/System/deviceInfo"] = xml(big)

    async def streamed(request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: the limit must hold while reading.
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        chunk = b"\xff\xd8" + b"\0" * (1024 * 1024)
        for _ in range(MAX_PICTURE_BYTES // len(chunk) + 2):
            await response.write(chunk)
        return response

    fake.routes["GET", "/PSIA/Streaming/channels/101/picture"] = streamed
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><TrackList>&lol2;</TrackList>'
    )
    fake.routes["GET", "/PSIA/ContentMgmt/record/tracks"] = xml(bomb)
    deep = "<StreamingChannelList>" + "<a>" * 100 + "</a>" * 100 + "</StreamingChannelList>"
    fake.routes["GET", "/PSIA/Streaming/channels"] = xml(deep)
    fake.routes["GET", "/PSIA/Streaming/channels/102/picture"] = xml("<notAPicture/>")
    fake.routes["POST", "/PSIA/ContentMgmt/search"] = xml("<CMSearchResult><responseStatusStrg>")
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        with pytest.raises(RestLimitError, match=f"exceeds {MAX_XML_RESPONSE_BYTES}"):
            await nvr.device_info()
        with pytest.raises(RestLimitError, match=f"exceeds {MAX_PICTURE_BYTES} bytes"):
            await nvr.picture("101")
        with pytest.raises(
            RestProtocolError, match=r"GET /PSIA/ContentMgmt/record/tracks.*DOCTYPE"
        ):
            await nvr.tracks()
        with pytest.raises(RestProtocolError, match="nested deeper than 64"):
            await nvr.channels()
        with pytest.raises(RestProtocolError, match="not a JPEG"):
            await nvr.picture("102")
        with pytest.raises(RestProtocolError, match=r"POST /PSIA/ContentMgmt/search.*malformed"):
            await nvr.search([], 0, 1)
        fake.routes["GET", "/PSIA/System/deviceInfo"] = xml("<Time><localTime/></Time>")
        with pytest.raises(RestProtocolError, match="answered <Time>, expected <DeviceInfo>"):
            await nvr.device_info()


@pytest.mark.parametrize(
    ("status", "body", "error", "kind_word"),
    [
        (403, status_doc(4, "notSupport"), RestNotSupportedError, "not supported"),
        (403, status_doc(4, "lowPrivilege", HIK), RestPermissionError, "level is too low"),
        (400, status_doc(6, "badParameters"), RestRequestError, "values refused"),
        (503, "", RestBusyError, "device busy"),
        (200, status_doc(2, "deviceBusy"), RestBusyError, "device busy"),
        (500, "<html>oops</html>", RestError, "refused"),
    ],
)
async def test_refusals_map_to_errors_naming_the_resource(
    fake: Fake, status: int, body: str, error: type[RestError], kind_word: str
) -> None:
    fake.routes["GET", "/PSIA/System/deviceInfo"] = xml(body, status)
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        with pytest.raises(error) as raised:
            await nvr.device_info()
    message = str(raised.value)
    assert message.startswith("GET /PSIA/System/deviceInfo: ") and kind_word in message
    assert f"HTTP {status}" in message


async def test_manual_record_falls_back_to_post_when_put_is_not_allowed(fake: Fake) -> None:
    path = "/PSIA/ContentMgmt/record/control/manual/start/tracks/101"
    fake.routes["PUT", path] = xml(status_doc(4, "methodNotAllowed"), 405)
    fake.routes["POST", path] = xml(status_doc(1, "ok"))
    async with RestClient(fake.url, "admin", SECRET) as nvr:
        await nvr.record_start("101")
    assert [(m, p) for m, p, _, _ in fake.seen] == [("PUT", path), ("POST", path)]


async def test_basic_only_over_https_and_never_in_the_clear(tmp_path: Path) -> None:
    async def basic_only(request: web.Request) -> web.StreamResponse:
        expected = "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        return await xml("<DeviceInfo><model>M</model></DeviceInfo>")(request)

    async with fake_device() as plain:
        plain.routes["GET", "/PSIA/System/deviceInfo"] = basic_only
        async with RestClient(plain.url, "admin", SECRET) as nvr:
            with pytest.raises(RestAuthError, match=r"Basic is refused unless .* HTTPS"):
                await nvr.device_info()
        assert all(auth is None for _, _, auth, _ in plain.seen), "credentials sent in the clear"
    async with fake_device(tls_dir=tmp_path) as secure:
        secure.routes["GET", "/PSIA/System/deviceInfo"] = basic_only
        pinned = ssl.create_default_context(cafile=str(tmp_path / CERT_FILE))
        async with RestClient(secure.url, "admin", SECRET, ssl_context=pinned) as nvr:
            assert (await nvr.device_info()).model == "M"
            assert (await nvr.device_info()).model == "M"
        # One challenge, then Basic straight away.
        assert [auth is not None for _, _, auth, _ in secure.seen] == [False, True, True]
        async with RestClient(secure.url, "admin", SECRET) as unpinned:
            with pytest.raises(RestError, match="unreachable"):
                await unpinned.device_info()


async def test_timeouts_and_bad_addresses_are_clear(fake: Fake) -> None:
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response(status=500)

    fake.routes["GET", "/PSIA/System/deviceInfo"] = hang
    async with RestClient(fake.url, "admin", SECRET, timeout_s=0.3) as nvr:
        with pytest.raises(RestError, match=r"no answer from .* within 0\.3 s"):
            await nvr.device_info()
    never.set()  # lets the fake server's shutdown finish the abandoned handler at once
    with pytest.raises(ConfigError) as with_userinfo:
        RestClient(f"http://admin:{SECRET}@127.0.0.1:1")
    assert SECRET not in str(with_userinfo.value)
    for bad in ("ftp://host", "http://", "http://host/PSIA", "host:80"):
        with pytest.raises(ConfigError, match="REST device address"):
            RestClient(bad)
    assert "s3cret" not in repr(RestClient(fake.url, "admin", SECRET)._credentials)
