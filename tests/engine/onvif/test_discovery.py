"""WS-Discovery over real UDP on loopback (port 0): Probe → ProbeMatches, Hello/Bye, hostile
datagrams ignored (issue #3; Core §7, spec §7.1 "Discovery", PF-25 Profile G scope).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from app.engine.onvif.device import PROFILE_G_SCOPE
from app.engine.onvif.discovery import WsDiscovery
from app.protocols.onvif.discovery import (
    MAX_DATAGRAM_BYTES,
    NS_WSA,
    NS_WSD,
    Endpoint,
    matches,
    parse_probe,
    probe,
)

URN = "urn:uuid:5f0c8b1e-0000-4000-8000-000000000001"
SCOPES = (
    PROFILE_G_SCOPE,
    "onvif://www.onvif.org/name/Custos",
    "onvif://www.onvif.org/location/a/b",
)


class Listener(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


@contextlib.asynccontextmanager
async def peer() -> AsyncIterator[tuple[asyncio.DatagramTransport, Listener]]:
    loop = asyncio.get_running_loop()
    transport, listener = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    try:
        yield transport, listener
    finally:
        transport.close()


def endpoint() -> Endpoint:
    return Endpoint(URN, SCOPES, ("http://127.0.0.1:8080/onvif/device_service",))


def body_of(data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    return root.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]


async def test_probe_answered_with_probe_matches_and_hello_bye_announced() -> None:
    async with peer() as (client, inbox):
        announce = client.get_extra_info("sockname")
        discovery = WsDiscovery(
            endpoint, bind=("127.0.0.1", 0), multicast=False, announce_to=announce
        )
        assert discovery.discoverable is False
        await discovery.set_discoverable(True)
        try:
            hello = body_of(await asyncio.wait_for(inbox.queue.get(), 5))
            assert hello.tag == f"{{{NS_WSD}}}Hello"
            assert hello.findtext(f"{{{NS_WSA}}}EndpointReference/{{{NS_WSA}}}Address") == URN
            # Garbage, hostile XML and a non-matching probe are ignored; the next probe is
            # answered, and its answer is the first thing that comes back.
            for junk in (
                b"\x00\xff not xml",
                b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
                b"<x/>" * (MAX_DATAGRAM_BYTES // 4 + 1),
                probe(("onvif://www.onvif.org/Profile/S",), message_id="urn:uuid:nope"),
            ):
                client.sendto(junk, discovery.address)
            client.sendto(probe((PROFILE_G_SCOPE,), message_id="urn:uuid:yes"), discovery.address)
            answer = await asyncio.wait_for(inbox.queue.get(), 5)
            root = etree.fromstring(answer)
            assert root.findtext(f".//{{{NS_WSA}}}RelatesTo") == "urn:uuid:yes"
            match = root.find(f".//{{{NS_WSD}}}ProbeMatch")
            assert match is not None
            assert match.findtext(f"{{{NS_WSD}}}Scopes").split() == list(SCOPES)
            assert match.findtext(f"{{{NS_WSD}}}XAddrs") == endpoint().xaddrs[0]
            types = match.findtext(f"{{{NS_WSD}}}Types").split()
            assert types == ["dn:NetworkVideoTransmitter", "tds:Device"]
            assert (discovery.answered, discovery.ignored) == (1, 4)
        finally:
            await discovery.close()
        bye = body_of(await asyncio.wait_for(inbox.queue.get(), 5))
        assert bye.tag == f"{{{NS_WSD}}}Bye"
        assert discovery.discoverable is False


@pytest.mark.parametrize(
    ("wanted", "hit"),
    [
        ((), True),
        ((PROFILE_G_SCOPE,), True),
        (("ONVIF://www.onvif.org/location/a",), True),
        (("onvif://www.onvif.org/location/a/b/c",), False),
        (("onvif://www.onvif.org/location/a/bb",), False),
        ((PROFILE_G_SCOPE, "onvif://www.onvif.org/name/Other"), False),
    ],
)
def test_scope_matching_rfc3986_segments(wanted: tuple[str, ...], hit: bool) -> None:
    parsed = parse_probe(probe(wanted))
    assert parsed is not None
    assert matches(parsed, SCOPES) is hit


def test_probe_for_other_types_does_not_match() -> None:
    text = probe().replace(b"dn:NetworkVideoTransmitter", b"dn:Printer")
    parsed = parse_probe(text)
    assert parsed is not None and matches(parsed, SCOPES) is False


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_datagrams_are_ignored_without_raising(data: bytes) -> None:
    assert parse_probe(data) is None
