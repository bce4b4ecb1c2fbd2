"""Fixtures of the storage tests: a fake clock and an open store with one recording 'Cam'."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.storage import RecordingConfig, Store, StoreOptions

#: Short segments so that a few seconds of frames span several files.
TEST_OPTIONS = StoreOptions(segment_max_duration_ns=2 * NS_PER_SECOND, flush_interval_s=0.05)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def store(data_dir: Path, clock: FakeClock) -> AsyncIterator[Store]:
    async with Store(data_dir, clock=clock, options=TEST_OPTIONS) as s:
        await s.create_recording(RecordingConfig(name="Camera"), token="Cam")
        yield s
