"""FindEvents over recorded footage through the wire: history events in both directions, start
state, filters, paging and blocking (RS-07, RS-08, RS-S6, RS-S7, EV-10..EV-23, PF-16..PF-21).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests
import requests.auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from app.engine.search import SearchKind, SearchResults, SearchSessions
from app.protocols.onvif.wsdl import NS_SCHEMA, NS_TOPICS, NS_WSNT
from tests.engine.onvif.test_search_support import (
    RUN_END,
    Env,
    S,
    call,
    env,
    fault,
    iso,
    make_env,
)

__all__ = ["env"]  # the fixture, imported for pytest

KEEP = dt.timedelta(seconds=10)
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
ITEM_FILTER = "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
RECORDING_STATE = "tns1:RecordingHistory/Recording/State"
TRACK_STATE = "tns1:RecordingHistory/Track/State"


@dataclasses.dataclass(frozen=True)
class Row:
    """One tt:FindEventResult as it was on the wire."""

    recording: str
    track: str
    time: str
    topic: str
    utc_time: str
    operation: str
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    start_state: bool

    def real(self) -> tuple[Any, ...]:
        """Everything a forward/backward comparison looks at (RS-07.5)."""
        return dataclasses.astuple(self)


def _local(el: etree._Element) -> str:
    return str(etree.QName(el).localname)


def rows(envelope: etree._Element | None) -> list[Row]:
    """The results of a GetEventSearchResults answer, checking the wire form of each."""
    assert envelope is not None
    out = []
    for result in envelope.iter(f"{{{NS_SCHEMA}}}Result"):
        fields = {_local(c): c for c in result}
        assert list(fields) == ["RecordingToken", "TrackToken", "Time", "Event", "StartStateEvent"]
        event = fields["Event"]
        topic = event.find(f"{{{NS_WSNT}}}Topic")
        message = event.find(f"{{{NS_WSNT}}}Message/{{{NS_SCHEMA}}}Message")
        assert topic is not None and message is not None
        assert topic.get("Dialect") == CONCRETE_SET
        # The topic's prefix resolves to the ONVIF topic namespace where it is used (A.2).
        prefix = (topic.text or "").split(":")[0]
        assert topic.nsmap.get(prefix) == NS_TOPICS

        def items(part: str, message: etree._Element = message) -> tuple[tuple[str, str], ...]:
            holder = message.find(f"{{{NS_SCHEMA}}}{part}")
            assert holder is not None
            found = tuple(
                (i.get("Name", ""), i.get("Value", ""))
                for i in holder.iter(f"{{{NS_SCHEMA}}}SimpleItem")
            )
            assert len({n for n, _ in found}) == len(found)  # RS-07.9
            return found

        out.append(
            Row(
                recording=fields["RecordingToken"].text or "",
                track=fields["TrackToken"].text or "",
                time=fields["Time"].text or "",
                topic=topic.text or "",
                utc_time=message.get("UtcTime", ""),
                operation=message.get("PropertyOperation", ""),
                source=items("Source"),
                data=items("Data"),
                start_state=fields["StartStateEvent"].text == "true",
            )
        )
    return out


async def find_all(client: Any, max_results: int = 5, **find: Any) -> list[Row]:
    """FindEvents then GetEventSearchResults until Completed; checks RS-S6 on every page."""
    find.setdefault("Scope", {})
    find.setdefault("SearchFilter", {})
    find.setdefault("IncludeStartState", False)
    token = await call(client, "FindEvents", KeepAliveTime=KEEP, **find)
    out: list[Row] = []
    while True:
        page = await call(
            client, "GetEventSearchResults", SearchToken=token, MaxResults=max_results
        )
        got = rows(client.last_received)
        assert len(got) == len(page.Result) <= max_results
        out += got
        if page.SearchState == "Completed":
            return out
        assert page.SearchState == "Searching"


async def extent(client: Any, token: str) -> tuple[str, str]:
    """EarliestRecording and LatestRecording exactly as GetRecordingInformation sends them."""
    await call(client, "GetRecordingInformation", RecordingToken=token)
    received = client.last_received
    assert received is not None
    found = {_local(el): el.text or "" for el in received.iter() if isinstance(el.tag, str)}
    return found["EarliestRecording"], found["LatestRecording"]


def alternates(values: list[str]) -> bool:
    return values == ["true", "false"] * (len(values) // 2)


# ---------------------------------------------------------------------- history, directions


async def test_rs07_forward_history_over_the_data_extent_has_exact_edges(env: Env) -> None:
    """EV-10..EV-12, EV-14, PF-21 over DTT 3-1-13's range [EarliestRecording, LatestRecording]."""
    client = env.client()
    earliest, latest = await extent(client, "Gate")
    found = await find_all(
        client, StartPoint=earliest, EndPoint=latest, Scope={"IncludedRecordings": ["Gate"]}
    )
    assert [r.time for r in found] == sorted(r.time for r in found)
    video = [r for r in found if r.track == "VIDEO001"]
    assert [(r.time, r.data) for r in video] == [
        (iso(0), (("IsDataPresent", "true"),)),
        (iso(RUN_END), (("IsDataPresent", "false"),)),
        (iso(8 * S), (("IsDataPresent", "true"),)),
        (iso(8 * S + RUN_END), (("IsDataPresent", "false"),)),
    ]
    for r in video:
        assert r.topic == TRACK_STATE and r.recording == "Gate"
        assert r.source == (("RecordingToken", "Gate"), ("Track", "VIDEO001"))
        assert r.utc_time == r.time and r.operation == "Changed" and not r.start_state
    audio = [r for r in found if r.track == "AUDIO001"]
    assert alternates([r.data[0][1] for r in audio]) and len(audio) == 2
    recording = [r for r in found if r.topic == RECORDING_STATE]
    assert all(r.track == "" and r.source == (("RecordingToken", "Gate"),) for r in recording)
    assert [r.data for r in recording] == [
        (("IsRecording", "true"),),
        (("IsRecording", "false"),),
    ] * 2
    # EV-12: the first true is EarliestRecording, the last false LatestRecording.
    assert recording[0].time == earliest and recording[-1].time == latest


