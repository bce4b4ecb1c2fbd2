"""Shared set-up of the Recording Search service tests (no tests here): footage, server, client.

The store holds recorded footage written through the storage writer as the recorder does:
  "Gate": video 0–3.96 s and 8–11.96 s (a gap between two runs), audio from 10 ms to ~3 s;
  "Yard": video 2–5.96 s; "Empty": no data at all.
Times are relative to T0 (2026-01-01T00:00:00Z); the engine's "now" is one hour later.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions

from app.core.time import NS_PER_MS, NS_PER_SECOND, FakeClock, format_iso
from app.engine.onvif.search import SearchService
from app.engine.search import SearchSessions
from app.engine.storage import RecordingConfig, Store, StoreOptions
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.engine.storage.helpers import AAC, FRAME_NS, H264, T0, audio, video
from tests.peers.onvif_zeep import validated_service

S = NS_PER_SECOND
NOW = T0 + 3600 * S
OPTIONS = StoreOptions(segment_max_duration_ns=2 * S, flush_interval_s=0.05)
#: (offset from T0, frames) of each video run; every run ends with a gap.
GATE_VIDEO = ((0, 100), (8 * S, 100))
YARD_VIDEO = ((2 * S, 100),)
GATE_AUDIO_T0 = T0 + 10 * NS_PER_MS
GATE_AUDIO_FRAMES = 140
#: Last frame of a 100-frame video run, after its first.
RUN_END = 99 * FRAME_NS


def iso(offset_ns: int) -> str:
    """The wire form of T0 + offset (GEN-08: UTC, 'Z', milliseconds)."""
    return format_iso(T0 + offset_ns)


async def populate(data_dir: Path, clock: FakeClock) -> None:
    async with Store(data_dir, clock=clock, options=OPTIONS) as store:
        await store.create_recording(
            RecordingConfig(source_id="urn:cam:gate", name="Gate", location="North"), token="Gate"
        )
        await store.create_recording(
            RecordingConfig(source_id="urn:cam:yard", name="Yard", content="yard cam"),
            token="Yard",
        )
        await store.create_recording(RecordingConfig(name="Empty"), token="Empty")
        writer = await store.open_writer("Gate", "AUDIO001")
        for i in range(GATE_AUDIO_FRAMES):
            writer.append(audio(i, t0=GATE_AUDIO_T0), AAC)
        await writer.close()
        for token, runs in (("Gate", GATE_VIDEO), ("Yard", YARD_VIDEO)):
            writer = await store.open_writer(token, "VIDEO001")
            for offset, frames in runs:
                for i in range(frames):
                    writer.append(video(i, t0=T0 + offset), H264)
                writer.end_run("gap")
            await writer.close()


@dataclasses.dataclass
class Env:
    served: Served
    store: Store
    sessions: SearchSessions
    service: SearchService
    clock: FakeClock
    _clients: dict[str | None, Any] = dataclasses.field(default_factory=dict)

    def client(self, user: str | None = "admin") -> Any:
        """The independent zeep client, validating every answer against the official XSDs.

        One per user and test (building one reads the WSDLs); use it from one task at a time.
        """
        if user not in self._clients:
            password = None if user is None else ACCOUNTS[user][0]
            address = self.served.address("search")
            self._clients[user] = validated_service("search", address, user, password)
        return self._clients[user]


async def make_env(tmp_path: Path, sessions_type: type[SearchSessions]) -> AsyncIterator[Env]:
    clock = FakeClock(NOW)
    data_dir = tmp_path / "data"
    await populate(data_dir, clock)
    async with Store(data_dir, clock=clock, options=OPTIONS) as store:
        sessions = sessions_type(store, clock=clock)
        service = SearchService(store, sessions, clock=clock)
        try:
            async with serve([service], tmp_path) as served:
                yield Env(served, store, sessions, service, clock)
        finally:
            await sessions.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in make_env(tmp_path, SearchSessions):
        yield e


async def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """One SOAP call from a worker thread (the zeep client is synchronous)."""
    method: Callable[..., Any] = getattr(client, operation)
    return await asyncio.to_thread(method, **kwargs)


async def fault(client: Any, operation: str, **kwargs: Any) -> tuple[str, list[str]]:
    """The (SOAP code, ONVIF subcodes) of the fault `operation` must answer with."""
    with pytest.raises(zeep.exceptions.Fault) as raised:
        await call(client, operation, **kwargs)
    subcodes = [q.localname for q in raised.value.subcodes or []]
    return str(raised.value.code), subcodes
