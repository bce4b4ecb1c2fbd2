"""Fixtures of the search tests: the footage of footage.py, Yard's restart run included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.time import FakeClock
from app.engine.storage import Store
from tests.engine.search.footage import OPTIONS, RUN_END, populate
from tests.engine.search.footage import S as S
from tests.engine.storage.helpers import T0

#: Wall time of the last frame of a 100-frame video run, after its first.
FRAME_END_GATE = RUN_END


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 3600 * S)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    data_dir = tmp_path / "data"
    await populate(data_dir, clock, yard_restart=True)
    async with Store(data_dir, clock=clock, options=OPTIONS) as s:
        yield s