async def test_rs07_backward_search_yields_the_same_events_in_descending_order(env: Env) -> None:
    """RS-07.5, PF-19: same set with identical payloads; values are not inverted."""
    client = env.client()
    earliest, latest = await extent(client, "Gate")
    forward = await find_all(client, StartPoint=earliest, EndPoint=latest)
    backward = await find_all(client, StartPoint=latest, EndPoint=earliest, max_results=3)
    assert sorted(r.real() for r in forward) == sorted(r.real() for r in backward)
    assert [r.time for r in backward] == sorted((r.time for r in backward), reverse=True)
    assert {r.recording for r in forward} == {"Gate", "Yard"}
    # EV-15: events never name a track of another recording.
    assert {(r.recording, r.track) for r in forward} == {
        ("Gate", ""),
        ("Gate", "VIDEO001"),
        ("Gate", "AUDIO001"),
        ("Yard", ""),
        ("Yard", "VIDEO001"),
    }


async def test_rs08_repeated_and_interleaved_searches_get_their_own_pages(env: Env) -> None:
    """An equal page is answered from the last one (the same bytes); any other is built anew."""
    client = env.client()
    earliest, latest = await extent(client, "Gate")
    forward = await find_all(client, StartPoint=earliest, EndPoint=latest, max_results=100)
    first_bytes = etree.tostring(client.last_received)
    answer = env.service._last_events[1]
    again = await find_all(client, StartPoint=earliest, EndPoint=latest, max_results=100)
    assert again == forward
    assert etree.tostring(client.last_received) == first_bytes
    assert env.service._last_events[1] is answer  # reused, not rebuilt
    # Pages of other searches in between: each gets its own events, never the cached page.
    backward = await find_all(client, StartPoint=latest, EndPoint=earliest, max_results=3)
    assert [r.real() for r in backward] == [r.real() for r in reversed(forward)]
    yard = await find_all(client, StartPoint=earliest, Scope={"IncludedRecordings": ["Yard"]})
    assert yard and {r.recording for r in yard} == {"Yard"}
    assert await find_all(client, StartPoint=earliest, EndPoint=latest, max_results=100) == forward
    assert env.service._last_events[1] is not answer


