"""The recorded footage of the search tests, for the search engine and the ONVIF Search service.

Written through the storage writer as the recorder does:
  "Gate": video 0–3.96 s and 8–11.96 s (a gap between two runs), audio from 10 ms to ~3 s;
  "Yard": video 2–5.96 s, and with `yard_restart` 20–21.96 s recorded after a store restart;
  "Empty": no data at all.
Times are relative to T0 (2026-01-01T00:00:00Z).
"""

from __future__ import annotations

from pathlib import Path

from app.core.time import NS_PER_MS, NS_PER_SECOND, FakeClock
from app.engine.storage import RecordingConfig, Store, StoreOptions
from tests.engine.storage.helpers import AAC, FRAME_NS, H264, T0, audio, video

S = NS_PER_SECOND
OPTIONS = StoreOptions(segment_max_duration_ns=2 * S, flush_interval_s=0.05)
#: (offset from T0, frames) of each video run; every run ends with a gap.
GATE_VIDEO = ((0, 100), (8 * S, 100))
YARD_VIDEO = ((2 * S, 100),)
#: Yard's run written after the store was closed and opened again (`yard_restart`).
YARD_AFTER_RESTART = ((20 * S, 50),)
GATE_AUDIO_T0 = T0 + 10 * NS_PER_MS
GATE_AUDIO_FRAMES = 140
#: Last frame of a 100-frame video run, after its first.
RUN_END = 99 * FRAME_NS


async def record_video(store: Store, token: str, runs: tuple[tuple[int, int], ...]) -> None:
    writer = await store.open_writer(token, "VIDEO001")
    for offset, frames in runs:
        for i in range(frames):
            writer.append(video(i, t0=T0 + offset), H264)
        writer.end_run("gap")
    await writer.close()


async def populate(data_dir: Path, clock: FakeClock, *, yard_restart: bool = False) -> None:
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
        await record_video(store, "Gate", GATE_VIDEO)
        await record_video(store, "Yard", YARD_VIDEO)
    if yard_restart:
        async with Store(data_dir, clock=clock, options=OPTIONS) as store:
            await record_video(store, "Yard", YARD_AFTER_RESTART)
