"""Shared pieces of the whole-engine interop tests (no tests of its own): a running Engine.

The Engine is the real composition root (store, simulated camera, job controller, every ONVIF
service on its HTTP server), started on loopback ports 0 with the harness accounts (admin,
operator, viewer) created in its user directory before it opens it. `running_engine` returns once
the simulated camera's recording holds durable, indexed video, so searches see footage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from app.core.config import EngineConfig, SimcamSource
from app.engine.runtime import Engine, EngineSettings
from app.engine.users import UserDirectory
from tests.engine.onvif.harness import ACCOUNTS

#: The simulated camera's frame stamp needs 1024 px of width; a pre-encoded loop is cheap.
CAMERA_SIZE = (1024, 576)
#: Recording token of the engine's simulated camera (SimcamSource's default).
SIMCAM = "SimCam"
#: Video keyframes recorded before the tests start (spread the footage over a GOP or more).
KEYFRAMES_BEFORE_START = 2
#: Generous: the CI machine is shared by up to 8 test runs.
WAIT_S = 60.0


def password(user: str) -> str:
    return ACCOUNTS[user][0]


async def _create_accounts(data: Path) -> None:
    def create() -> None:
        users = UserDirectory.open(data, {"CUSTOS_ADMIN_PASSWORD": password("admin")})
        for name, (secret, level) in ACCOUNTS.items():
            if name != "admin":
                users.create(name, secret, level)

    await asyncio.to_thread(create)


async def _recorded(engine: Engine, keyframes: int) -> None:
    """Return once `keyframes` video keyframes went through the recorder and are durable."""
    assert engine.store is not None
    hub = engine.sources[0].hub
    seen = 0
    async with asyncio.timeout(WAIT_S):
        # The recorder is a sink of the same hub: a frame a subscriber sees was already handed
        # to the recorder, so the flush below makes it durable and searchable.
        async with hub.subscribe() as frames:
            async for _, unit in frames:
                if unit.keyframe:
                    seen += 1
                    if seen >= keyframes:
                        break
        await engine.store.flush()


@contextlib.asynccontextmanager
async def running_engine(
    data: Path, *, keyframes: int = KEYFRAMES_BEFORE_START
) -> AsyncIterator[Engine]:
    """An Engine with one simulated camera on loopback, its footage already recorded."""
    await _create_accounts(data)
    source = SimcamSource(size=CAMERA_SIZE, loop_seconds=2)
    settings = EngineSettings(
        data_dir=data, config=EngineConfig(sources=(source,)), rtsp_port=0, http_port=0
    )
    async with Engine(settings) as engine:
        await _recorded(engine, keyframes)
        yield engine


def device_url(engine: Engine) -> str:
    url: str = engine.ready_info()["onvif_url"]
    return url