async def test_rs07_forward_start_state_describes_the_state_at_start_point(env: Env) -> None:
    """EV-20, EV-22, EV-23: virtual events first, Initialized, at StartPoint, every track."""
    client = env.client()
    _, latest = await extent(client, "Gate")
    found = await find_all(
        client,
        StartPoint=iso(6 * S),
        EndPoint=latest,
        Scope={"IncludedRecordings": ["Gate"]},
        IncludeStartState=True,
    )
    virtual = [r for r in found if r.start_state]
    assert found[: len(virtual)] == virtual
    assert [(r.topic, r.track, r.data[0][1]) for r in virtual] == [
        (RECORDING_STATE, "", "false"),
        (TRACK_STATE, "VIDEO001", "false"),
        (TRACK_STATE, "AUDIO001", "false"),
    ]
    assert all(r.time == r.utc_time == iso(6 * S) and r.operation == "Initialized" for r in virtual)
    real = found[len(virtual) :]
    assert [r.time for r in real if r.track == "VIDEO001"] == [iso(8 * S), iso(8 * S + RUN_END)]


async def test_rs07_backward_start_state_at_both_ends(env: Env) -> None:
    """EV-21: virtual events at StartPoint (first) and at EndPoint (last)."""
    client = env.client()
    found = await find_all(
        client,
        StartPoint=iso(2 * S),
        EndPoint=iso(-S),
        Scope={"IncludedRecordings": ["Gate"]},
        IncludeStartState=True,
    )
    first, last = found[:3], found[-3:]
    assert all(r.start_state and r.time == iso(2 * S) for r in first)
    assert [r.data[0][1] for r in first] == ["true", "true", "true"]  # recording at 2 s
    assert all(r.start_state and r.time == iso(-S) for r in last)
    assert [r.data[0][1] for r in last] == ["false", "false", "false"]  # before any data
    middle = found[3:-3]
    assert not any(r.start_state for r in middle)
    assert [(r.track, r.time) for r in middle] == [
        ("AUDIO001", iso(10_000_000)),
        ("VIDEO001", iso(0)),
        ("", iso(0)),
    ]


# ---------------------------------------------------------------------- filters and limits


def topic_expression(text: str, prefix: str = "tns1", dialect: str = CONCRETE_SET) -> Any:
    el = etree.Element(f"{{{NS_WSNT}}}TopicExpression", nsmap={prefix: NS_TOPICS})
    el.set("Dialect", dialect)
    el.text = text
    return el


async def test_rs07_topic_filter_resolves_any_prefix(env: Env) -> None:
    """RS-07.3, PF-22: ConcreteSet, '|' alternatives, '//.' subtree, the client's own prefix."""
    client = env.client()
    track_only = {"_value_1": [topic_expression("ns9:RecordingHistory/Track/State", "ns9")]}
    found = await find_all(client, StartPoint=iso(0), EndPoint=iso(20 * S), SearchFilter=track_only)
    assert found and {r.topic for r in found} == {TRACK_STATE}
    subtree = {"_value_1": [topic_expression("tns1:RecordingHistory//.")]}
    everything = await find_all(
        client, StartPoint=iso(0), EndPoint=iso(20 * S), SearchFilter=subtree
    )
    assert {r.topic for r in everything} == {TRACK_STATE, RECORDING_STATE}
    other = {"_value_1": [topic_expression("tns1:RecordingConfig/JobState")]}
    assert await find_all(client, StartPoint=iso(0), SearchFilter=other) == []


async def test_rs07_message_content_item_filter(env: Env) -> None:
    """RS-07.4: boolean(//tt:SimpleItem[...]) over Source and Data items."""
    client = env.client()
    content = etree.Element(f"{{{NS_WSNT}}}MessageContent", nsmap={"tt": NS_SCHEMA})
    content.set("Dialect", ITEM_FILTER)
    content.text = 'boolean(//tt:SimpleItem[@Name="Track" and @Value="AUDIO001"])'
    found = await find_all(
        client, StartPoint=iso(0), EndPoint=iso(20 * S), SearchFilter={"_value_1": [content]}
    )
    assert [(r.track, r.data[0][1]) for r in found] == [("AUDIO001", "true"), ("AUDIO001", "false")]


