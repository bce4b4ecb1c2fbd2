"""Recordings and tracks of the ONVIF storage model (SM-01, SM-02, SM-05…SM-09) in the index.

Synchronous functions over one connection, run on the store's write thread (mutations) or a
read thread (queries); mutating functions open their own transaction. Receivers and recording
jobs are in jobs.py, limits and token helpers in tokens.py.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from app.core.errors import ConflictError, LimitError, NotFoundError
from app.core.media import TrackKind
from app.engine.storage import jobs, media
from app.engine.storage.duration import parse_duration
from app.engine.storage.model import Recording, RecordingConfig, RecordingStatus, Track
from app.engine.storage.schema import transaction
from app.engine.storage.tokens import (
    MAX_NAME_CHARS,
    check_text,
    check_token,
    count,
    next_token,
    recording_id,
    track_row,
)

MAX_RECORDINGS = 1024
MAX_TRACKS_PER_RECORDING = 16

_TRACK_PREFIX = {TrackKind.VIDEO: "VIDEO", TrackKind.AUDIO: "AUDIO", TrackKind.METADATA: "META"}


def _validate_recording_config(config: RecordingConfig) -> int:
    check_text(config.name, "recording source name", MAX_NAME_CHARS)
    for what, value in (
        ("recording source id", config.source_id),
        ("recording source location", config.location),
        ("recording source description", config.description),
        ("recording source address", config.address),
        ("recording content", config.content),
    ):
        check_text(value, what)
    return parse_duration(config.max_retention)


def create_recording(
    conn: sqlite3.Connection, config: RecordingConfig, now_ns: int, token: str | None = None
) -> Recording:
    """A new recording with the default tracks VIDEO001, AUDIO001, META001 (RC-02.1)."""
    retention_ns = _validate_recording_config(config)
    if token is not None:
        check_token(token, "recording")
    with transaction(conn):
        if count(conn, "SELECT COUNT(*) FROM recording") >= MAX_RECORDINGS:
            raise LimitError(f"the store already holds {MAX_RECORDINGS} recordings")
        if token is None:
            token = next_token(conn, "recording", "recording", "REC{:04d}")
        elif conn.execute("SELECT 1 FROM recording WHERE token = ?", (token,)).fetchone():
            raise ConflictError(f"recording {token!r} exists already")
        cur = conn.execute(
            "INSERT INTO recording (token, source_id, source_name, source_location, "
            "source_description, source_address, content, max_retention, max_retention_ns, "
            "status, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token,
                config.source_id,
                config.name,
                config.location,
                config.description,
                config.address,
                config.content,
                config.max_retention,
                retention_ns,
                RecordingStatus.INITIATED.value,
                now_ns,
            ),
        )
        rec_id = cur.lastrowid
        assert rec_id is not None
        for kind in (TrackKind.VIDEO, TrackKind.AUDIO, TrackKind.METADATA):
            _insert_track(conn, rec_id, kind, "", None)
    return get_recording(conn, token)


def _insert_track(
    conn: sqlite3.Connection, rec_id: int, kind: TrackKind, description: str, token: str | None
) -> str:
    if count(conn, "SELECT COUNT(*) FROM track WHERE recording_id = ?", (rec_id,)) >= (
        MAX_TRACKS_PER_RECORDING
    ):
        raise LimitError(f"a recording holds at most {MAX_TRACKS_PER_RECORDING} tracks")
    if token is None:
        token = next_token(
            conn,
            f"track:{rec_id}:{kind.value}",
            "track",
            _TRACK_PREFIX[kind] + "{:03d}",
            "AND recording_id = ?",
            (rec_id,),
        )
    elif conn.execute(
        "SELECT 1 FROM track WHERE recording_id = ? AND token = ?", (rec_id, token)
    ).fetchone():
        raise ConflictError(f"track {token!r} exists already")
    conn.execute(
        "INSERT INTO track (recording_id, token, kind, description) VALUES (?, ?, ?, ?)",
        (rec_id, token, kind.value, description),
    )
    return token


def _recording_from_row(conn: sqlite3.Connection, row: tuple[Any, ...]) -> Recording:
    (
        rec_id,
        token,
        source_id,
        name,
        location,
        description,
        address,
        content,
        retention,
        retention_ns,
        status,
        created_ns,
    ) = row
    tracks = tuple(
        Track(str(t), TrackKind(k), str(d))
        for t, k, d in conn.execute(
            "SELECT token, kind, description FROM track WHERE recording_id = ? ORDER BY id",
            (rec_id,),
        )
    )
    config = RecordingConfig(source_id, name, location, description, address, content, retention)
    return Recording(token, config, retention_ns, RecordingStatus(status), tracks, created_ns)


_RECORDING_COLUMNS = (
    "id, token, source_id, source_name, source_location, source_description, source_address, "
    "content, max_retention, max_retention_ns, status, created_ns"
)


def get_recording(conn: sqlite3.Connection, token: str) -> Recording:
    row = conn.execute(
        f"SELECT {_RECORDING_COLUMNS} FROM recording WHERE token = ?", (token,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no recording {token!r}")
    return _recording_from_row(conn, row)


def list_recordings(conn: sqlite3.Connection) -> list[Recording]:
    rows = conn.execute(f"SELECT {_RECORDING_COLUMNS} FROM recording ORDER BY id").fetchall()
    return [_recording_from_row(conn, row) for row in rows]


def set_recording_config(
    conn: sqlite3.Connection, token: str, config: RecordingConfig
) -> Recording:
    """Replace the configuration (RC-05); a shorter retention takes effect at the next sweep."""
    retention_ns = _validate_recording_config(config)
    with transaction(conn):
        rec_id = recording_id(conn, token)
        conn.execute(
            "UPDATE recording SET source_id = ?, source_name = ?, source_location = ?, "
            "source_description = ?, source_address = ?, content = ?, max_retention = ?, "
            "max_retention_ns = ? WHERE id = ?",
            (
                config.source_id,
                config.name,
                config.location,
                config.description,
                config.address,
                config.content,
                config.max_retention,
                retention_ns,
                rec_id,
            ),
        )
    return get_recording(conn, token)


def delete_recording(conn: sqlite3.Connection, token: str) -> None:
    """Delete a recording with its tracks, media, jobs and their auto-created receivers (RC-03).

    Refused while evidence locks exist for it: removing evidence is an explicit act.
    Call media.collect_garbage afterwards to remove the files.
    """
    with transaction(conn):
        rec_id = recording_id(conn, token)
        locks = count(conn, "SELECT COUNT(*) FROM evidence_lock WHERE recording_id = ?", (rec_id,))
        if locks:
            raise ConflictError(
                f"recording {token!r} has {locks} evidence lock(s); remove them first"
            )
        jobs.delete_jobs_of_recording(conn, rec_id)
        track_ids = [
            r[0] for r in conn.execute("SELECT id FROM track WHERE recording_id = ?", (rec_id,))
        ]
        for track_id in track_ids:
            _delete_track_rows(conn, track_id)
        conn.execute("DELETE FROM recording WHERE id = ?", (rec_id,))


def create_track(
    conn: sqlite3.Connection,
    recording: str,
    kind: TrackKind,
    description: str = "",
    token: str | None = None,
) -> Track:
    """A new track (RC-08); generated tokens continue VIDEO002, AUDIO002, META002 …"""
    check_text(description, "track description")
    if token is not None:
        check_token(token, "track")
    with transaction(conn):
        token = _insert_track(conn, recording_id(conn, recording), kind, description, token)
    return Track(token, kind, description)


def set_track_description(
    conn: sqlite3.Connection, recording: str, track: str, description: str
) -> Track:
    """RC-11: only the description changes; a track's type is fixed."""
    check_text(description, "track description")
    with transaction(conn):
        _rec_id, track_id, kind = track_row(conn, recording, track)
        conn.execute("UPDATE track SET description = ? WHERE id = ?", (description, track_id))
    return Track(track, kind, description)


