"""Closing the store while a read runs in its thread: the read ends before its connection."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from app.engine.storage import RecordingConfig, Store, StoreReader
from app.engine.storage.model import Recording


async def test_close_waits_for_a_read_whose_caller_was_cancelled(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    seen: list[list[Recording]] = []

    def slow_read(reader: StoreReader) -> None:
        started.set()
        release.wait(10)
        seen.append(reader.recordings())  # uses the pooled connection after the cancel

    store = Store(tmp_path)
    await store.open()
    await store.create_recording(RecordingConfig(name="Gate"), token="Gate")
    reading = asyncio.create_task(store._read(slow_read))
    await asyncio.to_thread(started.wait, 10)
    reading.cancel()  # e.g. a replay session torn down mid-read
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.2)
    assert not closing.done()  # still waiting for the read thread
    release.set()
    await closing
    assert [r.token for r in seen[0]] == ["Gate"]
