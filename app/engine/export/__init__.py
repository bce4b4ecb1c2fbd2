"""Evidence export: a recording's time range as sealed, numbered ONVIF export (MP4) files."""

from __future__ import annotations

from app.engine.export.job import (
    DEFAULT_PART_SIZE_LIMIT,
    ExportCancelledError,
    ExportedTrack,
    ExportPart,
    ExportProgress,
    ExportRequest,
    ExportResult,
    export_recording,
)

__all__ = [
    "DEFAULT_PART_SIZE_LIMIT",
    "ExportCancelledError",
    "ExportPart",
    "ExportProgress",
    "ExportRequest",
    "ExportResult",
    "ExportedTrack",
    "export_recording",
]
