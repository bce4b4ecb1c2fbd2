"""Shared pieces of the REST conformance tests (no tests of its own): httpx peer, XML checks.

Written from ../shared/spec/rest-iec62676-2-2.md (rules HR-nn, AU-nn, §1.1 shapes, §3 search)
and not from the server code: the peer is httpx with its own DigestAuth, XML is read with lxml
by namespace and local name. `recording_with_gaps` runs a real Engine whose simulated camera
recorded several runs separated by gaps, with a loop long enough (3 GOPs) that a decoded frame
stamp tells which GOP of the loop a replay started at.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from lxml import etree

from app.core.config import EngineConfig, SimcamSource
from app.core.time import NS_PER_SECOND
from app.engine.runtime import Engine, EngineSettings
from tests.engine.onvif.test_engine_interop_support import (
    CAMERA_SIZE,
    _create_accounts,
    _recorded,
    password,
)

NS_PSIA = "urn:psialliance-org"
NS_XLINK = "http://www.w3.org/1999/xlink"
P = f"{{{NS_PSIA}}}"
XLINK_HREF = f"{{{NS_XLINK}}}href"
XLINK_TYPE = f"{{{NS_XLINK}}}type"
#: HR-11 statusCode → statusString.
STATUS_STRINGS = {
    1: "OK",
    2: "Device Busy",
    3: "Device Error",
    4: "Invalid Operation",
    5: "Invalid XML Format",
    6: "Invalid XML Content",
    7: "Reboot Required",
}
#: HR-12 statusCode → HTTP status (the intended mapping).
HTTP_OF_STATUS = {1: 200, 2: 503, 3: 500, 4: 403, 5: 400, 6: 400, 7: 200}
#: Simulated camera: 2 s GOP (app/engine/simcam); a replay starts within one GOP of starttime.
GOP_NS = 2 * NS_PER_SECOND
#: A loop of 3 GOPs: keyframe stamps repeat every 6 s, longer than the ±1 GOP window.
LOOP_SECONDS = 6
#: HR-17 / §5.2: camera input 1, main stream.
CHANNEL = "101"
TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers and the body parsed when it is XML."""

    status: int
    headers: httpx.Headers
    body: bytes
    xml: etree._Element | None

    @property
    def content_type(self) -> str:
        return str(self.headers.get("content-type", ""))


