"""`custos recordings --json`: recordings and tracks with their UTC extent, frames and gaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.time import NS_PER_SECOND, format_iso
from app.engine.storage.model import Recording, TrackMedia
from app.engine.storage.reader import StoreReader

#: Fractional digits of the ISO strings (milliseconds, as the ONVIF services serialize time).
ISO_DIGITS = 3


def _iso(ns: int | None) -> str | None:
    return None if ns is None else format_iso(ns, digits=ISO_DIGITS)


def _track_doc(recording: Recording, media: TrackMedia | None, token: str) -> dict[str, Any]:
    track = next(t for t in recording.tracks if t.token == token)
    doc: dict[str, Any] = {
        "token": token,
        "type": track.kind.value,
        "description": track.description,
        "codec": None,
        "start": None,
        "end": None,
        "start_ns": None,
        "end_ns": None,
        "frames": 0,
        "bytes": 0,
        "slices": [],
        "gaps": [],
    }
    if media is None or not media.slices:
        return doc
    doc.update(
        codec=media.codec.value if media.codec else None,
        start=_iso(media.earliest_ns),
        end=_iso(media.latest_ns),
        start_ns=media.earliest_ns,
        end_ns=media.latest_ns,
        frames=media.frame_count,
        bytes=media.bytes,
        slices=[
            {"start": _iso(s.start_ns), "end": _iso(s.end_ns), "frames": s.frame_count}
            for s in media.slices
        ],
        gaps=[
            {"start": _iso(a), "end": _iso(b), "seconds": (b - a) / NS_PER_SECOND}
            for a, b in media.gaps
        ],
    )
    return doc


def recordings_report(recordings: list[Recording], media: list[TrackMedia]) -> list[dict[str, Any]]:
    """The JSON-able listing built from a catalog and its media extents."""
    by_track = {(m.recording, m.track): m for m in media}
    return [
        {
            "token": rec.token,
            "status": rec.status.value,
            "source_id": rec.config.source_id,
            "name": rec.config.name,
            "content": rec.config.content,
            "max_retention": rec.config.max_retention,
            "tracks": [
                _track_doc(rec, by_track.get((rec.token, t.token)), t.token) for t in rec.tracks
            ],
        }
        for rec in recordings
    ]


def list_recordings_report(data_dir: Path) -> list[dict[str, Any]]:
    """Synchronous, read-only; safe while an engine records into the same directory."""
    with StoreReader.open(data_dir) as reader:
        return recordings_report(reader.recordings(), reader.track_media())
