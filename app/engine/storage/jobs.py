"""Receivers and recording jobs of the ONVIF model (SM-03, SM-04, RX-G1…G7) in the index.

Synchronous functions over one connection, run on the store's write thread (mutations) or a
read thread (queries); mutating functions open their own transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.core.media import TrackKind
from app.engine.storage.model import (
    SOURCE_TYPE_RECEIVER,
    Job,
    JobConfig,
    JobMode,
    JobSource,
    JobState,
    JobTrack,
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    StreamType,
    TransportProtocol,
)
from app.engine.storage.schema import transaction
from app.engine.storage.tokens import (
    MAX_TOKEN_CHARS,
    check_text,
    check_token,
    count,
    enum_member,
    next_token,
    recording_id,
)

MAX_JOBS = 1024
MAX_RECEIVERS = 1024
MAX_SOURCES_PER_JOB = 16
MAX_TRACKS_PER_SOURCE = 16

_DEFAULT_SOURCE_TAG = {
    TrackKind.VIDEO: "video",
    TrackKind.AUDIO: "audio",
    TrackKind.METADATA: "metadata",
}


def _validate_receiver(config: ReceiverConfig) -> ReceiverConfig:
    """The config with enum members (callers may pass plain strings from the wire)."""
    check_text(config.media_uri, "receiver media URI")
    return ReceiverConfig(
        enum_member(ReceiverMode, config.mode, "receiver mode"),
        config.media_uri,
        enum_member(StreamType, config.stream, "receiver stream type"),
        enum_member(TransportProtocol, config.protocol, "receiver transport protocol"),
    )


def create_receiver(
    conn: sqlite3.Connection,
    config: ReceiverConfig,
    *,
    token: str | None = None,
    auto_created: bool = False,
) -> Receiver:
    config = _validate_receiver(config)
    if token is not None:
        check_token(token, "receiver")
    with transaction(conn):
        token = _insert_receiver(conn, config, token, auto_created)
    return Receiver(token, config, auto_created)


def _insert_receiver(
    conn: sqlite3.Connection, config: ReceiverConfig, token: str | None, auto_created: bool
) -> str:
    if count(conn, "SELECT COUNT(*) FROM receiver") >= MAX_RECEIVERS:
        raise LimitError(f"the store already holds {MAX_RECEIVERS} receivers")
    if token is None:
        token = next_token(conn, "receiver", "receiver", "RECEIVER{:04d}")
    elif conn.execute("SELECT 1 FROM receiver WHERE token = ?", (token,)).fetchone():
        raise ConflictError(f"receiver {token!r} exists already")
    conn.execute(
        "INSERT INTO receiver (token, mode, media_uri, stream, protocol, auto_created) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            token,
            config.mode.value,
            config.media_uri,
            config.stream.value,
            config.protocol.value,
            int(auto_created),
        ),
    )
    return token


def get_receiver(conn: sqlite3.Connection, token: str) -> Receiver:
    row = conn.execute(
        "SELECT token, mode, media_uri, stream, protocol, auto_created FROM receiver "
        "WHERE token = ?",
        (token,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no receiver {token!r}")
    return _receiver_from_row(row)


def _receiver_from_row(row: tuple[Any, ...]) -> Receiver:
    token, mode, uri, stream, protocol, auto = row
    config = ReceiverConfig(
        ReceiverMode(mode), uri, StreamType(stream), TransportProtocol(protocol)
    )
    return Receiver(token, config, bool(auto))


def list_receivers(conn: sqlite3.Connection) -> list[Receiver]:
    rows = conn.execute(
        "SELECT token, mode, media_uri, stream, protocol, auto_created FROM receiver ORDER BY id"
    ).fetchall()
    return [_receiver_from_row(row) for row in rows]


def configure_receiver(conn: sqlite3.Connection, token: str, config: ReceiverConfig) -> Receiver:
    """Replace a receiver's whole configuration (RX-06; allowed on auto-created ones)."""
    config = _validate_receiver(config)
    with transaction(conn):
        cur = conn.execute(
            "UPDATE receiver SET mode = ?, media_uri = ?, stream = ?, protocol = ? WHERE token = ?",
            (
                config.mode.value,
                config.media_uri,
                config.stream.value,
                config.protocol.value,
                token,
            ),
        )
        if cur.rowcount == 0:
            raise NotFoundError(f"no receiver {token!r}")
    return get_receiver(conn, token)


def set_receiver_mode(conn: sqlite3.Connection, token: str, mode: ReceiverMode) -> Receiver:
    """RX-07: change only the mode."""
    mode = enum_member(ReceiverMode, mode, "receiver mode")
    with transaction(conn):
        cur = conn.execute("UPDATE receiver SET mode = ? WHERE token = ?", (mode.value, token))
        if cur.rowcount == 0:
            raise NotFoundError(f"no receiver {token!r}")
    return get_receiver(conn, token)


