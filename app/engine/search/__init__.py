"""The Recording Search engine: summaries, recording information, media attributes, sessions.

Domain level only (plain dataclasses in and out); the SOAP service wraps it. The engine keeps
one `SearchSessions` over its store:

    sessions = SearchSessions(store, clock=clock)
    token = await sessions.find_events(start_ns, None, SearchScope(), EventFilter(), True, None, 10)
    page = await sessions.get_results(token, SearchKind.EVENTS, max_results=100, wait_s=1)
    ...                                   # until page.state is SearchState.COMPLETED
    info = await recording_information(store, "REC_1")
"""

from __future__ import annotations

from app.engine.search.info import (
    all_recording_information,
    information_document,
    media_attributes,
    recording_information,
    recording_summary,
    resolve_scope,
)
from app.engine.search.model import (
    TOPIC_NAMESPACE,
    AudioAttributes,
    EventFilter,
    FindEventResult,
    InvalidFilterError,
    InvalidSourceError,
    InvalidTokenError,
    MediaAttributes,
    MetadataAttributes,
    RecordingInformation,
    RecordingSummary,
    SearchKind,
    SearchLimitError,
    SearchNotSupportedError,
    SearchResults,
    SearchScope,
    SearchState,
    SourceInformation,
    TrackAttributes,
    TrackInformation,
    VideoAttributes,
)
from app.engine.search.sessions import SearchSessions

__all__ = [
    "TOPIC_NAMESPACE",
    "AudioAttributes",
    "EventFilter",
    "FindEventResult",
    "InvalidFilterError",
    "InvalidSourceError",
    "InvalidTokenError",
    "MediaAttributes",
    "MetadataAttributes",
    "RecordingInformation",
    "RecordingSummary",
    "SearchKind",
    "SearchLimitError",
    "SearchNotSupportedError",
    "SearchResults",
    "SearchScope",
    "SearchSessions",
    "SearchState",
    "SourceInformation",
    "TrackAttributes",
    "TrackInformation",
    "VideoAttributes",
    "all_recording_information",
    "information_document",
    "media_attributes",
    "recording_information",
    "recording_summary",
    "resolve_scope",
]
