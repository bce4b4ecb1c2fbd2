"""Replay Control over the wire: capabilities, GetReplayUri, Get/SetReplayConfiguration
(replay spec §1: RP-01..RP-10; GEN-10..GEN-12, PF-07, PF-10).

Every call goes through the independent zeep client with HTTP Digest and every answer is
validated against the official schemas; requests a zeep client cannot produce (durations in a
non-canonical spelling, malformed values) are posted as raw SOAP with Digest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from requests.auth import HTTPDigestAuth

from app.core.errors import ConfigError
from app.core.time import FakeClock
from app.engine.onvif.replay import CONFIG_FILE, ReplayConfig, ReplayService, ReplaySettings
from app.engine.storage import RecordingConfig, Store
from app.protocols.onvif.wsdl import NS_REPLAY
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.engine.onvif.test_search_support import call, fault
from tests.peers.onvif_zeep import assert_valid_body, validated_service

#: The replay RTSP server's port as configured (only written into URIs; nothing listens).
RTSP_PORT = 8554
UNICAST_RTSP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


@dataclasses.dataclass
class Env:
    served: Served
    settings: ReplaySettings
    data_dir: Path

    def client(self, user: str | None = "admin") -> Any:
        password = None if user is None else ACCOUNTS[user][0]
        return validated_service("replay", self.served.address("replay"), user, password)

    async def post(self, inner: str, user: str = "admin") -> requests.Response:
        """A raw SOAP 1.2 request with Digest; the answer is schema-checked like zeep's."""
        body = (
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
            f' xmlns:trp="{NS_REPLAY}" xmlns:tt="http://www.onvif.org/ver10/schema">'
            f"<s:Body>{inner}</s:Body></s:Envelope>"
        )
        auth = HTTPDigestAuth(user, ACCOUNTS[user][0])
        response = await asyncio.to_thread(
            requests.post,
            self.served.address("replay"),
            data=body.encode(),
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            auth=auth,
            timeout=10,
        )
        assert_valid_body("replay", response.content)
        return response


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    data_dir = tmp_path / "data"
    clock = FakeClock()
    async with Store(data_dir, clock=clock) as store:
        await store.create_recording(RecordingConfig(name="Gate"), token="Gate")
        await store.create_recording(RecordingConfig(name="Odd"), token="a b/ü")
        settings = await ReplaySettings.load(data_dir)
        service = ReplayService(store, settings, rtsp_port=RTSP_PORT)
        async with serve([service], tmp_path) as served:
            yield Env(served, settings, data_dir)


def set_timeout(text: str) -> str:
    return (
        "<trp:SetReplayConfiguration><trp:Configuration>"
        f"<tt:SessionTimeout>{text}</tt:SessionTimeout>"
        "</trp:Configuration></trp:SetReplayConfiguration>"
    )


def session_timeout_text(envelope: etree._Element | None) -> str:
    assert envelope is not None
    (el,) = envelope.iter("{http://www.onvif.org/ver10/schema}SessionTimeout")
    return el.text or ""


# ---------------------------------------------------------------------- capabilities


async def test_rp02_capabilities_are_pre_auth_with_the_advertised_range(env: Env) -> None:
    client = env.client(None)
    caps = await call(client, "GetServiceCapabilities")
    assert caps.ReversePlayback is True and caps.RTP_RTSP_TCP is True
    assert caps.SessionTimeoutRange == [10.0, 3600.0]
    received = client.last_received
    assert received is not None
    (element,) = received.iter(f"{{{NS_REPLAY}}}Capabilities")
    # RP-03/RP-04: two floats, space-separated; no WebSocket URI attribute at all.
    assert element.get("SessionTimeoutRange") == "10 3600"
    assert "RTSPWebSocketUri" not in element.attrib and "RTSPOverWebSocket" not in element.attrib


# ---------------------------------------------------------------------- GetReplayUri


async def test_rp05_replay_uri_names_the_host_the_client_used(env: Env) -> None:
    by_ip = env.client("viewer")  # READ_MEDIA
    for protocol in ("RTSP", "UDP", "HTTP", "TCP"):
        setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": protocol}}
        uri = await call(by_ip, "GetReplayUri", StreamSetup=setup, RecordingToken="Gate")
        assert uri == f"rtsp://127.0.0.1:{RTSP_PORT}/replay/Gate"
    by_name = validated_service(
        "replay",
        env.served.address("replay").replace("127.0.0.1", "localhost"),
        "admin",
        "admin-pw",
    )
    uri = await call(by_name, "GetReplayUri", StreamSetup=UNICAST_RTSP, RecordingToken="Gate")
    assert uri == f"rtsp://localhost:{RTSP_PORT}/replay/Gate"
    # Behind NAT the client's Host header names the public address (§8, GetServices XAddrs).
    for host, expected in (
        ("recorder.example:8080", "recorder.example"),
        ("[fd00::7]", "[fd00::7]"),
    ):
        by_ip.proxy._client.transport.session.headers["Host"] = host
        uri = await call(by_ip, "GetReplayUri", StreamSetup=UNICAST_RTSP, RecordingToken="Gate")
        assert uri == f"rtsp://{expected}:{RTSP_PORT}/replay/Gate"


