"""Recording Search over the wire: capabilities, summary, information, media attributes,
FindRecordings sessions and their faults (RS-01..RS-06, RS-13, RS-14, RS-S1..S6, PF-04..PF-10).

Every call goes through the independent zeep client with HTTP Digest, and every answer is
validated against the official schemas.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import requests
from lxml import etree

from app.core.time import format_iso
from app.engine.search.sessions import KEEP_ALIVE_MIN_S, MAX_SESSIONS
from app.protocols.onvif.wsdl import NS_SEARCH
from tests.engine.onvif.test_search_support import (
    GATE_AUDIO_FRAMES,
    GATE_AUDIO_T0,
    NOW,
    RUN_END,
    Env,
    S,
    call,
    env,
    fault,
    iso,
)

__all__ = ["env"]  # the fixture, imported for pytest

KEEP = dt.timedelta(seconds=10)
AUDIO_END_NS = GATE_AUDIO_T0 + (GATE_AUDIO_FRAMES - 1) * 1024 * S // 48_000


def text_of(envelope: etree._Element | None, local: str) -> list[str]:
    """Texts of every element named `local` in a received envelope, in document order."""
    assert envelope is not None
    return [el.text or "" for el in envelope.iter() if etree.QName(el).localname == local]


async def all_recordings(client: Any, **find: Any) -> list[Any]:
    token = await call(client, "FindRecordings", Scope=find.pop("Scope", {}), KeepAliveTime=KEEP)
    page = await call(client, "GetRecordingSearchResults", SearchToken=token, **find)
    assert page.SearchState == "Completed"
    return list(page.RecordingInformation)


# ---------------------------------------------------------------------- RS-01..RS-04


async def test_rs01_capabilities_are_pre_auth_and_advertise_no_metadata_search(env: Env) -> None:
    caps = await call(env.client(None), "GetServiceCapabilities")
    assert caps.MetadataSearch is False and caps.GeneralStartEvents is False
    assert caps.NLSearch is None and caps.ImageSearch is None
    assert env.service.capabilities() == {"MetadataSearch": False, "GeneralStartEvents": False}


async def test_rs02_summary_spans_every_recording(env: Env) -> None:
    client = env.client("viewer")  # READ_MEDIA: a User may search (GEN-11)
    await call(client, "GetRecordingSummary")
    assert text_of(client.last_received, "DataFrom") == [iso(0)]
    assert text_of(client.last_received, "DataUntil") == [iso(8 * S + RUN_END)]
    assert text_of(client.last_received, "NumberRecordings") == ["3"]


async def test_rs02_summary_dates_are_present_without_data(env: Env) -> None:
    for token in ("Gate", "Yard"):
        await env.store.delete_recording(token)
    client = env.client()
    summary = await call(client, "GetRecordingSummary")
    assert summary.NumberRecordings == 1
    # RS-02.2/PF-08: both mandatory even with no data; [ENGINE] both "now".
    assert text_of(client.last_received, "DataFrom") == [format_iso(NOW)]
    assert text_of(client.last_received, "DataUntil") == [format_iso(NOW)]


async def test_rs03_information_edges_equal_track_data_exactly(env: Env) -> None:
    client = env.client()
    info = await call(client, "GetRecordingInformation", RecordingToken="Gate")
    received = client.last_received
    assert info.RecordingToken == "Gate" and info.RecordingStatus == "Stopped"
    assert info.Source.SourceId == "urn:cam:gate" and info.Source.Name == "Gate"
    assert info.Source.Location == "North"
    assert [(t.TrackToken, t.TrackType) for t in info.Track] == [
        ("VIDEO001", "Video"),
        ("AUDIO001", "Audio"),
    ]
    data_from = text_of(received, "DataFrom")
    data_to = text_of(received, "DataTo")
    assert data_from == [iso(0), format_iso(GATE_AUDIO_T0)]
    assert data_to == [iso(8 * S + RUN_END), format_iso(AUDIO_END_NS)]
    # PF-06: the same instants with the same serialization.
    assert text_of(received, "EarliestRecording") == [min(data_from)]
    assert text_of(received, "LatestRecording") == [max(data_to)]
    # PF-08: mandatory empty strings are present, not omitted (zeep reads them as None).
    for name in ("Description", "Address", "Content"):
        assert "" in text_of(received, name), name


async def test_rs03_empty_recording_has_no_tracks_and_no_edges(env: Env) -> None:
    client = env.client()
    info = await call(client, "GetRecordingInformation", RecordingToken="Empty")
    assert info.Track == [] and info.EarliestRecording is None and info.LatestRecording is None
    assert info.RecordingStatus == "Initiated"
    assert text_of(client.last_received, "EarliestRecording") == []


async def test_rs03_unknown_or_overlong_token_is_invalid_token_not_no_recording(env: Env) -> None:
    client = env.client()
    for token in ("deadbeef", "x" * 65):
        code, subcodes = await fault(client, "GetRecordingInformation", RecordingToken=token)
        assert code.endswith("Sender") and subcodes == ["InvalidArgVal", "InvalidToken"]


async def test_rs04_media_attributes_at_a_time_with_data(env: Env) -> None:
    client = env.client()
    at = dt.datetime.fromisoformat(iso(S)[:-1] + "+00:00")
    found = await call(client, "GetMediaAttributes", RecordingTokens=["Gate"], Time=at)
    assert [m.RecordingToken for m in found] == ["Gate"]
    (gate,) = found
    by_track = {a.TrackInformation.TrackToken: a for a in gate.TrackAttributes}
    video = by_track["VIDEO001"].VideoAttributes
    assert (video.Width, video.Height, video.Encoding) == (1280, 720, "H264")
    assert video.Framerate == 25.0
    audio = by_track["AUDIO001"].AudioAttributes
    assert (audio.Encoding, audio.Samplerate) == ("AAC", 48)
    assert text_of(client.last_received, "From") == [iso(S)]
    assert text_of(client.last_received, "Until") == [iso(S)]


async def test_rs04_all_recordings_in_a_gap_and_unknown_token(env: Env) -> None:
    client = env.client()
    in_gap = dt.datetime.fromisoformat(iso(7 * S)[:-1] + "+00:00")
    # RS-04.1: no tokens = every recording; none has data at 7 s.
    assert await call(client, "GetMediaAttributes", RecordingTokens=[], Time=in_gap) == []
    at_3s = dt.datetime.fromisoformat(iso(3 * S)[:-1] + "+00:00")
    found = await call(client, "GetMediaAttributes", Time=at_3s)
    assert sorted(m.RecordingToken for m in found) == ["Gate", "Yard"]
    _, subcodes = await fault(
        client, "GetMediaAttributes", RecordingTokens=["Gate", "nope"], Time=at_3s
    )
    assert subcodes == ["InvalidArgVal", "InvalidToken"]


# ---------------------------------------------------------------------- RS-05/06 sessions


async def test_rs05_empty_scope_finds_as_many_as_the_summary_counts(env: Env) -> None:
    client = env.client()
    summary = await call(client, "GetRecordingSummary")
    found = await all_recordings(client)
    assert sorted(i.RecordingToken for i in found) == ["Empty", "Gate", "Yard"]
    assert len(found) == summary.NumberRecordings  # RS-02.3


async def test_rs05_results_are_identical_to_get_recording_information(env: Env) -> None:
    client = env.client()
    token = await call(
        client, "FindRecordings", Scope={"IncludedRecordings": ["Gate"]}, KeepAliveTime=KEEP
    )
    await call(client, "GetRecordingSearchResults", SearchToken=token)
    found = etree.tostring(_first(client.last_received, "RecordingInformation"), method="c14n")
    await call(client, "GetRecordingInformation", RecordingToken="Gate")
    direct = etree.tostring(_first(client.last_received, "RecordingInformation"), method="c14n")
    assert _strip_ns(found) == _strip_ns(direct)  # RS-03.5


def _first(envelope: etree._Element | None, local: str) -> etree._Element:
    assert envelope is not None
    return next(el for el in envelope.iter() if etree.QName(el).localname == local)


def _strip_ns(xml: bytes) -> bytes:
    # Prefixes differ between the two responses (zeep numbers them); names and content not.
    root = etree.fromstring(xml)
    for el in root.iter():
        el.tag = etree.QName(el).localname
    etree.cleanup_namespaces(root)
    return bytes(etree.tostring(root))


async def test_rs05_filters_scope_and_sources(env: Env) -> None:
    client = env.client()
    video = {"RecordingInformationFilter": 'boolean(//Track[TrackType = "Video"])'}
    audio = {
        "RecordingInformationFilter": 'boolean(//Track[TrackType = "Video"]) and '
        'boolean(//Track[TrackType = "Audio"])'
    }
    assert sorted(i.RecordingToken for i in await all_recordings(client, Scope=video)) == [
        "Gate",
        "Yard",
    ]
    assert [i.RecordingToken for i in await all_recordings(client, Scope=audio)] == ["Gate"]
    by_source = {"IncludedSources": [{"Token": "urn:cam:yard"}]}
    assert [i.RecordingToken for i in await all_recordings(client, Scope=by_source)] == ["Yard"]
    union = {"IncludedSources": [{"Token": "urn:cam:yard"}], "IncludedRecordings": ["Empty"]}
    assert sorted(i.RecordingToken for i in await all_recordings(client, Scope=union)) == [
        "Empty",
        "Yard",
    ]


async def test_rs05_scope_faults_create_no_session(env: Env) -> None:
    client = env.client()
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"IncludedRecordings": ["deadbeef"]}, ["InvalidArgVal", "InvalidToken"]),
        ({"IncludedSources": [{"Token": "urn:nobody"}]}, ["InvalidArgVal", "InvalidSource"]),
        ({"RecordingInformationFilter": "//Track["}, ["InvalidArgVal", "InvalidFilterFault"]),
    ]
    for scope, expected in cases:
        code, subcodes = await fault(client, "FindRecordings", Scope=scope, KeepAliveTime=KEEP)
        assert code.endswith("Sender") and subcodes == expected, scope
    assert env.sessions.open_sessions == 0


async def test_rs06_min_and_max_results_n_and_n_plus_1(env: Env) -> None:
    client = env.client()
    # DTT 2-1-3: MinResults N and N+1 both return all N at once, Completed.
    for min_results in (3, 4):
        found = await all_recordings(client, MinResults=min_results)
        assert len(found) == 3
    # DTT 2-1-4: MaxResults 1 pages one by one, never a result twice.
    token = await call(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    seen: list[str] = []
    states: list[str] = []
    while not states or states[-1] != "Completed":
        page = await call(client, "GetRecordingSearchResults", SearchToken=token, MaxResults=1)
        assert len(page.RecordingInformation) <= 1
        seen += [i.RecordingToken for i in page.RecordingInformation]
        states.append(page.SearchState)
    assert sorted(seen) == ["Empty", "Gate", "Yard"] and len(set(seen)) == 3
    assert states[:-1] == ["Searching"] * (len(states) - 1)
    # RS-S4 (b): the token died with Completed.
    _, subcodes = await fault(client, "GetRecordingSearchResults", SearchToken=token)
    assert subcodes == ["InvalidArgVal", "InvalidToken"]


async def test_rs05_max_matches_caps_the_session(env: Env) -> None:
    client = env.client()
    token = await call(client, "FindRecordings", Scope={}, MaxMatches=2, KeepAliveTime=KEEP)
    page = await call(client, "GetRecordingSearchResults", SearchToken=token, MaxResults=10)
    assert page.SearchState == "Completed" and len(page.RecordingInformation) == 2


async def test_rs_s4_invalid_tokens_unknown_ended_expired_and_wrong_kind(env: Env) -> None:
    client = env.client()
    bad = ["InvalidArgVal", "InvalidToken"]
    # Unknown and over-long tokens.
    for token in ("deadbeef", "t" * 65):
        assert (await fault(client, "GetRecordingSearchResults", SearchToken=token))[1] == bad
        assert (await fault(client, "EndSearch", SearchToken=token))[1] == bad
        assert (await fault(client, "GetSearchState", SearchToken=token))[1] == bad
    # Wrong session type: a FindRecordings token on GetEventSearchResults (RS-S6).
    token = await call(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    assert (await fault(client, "GetEventSearchResults", SearchToken=token))[1] == bad
    # Ended by EndSearch (RS-S4 c), then EndSearch again (RS-14.3).
    await call(client, "EndSearch", SearchToken=token)
    assert (await fault(client, "GetRecordingSearchResults", SearchToken=token))[1] == bad
    assert (await fault(client, "EndSearch", SearchToken=token))[1] == bad
    # Expired: no request for longer than KeepAliveTime (RS-S3, floored at 10 s).
    token = await call(client, "FindRecordings", Scope={}, KeepAliveTime=dt.timedelta(seconds=1))
    env.clock.advance(int(KEEP_ALIVE_MIN_S * S) - 1)
    assert await call(client, "GetSearchState", SearchToken=token) == "Searching"  # refreshes
    env.clock.advance(int(KEEP_ALIVE_MIN_S * S) - 1)
    assert await call(client, "GetSearchState", SearchToken=token) == "Searching"
    env.clock.advance(int(KEEP_ALIVE_MIN_S * S))
    assert (await fault(client, "GetRecordingSearchResults", SearchToken=token))[1] == bad
    assert env.sessions.open_sessions == 0


async def test_rs14_end_search_answers_endpoint_with_lower_case_p(env: Env) -> None:
    client = env.client()
    token = await call(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    endpoint = await call(client, "EndSearch", SearchToken=token)
    assert endpoint == dt.datetime.fromisoformat(format_iso(NOW)[:-1] + "+00:00")
    payload = _first(client.last_received, "EndSearchResponse")
    assert [etree.QName(c).text for c in payload] == [f"{{{NS_SEARCH}}}Endpoint"]  # PF-04
    assert payload[0].text == format_iso(NOW)  # RS-14.4: "now" for FindRecordings


async def test_rs_s1_the_seventeenth_session_is_a_resource_problem(env: Env) -> None:
    client = env.client()
    tokens = [
        await call(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
        for _ in range(MAX_SESSIONS)
    ]
    assert len(set(tokens)) == MAX_SESSIONS
    code, subcodes = await fault(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    assert code.endswith("Receiver") and subcodes == ["Action", "ResourceProblem"]
    await call(client, "EndSearch", SearchToken=tokens[0])
    fresh = await call(client, "FindRecordings", Scope={}, KeepAliveTime=KEEP)
    assert fresh not in tokens  # GEN-09: never reused


async def test_rs09_rs11_ptz_and_metadata_search_are_not_supported(env: Env) -> None:
    client = env.client()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ptz_filter = {
        "MinPosition": {"PanTilt": {"x": -1, "y": -1}},
        "MaxPosition": {"PanTilt": {"x": 1, "y": 1}},
        "EnterOrExit": False,
    }
    code, subcodes = await fault(
        client,
        "FindPTZPosition",
        StartPoint=start,
        Scope={},
        SearchFilter=ptz_filter,
        KeepAliveTime=KEEP,
    )
    assert code.endswith("Receiver") and subcodes == ["ActionNotSupported", "NotImplemented"]
    _, subcodes = await fault(client, "GetPTZPositionSearchResults", SearchToken="x")
    assert subcodes == ["ActionNotSupported", "NotImplemented"]
    code, subcodes = await fault(
        client,
        "FindMetadata",
        StartPoint=start,
        Scope={},
        MetadataFilter={"MetadataStreamFilter": "boolean(//Object)"},
        KeepAliveTime=KEEP,
    )
    assert code.endswith("Receiver") and subcodes == ["ActionNotSupported"]
    _, subcodes = await fault(client, "GetMetadataSearchResults", SearchToken="x")
    assert subcodes == ["ActionNotSupported"]


async def test_gen11_anonymous_callers_may_not_search(env: Env) -> None:
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        f'<GetRecordingSummary xmlns="{NS_SEARCH}"/></s:Body></s:Envelope>'
    )

    def post() -> requests.Response:
        return requests.post(
            env.served.address("search"),
            data=body,
            headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            timeout=10,
        )

    response = await asyncio.to_thread(post)
    assert response.status_code == 401 and "Digest" in response.headers["WWW-Authenticate"]
