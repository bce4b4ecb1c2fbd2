"""A client that stops reading: bounded buffers, live drops to the next keyframe, exact counts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
from collections.abc import AsyncIterator

from app.engine.rtsp import LiveResource, RtspServer
from app.engine.rtsp.connection import WRITE_HIGH_WATER, RtspConnection
from app.engine.rtsp.session import RtspSession
from app.protocols.rtp.packet import parse_rtp
from tests.engine.rtsp.conftest import setup_interleaved
from tests.engine.rtsp.helpers import (
    BIG_GOP,
    BIG_UNIT_BYTES,
    RawClient,
    ScriptedLiveSource,
    big_unit,
    h264_clip,
)

GOP = BIG_GOP
UNIT_BYTES = BIG_UNIT_BYTES
MAX_QUEUE = 8
#: Units pushed between two turns of the event loop (fewer than the queue holds).
BURST = 4


@dataclasses.dataclass
class _Live:
    """A live H.264 mount played by one raw client over interleaved TCP."""

    server: RtspServer
    source: ScriptedLiveSource
    client: RawClient
    url: str
    session_id: str
    session: RtspSession
    parameter_sets: tuple[bytes, bytes]
    rng: random.Random

    async def push_burst(self, first: int) -> None:
        """Units first..first+BURST-1, then one turn of the loop for the sender to take them."""
        sps, pps = self.parameter_sets
        for n in range(first, first + BURST):
            self.source.push(0, big_unit(n, sps, pps, self.rng))
        await self.source.consumed()


@contextlib.asynccontextmanager
async def _playing_live(seed: int) -> AsyncIterator[_Live]:
    clip = h264_clip()
    sps, pps = clip.params.parameter_sets
    source = ScriptedLiveSource([clip.params])
    server = RtspServer(max_queue=MAX_QUEUE)
    server.mount("live", LiveResource(source))
    async with server:
        await server.start("127.0.0.1", 0)
        url = server.url("live")
        client = await RawClient.connect("127.0.0.1", server.port)
        session_id = await setup_interleaved(client, url, tracks=(0,))
        assert (await client.request("PLAY", url, [("Session", session_id)])).status == 200
        await source.subscribed.wait()
        (session,) = server.sessions
        yield _Live(
            server, source, client, url, session_id, session, (sps, pps), random.Random(seed)
        )


async def test_a_reader_that_falls_behind_loses_whole_gops_counted_exactly() -> None:
    async with _playing_live(seed=7) as live:
        server, source, client, session = live.server, live.source, live.client, live.session
        connection = session.interleaved_connection
        assert isinstance(connection, RtspConnection)

        # The client reads nothing while 400 units (24 MB) arrive, a few at a time.
        client.pause_reading()
        for first in range(0, 400, BURST):
            await live.push_burst(first)
        output = session.output
        assert output.dropped_units > 0
        assert server.dropped_units == output.dropped_units
        assert output.queued <= MAX_QUEUE
        assert connection.write_paused
        transport = connection._transport
        assert transport is not None
        assert transport.get_write_buffer_size() <= WRITE_HIGH_WATER + 2 * UNIT_BYTES

        # Now it reads again; a last keyframe marks the end of the test stream.
        final = big_unit(400, *live.parameter_sets, live.rng)
        client.resume_reading()
        source.push(0, final)
        packets = [parse_rtp((await client.frame(0)).data)]
        while not (
            packets[-1].marker
            and (packets[-1].timestamp - packets[0].timestamp) % 2**32 == final.media_ts
        ):
            packets.append(parse_rtp((await client.frame(0)).data))
        await client.close()

    # Sequence numbers never skip: dropped units were never numbered.
    seqs = [p.sequence for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    frames = sorted({(p.timestamp - packets[0].timestamp) % 2**32 // 3600 for p in packets})
    delivered = [n for n in frames if n < 400]
    assert len(delivered) + output.dropped_units == 400
    # After every gap the stream restarts at a keyframe.
    for before, after in itertools.pairwise(frames):
        if after != before + 1:
            assert after % GOP == 0, (before, after)
    assert frames[-1] == 400


async def test_the_queue_and_socket_stay_bounded_while_the_client_is_stalled() -> None:
    async with _playing_live(seed=3) as live:
        client, session = live.client, live.session
        client.pause_reading()
        sizes = []
        for first in range(0, 500, BURST):
            await live.push_burst(first)
            sizes.append(session.output.queued)
        assert max(sizes) <= MAX_QUEUE
        assert session.output.dropped_units >= 300
        # Requests are still read and answered while media is blocked (ONVIF PB-38).
        client.resume_reading()
        async with asyncio.timeout(10):
            response = await client.request("PAUSE", live.url, [("Session", live.session_id)])
        assert response.status == 200
        await client.close()
