"""The crash-safe recording store: ONVIF storage model, segment files, frame index, retention.

Everything that reads or writes recorded media goes through this package (see DESIGN.md for
the on-disk invariants and procedures). The engine uses:

    async with Store(data_dir, clock=clock, options=StoreOptions(...)) as store:
        rec = await store.create_recording(RecordingConfig(name="Gate"), token="Gate")
        writer = await store.open_writer(rec.token, "VIDEO001")
        writer.append(unit, params)          # on the loop, never blocks
        writer.end_run("camera lost")        # a gap; the next append starts a new run
        await writer.close()
        async for frame in store.read_frames(rec.token, "VIDEO001", start_ns, end_ns): ...
        deleted = await store.sweep()        # retention, e.g. every 30 s
        events = await store.history_page(rec.token, t0, t1)  # Recording/Track State history

Tools on a directory (CLI): `check(data_dir, repair)`, `list_recordings_report(data_dir)`,
`StoreReader.open(data_dir)`.
"""

from __future__ import annotations

from app.engine.storage.duration import DurationError, parse_duration
from app.engine.storage.integrity import CheckReport, Problem, check
from app.engine.storage.model import (
    SOURCE_TYPE_PROFILE,
    SOURCE_TYPE_RECEIVER,
    DeletedSegment,
    EvidenceLock,
    FrameRef,
    HistoryEvent,
    HistoryTopic,
    Job,
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    JobTrack,
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    Recording,
    RecordingConfig,
    RecordingStatus,
    Slice,
    StoredFrame,
    StoreOptions,
    StreamType,
    Track,
    TrackMedia,
    TransportProtocol,
    WriterStats,
)
from app.engine.storage.reader import StoreReader
from app.engine.storage.report import list_recordings_report
from app.engine.storage.store import Store
from app.engine.storage.writer import TrackWriter

__all__ = [
    "SOURCE_TYPE_PROFILE",
    "SOURCE_TYPE_RECEIVER",
    "CheckReport",
    "DeletedSegment",
    "DurationError",
    "EvidenceLock",
    "FrameRef",
    "HistoryEvent",
    "HistoryTopic",
    "Job",
    "JobConfig",
    "JobMode",
    "JobSource",
    "JobState",
    "JobTrack",
    "Problem",
    "Receiver",
    "ReceiverConfig",
    "ReceiverMode",
    "Recording",
    "RecordingConfig",
    "RecordingStatus",
    "Slice",
    "Store",
    "StoreOptions",
    "StoreReader",
    "StoredFrame",
    "StreamType",
    "Track",
    "TrackMedia",
    "TrackWriter",
    "TransportProtocol",
    "WriterStats",
    "check",
    "list_recordings_report",
    "parse_duration",
]
