"""Value types and errors of the Recording Search engine (spec §2.2), free of SOAP and XML."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from app.core.errors import ConfigError, CustosError, ErrorKind, LimitError, NotFoundError
from app.core.media import TrackKind

#: The ONVIF topic namespace (tns1) of every RecordingHistory topic.
TOPIC_NAMESPACE = "http://www.onvif.org/ver10/topics"
TOPIC_RECORDING_STATE = ("RecordingHistory", "Recording", "State")
TOPIC_TRACK_STATE = ("RecordingHistory", "Track", "State")


# -------------------------------------------------------------------- errors
# `subcode` is the ter: subcode the SOAP edge puts under the kind's generic fault (§2.2).


class InvalidTokenError(NotFoundError):
    """Unknown, expired, ended or wrong-kind search token, or unknown recording token."""

    subcode = "InvalidToken"


class InvalidSourceError(NotFoundError):
    """A source in the scope names neither a recording's SourceId nor a job's source."""

    subcode = "InvalidSource"


class InvalidFilterError(ConfigError):
    """A RecordingInformationFilter, TopicExpression or MessageContent outside the dialect."""

    subcode = "InvalidFilterFault"


class SearchLimitError(LimitError):
    """Too many concurrent search sessions (RS-S1)."""

    subcode = "ResourceProblem"


class SearchNotSupportedError(CustosError):
    """A search kind this engine does not implement (FindPTZPosition, FindMetadata)."""

    default_kind = ErrorKind.UNIMPLEMENTED

    def __init__(self, message: str, *, subcode: str) -> None:
        super().__init__(message)
        #: "NotImplemented" (FindPTZPosition, RS-09) or "ActionNotSupported" (FindMetadata).
        self.subcode = subcode


# -------------------------------------------------------------------- requests


class SearchKind(enum.StrEnum):
    RECORDINGS = "Recordings"
    EVENTS = "Events"
    PTZ_POSITION = "PTZPosition"
    METADATA = "Metadata"


class SearchState(enum.StrEnum):
    SEARCHING = "Searching"
    COMPLETED = "Completed"


@dataclasses.dataclass(frozen=True, slots=True)
class SearchScope:
    """tt:SearchScope: recordings and sources (union; both empty = all), then the filter."""

    included_sources: tuple[str, ...] = ()
    included_recordings: tuple[str, ...] = ()
    recording_information_filter: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EventFilter:
    """tt:EventFilter as the SOAP layer read it; both parts absent = every event (RS-07.2).

    `namespaces` is the in-scope prefix map of the TopicExpression element ('' = default).
    """

    topic_expression: str | None = None
    topic_dialect: str | None = None
    namespaces: Mapping[str, str] = dataclasses.field(default_factory=dict)
    message_content: str | None = None
    message_content_dialect: str | None = None


# -------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingSummary:
    """tt:RecordingSummary (RS-02); with no data both times are "now"."""

    data_from_ns: int
    data_until_ns: int
    number_recordings: int


@dataclasses.dataclass(frozen=True, slots=True)
class SourceInformation:
    """tt:RecordingSourceInformation, the stored strings verbatim."""

    source_id: str
    name: str
    location: str
    description: str
    address: str


@dataclasses.dataclass(frozen=True, slots=True)
class TrackInformation:
    token: str
    kind: TrackKind
    description: str
    data_from_ns: int
    data_to_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingInformation:
    """tt:RecordingInformation (RS-03); tracks only with data; earliest/latest from them."""

    token: str
    source: SourceInformation
    earliest_ns: int | None
    latest_ns: int | None
    content: str
    tracks: tuple[TrackInformation, ...]
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class VideoAttributes:
    bitrate_kbps: int | None
    width: int
    height: int
    encoding: str
    framerate: float


@dataclasses.dataclass(frozen=True, slots=True)
class AudioAttributes:
    bitrate_kbps: int | None
    encoding: str
    samplerate_khz: int


@dataclasses.dataclass(frozen=True, slots=True)
class MetadataAttributes:
    can_contain_ptz: bool = False
    can_contain_analytics: bool = False
    can_contain_notifications: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class TrackAttributes:
    track: TrackInformation
    attributes: VideoAttributes | AudioAttributes | MetadataAttributes


@dataclasses.dataclass(frozen=True, slots=True)
class MediaAttributes:
    """tt:MediaAttributes (RS-04): valid for [from_ns, until_ns] around the asked time."""

    recording_token: str
    tracks: tuple[TrackAttributes, ...]
    from_ns: int
    until_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class FindEventResult:
    """tt:FindEventResult (RS-07.8) with the tt:Message content as name/value items."""

    recording_token: str
    track_token: str
    time_ns: int
    topic_namespace: str
    topic: tuple[str, ...]
    #: "Initialized" for virtual start-state events, "Changed" for stored ones (EV-13).
    property_operation: str
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    start_state_event: bool


@dataclasses.dataclass(frozen=True, slots=True)
class SearchResults:
    """One Get*SearchResults answer: Completed means the session has ended."""

    state: SearchState
    results: tuple[RecordingInformation, ...] | tuple[FindEventResult, ...]