async def test_rs07_filters_outside_the_dialect_are_invalid_filter_faults(env: Env) -> None:
    client = env.client()
    bad = [
        topic_expression("tns1:RecordingHistory", dialect="urn:unknown-dialect"),
        topic_expression("tns1:Recording History ||"),
    ]
    content = etree.Element(f"{{{NS_WSNT}}}MessageContent")
    content.set("Dialect", "urn:xpath-full")
    content.text = "boolean(//x)"
    for element in [*bad, content]:
        code, subcodes = await fault(
            client,
            "FindEvents",
            StartPoint=iso(0),
            Scope={},
            SearchFilter={"_value_1": [element]},
            IncludeStartState=False,
            KeepAliveTime=KEEP,
        )
        assert code.endswith("Sender") and subcodes == ["InvalidArgVal", "InvalidFilterFault"]
    assert env.sessions.open_sessions == 0


async def test_rs07_max_matches_one_returns_exactly_one_result(env: Env) -> None:
    """RS-07.7, DTT 3-1-5: virtual events count too."""
    client = env.client()
    found = await find_all(client, StartPoint=iso(0), IncludeStartState=True, MaxMatches=1)
    assert len(found) == 1 and found[0].start_state


async def test_rs08_wait_time_is_honoured_with_min_results_out_of_reach(env: Env) -> None:
    """RS-S6, DTT 2-1-5: the answer comes before WaitTime + 1 s, with what there is."""
    client = env.client()
    for wait in (0.5, 1.0):
        token = await call(
            client,
            "FindEvents",
            StartPoint=iso(0),
            EndPoint=iso(20 * S),
            Scope={},
            SearchFilter={},
            IncludeStartState=False,
            KeepAliveTime=KEEP,
        )
        started = time.monotonic()
        page = await call(
            client,
            "GetEventSearchResults",
            SearchToken=token,
            MinResults=1000,
            WaitTime=dt.timedelta(seconds=wait),
        )
        assert time.monotonic() - started < wait + 1
        assert page.SearchState == "Completed" and len(page.Result) == 14


async def test_rs14_end_search_of_an_event_search_reports_how_far_it_got(env: Env) -> None:
    """RS-14.2: StartPoint before the search began; the original EndPoint once every result
    was found (the 14 events here are found at once), even if not all were fetched."""
    client = env.client()
    find = {
        "StartPoint": iso(0),
        "EndPoint": iso(20 * S),
        "Scope": {},
        "SearchFilter": {},
        "IncludeStartState": False,
        "KeepAliveTime": KEEP,
    }
    token = await call(client, "FindEvents", **find)
    await call(client, "EndSearch", SearchToken=token)
    assert _endpoint(client) == iso(0)
    token = await call(client, "FindEvents", **find)
    page = await call(client, "GetEventSearchResults", SearchToken=token, MaxResults=2)
    assert page.SearchState == "Searching" and len(page.Result) == 2
    assert await call(client, "GetSearchState", SearchToken=token) == "Searching"
    await call(client, "EndSearch", SearchToken=token)
    assert _endpoint(client) == iso(20 * S)
    _, subcodes = await fault(client, "GetEventSearchResults", SearchToken=token)
    assert subcodes == ["InvalidArgVal", "InvalidToken"]


def _endpoint(client: Any) -> str:
    received = client.last_received
    assert received is not None
    (endpoint,) = received.iter("{http://www.onvif.org/ver10/search/wsdl}Endpoint")
    return endpoint.text or ""


async def test_gen04_mandatory_find_events_fields_are_invalid_args(env: Env) -> None:
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        '<FindEvents xmlns="http://www.onvif.org/ver10/search/wsdl">'
        "<StartPoint>2026-01-01T00:00:00Z</StartPoint><Scope/><SearchFilter/>"
        "<KeepAliveTime>PT10S</KeepAliveTime></FindEvents></s:Body></s:Envelope>"
    )

    def post() -> requests.Response:
        return requests.post(
            env.served.address("search"),
            data=body,
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            auth=requests.auth.HTTPDigestAuth("admin", "admin-pw"),
            timeout=10,
        )

    response = await asyncio.to_thread(post)
    assert response.status_code == 400 and b"ter:InvalidArgs" in response.content
    assert env.sessions.open_sessions == 0


