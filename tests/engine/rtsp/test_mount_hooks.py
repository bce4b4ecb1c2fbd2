"""Mount-level hooks: a ResourceResolver serving paths below one mount, per-resource session
timeouts, and the public payload type choice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.core.media import Codec, CodecParams
from app.engine.rtsp import LiveResource, RtspServer, payload_type_for
from app.protocols.rtsp.headers import parse_session
from tests.engine.rtsp.conftest import session_of
from tests.engine.rtsp.helpers import PCMU, RawClient, ScriptedLiveSource, h264_clip

TCP = ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")


class TimedLive(LiveResource):
    """A live resource whose sessions time out after a configurable number of seconds."""

    def __init__(self, source: ScriptedLiveSource, timeout_s: float | None) -> None:
        super().__init__(source)
        self.timeout_s = timeout_s

    def session_timeout_s(self) -> float | None:
        return self.timeout_s


class Cameras:
    """Resolves cams/<name>/… to the named camera's resource; other names are unknown."""

    def __init__(self, resources: dict[str, TimedLive]) -> None:
        self.resources = resources
        self.asked: list[str] = []

    def resolve(self, path: str) -> tuple[str, TimedLive] | None:
        self.asked.append(path)
        name = path.split("/", 1)[0]
        found = self.resources.get(name)
        return None if found is None else (name, found)


@pytest.fixture
async def served() -> AsyncIterator[tuple[RtspServer, Cameras]]:
    source = ScriptedLiveSource([h264_clip().params, PCMU])
    cameras = Cameras({"north": TimedLive(source, 7.2), "south": TimedLive(source, None)})
    server = RtspServer(session_timeout_s=60)
    server.mount("cams", cameras)
    async with server:
        await server.start("127.0.0.1", 0)
        yield server, cameras


async def test_resolver_serves_the_named_resource_with_its_own_base(
    served: tuple[RtspServer, Cameras],
) -> None:
    server, cameras = served
    client = await RawClient.connect("127.0.0.1", server.port)
    url = server.url("cams/north")
    response = await client.request("DESCRIBE", url)
    assert response.status == 200
    assert response.headers.get("Content-Base") == url + "/"
    assert b"m=video" in response.body and b"m=audio" in response.body
    assert (await client.request("DESCRIBE", server.url("cams/west"))).status == 404
    assert (await client.request("DESCRIBE", server.url("cams"))).status == 404
    assert cameras.asked == ["north", "west", ""]
    await client.close()


async def test_sessions_take_the_resource_timeout_and_stay_on_their_resource(
    served: tuple[RtspServer, Cameras],
) -> None:
    server, _ = served
    client = await RawClient.connect("127.0.0.1", server.port)
    north = await client.request("SETUP", server.url("cams/north/trackID=0"), [TCP])
    assert north.status == 200
    header = parse_session(north.headers.get("Session") or "")
    assert header.timeout == 8, "7.2 s rounds up to whole seconds"
    session = session_of(north)
    # The session belongs to cams/north: naming it on cams/south is an unknown session.
    play = await client.request("PLAY", server.url("cams/south"), [("Session", session)])
    assert play.status == 454
    south = await client.request(
        "SETUP", server.url("cams/south/trackID=0"), [("Transport", "RTP/AVP/TCP;interleaved=2-3")]
    )
    assert parse_session(south.headers.get("Session") or "").timeout == 60
    await client.close()


def test_payload_types_are_static_where_rfc_3551_has_one() -> None:
    assert payload_type_for(PCMU, 3) == 0
    assert payload_type_for(CodecParams(Codec.PCMA, 8000), 0) == 8
    assert payload_type_for(h264_clip().params, 0) == 96
    assert payload_type_for(h264_clip().params, 2) == 98
