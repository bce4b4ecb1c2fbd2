"""Value types of the recording store: the ONVIF storage model, media index rows, options."""

from __future__ import annotations

import base64
import dataclasses
import enum
import itertools
import json
from typing import Any

from app.core.errors import StorageError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource, TrackKind
from app.core.time import NS_PER_SECOND

MIB = 1 << 20

#: tt:SourceReference Type values (SM-03); a token without Type is a receiver token.
SOURCE_TYPE_RECEIVER = "http://www.onvif.org/ver10/schema/Receiver"
SOURCE_TYPE_PROFILE = "http://www.onvif.org/ver10/schema/Profile"


class RecordingStatus(enum.StrEnum):
    """tt:RecordingStatus values the store persists (Removing/Removed are transient, SM-05)."""

    INITIATED = "Initiated"
    RECORDING = "Recording"
    STOPPED = "Stopped"


class JobMode(enum.StrEnum):
    IDLE = "Idle"
    ACTIVE = "Active"


class JobState(enum.StrEnum):
    IDLE = "Idle"
    ACTIVE = "Active"
    PARTIALLY_ACTIVE = "PartiallyActive"
    ERROR = "Error"


class ReceiverMode(enum.StrEnum):
    ALWAYS_CONNECT = "AlwaysConnect"
    NEVER_CONNECT = "NeverConnect"
    AUTO_CONNECT = "AutoConnect"


class StreamType(enum.StrEnum):
    UNICAST = "RTP-Unicast"
    MULTICAST = "RTP-Multicast"


class TransportProtocol(enum.StrEnum):
    UDP = "UDP"
    TCP = "TCP"
    RTSP = "RTSP"
    HTTP = "HTTP"


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingConfig:
    """tt:RecordingConfiguration; every string is stored and returned exactly as given (SM-07)."""

    source_id: str = ""
    name: str = ""
    location: str = ""
    description: str = ""
    address: str = ""
    content: str = ""
    #: The client's xs:duration text, echoed verbatim ('PT60M' never becomes 'PT1H').
    max_retention: str = "PT0S"


@dataclasses.dataclass(frozen=True, slots=True)
class Track:
    token: str
    kind: TrackKind
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Recording:
    token: str
    config: RecordingConfig
    #: MaximumRetentionTime parsed to ns; 0 = no time limit.
    max_retention_ns: int
    status: RecordingStatus
    tracks: tuple[Track, ...]
    created_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """tt:ReceiverConfiguration; `media_uri` may carry credentials and is never logged."""

    mode: ReceiverMode = ReceiverMode.AUTO_CONNECT
    media_uri: str = ""
    stream: StreamType = StreamType.UNICAST
    protocol: TransportProtocol = TransportProtocol.RTSP


@dataclasses.dataclass(frozen=True, slots=True)
class Receiver:
    token: str
    config: ReceiverConfig
    auto_created: bool


@dataclasses.dataclass(frozen=True, slots=True)
class JobTrack:
    """tt:RecordingJobTrack: RTSP media `source_tag` goes into track token `destination`."""

    source_tag: str
    destination: str


