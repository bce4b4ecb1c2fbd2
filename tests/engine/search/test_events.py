"""FindEvents over recorded history: order, direction, start state, filters (RS-07, EV-10..23)."""

from __future__ import annotations

import pytest

from app.core.time import NS_PER_SECOND, FakeClock
from app.engine.search import (
    EventFilter,
    FindEventResult,
    InvalidFilterError,
    InvalidTokenError,
    SearchKind,
    SearchScope,
    SearchSessions,
    SearchState,
    recording_information,
)
from app.engine.storage import Store
from tests.engine.search.conftest import FRAME_END_GATE, S
from tests.engine.storage.helpers import T0

NOW = T0 + 3600 * S
ANY_SCOPE = SearchScope()
NO_FILTER = EventFilter()
TNS1 = {"tns1": "http://www.onvif.org/ver10/topics"}
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"


async def collect(
    sessions: SearchSessions, token: str, max_results: int = 7
) -> list[FindEventResult]:
    out: list[FindEventResult] = []
    while True:
        page = await sessions.get_results(token, SearchKind.EVENTS, max_results=max_results)
        assert len(page.results) <= max_results
        out.extend(r for r in page.results if isinstance(r, FindEventResult))
        if page.state is SearchState.COMPLETED:
            return out


def simple(r: FindEventResult) -> tuple[str, str, int, str, str, bool]:
    return (
        r.recording_token,
        r.track_token,
        r.time_ns,
        r.topic[1],
        r.data[0][1],
        r.start_state_event,
    )


async def search(
    store: Store,
    clock_start: int,
    end: int | None,
    *,
    start_state: bool = False,
    scope: SearchScope = ANY_SCOPE,
    flt: EventFilter = NO_FILTER,
) -> list[FindEventResult]:
    sessions = SearchSessions(store, clock=FakeClock(NOW))
    token = await sessions.find_events(clock_start, end, scope, flt, start_state, None, 10)
    return await collect(sessions, token)


async def test_forward_history_has_alternating_edges_equal_to_the_data_extent(store: Store) -> None:
    info = await recording_information(store, "Gate")
    assert info.earliest_ns is not None and info.latest_ns is not None
    events = await search(
        store, info.earliest_ns, info.latest_ns, scope=SearchScope(included_recordings=("Gate",))
    )
    rows = [simple(e) for e in events]
    video = [r for r in rows if r[1] == "VIDEO001"]
    audio = [r for r in rows if r[1] == "AUDIO001"]
    rec = [r for r in rows if r[1] == ""]
    v = {t.token: t for t in info.tracks}["VIDEO001"]
    a = {t.token: t for t in info.tracks}["AUDIO001"]
    # EV-11/12: each run's first and last frame, true/false alternating, edges = DataFrom/DataTo.
    assert video == [
        ("Gate", "VIDEO001", T0, "Track", "true", False),
        ("Gate", "VIDEO001", T0 + FRAME_END_GATE, "Track", "false", False),
        ("Gate", "VIDEO001", T0 + 8 * S, "Track", "true", False),
        ("Gate", "VIDEO001", T0 + 8 * S + FRAME_END_GATE, "Track", "false", False),
    ]
    assert video[0][2] == v.data_from_ns and video[-1][2] == v.data_to_ns
    assert [r[2] for r in audio] == [a.data_from_ns, a.data_to_ns]
    # EV-10: the union of the tracks; Earliest/LatestRecording exactly.
    assert [(r[2], r[4]) for r in rec] == [
        (info.earliest_ns, "true"),
        (T0 + FRAME_END_GATE, "false"),
        (T0 + 8 * S, "true"),
        (info.latest_ns, "false"),
    ]
    times = [e.time_ns for e in events]
    assert times == sorted(times)
    # RS-S7: at one instant the recording-level event comes first.
    assert rows[0][1] == "" and rows[1][1] == "VIDEO001"
    for e in events:
        assert e.property_operation == "Changed"
        if e.track_token:
            assert e.source == (("RecordingToken", "Gate"), ("Track", e.track_token))
        else:
            assert e.source == (("RecordingToken", "Gate"),)


async def test_backward_yields_the_same_events_reversed(store: Store) -> None:
    low, high = T0, T0 + 30 * S
    forward = await search(store, low, high, start_state=True)
    backward = await search(store, high, low, start_state=True)
    real_f = [simple(e) for e in forward if not e.start_state_event]
    real_b = [simple(e) for e in backward if not e.start_state_event]
    assert real_b == real_f[::-1]
    assert len(real_f) == 18
    # Payloads are the forward values in both directions (RS-07.5).
    assert {r for r in real_f} == {r for r in real_b}


