"""Search sessions: RS-S6 result retrieval rules, keep-alive, EndSearch, tokens, limits."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from app.core.errors import StorageError
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.search import (
    EventFilter,
    FindEventResult,
    InvalidTokenError,
    SearchKind,
    SearchLimitError,
    SearchNotSupportedError,
    SearchScope,
    SearchSessions,
    SearchState,
)
from app.engine.search.sessions import KEEP_ALIVE_MIN_S, MAX_SESSIONS, RESPONSE_CAP
from app.engine.storage import Store
from tests.engine.storage.helpers import T0

S = NS_PER_SECOND
#: Events of the fixture store in [T0, T0 + 30 s] with start state: 18 stored + 6 virtual.
TOTAL = 24


async def find(sessions: SearchSessions, max_matches: int | None = None, keep: float = 10) -> str:
    return await sessions.find_events(
        T0, T0 + 30 * S, SearchScope(), EventFilter(), True, max_matches, keep
    )


def key(r: object) -> tuple[object, ...]:
    assert isinstance(r, FindEventResult)
    return (r.recording_token, r.track_token, r.time_ns, r.topic, r.data, r.start_state_event)


async def test_result_retrieval_rules_over_combinations(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    reference = await sessions.get_results(
        await find(sessions), SearchKind.EVENTS, max_results=RESPONSE_CAP
    )
    assert reference.state is SearchState.COMPLETED and len(reference.results) == TOTAL
    expected = [key(r) for r in reference.results]
    sizes = (None, 0, 1, 5, TOTAL, TOTAL + 1)
    for min_r, max_r, matches in itertools.product(sizes, sizes, (None, 1, 7, TOTAL, TOTAL + 1)):
        token = await find(sessions, matches)
        got: list[tuple[object, ...]] = []
        for _ in range(TOTAL + 2):
            page = await sessions.get_results(
                token, SearchKind.EVENTS, min_results=min_r, max_results=max_r, wait_s=0.5
            )
            if max_r:
                assert len(page.results) <= max_r  # never more than MaxResults
            if min_r and page.state is SearchState.SEARCHING:
                assert len(page.results) >= min(min_r, max_r or min_r)
            got.extend(key(r) for r in page.results)
            if page.state is SearchState.COMPLETED:
                break
        else:
            pytest.fail(f"never Completed with {min_r=} {max_r=} {matches=}")
        limit = TOTAL if matches is None else min(matches, TOTAL)
        # Each result once, in order, the session's first `limit` (MaxMatches counts virtuals).
        assert got == expected[:limit], (min_r, max_r, matches)
        with pytest.raises(InvalidTokenError):
            await sessions.get_results(token, SearchKind.EVENTS)
    assert sessions.open_sessions == 0


async def test_min_results_n_and_n_plus_one_return_all_in_one_go(
    store: Store, clock: FakeClock
) -> None:
    sessions = SearchSessions(store, clock=clock)
    for min_results in (3, 4):
        token = await sessions.find_recordings(SearchScope(), None, 10)
        page = await sessions.get_results(token, SearchKind.RECORDINGS, min_results=min_results)
        assert page.state is SearchState.COMPLETED
        assert [getattr(r, "token", None) for r in page.results] == ["Gate", "Yard", "Empty"]


async def test_keep_alive_expiry_and_refresh(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    token = await find(sessions, keep=2)  # below the floor: honoured as 10 s
    clock.advance(int((KEEP_ALIVE_MIN_S - 1) * S))
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=1)
    assert page.state is SearchState.SEARCHING
    clock.advance(int((KEEP_ALIVE_MIN_S - 1) * S))  # refreshed by the response
    assert await sessions.get_search_state(token) is SearchState.SEARCHING
    clock.advance(int(KEEP_ALIVE_MIN_S * S))
    with pytest.raises(InvalidTokenError):
        await sessions.get_results(token, SearchKind.EVENTS)
    with pytest.raises(InvalidTokenError):
        await sessions.end_search(token)
    assert sessions.open_sessions == 0


async def test_end_search_endpoints(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    # Not begun: StartPoint.
    assert await sessions.end_search(await find(sessions)) == T0
    # Part way: the time of the newest result found so far (the first page of 100 took all
    # 24, so the search had completed: the original EndPoint).
    token = await find(sessions)
    await sessions.get_results(token, SearchKind.EVENTS, max_results=1)
    assert await sessions.end_search(token) == T0 + 30 * S
    with pytest.raises(InvalidTokenError):
        await sessions.end_search(token)
    # A recordings session answers "now".
    token = await sessions.find_recordings(SearchScope(), None, 10)
    assert await sessions.end_search(token) == clock.wall_ns()
    # After Completed was delivered the session is gone (RS-14.3).
    token = await find(sessions)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=RESPONSE_CAP)
    assert page.state is SearchState.COMPLETED
    with pytest.raises(InvalidTokenError):
        await sessions.end_search(token)


async def test_end_search_mid_way_reports_the_time_reached(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    token = await sessions.find_events(T0, T0 + 30 * S, SearchScope(), EventFilter(), False, 3, 10)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=1)
    assert page.state is SearchState.SEARCHING
    # MaxMatches 3 was reached: completed, so the original EndPoint.
    assert await sessions.end_search(token) == T0 + 30 * S


async def test_invalid_tokens(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    for call in (
        sessions.get_results("deadbeef", SearchKind.EVENTS),
        sessions.end_search("deadbeef"),
        sessions.get_search_state("deadbeef"),
    ):
        with pytest.raises(InvalidTokenError, match="deadbeef"):
            await call
    token = await find(sessions)
    with pytest.raises(InvalidTokenError):  # an events token on GetRecordingSearchResults
        await sessions.get_results(token, SearchKind.RECORDINGS)
    await sessions.end_search(token)
    with pytest.raises(InvalidTokenError):
        await sessions.get_results(token, SearchKind.EVENTS)


async def test_session_limit_and_unique_tokens(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    tokens = [await sessions.find_recordings(SearchScope(), None, 10) for _ in range(MAX_SESSIONS)]
    assert len(set(tokens)) == MAX_SESSIONS and all(len(t) <= 36 for t in tokens)
    with pytest.raises(SearchLimitError):
        await find(sessions)
    await sessions.end_search(tokens[0])
    again = await find(sessions)
    assert again not in tokens
    clock.advance(301 * S)  # every session expires (keep-alive cap 300 s)
    assert sessions.open_sessions == 0
    await sessions.close()


async def test_ptz_and_metadata_search_are_not_supported(store: Store, clock: FakeClock) -> None:
    sessions = SearchSessions(store, clock=clock)
    with pytest.raises(SearchNotSupportedError) as ptz:
        await sessions.find_ptz_position()
    assert ptz.value.subcode == "NotImplemented"
    with pytest.raises(SearchNotSupportedError) as meta:
        await sessions.find_metadata()
    assert meta.value.subcode == "ActionNotSupported"


# ---------------------------------------------------------------------- failures


async def test_a_failed_search_step_loses_no_result(store: Store, clock: FakeClock) -> None:
    """A store error reaches the client; its next call gets every result, none twice."""
    sessions = SearchSessions(store, clock=clock)
    failures = 0
    real = store.history_pages

    async def failing(*args: Any, **kw: Any) -> Any:
        nonlocal failures
        failures += 1
        raise StorageError("recording index error: disk I/O error")

    store.history_pages = failing  # type: ignore[method-assign]
    token = await find(sessions)
    for attempt in (1, 2):
        with pytest.raises(StorageError):
            await sessions.get_results(token, SearchKind.EVENTS, max_results=100)
        assert failures == attempt
    store.history_pages = real  # type: ignore[method-assign]
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=100)
    assert page.state is SearchState.COMPLETED and len(page.results) == TOTAL
    expected = await sessions.get_results(await find(sessions), SearchKind.EVENTS, max_results=100)
    assert [key(r) for r in page.results] == [key(r) for r in expected.results]