def delete_track(conn: sqlite3.Connection, recording: str, track: str) -> None:
    """Delete a track with its media (RC-09) and drop job bindings to it (RC-09.2)."""
    with transaction(conn):
        rec_id, track_id, _kind = track_row(conn, recording, track)
        locked = count(
            conn,
            "SELECT COUNT(*) FROM segment s JOIN evidence_lock l ON l.recording_id = ? "
            "AND l.start_ns <= s.end_ns AND l.end_ns >= s.start_ns WHERE s.track_id = ?",
            (rec_id, track_id),
        )
        if locked:
            raise ConflictError(f"track {track!r} of {recording!r} holds evidence-locked data")
        _delete_track_rows(conn, track_id)


def _delete_track_rows(conn: sqlite3.Connection, track_id: int) -> None:
    segments = [
        r[0] for r in conn.execute("SELECT id FROM segment WHERE track_id = ?", (track_id,))
    ]
    media.discard_segments(conn, segments)
    conn.execute(
        "DELETE FROM param_change WHERE run_id IN (SELECT id FROM run WHERE track_id = ?)",
        (track_id,),
    )
    conn.execute("DELETE FROM run WHERE track_id = ?", (track_id,))
    conn.execute("DELETE FROM recording_job_track WHERE track_id = ?", (track_id,))
    conn.execute("DELETE FROM track WHERE id = ?", (track_id,))


def reset_runtime_state(conn: sqlite3.Connection) -> None:
    """On open: nothing records yet, so no job is active and no recording is 'Recording'."""
    with transaction(conn):
        conn.execute("UPDATE recording_job SET state = 'Idle' WHERE state != 'Idle'")
        conn.execute("UPDATE recording SET status = 'Stopped' WHERE status = 'Recording'")