async def test_start_state_events_at_start_point(store: Store) -> None:
    # At T0+2.5 s: Gate records video and audio; Yard's video started at 2 s.
    at = T0 + 2500 * NS_PER_SECOND // 1000
    events = await search(store, at, T0 + 3 * S, start_state=True)
    virtual = [simple(e) for e in events if e.start_state_event]
    assert virtual == [
        ("Gate", "", at, "Recording", "true", True),
        ("Gate", "VIDEO001", at, "Track", "true", True),
        ("Gate", "AUDIO001", at, "Track", "true", True),
        ("Yard", "", at, "Recording", "true", True),
        ("Yard", "VIDEO001", at, "Track", "true", True),
        ("Empty", "", at, "Recording", "false", True),
    ]
    assert all(e.property_operation == "Initialized" for e in events if e.start_state_event)
    assert events[: len(virtual)] == [e for e in events if e.start_state_event]


async def test_start_state_before_an_edge_is_the_state_before_it(store: Store) -> None:
    events = await search(
        store,
        T0 + 8 * S,
        T0 + 9 * S,
        start_state=True,
        scope=SearchScope(included_recordings=("Gate",)),
    )
    rows = [simple(e) for e in events]
    assert rows[:3] == [
        ("Gate", "", T0 + 8 * S, "Recording", "false", True),
        ("Gate", "VIDEO001", T0 + 8 * S, "Track", "false", True),
        ("Gate", "AUDIO001", T0 + 8 * S, "Track", "false", True),
    ]
    assert rows[3:] == [
        ("Gate", "", T0 + 8 * S, "Recording", "true", False),
        ("Gate", "VIDEO001", T0 + 8 * S, "Track", "true", False),
    ]


async def test_backward_start_state_at_both_ends(store: Store) -> None:
    high, low = T0 + 10 * S, T0 + 5 * S
    events = await search(
        store, high, low, start_state=True, scope=SearchScope(included_recordings=("Yard",))
    )
    rows = [simple(e) for e in events]
    assert rows[0] == ("Yard", "", high, "Recording", "false", True)
    assert rows[1] == ("Yard", "VIDEO001", high, "Track", "false", True)
    assert rows[-2] == ("Yard", "", low, "Recording", "true", True)
    assert rows[-1] == ("Yard", "VIDEO001", low, "Track", "true", True)
    reals = [r for r in rows if not r[5]]
    assert [r[2] for r in reals] == sorted((r[2] for r in reals), reverse=True)
    assert [r[4] for r in reals] == ["false", "false"]


async def test_topic_filter_and_message_content(store: Store) -> None:
    only_tracks = EventFilter("tns1:RecordingHistory/Track/State", CONCRETE_SET, TNS1)
    events = await search(store, T0, T0 + 30 * S, start_state=True, flt=only_tracks)
    assert events and all(e.topic == ("RecordingHistory", "Track", "State") for e in events)
    subtree = EventFilter(" ns9:RecordingHistory//. ", CONCRETE_SET, {"ns9": TNS1["tns1"]})
    assert len(await search(store, T0, T0 + 30 * S, flt=subtree)) == 18
    other = EventFilter("tns1:RecordingConfig//.", CONCRETE_SET, TNS1)
    assert await search(store, T0, T0 + 30 * S, start_state=True, flt=other) == []
    content = EventFilter(
        message_content='boolean(//SimpleItem[@Name="IsDataPresent" and @Value="false"])'
    )
    events = await search(store, T0, T0 + 30 * S, flt=content)
    assert len(events) == 5 and all(e.data == (("IsDataPresent", "false"),) for e in events)


@pytest.mark.parametrize(
    "flt",
    [
        EventFilter("tns1:RecordingHistory", "urn:unknown-dialect", TNS1),
        EventFilter("zz:RecordingHistory", CONCRETE_SET, TNS1),
        EventFilter(message_content="boolean(//SimpleItem[@Name="),
        EventFilter(message_content="boolean(//a)", message_content_dialect="urn:x"),
    ],
)
async def test_bad_filters_are_invalid_filter_faults(store: Store, flt: EventFilter) -> None:
    sessions = SearchSessions(store, clock=FakeClock(NOW))
    with pytest.raises(InvalidFilterError):
        await sessions.find_events(T0, None, SearchScope(), flt, False, None, 10)
    assert sessions.open_sessions == 0


async def test_unknown_recording_in_scope_is_invalid_token(store: Store) -> None:
    sessions = SearchSessions(store, clock=FakeClock(NOW))
    with pytest.raises(InvalidTokenError, match="deadbeef"):
        await sessions.find_events(
            T0, None, SearchScope(included_recordings=("deadbeef",)), EventFilter(), False, None, 10
        )


async def test_end_point_absent_searches_to_the_time_of_the_call(store: Store) -> None:
    events = await search(store, T0, None)
    assert len(events) == 18


async def test_deleted_recording_stops_producing(store: Store) -> None:
    sessions = SearchSessions(store, clock=FakeClock(NOW))
    token = await sessions.find_events(T0, None, SearchScope(), EventFilter(), True, None, 10)
    await store.delete_recording("Yard")
    rest = await collect(sessions, token, 100)
    assert {e.recording_token for e in rest} == {"Gate", "Empty"}