def delete_receiver(conn: sqlite3.Connection, token: str) -> None:
    """RX-05; refused while a recording job uses the receiver."""
    with transaction(conn):
        get_receiver(conn, token)
        users = [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT j.token FROM recording_job_source s JOIN recording_job j "
                "ON j.id = s.job_id WHERE s.source_token = ? AND s.source_type = ?",
                (token, SOURCE_TYPE_RECEIVER),
            )
        ]
        if users:
            raise ConflictError(f"receiver {token!r} is used by recording job(s) {users}")
        conn.execute("DELETE FROM receiver WHERE token = ?", (token,))


def _drop_unused_auto_receivers(conn: sqlite3.Connection) -> None:
    """Auto-created receivers live only as long as a job refers to them (SM-03)."""
    conn.execute(
        "DELETE FROM receiver WHERE auto_created = 1 AND token NOT IN "
        "(SELECT source_token FROM recording_job_source WHERE source_type = ?)",
        (SOURCE_TYPE_RECEIVER,),
    )


# ---------------------------------------------------------------- recording jobs


def _write_job_sources(
    conn: sqlite3.Connection, job_id: int, rec_id: int, config: JobConfig
) -> tuple[JobSource, ...]:
    """Validate and store a job's sources; returns them as stored (auto receivers resolved)."""
    if len(config.sources) > MAX_SOURCES_PER_JOB:
        raise ConfigError(f"a recording job has at most {MAX_SOURCES_PER_JOB} sources")
    tracks = {
        str(tok): (int(tid), TrackKind(kind))
        for tid, tok, kind in conn.execute(
            "SELECT id, token, kind FROM track WHERE recording_id = ? ORDER BY id", (rec_id,)
        )
    }
    stored = []
    for pos, source in enumerate(config.sources):
        token = source.source_token
        if token is None:
            if not source.auto_create_receiver:
                raise ConfigError(
                    f"job source {pos} has neither a source token nor AutoCreateReceiver"
                )
            token = _insert_receiver(conn, ReceiverConfig(), None, True)
        check_token(token, "job source")
        if (
            source.source_type == SOURCE_TYPE_RECEIVER
            and not conn.execute("SELECT 1 FROM receiver WHERE token = ?", (token,)).fetchone()
        ):
            raise ConfigError(f"job source {pos}: no receiver {token!r}")
        bindings = source.tracks or tuple(
            JobTrack(_DEFAULT_SOURCE_TAG[kind], tok) for tok, (_tid, kind) in tracks.items()
        )
        if len(bindings) > MAX_TRACKS_PER_SOURCE:
            raise ConfigError(f"a job source binds at most {MAX_TRACKS_PER_SOURCE} tracks")
        if len(set(bindings)) != len(bindings):
            raise ConfigError(f"job source {pos} repeats a SourceTag/Destination pair")
        conn.execute(
            "INSERT INTO recording_job_source (job_id, position, source_token, source_type) "
            "VALUES (?, ?, ?, ?)",
            (job_id, pos, token, source.source_type),
        )
        for tpos, binding in enumerate(bindings):
            check_text(binding.source_tag, "job source tag", MAX_TOKEN_CHARS)
            if binding.destination not in tracks:
                raise ConfigError(
                    f"job destination {binding.destination!r} is not a track of the recording"
                )
            conn.execute(
                "INSERT INTO recording_job_track (job_id, source_position, position, source_tag, "
                "track_id) VALUES (?, ?, ?, ?, ?)",
                (job_id, pos, tpos, binding.source_tag, tracks[binding.destination][0]),
            )
        stored.append(JobSource(token, source.source_type, bindings))
    return tuple(stored)


def _check_job(config: JobConfig) -> JobConfig:
    """The config with its mode as a JobMode member, or a ConfigError."""
    mode = enum_member(JobMode, config.mode, "recording job mode")
    if config.priority < 0:
        raise ConfigError(f"job priority {config.priority} must be ≥ 0")
    return JobConfig(config.recording, mode, config.priority, config.sources)


def create_job(
    conn: sqlite3.Connection, config: JobConfig, now_ns: int, token: str | None = None
) -> Job:
    """RC-12: validate, resolve AutoCreateReceiver, bind all tracks when a source names none."""
    config = _check_job(config)
    if token is not None:
        check_token(token, "recording job")
    with transaction(conn):
        rec_id = recording_id(conn, config.recording)
        if count(conn, "SELECT COUNT(*) FROM recording_job") >= MAX_JOBS:
            raise LimitError(f"the store already holds {MAX_JOBS} recording jobs")
        if token is None:
            token = next_token(conn, "job", "recording_job", "JOB{:04d}")
        elif conn.execute("SELECT 1 FROM recording_job WHERE token = ?", (token,)).fetchone():
            raise ConflictError(f"recording job {token!r} exists already")
        activated = now_ns if config.mode is JobMode.ACTIVE else 0
        cur = conn.execute(
            "INSERT INTO recording_job (token, recording_id, mode, priority, state, activated_ns) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (token, rec_id, config.mode.value, config.priority, JobState.IDLE.value, activated),
        )
        assert cur.lastrowid is not None
        _write_job_sources(conn, cur.lastrowid, rec_id, config)
    return get_job(conn, token)


