"""Shared set-up of the Recording Search service tests (no tests here): footage, server, client.

The store holds the footage of tests/engine/search/footage.py (without Yard's restart run);
the engine's "now" is one hour after T0.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions

from app.core.time import FakeClock, format_iso
from app.engine.onvif.search import SearchService
from app.engine.search import SearchSessions
from app.engine.storage import Store
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.engine.search.footage import GATE_AUDIO_FRAMES as GATE_AUDIO_FRAMES
from tests.engine.search.footage import GATE_AUDIO_T0 as GATE_AUDIO_T0
from tests.engine.search.footage import OPTIONS, populate
from tests.engine.search.footage import RUN_END as RUN_END
from tests.engine.search.footage import S as S
from tests.engine.storage.helpers import T0
from tests.peers.onvif_zeep import validated_service

NOW = T0 + 3600 * S


def iso(offset_ns: int) -> str:
    """The wire form of T0 + offset (GEN-08: UTC, 'Z', milliseconds)."""
    return format_iso(T0 + offset_ns)


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
