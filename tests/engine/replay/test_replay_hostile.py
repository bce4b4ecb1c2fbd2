"""Bad input against a replay mount: fuzzed requests, stalled readers, abandoned sessions, limits.

Every answer is a valid RTSP status, nothing is logged as an error, the server keeps serving,
and sessions nobody keeps alive are reclaimed with memory staying flat.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine.replay import FLAG_T, ReplayMount
from app.engine.rtsp import RtspServer
from app.engine.rtsp.output import MAX_QUEUED_UNITS
from app.protocols.rtsp.parser import MAX_HEADER_BYTES, MAX_LINE_BYTES
from app.protocols.rtsp.range import format_clock
from tests.engine.replay.conftest import ReplayRig
from tests.engine.replay.footage import START_NS, footage, frame_wall, open_store
from tests.engine.replay.test_replay_wire import read_until_bye, setup_all, units_of
from tests.engine.rtsp.conftest import session_of
from tests.engine.rtsp.helpers import RawClient
from tests.engine.rtsp.test_fuzz import raw_requests

#: Statuses a replay mount may answer with (RFC 2326 §7.1.1 plus 551 for Require).
VALID = {200, 400, 401, 404, 405, 413, 414, 451, 453, 454, 455, 457, 459, 460, 461, 501, 503}
VALID |= {505, 551}
ABANDONED = 1000
#: RTSP connections the abandoned sessions are spread over (the server allows 128 each).
ABANDON_CONNECTIONS = 10
#: RSS growth allowed between two rounds of abandoned sessions (allocator noise, caches).
RSS_SLACK_BYTES = 24 * 1024 * 1024
#: Socket buffer size (bytes) of the stalled-reader test; the kernel doubles it.
SMALL_BUFFER = 4096
#: One interleaved frame at most: '$', channel, length, the RTP packet.
MAX_PACKET_BYTES = 4 + 65535
CLOCKS = [
    format_clock(START_NS - 10**10),
    format_clock(frame_wall(0)),
    format_clock(frame_wall(5) + 12_345),
    format_clock(frame_wall(45)),
    format_clock(frame_wall(79)),
    format_clock(frame_wall(500)),
    "20260301T080000.123456789Z",
    "20261399T256099Z",
    "2026",
    "",
]
PLAY_HEADERS: dict[str, st.SearchStrategy[str]] = {
    "Range": st.one_of(
        st.builds(lambda a, b: f"clock={a}-{b}", st.sampled_from(CLOCKS), st.sampled_from(CLOCKS)),
        st.sampled_from(["clock", "clock=-", "npt=0-", "npt=3.5-1", "smpte=0:0:0-", "x"]),
    ),
    "Scale": st.sampled_from(["1.0", "-1.0", "2", "-8", "0.25", "0", "-0", "nan", "inf", "1e309"]),
    "Speed": st.sampled_from(["1", "4", "0", "-1"]),
    "Frames": st.sampled_from(
        ["intra", "intra/0", "intra/500", "intra/-5", "intra/x", "predicted", "all", "all/5", ""]
    ),
    "Rate-Control": st.sampled_from(["yes", "no", "YES", "maybe", ""]),
    "Immediate": st.sampled_from(["yes", "no", "1"]),
    "Require": st.sampled_from(["onvif-replay", "onvif-replay, x-y", "", ","]),
}


@st.composite
def replay_requests(draw: st.DrawFn) -> bytes:
    """PLAY/PAUSE/GET_PARAMETER on the session with hostile ONVIF header values."""
    method = draw(st.sampled_from(["PLAY", "PLAY", "PLAY", "PAUSE", "GET_PARAMETER", "TEARDOWN"]))
    lines = [f"{method} {{url}} RTSP/1.0", "CSeq: 3", "Session: {session}"]
    for name in draw(st.lists(st.sampled_from(sorted(PLAY_HEADERS)), max_size=5, unique=True)):
        lines.append(f"{name}: {draw(PLAY_HEADERS[name])}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def quiet_caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="app.engine")
    return caplog


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(st.one_of(replay_requests(), raw_requests()), min_size=1, max_size=4))
async def test_fuzzed_requests_get_valid_statuses_and_the_server_keeps_serving(
    rig: ReplayRig, quiet_caplog: pytest.LogCaptureFixture, requests: list[bytes]
) -> None:
    client = await rig.client()
    session = session_of(
        await client.request(
            "SETUP", rig.url + "/trackID=0", [("Transport", "RTP/AVP/TCP;unicast")]
        )
    )
    for data in requests:
        raw = data.replace(b"{url}", rig.url.encode()).replace(b"{session}", session.encode())
        await client.send_raw(raw)
    client.writer.write_eof()  # the server answers what it read, then closes
    assert await client.at_eof()
    # No answer at all is fine for framing the parser cannot recover (a body cut short).
    for response in client.responses:
        assert response.status in VALID, response
    await client.close()
    errors = [r for r in quiet_caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()
    probe = await rig.client()
    assert (await probe.request("DESCRIBE", rig.url)).status == 200
    await probe.close()


async def test_limits_unknown_sessions_and_ranges_outside_the_footage(rig: ReplayRig) -> None:
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    for span in (
        f"clock={format_clock(START_NS - 10**10)}-{format_clock(START_NS - 10**9)}",
        f"clock={format_clock(frame_wall(500))}-",
        f"clock={format_clock(frame_wall(500))}-{format_clock(frame_wall(400))}",
    ):
        response = await client.request("PLAY", rig.url, [session, ("Range", span)])
        assert response.status == 457, (span, response)
    # Inside the gap is not outside the footage: forward starts at the next run (PB-18 b).
    gap = f"clock={format_clock(frame_wall(45))}-"
    response = await client.request(
        "PLAY", rig.url, [session, ("Range", gap), ("Rate-Control", "no")]
    )
    assert response.status == 200
    packets, _ = await read_until_bye(client)
    assert [u.frame for u in units_of(packets)] == list(range(60, 80))
    for method in ("PLAY", "PAUSE", "GET_PARAMETER", "TEARDOWN"):
        unknown = await client.request(method, rig.url, [("Session", "0123456789abcdef")])
        assert unknown.status == 454, (method, unknown)
    await client.close()

    # One header line over the line limit, and a block of small lines over the block limit.
    for lines in (
        [f"X-Big: {'y' * (MAX_LINE_BYTES + 1)}"],
        [f"X-{i}: {'z' * 1000}" for i in range(MAX_HEADER_BYTES // 1000 + 2)],
    ):
        big = await rig.client()
        text = "\r\n".join([f"DESCRIBE {rig.url} RTSP/1.0", "CSeq: 1", *lines]) + "\r\n\r\n"
        await big.send_raw(text.encode())
        assert (await big.response()).status == 413
        await big.close()
    probe = await rig.client()
    assert (await probe.request("DESCRIBE", rig.url)).status == 200
    await probe.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.fixture
async def short_timeout_rig(tmp_path: Path) -> AsyncIterator[ReplayRig]:
    """Like `rig`, with the replay SessionTimeout at one second."""
    clip = footage()
    store = await open_store(tmp_path / "data", clip)
    try:
        server = RtspServer(report_interval_s=0.2)
        mount = ReplayMount(store, session_timeout_s=lambda: 1)
        await mount.attach(server)
        async with server:
            await server.start("127.0.0.1", 0)
            yield ReplayRig(server, store, clip, mount)
    finally:
        await store.close()


async def abandon_sessions(rig: ReplayRig, count: int) -> list[RawClient]:
    """SETUP `count` sessions over a few connections that then never send again."""
    clients = [await rig.client() for _ in range(ABANDON_CONNECTIONS)]
    per_client = count // ABANDON_CONNECTIONS

    async def open_on(client: RawClient) -> None:
        for _ in range(per_client):
            response = await client.request(
                "SETUP", rig.url + "/trackID=0", [("Transport", "RTP/AVP/TCP;unicast")]
            )
            assert response.status == 200, response
            assert (response.headers.get("Session") or "").endswith(";timeout=1")

    await asyncio.gather(*(open_on(c) for c in clients))
    return clients


@pytest.mark.slow
async def test_abandoned_sessions_are_reclaimed_by_the_timeout_with_memory_flat(
    short_timeout_rig: ReplayRig,
) -> None:
    rig = short_timeout_rig
    rounds = []
    for _ in range(2):
        clients = await abandon_sessions(rig, ABANDONED)
        # Opening 1,000 takes longer than their one-second timeout: the first already went.
        assert 0 < len(rig.server.sessions) < ABANDONED
        async with asyncio.timeout(30):
            await rig.server.wait_no_sessions()
        for client in clients:
            await client.close()
        rounds.append(rss_bytes())
    # The first round warms caches and the allocator; the second must not grow past that.
    assert rounds[1] - rounds[0] < RSS_SLACK_BYTES, rounds
    probe = await rig.client()
    session = await setup_all(probe, rig.url, count=1)
    play = [session, ("Range", f"clock={format_clock(frame_wall(60))}-"), ("Rate-Control", "no")]
    assert (await probe.request("PLAY", rig.url, play)).status == 200
    packets, _ = await read_until_bye(probe)
    assert units_of(packets)[-1].flags & FLAG_T
    await probe.close()


async def test_a_reader_that_stalls_blocks_delivery_without_losing_or_expiring(
    short_timeout_rig: ReplayRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = short_timeout_rig
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    (live,) = rig.server.sessions
    connection = live.interleaved_connection
    assert connection is not None
    # Socket buffers and the server's 256 kB high-water mark would hold this small clip
    # (about 230 kB) whole: shrink all three so a client that stops reading fills them within
    # a few frames, as a long recording does with the real sizes.
    paused = asyncio.Event()
    pause = connection.pause_writing

    def spy() -> None:
        pause()
        paused.set()

    monkeypatch.setattr(connection, "pause_writing", spy)
    transport = connection._transport  # no public handle on the socket
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    client.writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER
    )
    transport.set_write_buffer_limits(high=SMALL_BUFFER)
    client.pause_reading()
    play = [session, ("Range", f"clock={format_clock(frame_wall(0))}-"), ("Rate-Control", "no")]
    await client.send("PLAY", rig.url, play)
    async with asyncio.timeout(10):
        await paused.wait()
    assert live.blocked() and live.output.queued <= MAX_QUEUED_UNITS
    # Past its one-second timeout the blocked session is alive, not expired (PB-38).
    await asyncio.sleep(1.5)
    assert await rig.server.sweep() == 0 and rig.server.sessions.get(live.id) is live
    assert transport.get_write_buffer_size() <= SMALL_BUFFER + MAX_PACKET_BYTES
    client.resume_reading()
    assert (await client.response()).status == 200
    packets, _ = await read_until_bye(client)
    assert [u.frame for u in units_of(packets)] == [*range(40), *range(60, 80)]
    await client.close()