async def test_rp07_a_token_is_one_percent_encoded_path_segment(env: Env) -> None:
    uri = await call(env.client(), "GetReplayUri", StreamSetup=UNICAST_RTSP, RecordingToken="a b/ü")
    assert uri == f"rtsp://127.0.0.1:{RTSP_PORT}/replay/a%20b%2F%C3%BC"


async def test_rp06_unknown_recording_and_unsupported_setups_are_refused(env: Env) -> None:
    client = env.client()
    for token in ("deadbeef", "R" * 65):
        code, subcodes = await fault(
            client, "GetReplayUri", StreamSetup=UNICAST_RTSP, RecordingToken=token
        )
        assert code.endswith("Sender") and subcodes == ["InvalidArgVal", "NoRecording"]
    multicast = {"Stream": "RTP-Multicast", "Transport": {"Protocol": "UDP"}}
    code, subcodes = await fault(
        client, "GetReplayUri", StreamSetup=multicast, RecordingToken="Gate"
    )
    assert code.endswith("Sender") and subcodes == ["InvalidArgVal", "InvalidStreamSetup"]


async def test_rp06_a_protocol_outside_the_schema_is_invalid_stream_setup(env: Env) -> None:
    inner = (
        "<trp:GetReplayUri><trp:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
        "<tt:Transport><tt:Protocol>QUIC</tt:Protocol></tt:Transport></trp:StreamSetup>"
        "<trp:RecordingToken>Gate</trp:RecordingToken></trp:GetReplayUri>"
    )
    response = await env.post(inner)
    assert response.status_code == 400
    assert b"ter:InvalidArgVal" in response.content
    assert b"ter:InvalidStreamSetup" in response.content


# ---------------------------------------------------------------------- configuration


async def test_rp08_default_configuration_is_the_rtsp_default(env: Env) -> None:
    client = env.client("viewer")
    config = await call(client, "GetReplayConfiguration")
    assert config.SessionTimeout == dt.timedelta(seconds=60)
    assert session_timeout_text(client.last_received) == "PT60S"
    assert env.settings.current.session_timeout_s == 60.0


async def test_rp09_session_timeout_reads_back_verbatim_and_persists(env: Env) -> None:
    """GEN-12, PF-07: the client's own spelling comes back, not a canonical form."""
    client = env.client()
    assert (
        await call(
            client,
            "SetReplayConfiguration",
            Configuration={"SessionTimeout": dt.timedelta(minutes=1, seconds=30)},
        )
        is None
    )
    await call(client, "GetReplayConfiguration")
    assert session_timeout_text(client.last_received) == "PT1M30S"
    for spelling, seconds in (("P0Y0M0DT0H2M0.000S", 120.0), ("PT90S", 90.0), ("PT10S", 10.0)):
        response = await env.post(set_timeout(spelling))
        assert response.status_code == 200
        await call(client, "GetReplayConfiguration")
        assert session_timeout_text(client.last_received) == spelling
        assert env.settings.current.session_timeout_s == seconds
    # Persisted in the data directory for the replay server and the next start.
    assert json.loads((env.data_dir / CONFIG_FILE).read_text()) == {"SessionTimeout": "PT10S"}
    reloaded = await ReplaySettings.load(env.data_dir)
    assert reloaded.current == ReplayConfig("PT10S")


async def test_rp09_out_of_range_changes_nothing(env: Env) -> None:
    client = env.client()
    await env.post(set_timeout("PT90S"))
    for text in ("PT9S", "PT1H0.5S", "P1D", "-PT30S", "PT0S"):
        response = await env.post(set_timeout(text))
        assert response.status_code == 400, text
        assert b"ter:InvalidArgVal" in response.content and b"ter:ConfigModify" in response.content
        await call(client, "GetReplayConfiguration")
        assert session_timeout_text(client.last_received) == "PT90S"
    assert json.loads((env.data_dir / CONFIG_FILE).read_text()) == {"SessionTimeout": "PT90S"}
    # GEN-04: a value that is no xs:duration at all is InvalidArgs.
    response = await env.post(set_timeout("ninety seconds"))
    assert response.status_code == 400 and b"ter:InvalidArgs" in response.content


async def test_gen11_a_user_may_read_but_not_set_the_configuration(env: Env) -> None:
    viewer = env.client("viewer")
    code, subcodes = await fault(
        viewer, "SetReplayConfiguration", Configuration={"SessionTimeout": dt.timedelta(seconds=30)}
    )
    assert code.endswith("Sender") and subcodes == ["NotAuthorized"]
    operator = env.client("operator")
    await call(
        operator,
        "SetReplayConfiguration",
        Configuration={"SessionTimeout": dt.timedelta(seconds=30)},
    )
    await call(viewer, "GetReplayConfiguration")
    assert session_timeout_text(viewer.last_received) == "PT30S"


async def test_an_unusable_configuration_file_is_reported_not_reset(tmp_path: Path) -> None:
    for content in (b"{not json", b'{"SessionTimeout": "PT1S"}', b'{"SessionTimeout": 60}'):
        (tmp_path / CONFIG_FILE).write_bytes(content)
        with pytest.raises(ConfigError, match=r"replay configuration .* is unusable"):
            await ReplaySettings.load(tmp_path)
    assert (tmp_path / CONFIG_FILE).read_bytes() == b'{"SessionTimeout": 60}'
