"""Hostile input to the SOAP endpoint and its parsers: entities, huge bodies, deep nesting, fuzz.

Every refused request must leave the fake service's counter untouched, must not expand or fetch
anything, and the parsers must raise only their declared errors (SoapFault, XmlError,
UsernameTokenError) whatever the bytes.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.core.time import NS_PER_SECOND, FakeClock, format_iso
from app.protocols.soap.envelope import parse_envelope
from app.protocols.soap.fault import SoapFault, parse_fault
from app.protocols.soap.wsse import (
    PASSWORD_DIGEST,
    UsernameToken,
    UsernameTokenError,
    UsernameTokenVerifier,
    find_username_token,
    password_digest,
)
from app.protocols.soap.xml import MAX_XML_BYTES, MAX_XML_DEPTH, XmlError, parse_xml
from tests.engine.onvif.harness import Served, serve
from tests.engine.onvif.test_server import (
    CREATE,
    SOAP12,
    WSSE,
    WSU,
    CountingRecordings,
    Raw,
    create,
    envelope,
    fault_of,
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol9 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
]>
"""


def with_entity(doctype: bytes, retention: str) -> bytes:
    """A valid CreateRecording whose duration text is an entity reference."""
    return doctype + create(retention).split(b"?>", 1)[1]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Served, CountingRecordings, Raw]]:
    recordings = CountingRecordings()
    async with (
        serve([recordings], tmp_path) as served,
        aiohttp.ClientSession() as session,
    ):
        yield served, recordings, Raw(session, served)


async def test_billion_laughs_is_refused_without_expansion(env: Any) -> None:
    _, recordings, raw = env
    started = time.perf_counter()
    status, _, body, _ = await raw.post(with_entity(BILLION_LAUGHS, "&lol9;"), user="admin")
    assert status == 400
    assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    assert b"lollol" not in body
    assert len(body) < 2000
    assert time.perf_counter() - started < 5
    assert recordings.created == []


async def test_external_file_entity_is_refused_without_reading(env: Any, tmp_path: Path) -> None:
    _, recordings, raw = env
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-PT1H")
    doctype = f'<!DOCTYPE s [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'.encode()
    status, _, body, _ = await raw.post(with_entity(doctype, "&x;"), user="admin")
    assert status == 400
    assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    assert b"TOP-SECRET" not in body
    assert recordings.created == []


async def test_external_http_entity_is_refused_without_fetch(env: Any) -> None:
    """An http:// SYSTEM entity (and a DTD URL) pointing at a live loopback server: no hit."""
    _, recordings, raw = env
    hits: list[str] = []

    async def bait(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="PT1H")

    app = web.Application()
    app.router.add_get("/{tail:.*}", bait)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        for doctype, ref in (
            (f'<!DOCTYPE s [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/e">]>', "&x;"),
            (f'<!DOCTYPE s SYSTEM "http://127.0.0.1:{port}/dtd">', "PT1H"),
            (f'<!DOCTYPE s [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p"> %p;]>', "PT1H"),
        ):
            status, _, body, _ = await raw.post(with_entity(doctype.encode(), ref), user="admin")
            assert status == 400
            assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    finally:
        await runner.cleanup()
    assert hits == []
    assert recordings.created == []


async def test_ten_megabyte_body_is_413_without_reading_it(env: Any) -> None:
    """Content-Length of 10 MB with only 1 KB sent: the 413 comes before the rest is read."""
    served, recordings, _ = env
    host, port = served.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = (
            "POST /onvif/recording_service HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/soap+xml\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
        )
        writer.write(head.encode() + b"<" * 1024)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"413"
    assert recordings.created == []


async def test_chunked_body_over_the_limit_is_413(env: Any) -> None:
    """Without a Content-Length the body is read only until it passes MAX_XML_BYTES."""
    served, recordings, _ = env
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(160):  # 10 MB in 64 KB chunks
            sent += 65536
            yield b" " * 65536

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            served.address("recording"),
            data=chunks(),
            headers={"Content-Type": "application/soap+xml"},
        ) as resp,
    ):
        assert resp.status == 413
    assert recordings.created == []


async def test_deep_nesting_is_refused(env: Any) -> None:
    _, recordings, raw = env
    deep = b"<a>" * 5000 + b"</a>" * 5000
    status, _, body, _ = await raw.post(envelope(deep.decode()), user="admin")
    assert status == 400
    assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    assert recordings.created == []


async def test_many_body_elements_and_wrong_root_are_well_formed_faults(env: Any) -> None:
    _, recordings, raw = env
    two = envelope(CREATE.format(retention="PT1H") * 2)
    not_soap = b'<Envelope xmlns="urn:x"><Body/></Envelope>'
    no_body = f'<s:Envelope xmlns:s="{SOAP12}"><s:Header/></s:Envelope>'.encode()
    for bad in (two, not_soap, no_body):
        status, _, body, _ = await raw.post(bad, user="admin")
        assert status == 400
        assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    assert recordings.created == []


# ------------------------------------------------------------------ parser-level limits


def test_parse_xml_limits_are_named_and_enforced() -> None:
    with pytest.raises(XmlError, match="exceeds"):
        parse_xml(b"<a>" + b" " * MAX_XML_BYTES + b"</a>")
    depth = MAX_XML_DEPTH + 1
    with pytest.raises(XmlError, match="nested deeper"):
        parse_xml(b"<a>" * depth + b"</a>" * depth)
    ok = MAX_XML_DEPTH
    assert parse_xml(b"<a>" * ok + b"</a>" * ok).tag == "a"


