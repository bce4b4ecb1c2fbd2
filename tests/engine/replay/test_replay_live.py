"""Replay of a recording that is still being recorded: playing into the live edge (PB-35/36).

The simulated camera (10 fps, pre-encoded loop) records through the Recorder into a store with
a short flush interval; the recording starts with HISTORY_S of footage written just before the
camera starts, so a play can begin "a few seconds back" without waiting for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.core.media import AccessUnit, TimeSource
from app.core.time import NS_PER_MS, NS_PER_SECOND, SystemClock
from app.engine.recorder import Recorder
from app.engine.replay import FLAG_C, FLAG_D, FLAG_E, FLAG_T, ReplayMount
from app.engine.rtsp import RtspServer
from app.engine.simcam import SimulatedCamera
from app.engine.storage import RecordingConfig, Store, StoreOptions
from app.protocols.rtp.packet import parse_rtp
from app.protocols.rtp.rtcp import Bye, parse_rtcp
from app.protocols.rtsp.range import format_clock, parse_range
from tests.engine.replay.footage import FRAME_NS, GOP, camera_loop
from tests.engine.replay.test_replay_wire import REQUIRE, Unit, setup_all
from tests.engine.rtsp.helpers import RawClient

LIVE = "Live"
#: Footage recorded before the camera starts: one GOP.
HISTORY_FRAMES = GOP
HISTORY_NS = HISTORY_FRAMES * FRAME_NS
#: The store makes frames readable this often (the default half second would dominate timing).
FLUSH_INTERVAL_S = 0.1
#: Longest any one play in these tests may take.
PLAY_TIMEOUT_S = 20
#: Allowed lateness of paced units and of units relayed at the live edge (CI noise).
LATE_NS = 1500 * NS_PER_MS


@dataclasses.dataclass
class LiveRig:
    server: RtspServer
    store: Store
    camera: SimulatedCamera
    #: Wall clock of the first stored frame (a keyframe).
    first_ns: int

    @property
    def url(self) -> str:
        return self.server.url(f"replay/{LIVE}")

    async def client(self) -> RawClient:
        return await RawClient.connect("127.0.0.1", self.server.port)

    async def stored_walls(self) -> list[int]:
        return [r.wall_ns async for r in self.store.frames(LIVE, "VIDEO001", 0, 1 << 62)]


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveRig]:
    loop = camera_loop()
    store = Store(tmp_path / "data", options=StoreOptions(flush_interval_s=FLUSH_INTERVAL_S))
    await store.open()
    try:
        await store.create_recording(RecordingConfig(name="Live camera"), token=LIVE)
        recorder = Recorder(store, LIVE)
        await recorder.open()
        # The history ends one frame before the camera's first frame: one run, no gap.
        first = time.time_ns() - HISTORY_NS
        recorder.start([loop.video])
        for i in range(HISTORY_FRAMES):
            frame = loop.frames[i]
            unit = AccessUnit(
                frame.data, i * 9000, first + i * FRAME_NS, frame.keyframe, TimeSource.LOCAL_CAPTURE
            )
            recorder.frame(0, unit, loop.video)
        camera = SimulatedCamera.from_loop(recorder, loop, audio=False, clock=SystemClock())
        server = RtspServer(report_interval_s=0.5)
        await ReplayMount(store).attach(server)
        try:
            async with server:
                await server.start("127.0.0.1", 0)
                await camera.start()
                await store.flush()
                yield LiveRig(server, store, camera, first)
        finally:
            await camera.stop()
            await recorder.close()
    finally:
        await store.close()


@dataclasses.dataclass
class Arrival:
    unit: Unit
    #: time.time_ns() when its first packet was read.
    at_ns: int


async def receive(
    client: RawClient, until: Callable[[list[Arrival]], bool]
) -> tuple[list[Arrival], bool]:
    """Whole video units as they arrive until `until(units)` or an RTCP BYE; (units, BYE?)."""
    arrivals: list[Arrival] = []
    async with asyncio.timeout(PLAY_TIMEOUT_S):
        while True:
            frame = await client.frame()
            if frame.channel % 2 == 1:
                if any(isinstance(p, Bye) for p in parse_rtcp(frame.data)):
                    return arrivals, True
                continue
            packet = parse_rtp(frame.data)
            last = arrivals[-1].unit if arrivals else None
            if last is not None and last.packets[-1].timestamp == packet.timestamp:
                last.packets.append(packet)
            else:
                arrivals.append(Arrival(Unit(0, [packet]), time.time_ns()))
            # Only whole units count: the marker bit closes an H.264 access unit.
            if packet.marker and until(arrivals):
                break
    return arrivals, False


def flags_of(arrivals: list[Arrival]) -> int:
    out = 0
    for a in arrivals:
        out |= a.unit.flags
    return out


async def start_play(rig: LiveRig, *headers: tuple[str, str]) -> tuple[RawClient, tuple[str, str]]:
    client = await rig.client()
    session = await setup_all(client, rig.url, count=1)
    response = await client.request("PLAY", rig.url, [session, REQUIRE, *headers])
    assert response.status == 200, response
    assert parse_range(response.headers.get("Range") or "").start == rig.first_ns
    return client, session


async def test_rate_controlled_play_from_the_past_keeps_going_past_the_play_instant(
    live: LiveRig,
) -> None:
    client, session = await start_play(live, ("Range", f"clock={format_clock(live.first_ns)}-"))
    played_ns = time.time_ns()
    # Past the instant of the PLAY by a second: footage recorded while it played.
    arrivals, bye = await receive(
        client, lambda got: got[-1].unit.wall_ns >= played_ns + NS_PER_SECOND
    )
    assert not bye
    walls = [a.unit.wall_ns for a in arrivals]
    stored = await live.stored_walls()
    assert walls == [w for w in stored if w <= walls[-1]], "a stored frame was skipped"
    # Nothing says "end" while the recording continues (PB-35).
    assert not flags_of(arrivals) & (FLAG_E | FLAG_T)
    assert arrivals[0].unit.flags & (FLAG_C | FLAG_D) == FLAG_C | FLAG_D
    # Paced at 1×: each unit leaves when its wall-clock offset from the first has elapsed.
    first = arrivals[0]
    for a in arrivals:
        footage_ns = a.unit.wall_ns - first.unit.wall_ns
        assert a.at_ns - first.at_ns >= footage_ns - 100 * NS_PER_MS, (a.unit.frame, footage_ns)
        assert a.at_ns - first.at_ns <= footage_ns + LATE_NS, (a.unit.frame, footage_ns)
    # Units after the PLAY instant arrive a steady lag behind their capture (a few s back).
    lag = first.at_ns - first.unit.wall_ns
    assert HISTORY_NS - LATE_NS <= lag <= HISTORY_NS + LATE_NS
    await client.request("TEARDOWN", live.url, [session])
    await client.close()


async def test_a_closed_range_ending_in_the_future_stops_at_its_end(live: LiveRig) -> None:
    end_ns = time.time_ns() + 700 * NS_PER_MS
    span = f"clock={format_clock(live.first_ns)}-{format_clock(end_ns)}"
    client, _ = await start_play(live, ("Range", span))
    played_ns = time.time_ns()
    arrivals, bye = await receive(client, lambda got: bool(got[-1].unit.flags & FLAG_T))
    if not bye:
        _, bye = await receive(client, lambda got: False)
    assert bye, "BYE follows the terminal unit"
    walls = [a.unit.wall_ns for a in arrivals]
    stored = await live.stored_walls()
    # Every stored frame of the range, the last one inside it; nothing beyond.
    assert walls == [w for w in stored if w <= end_ns]
    assert walls[-1] > played_ns, "it stopped at the live edge of the PLAY instant"
    assert end_ns - FRAME_NS < walls[-1] <= end_ns
    assert [a.unit.frame for a in arrivals if a.unit.flags & FLAG_T] == [arrivals[-1].unit.frame]
    assert arrivals[-1].unit.flags & FLAG_E
    await client.close()


async def test_without_rate_control_it_catches_up_and_follows_the_live_edge(
    live: LiveRig,
) -> None:
    client, _ = await start_play(
        live, ("Range", f"clock={format_clock(live.first_ns)}-"), ("Rate-Control", "no")
    )
    played_ns = time.time_ns()
    follow_ns = NS_PER_SECOND
    arrivals, bye = await receive(client, lambda got: got[-1].unit.wall_ns >= played_ns + follow_ns)
    assert not bye and not flags_of(arrivals) & (FLAG_E | FLAG_T)
    # The history comes at once (faster than real time), the rest as it is recorded.
    history = [a for a in arrivals if a.unit.wall_ns < played_ns - 2 * FRAME_NS]
    assert len(history) >= HISTORY_FRAMES - 2
    assert history[-1].at_ns - history[0].at_ns < HISTORY_NS // 2
    following = [a for a in arrivals if a.unit.wall_ns > played_ns]
    assert len(following) >= follow_ns // FRAME_NS - 2
    assert all(0 <= a.at_ns - a.unit.wall_ns <= LATE_NS for a in following)

    # The camera stops: the play ends with E and T on the last recorded frame, then BYE.
    await live.camera.stop()
    rest, bye = await receive(client, lambda got: False)
    assert bye
    arrivals += rest
    walls = [a.unit.wall_ns for a in arrivals]
    assert walls == await live.stored_walls()
    assert arrivals[-1].unit.flags & (FLAG_E | FLAG_T) == FLAG_E | FLAG_T
    assert not flags_of(arrivals[:-1]) & (FLAG_E | FLAG_T)
    await client.close()
