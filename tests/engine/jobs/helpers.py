"""Shared pieces of the job-controller tests: a simulated RTSP camera, event waits, a stack."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from app.core.time import SystemClock
from app.engine import events
from app.engine.events import EventBus, Notification, Subscription
from app.engine.jobs import IngestOptions, JobController
from app.engine.live import LiveHub
from app.engine.rtsp import LiveResource, RtspServer
from app.engine.simcam import EncodedLoop, SimulatedCamera, encode_loop
from app.engine.storage import Store, StoreOptions

#: The camera's stamp needs 1024 px of width; 2 s is one GOP, encoded once per test session.
CAMERA_SIZE = (1024, 576)
#: Short back-off so failure tests see several attempts quickly.
FAST_INGEST = IngestOptions(backoff_initial_s=0.2, backoff_cap_s=0.5, request_timeout_s=5.0)
#: Generous: the CI machine is shared by up to 8 test runs.
WAIT_S = 60.0


@functools.cache
def camera_loop() -> EncodedLoop:
    return encode_loop(size=CAMERA_SIZE, seconds=2, capture_ns=SystemClock().wall_ns())


@contextlib.asynccontextmanager
async def rtsp_camera(audio: bool = True) -> AsyncIterator[str]:
    """A simulated camera served over RTSP on a free loopback port; yields its URL."""
    loop = await asyncio.to_thread(camera_loop)
    clock = SystemClock()
    async with RtspServer(clock=clock) as server:
        await server.start("127.0.0.1", 0)
        hub = LiveHub("camera")
        server.mount("live", LiveResource(hub, name="test camera"))
        async with SimulatedCamera.from_loop(hub, loop, audio=audio, clock=clock):
            yield server.url("live")


@contextlib.asynccontextmanager
async def controller(
    data: Path, *, reserved: dict[str, set[str]] | None = None
) -> AsyncIterator[tuple[Store, EventBus, JobController]]:
    """Store + bus + controller on `data`, with fast ingest back-off."""
    bus = EventBus()
    options = StoreOptions(flush_interval_s=0.1)
    async with (
        Store(data, options=options) as store,
        JobController(store, bus, reserved=reserved, ingest=FAST_INGEST) as jobs,
    ):
        yield store, bus, jobs
    bus.close()


async def next_matching(
    sub: Subscription, predicate: Callable[[Notification], bool], timeout_s: float = WAIT_S
) -> Notification:
    """The next notification on `sub` that satisfies `predicate` (others are skipped)."""
    async with asyncio.timeout(timeout_s):
        while True:
            notification = await sub.get()
            if predicate(notification):
                return notification


def job_state_is(token: str, state: str) -> Callable[[Notification], bool]:
    return lambda n: (
        n.topic == events.JOB_STATE
        and n.item("RecordingJobToken") == token
        and n.item("State") == state
    )


def receiver_state_is(token: str, state: str) -> Callable[[Notification], bool]:
    return lambda n: (
        n.topic == events.RECEIVER_CHANGE_STATE
        and n.item("ReceiverToken") == token
        and n.item("NewState") == state
    )