def test_parse_xml_drops_comments_and_processing_instructions() -> None:
    root = parse_xml(b"<a><!-- c --><?pi x?><b>t</b></a>")
    assert [child.tag for child in root] == ["b"]


# ------------------------------------------------------------------ hypothesis fuzz

_VALID = create("PT1H")
_TOKEN_XML = (
    f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
    "<wsse:Username>u</wsse:Username><wsse:Password>p</wsse:Password>"
    "<wsse:Nonce>bm9uY2U=</wsse:Nonce><wsu:Created>2026-01-01T00:00:00Z</wsu:Created>"
    "</wsse:UsernameToken></wsse:Security>"
).encode()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with a few byte-range replacements, insertions and truncations."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"<", b">", b"&", b"<!DOCTYPE", b"\x00", b"]]>"]))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        else:
            del data[at:]
    return bytes(data)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=512), mutated(_VALID), mutated(BILLION_LAUGHS + _VALID)))
def test_fuzz_parse_envelope_raises_only_soap_faults(data: bytes) -> None:
    try:
        env = parse_envelope(data)
    except SoapFault as fault:
        assert fault.code in ("Sender", "VersionMismatch", "MustUnderstand")
        assert fault.http_status == 400
    else:
        assert isinstance(env.payload.tag, str)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=256), mutated(_VALID), st.text(max_size=200).map(str.encode)))
def test_fuzz_parse_xml_raises_only_xml_error(data: bytes) -> None:
    try:
        root = parse_xml(data)
    except XmlError:
        return
    assert all(isinstance(el.tag, str) for el in root.iter())


@settings(max_examples=300)
@given(mutated(_TOKEN_XML))
def test_fuzz_username_token_parsing_raises_only_token_error(data: bytes) -> None:
    try:
        security = parse_xml(data)
    except XmlError:
        return
    clock = FakeClock()
    try:
        token = find_username_token(security)
        UsernameTokenVerifier(clock).verify(token, "p")
    except UsernameTokenError:
        return


@settings(max_examples=200)
@given(
    nonce=st.binary(min_size=1, max_size=64),
    created=st.text(max_size=40),
    password=st.text(max_size=40),
    password_type=st.sampled_from([PASSWORD_DIGEST, "", "PasswordText"]),
)
def test_fuzz_username_token_verify_raises_only_token_error(
    nonce: bytes, created: str, password: str, password_type: str
) -> None:
    token = UsernameToken("u", password, password_type, nonce, created)
    try:
        UsernameTokenVerifier(FakeClock()).verify(token, "secret")
    except UsernameTokenError:
        return
    raise AssertionError("a random token was accepted")


def test_username_token_skew_window_and_replay() -> None:
    """PF-13: ±5 min around the device clock; a nonce is refused for as long as it could live."""
    clock = FakeClock()
    verifier = UsernameTokenVerifier(clock)
    nonce = b"0123456789abcdef"

    def token(offset_s: int, nonce: bytes = nonce) -> UsernameToken:
        created = format_iso(clock.wall_ns() + offset_s * NS_PER_SECOND)
        digest = password_digest(nonce, created, "pw")
        return UsernameToken("u", digest, PASSWORD_DIGEST, nonce, created)

    assert verifier.verify(token(-299), "pw") == "u"
    with pytest.raises(UsernameTokenError, match="replay"):
        verifier.verify(token(-299), "pw")
    with pytest.raises(UsernameTokenError, match="skew"):
        verifier.verify(token(301, b"other"), "pw")
    with pytest.raises(UsernameTokenError, match="skew"):
        verifier.verify(token(-301, b"third"), "pw")
    assert verifier.verify(token(299, b"fourth"), "pw") == "u"


def test_fault_round_trip_resolves_any_prefix() -> None:
    """PF-11: subcodes are QNames; a client must resolve them whatever the prefix."""
    xml = (
        f'<e:Fault xmlns:e="{SOAP12}" xmlns:zz="http://www.onvif.org/ver10/error"><e:Code>'
        "<e:Value>e:Sender</e:Value><e:Subcode><e:Value>zz:InvalidArgVal</e:Value><e:Subcode>"
        "<e:Value>zz:NoRecording</e:Value></e:Subcode></e:Subcode></e:Code><e:Reason>"
        '<e:Text xml:lang="en">gone</e:Text></e:Reason></e:Fault>'
    ).encode()
    fault = parse_fault(etree.fromstring(xml))
    assert fault is not None
    assert (fault.code, fault.subcodes, fault.reason) == (
        "Sender",
        ("InvalidArgVal", "NoRecording"),
        "gone",
    )


def test_nonce_is_base64_decoded_before_hashing() -> None:
    """PF-13: the digest covers the raw nonce bytes, not their base64 text."""
    raw = bytes(range(16))
    digest = password_digest(raw, "2026-01-01T00:00:00Z", "pw")
    text = password_digest(base64.b64encode(raw), "2026-01-01T00:00:00Z", "pw")
    assert digest != text
    security = parse_xml(
        _TOKEN_XML.replace(b"bm9uY2U=", base64.b64encode(raw)).replace(
            b"<wsse:Password>p<", f"<wsse:Password>{digest}<".encode()
        )
    )
    token = find_username_token(security)
    assert token.nonce == raw and token.password == digest