@dataclasses.dataclass(frozen=True, slots=True)
class JobSource:
    """tt:RecordingJobSource; `auto_create_receiver` exists only in requests (SM-03)."""

    source_token: str | None = None
    source_type: str = SOURCE_TYPE_RECEIVER
    tracks: tuple[JobTrack, ...] = ()
    auto_create_receiver: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class JobConfig:
    recording: str
    mode: JobMode = JobMode.IDLE
    priority: int = 0
    sources: tuple[JobSource, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    token: str
    config: JobConfig
    state: JobState
    #: Recorder wall time of the last Idle→Active change (equal priorities: latest wins, SM-04).
    activated_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class EvidenceLock:
    """A time range of a recording that retention must keep (closed interval, UTC ns)."""

    id: int
    recording: str
    start_ns: int
    end_ns: int
    reason: str
    created_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class FrameRef:
    """One index row: where a stored access unit lives and its times."""

    id: int
    run_id: int
    segment_id: int
    offset: int
    size: int
    media_ts: int
    wall_ns: int
    keyframe: bool
    time_source: TimeSource


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFrame:
    ref: FrameRef
    data: bytes

    def to_access_unit(self) -> AccessUnit:
        r = self.ref
        return AccessUnit(self.data, r.media_ts, r.wall_ns, r.keyframe, r.time_source)


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """A stretch of a track recorded without interruption (ONVIF's track 'slice')."""

    run_id: int
    #: Wall clock of the first and of the last frame (both inclusive).
    start_ns: int
    end_ns: int
    frame_count: int


@dataclasses.dataclass(frozen=True, slots=True)
class TrackMedia:
    """What a track holds: extent, counts and the slices between which the gaps lie."""

    recording: str
    track: str
    kind: TrackKind
    #: Codec of the newest run, None while the track holds no data.
    codec: Codec | None
    earliest_ns: int | None
    latest_ns: int | None
    frame_count: int
    bytes: int
    slices: tuple[Slice, ...]

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """(end of one slice, start of the next) for every interruption, oldest first."""
        return [(a.end_ns, b.start_ns) for a, b in itertools.pairwise(self.slices)]


@dataclasses.dataclass(frozen=True, slots=True)
class DeletedSegment:
    """One segment retention removed; the source of a DeleteTrackData event."""

    recording: str
    track: str
    start_ns: int
    end_ns: int
    frame_count: int
    bytes: int
    #: 'max-retention' or 'disk-budget'.
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoreOptions:
    """Tuning of one store; the defaults are what DESIGN.md reasons about."""

    #: Buffered frames become durable at least this often (the crash-loss bound is about 2×).
    flush_interval_s: float = 0.5
    #: A segment is rotated at the next video keyframe after this much wall time or size, and
    #: unconditionally at twice either limit (a camera that never sends keyframes).
    segment_max_duration_ns: int = 60 * NS_PER_SECOND
    segment_max_bytes: int = 64 * MIB
    #: Per writer: frames appended but not yet durable; beyond it whole GOPs are dropped.
    writer_buffer_limit_bytes: int = 32 * MIB
    #: Flush before the interval is up once one writer has this much waiting.
    flush_early_bytes: int = 4 * MIB
    #: Global media budget in bytes across recordings (0 = none); `sweep` enforces it.
    disk_budget_bytes: int = 0
    #: Threads serving reads (each with its own SQLite connection).
    read_workers: int = 2


@dataclasses.dataclass(slots=True)
class WriterStats:
    """Counters of one TrackWriter, updated on the loop thread."""

    frames_written: int = 0
    bytes_written: int = 0
    runs_started: int = 0
    #: Frames dropped because the disk could not keep up (whole GOPs, see DESIGN.md).
    frames_dropped: int = 0
    bytes_dropped: int = 0
    #: Video frames discarded at the start of a run before its first keyframe.
    frames_skipped: int = 0
    #: Frames lost to write errors (disk full, I/O error).
    frames_failed: int = 0
    last_error: str | None = None


def params_to_json(params: CodecParams) -> str:
    """Canonical JSON of CodecParams (byte fields base64); equal params give equal text."""
    doc: dict[str, Any] = {
        "codec": params.codec.value,
        "clock_rate": params.clock_rate,
        "width": params.width,
        "height": params.height,
        "sample_rate": params.sample_rate,
        "channels": params.channels,
        "parameter_sets": [base64.b64encode(p).decode("ascii") for p in params.parameter_sets],
        "audio_config": base64.b64encode(params.audio_config).decode("ascii"),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def params_from_json(text: str) -> CodecParams:
    """Inverse of params_to_json; a malformed document is index corruption (StorageError)."""
    try:
        doc = json.loads(text)
        return CodecParams(
            codec=Codec(doc["codec"]),
            clock_rate=int(doc["clock_rate"]),
            width=int(doc["width"]),
            height=int(doc["height"]),
            sample_rate=int(doc["sample_rate"]),
            channels=int(doc["channels"]),
            parameter_sets=tuple(base64.b64decode(p, validate=True) for p in doc["parameter_sets"]),
            audio_config=base64.b64decode(doc["audio_config"], validate=True),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"stored codec parameters are unreadable: {exc}") from None


class HistoryTopic(enum.IntEnum):
    """Recording history topics (spec 4.3) as stored in the `history` table's `topic` column."""

    RECORDING_STATE = 1
    TRACK_STATE = 2


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One stored recording history event (a Changed property message, spec 4.3).

    `track` is "" for recording-level events. `key` orders events of one recording: time, then
    recording-level before track-level, then insertion order (RS-S7); it is also the keyset
    cursor of paged reads.
    """

    recording: str
    track: str
    topic: HistoryTopic
    utc_ns: int
    value: bool
    key: tuple[int, int, int]