PAGE_SIZES = st.one_of(st.none(), st.integers(min_value=-1, max_value=20))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pages=st.lists(st.tuples(PAGE_SIZES, PAGE_SIZES), min_size=1, max_size=4),
    backward=st.booleans(),
)
async def test_pf18_any_min_max_results_deliver_each_result_once_in_order(
    env: Env, pages: list[tuple[int | None, int | None]], backward: bool
) -> None:
    """RS-S6, PF-18: whatever MinResults/MaxResults (≤ 0 = absent), no result twice, none
    lost, never more than MaxResults, in the session's time order; Completed ends it."""
    client = env.client()
    start, end = (iso(20 * S), iso(0)) if backward else (iso(0), iso(20 * S))
    expected = await find_all(client, StartPoint=start, EndPoint=end, max_results=100)
    token = await call(
        client,
        "FindEvents",
        StartPoint=start,
        EndPoint=end,
        Scope={},
        SearchFilter={},
        IncludeStartState=False,
        KeepAliveTime=KEEP,
    )
    got: list[Row] = []
    for i in range(len(expected) + 1):
        min_results, max_results = pages[i % len(pages)]
        page = await call(
            client,
            "GetEventSearchResults",
            SearchToken=token,
            MinResults=min_results,
            MaxResults=max_results,
            WaitTime=dt.timedelta(0),
        )
        if max_results is not None and max_results > 0:
            assert len(page.Result) <= max_results
        got += rows(client.last_received)
        if page.SearchState == "Completed":
            break
    assert got == expected


# ---------------------------------------------------------------------- concurrency


class GatedSessions(SearchSessions):
    """Sessions whose event results wait for the test to open a gate (a slow search)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def get_results(self, token: str, kind: SearchKind, **kw: Any) -> SearchResults:
        if kind is SearchKind.EVENTS:
            self.entered.set()
            await self.gate.wait()
        return await super().get_results(token, kind, **kw)


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in make_env(tmp_path, GatedSessions):
        yield e


async def test_gen14_a_blocked_result_call_does_not_block_other_requests(gated: Env) -> None:
    """GEN-14, PF-16: other requests are answered while GetEventSearchResults waits."""
    sessions = gated.sessions
    assert isinstance(sessions, GatedSessions)
    client, other = gated.client(), gated.client("viewer")
    token = await call(
        client,
        "FindEvents",
        StartPoint=iso(0),
        Scope={},
        SearchFilter={},
        IncludeStartState=False,
        KeepAliveTime=KEEP,
    )
    blocked = asyncio.ensure_future(
        call(client, "GetEventSearchResults", SearchToken=token, WaitTime=dt.timedelta(seconds=10))
    )
    await sessions.entered.wait()
    summary = await call(other, "GetRecordingSummary")
    info = await call(other, "GetRecordingInformation", RecordingToken="Yard")
    assert summary.NumberRecordings == 3 and info.RecordingToken == "Yard"
    assert not blocked.done()
    sessions.gate.set()
    page = await blocked
    assert page.SearchState == "Completed" and len(page.Result) == 14


async def test_pf06_a_range_up_to_a_sub_millisecond_data_to_keeps_its_edge_event(env: Env) -> None:
    """PF-06, EV-12: audio ends between milliseconds; its DataTo as sent still covers it."""
    client = env.client()
    await call(client, "GetRecordingInformation", RecordingToken="Gate")
    received = client.last_received
    assert received is not None
    audio_to = [el.text or "" for el in received.iter(f"{{{NS_SCHEMA}}}DataTo")][1]
    assert audio_to == "2026-01-01T00:00:02.975Z"  # the last frame is at 2.975333 s
    scope = {"IncludedRecordings": ["Gate"]}
    for start, end in ((iso(0), audio_to), (audio_to, iso(0))):
        found = await find_all(client, StartPoint=start, EndPoint=end, Scope=scope)
        audio = [(r.time, r.data[0][1]) for r in found if r.track == "AUDIO001"]
        assert sorted(audio) == [(iso(10_000_000), "true"), (audio_to, "false")]
    # A bound finer than the wire resolution is taken literally: the edge is then outside.
    before = "2026-01-01T00:00:02.975300Z"
    found = await find_all(client, StartPoint=iso(0), EndPoint=before, Scope=scope)
    assert [r.data[0][1] for r in found if r.track == "AUDIO001"] == ["true"]
