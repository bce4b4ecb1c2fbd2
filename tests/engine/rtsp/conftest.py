"""Fixtures of the RTSP server tests: a server with a scripted live mount on loopback port 0."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from app.engine.rtsp import LiveResource, RtspServer
from app.protocols.rtsp.headers import parse_session
from app.protocols.rtsp.message import RtspResponse
from tests.engine.rtsp.helpers import PCMU, Clip, RawClient, ScriptedLiveSource, h264_clip


@dataclasses.dataclass
class LiveRig:
    server: RtspServer
    source: ScriptedLiveSource
    clip: Clip
    url: str

    async def client(self) -> RawClient:
        return await RawClient.connect("127.0.0.1", self.server.port)


@pytest.fixture
def clip() -> Clip:
    return h264_clip()


@pytest.fixture
async def rig(clip: Clip) -> AsyncIterator[LiveRig]:
    source = ScriptedLiveSource([clip.params, PCMU])
    server = RtspServer(report_interval_s=0.1)
    server.mount("live", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        yield LiveRig(server, source, clip, server.url("live"))


def session_of(response: RtspResponse) -> str:
    value = response.headers.get("Session")
    assert value is not None, response
    return parse_session(value).session_id


async def setup_interleaved(client: RawClient, url: str, tracks: tuple[int, ...] = (0, 1)) -> str:
    """SETUP the tracks over TCP (channels 2i, 2i+1); returns the session id."""
    session: str | None = None
    for track in tracks:
        headers = [("Transport", f"RTP/AVP/TCP;unicast;interleaved={2 * track}-{2 * track + 1}")]
        if session is not None:
            headers.append(("Session", session))
        response = await client.request("SETUP", f"{url}/trackID={track}", headers)
        assert response.status == 200, response
        session = session_of(response)
    assert session is not None
    return session
