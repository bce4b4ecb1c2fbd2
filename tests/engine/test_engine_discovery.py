"""The engine's WS-Discovery responder and TLS capability, wired end to end (issue #3 scope 3).

An engine started with `discoverable=True` answers a Probe on loopback with its ONVIF XAddrs
(HTTP and HTTPS), keeps its endpoint reference across restarts, and SetDiscoveryMode over
SOAP turns the responder off and on. GetCapabilities reports TLS1.2 only with HTTPS on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from lxml import etree

from app.core.config import EngineConfig
from app.engine.onvif.device import PROFILE_G_SCOPE
from app.engine.runtime import Engine, EngineSettings
from app.protocols.onvif.discovery import NS_WSA, NS_WSD, probe
from tests.engine.onvif.test_discovery import Listener
from tests.engine.test_engine_https import ADMIN_PASSWORD, TDS, _create_users, soap

TT = "{http://www.onvif.org/ver10/schema}"


@contextlib.asynccontextmanager
async def discoverable_engine(
    data: Path, *, discoverable: bool = True, https: bool = True
) -> AsyncIterator[Engine]:
    await asyncio.to_thread(_create_users, data)
    settings = EngineSettings(
        data_dir=data,
        config=EngineConfig(sources=()),
        rtsp_port=0,
        http_port=0,
        https_port=0 if https else None,
        discoverable=discoverable,
        discovery_port=0,
    )
    async with Engine(settings) as engine:
        yield engine


async def probe_engine(port: int, message_id: str) -> etree._Element | None:
    """The ProbeMatch a Profile G Probe to loopback `port` brings back, or None within 1 s."""
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(Listener, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(probe((PROFILE_G_SCOPE,), message_id=message_id), ("127.0.0.1", port))
        try:
            answer = etree.fromstring(await asyncio.wait_for(inbox.queue.get(), 1.0))
        except TimeoutError:
            return None
    finally:
        transport.close()
    assert answer.findtext(f".//{{{NS_WSA}}}RelatesTo") == message_id
    return answer.find(f".//{{{NS_WSD}}}ProbeMatch")


def responder_port(engine: Engine) -> int:
    assert engine.discovery is not None
    return engine.discovery.address[1]


async def test_probe_answered_with_both_xaddrs_and_a_stable_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    addresses = []
    for run in range(2):
        async with discoverable_engine(data) as engine:
            match = await probe_engine(responder_port(engine), f"urn:uuid:run-{run}")
            assert match is not None
            info = engine.ready_info()
            xaddrs = match.findtext(f"{{{NS_WSD}}}XAddrs").split()
            assert xaddrs == [info["onvif_url"], info["https_url"] + "onvif/device_service"]
            assert PROFILE_G_SCOPE in match.findtext(f"{{{NS_WSD}}}Scopes").split()
            addresses.append(match.findtext(f"{{{NS_WSA}}}EndpointReference/{{{NS_WSA}}}Address"))
    assert addresses[0] == addresses[1] and addresses[0].startswith("urn:uuid:")


async def test_set_discovery_mode_switches_the_responder(tmp_path: Path) -> None:
    async with discoverable_engine(tmp_path / "data", https=False) as engine:
        discovery = engine.discovery
        assert discovery is not None
        states = [discovery.discoverable]
        first_port = responder_port(engine)
        base = engine.ready_info()["http_url"]
        admin = httpx.DigestAuth("admin", ADMIN_PASSWORD)
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            off = await soap(
                client,
                "<tds:SetDiscoveryMode><tds:DiscoveryMode>NonDiscoverable</tds:DiscoveryMode>"
                "</tds:SetDiscoveryMode>",
                auth=admin,
            )
            assert off.status_code == 200, off.text
            states.append(discovery.discoverable)
            assert await probe_engine(first_port, "urn:uuid:while-off") is None
            mode = await soap(client, "GetDiscoveryMode", auth=admin)
            assert etree.fromstring(mode.content).findtext(f".//{TDS}DiscoveryMode") == (
                "NonDiscoverable"
            )
            on = await soap(
                client,
                "<tds:SetDiscoveryMode><tds:DiscoveryMode>Discoverable</tds:DiscoveryMode>"
                "</tds:SetDiscoveryMode>",
                auth=admin,
            )
            assert on.status_code == 200, on.text
            states.append(discovery.discoverable)
            assert await probe_engine(responder_port(engine), "urn:uuid:back-on") is not None
        assert states == [True, False, True]


async def test_off_by_default_and_tls_capability_follows_https(tmp_path: Path) -> None:
    for https in (False, True):
        data = tmp_path / f"https-{https}"
        async with discoverable_engine(data, discoverable=False, https=https) as engine:
            assert engine.discovery is not None and engine.discovery.discoverable is False
            base = engine.ready_info()["http_url"]
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                caps = await soap(
                    client,
                    "<tds:GetCapabilities><tds:Category>Device</tds:Category>"
                    "</tds:GetCapabilities>",
                    auth=httpx.DigestAuth("admin", ADMIN_PASSWORD),
                )
            assert caps.status_code == 200, caps.text
            tls12 = etree.fromstring(caps.content).findtext(f".//{TT}Security/{TT}TLS1.2")
            assert tls12 == ("true" if https else "false")
