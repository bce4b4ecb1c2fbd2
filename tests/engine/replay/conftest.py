"""Fixtures of the replay tests: the recorded footage in a store, served on loopback port 0."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.engine.replay import ReplayMount
from app.engine.rtsp import RtspServer
from app.engine.storage import Store
from tests.engine.replay.footage import RECORDING, Footage, footage, open_store
from tests.engine.rtsp.helpers import RawClient


@dataclasses.dataclass
class ReplayRig:
    server: RtspServer
    store: Store
    clip: Footage = dataclasses.field(repr=False)  # megabytes: keeps failure reports short
    mount: ReplayMount

    @property
    def url(self) -> str:
        return self.server.url(f"replay/{RECORDING}")

    async def client(self) -> RawClient:
        return await RawClient.connect("127.0.0.1", self.server.port)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[ReplayRig]:
    clip = footage()
    store = await open_store(tmp_path / "data", clip)
    try:
        server = RtspServer(report_interval_s=0.2)
        mount = ReplayMount(store)
        await mount.attach(server)
        async with server:
            await server.start("127.0.0.1", 0)
            yield ReplayRig(server, store, clip, mount)
    finally:
        await store.close()
