"""Session lifetime, UDP port pairs, limits and Digest authentication.

Keepalive by requests and RTCP, timeouts reclaimed by the single sweeper, 1,000 abandoned
sessions.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.rtsp import LiveResource, RtspServer
from app.engine.rtsp.connection import RtspConnection
from app.protocols.rtp.packet import parse_rtp
from app.protocols.rtp.rtcp import Bye, build_rr, parse_rtcp
from app.protocols.rtsp.auth import DigestAuthenticator, digest_authorization, parse_challenge
from app.protocols.rtsp.transport import parse_transport
from tests.engine.rtsp.conftest import LiveRig, session_of, setup_interleaved
from tests.engine.rtsp.helpers import PCMU, RawClient, ScriptedLiveSource, h264_clip


@pytest.fixture
async def fake_clock_rig() -> AsyncIterator[tuple[LiveRig, FakeClock]]:
    clock = FakeClock()
    clip = h264_clip()
    source = ScriptedLiveSource([clip.params, PCMU])
    server = RtspServer(clock=clock, session_timeout_s=10)
    server.mount("live", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        yield LiveRig(server, source, clip, server.url("live")), clock


async def test_requests_and_rtcp_keep_a_session_alive(
    fake_clock_rig: tuple[LiveRig, FakeClock],
) -> None:
    rig, clock = fake_clock_rig
    client = await rig.client()
    session = await setup_interleaved(client, rig.url)
    keepalives = [
        ("GET_PARAMETER", rig.url + "/"),
        ("OPTIONS", rig.url),
        ("SET_PARAMETER", rig.url + "/"),
    ]
    for method, url in keepalives:
        clock.advance(9 * NS_PER_SECOND)
        assert (await client.request(method, url, [("Session", session)])).status == 200
        assert await rig.server.sweep() == 0
    clock.advance(9 * NS_PER_SECOND)
    await client.send_rtcp(3, build_rr(0xCAFE))
    # The RR is read before the answer to this request, so it has been handled by then.
    assert (await client.request("OPTIONS", "*")).status == 200
    clock.advance(2 * NS_PER_SECOND)
    assert await rig.server.sweep() == 0
    clock.advance(9 * NS_PER_SECOND)
    assert await rig.server.sweep() == 1
    assert len(rig.server.sessions) == 0
    # Holding no session and silent for the idle timeout, the connection was closed too.
    assert await client.at_eof()
    await client.close()
    other = await rig.client()
    response = await other.request("GET_PARAMETER", rig.url + "/", [("Session", session)])
    assert response.status == 454
    await other.close()


async def test_a_played_session_that_times_out_says_bye(
    fake_clock_rig: tuple[LiveRig, FakeClock],
) -> None:
    rig, clock = fake_clock_rig
    client = await rig.client()
    session = await setup_interleaved(client, rig.url, tracks=(0,))
    assert (await client.request("PLAY", rig.url, [("Session", session)])).status == 200
    await rig.source.subscribed.wait()
    clock.advance(11 * NS_PER_SECOND)
    assert await rig.server.sweep() == 1
    assert rig.source.subscribers == 0
    frame = await client.frame(1)
    assert isinstance(parse_rtcp(frame.data)[-1], Bye)
    await client.close()


async def test_a_session_blocked_by_tcp_back_pressure_does_not_expire(
    fake_clock_rig: tuple[LiveRig, FakeClock],
) -> None:
    rig, clock = fake_clock_rig
    client = await rig.client()
    await setup_interleaved(client, rig.url, tracks=(0,))
    (session,) = rig.server.sessions
    connection = session.interleaved_connection
    assert isinstance(connection, RtspConnection)
    connection.pause_writing()  # what asyncio does when the client stops reading
    clock.advance(60 * NS_PER_SECOND)
    assert await rig.server.sweep() == 0
    connection.resume_writing()
    clock.advance(11 * NS_PER_SECOND)
    assert await rig.server.sweep() == 1
    await client.close()


async def test_thousand_abandoned_sessions_are_reclaimed_by_the_timeout() -> None:
    clip = h264_clip()
    source = ScriptedLiveSource([clip.params, PCMU])
    # 4 s: long enough that a slow CI machine sets up all 1000 before the first one expires.
    server = RtspServer(session_timeout_s=4)
    server.mount("live", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        url = server.url("live/trackID=0")
        transport = [("Transport", "RTP/AVP/TCP;unicast")]

        session_ids: set[str] = set()

        async def abandon(count: int) -> RawClient:
            client = await RawClient.connect("127.0.0.1", server.port)
            for _ in range(count):
                await client.send("SETUP", url, transport)
            for _ in range(count):
                response = await client.response()
                assert response.status == 200
                session_ids.add(session_of(response))
            return client  # kept open and silent: the sessions are abandoned, not closed

        clients = await asyncio.gather(*(abandon(125) for _ in range(8)))
        try:
            assert len(session_ids) == 1000
            assert len(server.sessions) == 1000
            async with asyncio.timeout(15):
                await server.wait_no_sessions()
            # The silent connections go too, once they hold no sessions (idle timeout).
            for client in clients:
                async with asyncio.timeout(5):
                    assert await client.at_eof()
        finally:  # a failure above must not leak 8 sockets into a later test's gc
            for client in clients:
                await client.close()


async def test_udp_transport_pairs_keepalive_and_release(
    fake_clock_rig: tuple[LiveRig, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, clock = fake_clock_rig
    loop = asyncio.get_running_loop()
    rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rtp_sock, rtcp_sock:
        rtp_sock.bind(("127.0.0.1", 0))
        rtcp_sock.bind(("127.0.0.1", 0))
        rtp_sock.setblocking(False)
        client_ports = f"{rtp_sock.getsockname()[1]}-{rtcp_sock.getsockname()[1]}"
        client = await rig.client()
        response = await client.request(
            "SETUP",
            rig.url + "/trackID=0",
            [("Transport", f"RTP/AVP;unicast;client_port={client_ports}")],
        )
        assert response.status == 200
        (spec,) = parse_transport(response.headers.get("Transport") or "")
        assert spec.client_port is not None and spec.server_port is not None
        assert f"{spec.client_port[0]}-{spec.client_port[1]}" == client_ports
        rtp_port, rtcp_port = spec.server_port
        assert rtp_port % 2 == 0 and rtcp_port == rtp_port + 1
        session = session_of(response)
        assert (await client.request("PLAY", rig.url, [("Session", session)])).status == 200
        await rig.source.subscribed.wait()
        rig.source.push(0, rig.clip.unit(0))
        data, source_addr = await loop.sock_recvfrom(rtp_sock, 2048)
        assert source_addr[1] == rtp_port
        packet = parse_rtp(data)
        assert (packet.payload_type, packet.ssrc) == (96, spec.ssrc)

        # A receiver report to the server's RTCP port is a keepalive.
        (live_session,) = rig.server.sessions
        touched = asyncio.Event()
        touch = live_session.touch

        def spy() -> None:
            touch()
            touched.set()

        monkeypatch.setattr(live_session, "touch", spy)
        clock.advance(9 * NS_PER_SECOND)
        rtcp_sock.sendto(b"garbage", ("127.0.0.1", rtcp_port))
        rtcp_sock.sendto(build_rr(0xBEEF), ("127.0.0.1", rtcp_port))
        async with asyncio.timeout(5):
            await touched.wait()
        clock.advance(9 * NS_PER_SECOND)
        assert await rig.server.sweep() == 0
        clock.advance(11 * NS_PER_SECOND)
        assert await rig.server.sweep() == 1

        # The server's port pair is free again once the session is gone.
        await asyncio.sleep(0)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with probe:
            probe.bind(("127.0.0.1", rtp_port))
        await client.close()


async def test_udp_sessions_outlive_their_connection_until_the_timeout(
    fake_clock_rig: tuple[LiveRig, FakeClock],
) -> None:
    rig, clock = fake_clock_rig
    client = await rig.client()
    response = await client.request(
        "SETUP", rig.url + "/trackID=1", [("Transport", "RTP/AVP;unicast;client_port=9-10")]
    )
    assert response.status == 200
    await client.close()
    other = await rig.client()
    keepalive = [("Session", session_of(response))]
    assert (await other.request("GET_PARAMETER", rig.url + "/", keepalive)).status == 200
    clock.advance(11 * NS_PER_SECOND)
    assert await rig.server.sweep() == 1
    await other.close()


async def test_session_limit_answers_453() -> None:
    source = ScriptedLiveSource([PCMU])
    server = RtspServer(max_sessions=2)
    server.mount("audio", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        client = await RawClient.connect("127.0.0.1", server.port)
        statuses = [
            (
                await client.request(
                    "SETUP", server.url("audio"), [("Transport", "RTP/AVP/TCP;unicast")]
                )
            ).status
            for _ in range(3)
        ]
        assert statuses == [200, 200, 453]
        await client.close()


async def test_digest_authentication() -> None:
    users = {"admin": "s3cret", "viewer": "v1ew"}
    clip = h264_clip()
    source = ScriptedLiveSource([clip.params])
    server = RtspServer(authenticator=DigestAuthenticator("Custos", users.get))
    server.mount("live", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        url = server.url("live")
        client = await RawClient.connect("127.0.0.1", server.port)
        assert (await client.request("OPTIONS", url)).status == 200  # OPTIONS needs no login
        refused = await client.request("DESCRIBE", url)
        assert refused.status == 401
        challenges = [parse_challenge(v) for v in refused.headers.get_all("WWW-Authenticate")]
        assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
        for challenge in challenges:
            header = digest_authorization(challenge, "DESCRIBE", url, "admin", "s3cret")
            answer = await client.request("DESCRIBE", url, [("Authorization", header)])
            assert answer.status == 200
        wrong = digest_authorization(challenges[0], "DESCRIBE", url, "admin", "guess")
        assert (await client.request("DESCRIBE", url, [("Authorization", wrong)])).status == 401
        # Not even the mount table is visible without credentials.
        assert (await client.request("DESCRIBE", server.url("nothing"))).status == 401

        def auth(method: str, user: str = "admin") -> tuple[str, str]:
            password = users[user]
            value = digest_authorization(challenges[1], method, url, user, password)
            return ("Authorization", value)

        setup = await client.request(
            "SETUP", url, [("Transport", "RTP/AVP/TCP;unicast"), auth("SETUP")]
        )
        assert setup.status == 200
        session = ("Session", session_of(setup))
        other_user = await client.request("PLAY", url, [session, auth("PLAY", "viewer")])
        assert other_user.status == 454  # another user's session does not exist for them
        assert (await client.request("PLAY", url, [session])).status == 401
        assert (await client.request("PLAY", url, [session, auth("PLAY")])).status == 200
        await client.close()
