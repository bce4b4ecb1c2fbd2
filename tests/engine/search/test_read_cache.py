"""Store reads the search answers share: one per store revision, and none for a start state
that precedes every recorded frame (bench/soap's engine mix spent most of its CPU on them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.search import (
    EventFilter,
    FindEventResult,
    SearchKind,
    SearchScope,
    SearchSessions,
    all_recording_information,
    recording_summary,
)
from app.engine.storage import RecordingConfig, Store
from tests.engine.storage.helpers import T0

S = NS_PER_SECOND


def count_calls(monkeypatch: pytest.MonkeyPatch, store: Store, name: str) -> list[tuple[Any, ...]]:
    """Record the calls of store method `name` (still calling it)."""
    calls: list[tuple[Any, ...]] = []
    method: Callable[..., Awaitable[Any]] = getattr(store, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await method(*args, **kwargs)

    monkeypatch.setattr(store, name, counted)
    return calls


async def test_one_read_per_revision(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "revision", 7)
    reads = count_calls(monkeypatch, store, "track_media")
    first = await all_recording_information(store)
    assert [i.token for i in first] == ["Gate", "Yard", "Empty"]
    first.clear()  # callers get their own list
    again = await all_recording_information(store)
    summary = await recording_summary(store, T0)
    assert len(reads) == 1
    assert [i.token for i in again] == ["Gate", "Yard", "Empty"]
    assert summary.number_recordings == 3
    assert summary.data_from_ns == min(i.earliest_ns for i in again if i.earliest_ns)
    # A write moves the revision on: the next answer reads the store again and sees it.
    await store.create_recording(RecordingConfig(name="Dock"), token="Dock")
    monkeypatch.setattr(store, "revision", 8)
    assert [i.token for i in await all_recording_information(store)][-1] == "Dock"
    assert len(reads) == 2


async def test_every_write_moves_the_revision_and_recordings_follow(store: Store) -> None:
    before = store.revision
    assert "Dock" not in [r.token for r in await store.recordings()]
    await store.create_recording(RecordingConfig(name="Dock"), token="Dock")
    assert store.revision > before
    assert [r.token for r in await store.recordings()][-1] == "Dock"
    await store.delete_recording("Dock")
    assert "Dock" not in [r.token for r in await store.recordings()]


async def start_state(store: Store, clock: FakeClock, start_ns: int) -> list[FindEventResult]:
    sessions = SearchSessions(store, clock=clock)
    token = await sessions.find_events(start_ns, None, SearchScope(), EventFilter(), True, None, 10)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=100, wait_s=1)
    return [r for r in page.results if isinstance(r, FindEventResult) and r.start_state_event]


EARLY_STATES = [
    ("Gate", "", (("IsRecording", "false"),)),
    ("Gate", "VIDEO001", (("IsDataPresent", "false"),)),
    ("Gate", "AUDIO001", (("IsDataPresent", "false"),)),
    ("Yard", "", (("IsRecording", "false"),)),
    ("Yard", "VIDEO001", (("IsDataPresent", "false"),)),
    ("Empty", "", (("IsRecording", "false"),)),
]


async def test_start_state_before_every_frame_needs_no_history_read(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "revision", 1)
    reads = count_calls(monkeypatch, store, "history_state")
    states = await start_state(store, clock, T0 - 3600 * S)
    assert reads == []
    # IsRecording and IsDataPresent false for every recording and every track with data.
    assert [(r.recording_token, r.track_token, r.data) for r in states] == EARLY_STATES
    assert {r.time_ns for r in states} == {T0 - 3600 * S}


async def test_a_recording_deleted_after_find_events_has_no_start_state(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "revision", 1)
    sessions = SearchSessions(store, clock=clock)
    token = await sessions.find_events(
        T0 - 3600 * S, None, SearchScope(), EventFilter(), True, None, 10
    )
    await store.delete_recording("Yard")
    monkeypatch.setattr(store, "revision", 2)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=100, wait_s=1)
    tokens = {r.recording_token for r in page.results if isinstance(r, FindEventResult)}
    assert tokens == {"Gate", "Empty"}


async def test_start_state_inside_the_data_is_read(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "revision", 1)
    reads = count_calls(monkeypatch, store, "history_state")
    states = await start_state(store, clock, T0 + 1 * S)
    # Gate records at T0 + 1 s, so its state is read; Yard's first frame is at T0 + 2 s.
    assert sorted(call[0] for call in reads) == ["Gate"]
    by_owner = {(r.recording_token, r.track_token): r.data for r in states}
    assert by_owner[("Gate", "")] == (("IsRecording", "true"),)
    assert by_owner[("Gate", "VIDEO001")] == (("IsDataPresent", "true"),)
    assert by_owner[("Yard", "")] == (("IsRecording", "false"),)