def get_job(conn: sqlite3.Connection, token: str) -> Job:
    row = conn.execute(
        "SELECT j.id, j.token, r.token, j.mode, j.priority, j.state, j.activated_ns "
        "FROM recording_job j JOIN recording r ON r.id = j.recording_id WHERE j.token = ?",
        (token,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no recording job {token!r}")
    return _job_from_row(conn, row)


def _job_from_row(conn: sqlite3.Connection, row: tuple[Any, ...]) -> Job:
    job_id, token, recording, mode, priority, state, activated = row
    sources = []
    for pos, source_token, source_type in conn.execute(
        "SELECT position, source_token, source_type FROM recording_job_source WHERE job_id = ? "
        "ORDER BY position",
        (job_id,),
    ).fetchall():
        bindings = tuple(
            JobTrack(tag, dest)
            for tag, dest in conn.execute(
                "SELECT jt.source_tag, t.token FROM recording_job_track jt JOIN track t "
                "ON t.id = jt.track_id WHERE jt.job_id = ? AND jt.source_position = ? "
                "ORDER BY jt.position",
                (job_id, pos),
            )
        )
        sources.append(JobSource(source_token, source_type, bindings))
    config = JobConfig(recording, JobMode(mode), priority, tuple(sources))
    return Job(token, config, JobState(state), activated)


def list_jobs(conn: sqlite3.Connection) -> list[Job]:
    rows = conn.execute(
        "SELECT j.id, j.token, r.token, j.mode, j.priority, j.state, j.activated_ns "
        "FROM recording_job j JOIN recording r ON r.id = j.recording_id ORDER BY j.id"
    ).fetchall()
    return [_job_from_row(conn, row) for row in rows]


def set_job_config(conn: sqlite3.Connection, token: str, config: JobConfig, now_ns: int) -> Job:
    """RC-15: full replacement; the recording cannot change; unused auto receivers go."""
    config = _check_job(config)
    with transaction(conn):
        old = get_job(conn, token)
        if config.recording != old.config.recording:
            raise ConfigError(
                f"recording job {token!r} records into {old.config.recording!r}; "
                f"it cannot be moved to {config.recording!r}"
            )
        row = conn.execute(
            "SELECT id, recording_id FROM recording_job WHERE token = ?", (token,)
        ).fetchone()
        job_id, rec_id = int(row[0]), int(row[1])
        conn.execute("DELETE FROM recording_job_track WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM recording_job_source WHERE job_id = ?", (job_id,))
        _write_job_sources(conn, job_id, rec_id, config)
        _update_mode(conn, job_id, old, config.mode, now_ns)
        conn.execute(
            "UPDATE recording_job SET priority = ? WHERE id = ?", (config.priority, job_id)
        )
        _drop_unused_auto_receivers(conn)
    return get_job(conn, token)


def _update_mode(
    conn: sqlite3.Connection, job_id: int, old: Job, mode: JobMode, now_ns: int
) -> None:
    reactivated = mode is JobMode.ACTIVE and old.config.mode is JobMode.IDLE
    activated = now_ns if reactivated else old.activated_ns
    conn.execute(
        "UPDATE recording_job SET mode = ?, activated_ns = ? WHERE id = ?",
        (mode.value, activated, job_id),
    )


def set_job_mode(conn: sqlite3.Connection, token: str, mode: JobMode, now_ns: int) -> Job:
    """RC-17 (the SOAP edge maps the ConfigError for another string to BadMode)."""
    mode = enum_member(JobMode, mode, "recording job mode")
    with transaction(conn):
        old = get_job(conn, token)
        job_id = conn.execute("SELECT id FROM recording_job WHERE token = ?", (token,)).fetchone()[
            0
        ]
        _update_mode(conn, int(job_id), old, mode, now_ns)
    return get_job(conn, token)


def set_job_state(conn: sqlite3.Connection, token: str, state: JobState) -> None:
    """The engine reports the aggregated job state it computed (RC-18)."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE recording_job SET state = ? WHERE token = ?",
            (enum_member(JobState, state, "recording job state").value, token),
        )
        if cur.rowcount == 0:
            raise NotFoundError(f"no recording job {token!r}")


def delete_job(conn: sqlite3.Connection, token: str) -> None:
    with transaction(conn):
        _delete_job(conn, token)


def delete_jobs_of_recording(conn: sqlite3.Connection, rec_id: int) -> None:
    """Inside a transaction: every job of a recording, with auto receivers only they used."""
    for (token,) in conn.execute(
        "SELECT token FROM recording_job WHERE recording_id = ?", (rec_id,)
    ).fetchall():
        _delete_job(conn, token)


def _delete_job(conn: sqlite3.Connection, token: str) -> None:
    row = conn.execute("SELECT id FROM recording_job WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFoundError(f"no recording job {token!r}")
    conn.execute("DELETE FROM recording_job_track WHERE job_id = ?", (row[0],))
    conn.execute("DELETE FROM recording_job_source WHERE job_id = ?", (row[0],))
    conn.execute("DELETE FROM recording_job WHERE id = ?", (row[0],))
    _drop_unused_auto_receivers(conn)
