"""Device quirks the client tolerates, against a hand-written fake device (raw XML over aiohttp).

Faults with HTTP 200 and odd prefixes (PF-11), text/xml answers, no GetServices → legacy
GetCapabilities with numeric attributes written as floats (PF-25), stale Digest nonces (PF-12).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from app.protocols.onvif.wsdl import NS_DEVICE, NS_RECORDING, NS_SEARCH
from app.protocols.rtsp.auth import parse_authorization
from app.remote.onvif.client import OnvifClient
from app.remote.onvif.errors import NS_ERROR, OnvifError, OnvifFault, OnvifHttpError
from app.remote.onvif.models import number

ENV = "http://www.w3.org/2003/05/soap-envelope"


def soap(body: str, extra_ns: str = "") -> str:
    return (
        f'<?xml version="1.0"?><S:Envelope xmlns:S="{ENV}" {extra_ns}>'
        f"<S:Body>{body}</S:Body></S:Envelope>"
    )


DEVICE_INFO = soap(
    f'<d:GetDeviceInformationResponse xmlns:d="{NS_DEVICE}"><d:Manufacturer>Acme</d:Manufacturer>'
    "<d:Model>NVR-9</d:Model><d:FirmwareVersion>1</d:FirmwareVersion>"
    "<d:SerialNumber>42</d:SerialNumber><d:HardwareId>h</d:HardwareId>"
    "</d:GetDeviceInformationResponse>"
)
NOT_SUPPORTED = soap(
    "<S:Fault><S:Code><S:Value>S:Receiver</S:Value><S:Subcode><S:Value>e:ActionNotSupported"
    '</S:Value></S:Subcode></S:Code><S:Reason><S:Text xml:lang="en">no</S:Text></S:Reason>'
    "</S:Fault>",
    f'xmlns:e="{NS_ERROR}"',
)
CAPABILITIES = soap(
    f'<d:GetCapabilitiesResponse xmlns:d="{NS_DEVICE}" xmlns:t="http://www.onvif.org/ver10/schema">'
    "<d:Capabilities><t:Device><t:XAddr>http://10.0.0.9/onvif/device_service</t:XAddr></t:Device>"
    "<t:Extension><t:Recording><t:XAddr>http://10.0.0.9/onvif/recording</t:XAddr>"
    "<t:ReceiverSource>true</t:ReceiverSource></t:Recording>"
    '<t:Search MaxRecordings="32.0"><t:XAddr> http://10.0.0.9/onvif/search </t:XAddr>'
    "</t:Search></t:Extension></d:Capabilities></d:GetCapabilitiesResponse>"
)
FAULT_200 = soap(
    "<x:Fault xmlns:x='http://www.w3.org/2003/05/soap-envelope'><x:Code><x:Value>x:Sender</x:Value>"
    "<x:Subcode><x:Value>onv:InvalidArgVal</x:Value><x:Subcode><x:Value>onv:NoRecording"
    "</x:Value></x:Subcode></x:Subcode></x:Code><x:Reason><x:Text xml:lang='en'>gone</x:Text>"
    "</x:Reason></x:Fault>",
    f'xmlns:onv="{NS_ERROR}"',
)


Responder = Callable[[web.Request, bytes], web.Response]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[str, list[Any], list[tuple[str, str | None]]]]:
    """A device whose answer per operation is set by the test in `routes` (first match wins)."""
    routes: list[Any] = []
    seen: list[tuple[str, str | None]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        for marker, responder in routes:
            if marker.encode() in body:
                seen.append((marker, request.headers.get("Authorization")))
                response: web.Response = responder(request, body)
                return response
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/onvif/device_service", routes, seen
    finally:
        await runner.cleanup()


def xml(text: str, status: int = 200, content_type: str = "text/xml") -> Responder:
    def respond(request: web.Request, body: bytes) -> web.Response:
        return web.Response(text=text, status=status, content_type=content_type)

    return respond


async def test_pf11_fault_with_http_200_and_any_prefix(fake: Any) -> None:
    url, routes, _seen = fake
    routes.append(("GetRecordingInformation", xml(FAULT_200, 200)))
    async with OnvifClient(url) as client:
        with pytest.raises(OnvifFault) as caught:
            await client.get_recording_information("REC_1")
    assert caught.value.status == 200
    assert caught.value.has_subcode("NoRecording") and caught.value.not_found
    assert caught.value.reason == "gone"


async def test_pf02_text_xml_answer_is_read(fake: Any) -> None:
    url, routes, _seen = fake
    routes.append(("GetDeviceInformation", xml(DEVICE_INFO)))
    async with OnvifClient(url) as client:
        info = await client.get_device_information()
    assert (info.manufacturer, info.model, info.serial_number) == ("Acme", "NVR-9", "42")


async def test_pf25_get_services_falls_back_to_get_capabilities(fake: Any) -> None:
    url, routes, _seen = fake
    routes.append(("GetServices", xml(NOT_SUPPORTED, 500)))
    routes.append(("GetCapabilities", xml(CAPABILITIES)))
    async with OnvifClient(url) as client:
        services = await client.get_services()
        assert client.xaddr("recording") == "http://10.0.0.9/onvif/recording"
        assert client.xaddr("search") == "http://10.0.0.9/onvif/search"
    by_ns = {s.namespace: s for s in services}
    assert set(by_ns) == {NS_DEVICE, NS_RECORDING, NS_SEARCH}
    assert number(by_ns[NS_SEARCH].capabilities["MaxRecordings"]) == 32
    assert isinstance(number("32.0"), int) and number("2.5") == 2.5 and number("x") is None


async def test_pf12_digest_stale_nonce_is_answered_once(fake: Any) -> None:
    """401 → answer; a later stale=true 401 → answer the new nonce with nc restarting at 1."""
    url, routes, seen = fake
    nonces = iter(["n1", "n2"])
    state: dict[str, Any] = {"nonce": "", "served": 0}

    def digest(request: web.Request, body: bytes) -> web.Response:
        auth = request.headers.get("Authorization")
        stale = state["served"] == 2
        if auth is None or stale or parse_authorization(auth).nonce != state["nonce"]:
            state["nonce"] = next(nonces)
            challenge = f'Digest realm="r", nonce="{state["nonce"]}", qop="auth", algorithm=MD5'
            if stale:
                challenge += ", stale=true"
                state["served"] += 1
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        state["served"] += 1
        return web.Response(text=DEVICE_INFO, content_type="application/soap+xml")

    routes.append(("GetDeviceInformation", digest))
    async with OnvifClient(url, "u", "p") as client:
        for _ in range(3):
            assert (await client.get_device_information()).model == "NVR-9"
    sent = [parse_authorization(a) for _, a in seen if a is not None]
    assert [(c.nonce, c.nc) for c in sent] == [
        ("n1", "00000001"),
        ("n1", "00000002"),
        ("n1", "00000003"),  # answered 401 stale=true
        ("n2", "00000001"),
    ]
    assert all(c.uri == "/onvif/device_service" and c.qop == "auth" for c in sent)


async def test_http_errors_and_hostile_answers(fake: Any) -> None:
    url, routes, _seen = fake
    routes.append(("GetReplayUri", xml("not found", 404, "text/plain")))
    routes.append(("GetRecordingSummary", xml('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')))
    async with OnvifClient(url) as client:
        with pytest.raises(OnvifHttpError) as caught:
            await client.get_replay_uri("REC_1")
        assert caught.value.status == 404
        with pytest.raises(OnvifError, match="without a SOAP"):
            await client.get_recording_summary()