def parse_xml(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


class Peer:
    """An httpx client on the engine's HTTP port, as one user (None: no credentials)."""

    def __init__(self, engine: Engine, user: str | None = "admin", secret: str | None = None):
        self.base = f"http://127.0.0.1:{engine.http_port}"
        auth = None
        if user is not None:
            auth = httpx.DigestAuth(user, secret if secret is not None else password(user))
        self.client = httpx.AsyncClient(base_url=self.base, auth=auth, timeout=TIMEOUT_S)

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        content = body.encode("utf-8") if isinstance(body, str) else body
        hdrs = dict(headers or {})
        if content is not None:
            hdrs.setdefault("Content-Type", 'application/xml; charset="UTF-8"')
        resp = await self.client.request(method, path, content=content, headers=hdrs)
        data = resp.content
        xml = None
        if "xml" in resp.headers.get("content-type", "") and data.strip():
            xml = parse_xml(data)
        return Reply(resp.status_code, resp.headers, data, xml)

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def get_doc(self, path: str, root: str) -> etree._Element:
        """GET a resource that must answer 200 with a `root` document in the PSIA namespace."""
        reply = await self.get(path)
        assert reply.status == 200, f"GET {path}: HTTP {reply.status} {reply.body[:300]!r}"
        return check_root(reply, root, path)


def check_root(reply: Reply, root: str, what: str) -> etree._Element:
    """HR-13: UTF-8 XML, application/xml, root `root` in urn:psialliance-org, version 1.0."""
    assert reply.content_type.startswith("application/xml"), (
        f"{what}: Content-Type {reply.content_type!r}, expected application/xml (HR-13)"
    )
    assert reply.xml is not None, f"{what}: no XML body"
    assert reply.xml.tag == P + root, f"{what}: root {reply.xml.tag!r}, expected {P + root!r}"
    assert reply.xml.get("version") == "1.0", f"{what}: root version {reply.xml.get('version')!r}"
    return reply.xml


def status_of(reply: Reply, what: str) -> tuple[int, str, str, str]:
    """HR-10/11: a ResponseStatus: (statusCode, statusString, subStatusCode, requestURL)."""
    doc = check_root(reply, "ResponseStatus", what)
    code_text = text(doc, "statusCode")
    assert code_text.isdigit(), f"{what}: statusCode {code_text!r} is not a number"
    code = int(code_text)
    string = text(doc, "statusString")
    assert STATUS_STRINGS.get(code) == string, (
        f"{what}: statusString {string!r} for statusCode {code} (HR-11)"
    )
    sub = text(doc, "subStatusCode")
    assert sub, f"{what}: subStatusCode missing (HR-10: emit it always)"
    return code, string, sub, text(doc, "requestURL")


def expect_status(reply: Reply, what: str, code: int, sub: str | None = None) -> None:
    """The reply is a ResponseStatus with `code` (and `sub`) over HR-12's HTTP status."""
    got, _, got_sub, _ = status_of(reply, what)
    assert (reply.status, got) == (HTTP_OF_STATUS[code], code), (
        f"{what}: HTTP {reply.status} statusCode {got}, "
        f"expected HTTP {HTTP_OF_STATUS[code]} statusCode {code} (HR-12)"
    )
    if sub is not None:
        assert got_sub == sub, f"{what}: subStatusCode {got_sub!r}, expected {sub!r}"


def http_is_error(reply: Reply, statuses: tuple[int, ...], what: str) -> None:
    """An error answer: one of `statuses`, with a ResponseStatus body (HR-10)."""
    assert reply.status in statuses, f"{what}: HTTP {reply.status}, expected one of {statuses}"
    status_of(reply, what)


def child(el: etree._Element, name: str) -> etree._Element:
    found = el.find(P + name)
    assert found is not None, f"<{etree.QName(el).localname}> has no <{name}> child"
    return found


def text(el: etree._Element, path: str) -> str:
    """Text of a `/`-separated path of PSIA-namespace children; '' when absent."""
    found = el.find("/".join(P + part for part in path.split("/")))
    return (found.text or "").strip() if found is not None else ""


def resources(resource_list: etree._Element) -> Iterator[etree._Element]:
    assert resource_list.tag == P + "ResourceList", (
        f"expected ResourceList, got {resource_list.tag}"
    )
    yield from resource_list.iterchildren(P + "Resource")


def psia(body: str, root: str, ns: str | None = NS_PSIA) -> str:
    """A request document with root `root` (namespace `ns`, None for none) around `body`."""
    xmlns = f' xmlns="{ns}"' if ns is not None else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><{root} version="1.0"{xmlns}>{body}</{root}>'


@contextlib.asynccontextmanager
async def recording_with_gaps(
    data: Path, *, runs: int = 3, keyframes: int = 3, gap_s: float = 1.5
) -> AsyncIterator[Engine]:
    """An Engine whose simulated camera recorded `runs` runs, each of `keyframes` GOPs or more,
    separated by gaps of `gap_s` seconds (the camera stopped: the store records a gap)."""
    await _create_accounts(data)
    source = SimcamSource(size=CAMERA_SIZE, loop_seconds=LOOP_SECONDS)
    settings = EngineSettings(
        data_dir=data, config=EngineConfig(sources=(source,)), rtsp_port=0, http_port=0
    )
    async with Engine(settings) as engine:
        camera = engine.sources[0].camera
        assert camera is not None
        await _recorded(engine, keyframes)
        for _ in range(runs - 1):
            await camera.stop()
            # Wall time must pass for a gap to exist; nothing to wait on but the clock.
            await asyncio.sleep(gap_s)
            await camera.start()
            await _recorded(engine, keyframes)
        yield engine
