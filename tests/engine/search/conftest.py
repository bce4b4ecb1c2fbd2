"""Fixtures of the search tests: a store with two recordings, gaps and a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import RecordingConfig, Store, StoreOptions
from tests.engine.storage.helpers import AAC, FRAME_NS, H264, T0, audio, video

OPTIONS = StoreOptions(segment_max_duration_ns=2 * NS_PER_SECOND, flush_interval_s=0.05)
S = NS_PER_SECOND
#: Recording "Gate": video 0–4 s and 8–12 s (run ended for a gap), audio 0.01–~3 s.
#: Recording "Yard": video 2–6 s, then 20–22 s after a store restart.
RUNS_GATE = ((0, 100), (8 * S, 100))
RUNS_YARD = ((2 * S, 100), (20 * S, 50))
#: Wall time of the last frame of a 100-frame video run, after its first.
FRAME_END_GATE = 99 * FRAME_NS


async def record_video(store: Store, token: str, runs: tuple[tuple[int, int], ...]) -> None:
    writer = await store.open_writer(token, "VIDEO001")
    for offset, frames in runs:
        for i in range(frames):
            writer.append(video(i, t0=T0 + offset), H264)
        writer.end_run("gap")
    await writer.close()


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
        for i in range(140):
            writer.append(audio(i, t0=T0 + 10_000_000), AAC)
        await writer.close()
        await record_video(store, "Gate", RUNS_GATE)
        await record_video(store, "Yard", RUNS_YARD[:1])
    async with Store(data_dir, clock=clock, options=OPTIONS) as store:
        await record_video(store, "Yard", RUNS_YARD[1:])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 3600 * S)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    data_dir = tmp_path / "data"
    await populate(data_dir, clock)
    async with Store(data_dir, clock=clock, options=OPTIONS) as s:
        yield s
