"""The SQLite schema of the index, its version, upgrades, and how connections are opened.

See DESIGN.md for what each table means and the invariants between rows and segment files.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from app.core.errors import StorageError
from app.core.media import TimeSource

SCHEMA_VERSION = 1
#: How long a connection waits for another process's write lock (e.g. `custos check`).
BUSY_TIMEOUT_S = 5.0
#: After a checkpoint, the WAL file is cut back to this size instead of staying at its peak.
WAL_SIZE_LIMIT_BYTES = 64 << 20

#: Stored per frame as a small integer; the `time_source` table spells them out for examiners.
TIME_SOURCE_CODES: dict[TimeSource, int] = {
    TimeSource.CAMERA_NTP: 1,
    TimeSource.ONVIF_EXTENSION: 2,
    TimeSource.RECEIVE_TIME: 3,
    TimeSource.LOCAL_CAPTURE: 4,
}
TIME_SOURCES_BY_CODE = {code: source for source, code in TIME_SOURCE_CODES.items()}

_DDL = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT",
    # Monotonic counters: generated tokens and frame ids are never reused.
    "CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT",
    "CREATE TABLE time_source (code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT",
    """CREATE TABLE recording (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        source_id TEXT NOT NULL,
        source_name TEXT NOT NULL,
        source_location TEXT NOT NULL,
        source_description TEXT NOT NULL,
        source_address TEXT NOT NULL,
        content TEXT NOT NULL,
        max_retention TEXT NOT NULL,
        max_retention_ns INTEGER NOT NULL CHECK (max_retention_ns >= 0),
        status TEXT NOT NULL CHECK (status IN ('Initiated', 'Recording', 'Stopped')),
        created_ns INTEGER NOT NULL
    ) STRICT""",
    """CREATE TABLE track (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id INTEGER NOT NULL REFERENCES recording (id),
        token TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('Video', 'Audio', 'Metadata')),
        description TEXT NOT NULL,
        UNIQUE (recording_id, token)
    ) STRICT""",
    """CREATE TABLE receiver (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        mode TEXT NOT NULL CHECK (mode IN ('AlwaysConnect', 'NeverConnect', 'AutoConnect')),
        media_uri TEXT NOT NULL,
        stream TEXT NOT NULL CHECK (stream IN ('RTP-Unicast', 'RTP-Multicast')),
        protocol TEXT NOT NULL CHECK (protocol IN ('UDP', 'TCP', 'RTSP', 'HTTP')),
        auto_created INTEGER NOT NULL CHECK (auto_created IN (0, 1))
    ) STRICT""",
    """CREATE TABLE recording_job (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        recording_id INTEGER NOT NULL REFERENCES recording (id),
        mode TEXT NOT NULL CHECK (mode IN ('Idle', 'Active')),
        priority INTEGER NOT NULL CHECK (priority >= 0),
        state TEXT NOT NULL CHECK (state IN ('Idle', 'Active', 'PartiallyActive', 'Error')),
        activated_ns INTEGER NOT NULL
    ) STRICT""",
    """CREATE TABLE recording_job_source (
        job_id INTEGER NOT NULL REFERENCES recording_job (id),
        position INTEGER NOT NULL,
        source_token TEXT NOT NULL,
        source_type TEXT NOT NULL,
        PRIMARY KEY (job_id, position)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE recording_job_track (
        job_id INTEGER NOT NULL,
        source_position INTEGER NOT NULL,
        position INTEGER NOT NULL,
        source_tag TEXT NOT NULL,
        track_id INTEGER NOT NULL REFERENCES track (id),
        PRIMARY KEY (job_id, source_position, position),
        FOREIGN KEY (job_id, source_position) REFERENCES recording_job_source (job_id, position)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX recording_job_track_track ON recording_job_track (track_id)",
    "CREATE TABLE codec_params (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE) STRICT",
    # A run: continuous recording of one track from one connected session (DESIGN.md).
    """CREATE TABLE run (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        track_id INTEGER NOT NULL REFERENCES track (id),
        params_id INTEGER NOT NULL REFERENCES codec_params (id),
        open INTEGER NOT NULL CHECK (open IN (0, 1)),
        started_ns INTEGER NOT NULL,
        end_reason TEXT
    ) STRICT""",
    "CREATE INDEX run_track ON run (track_id)",
    """CREATE TABLE segment (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES run (id),
        seq INTEGER NOT NULL,
        track_id INTEGER NOT NULL REFERENCES track (id),
        sealed INTEGER NOT NULL CHECK (sealed IN (0, 1)),
        length INTEGER NOT NULL,
        frame_count INTEGER NOT NULL,
        start_ns INTEGER,
        end_ns INTEGER,
        UNIQUE (run_id, seq)
    ) STRICT""",
    "CREATE INDEX segment_track ON segment (track_id, start_ns)",
    "CREATE INDEX segment_start ON segment (start_ns)",
    """CREATE TABLE frame (
        id INTEGER PRIMARY KEY,
        segment_id INTEGER NOT NULL REFERENCES segment (id),
        track_id INTEGER NOT NULL,
        file_offset INTEGER NOT NULL,
        size INTEGER NOT NULL,
        media_ts INTEGER NOT NULL,
        wall_ns INTEGER NOT NULL,
        keyframe INTEGER NOT NULL,
        time_source INTEGER NOT NULL REFERENCES time_source (code),
        crc32 INTEGER NOT NULL
    ) STRICT""",
    "CREATE INDEX frame_track_wall ON frame (track_id, wall_ns)",
    "CREATE INDEX frame_segment ON frame (segment_id)",
    "CREATE INDEX frame_track_key ON frame (track_id, wall_ns) WHERE keyframe = 1",
    """CREATE TABLE param_change (
        run_id INTEGER NOT NULL REFERENCES run (id),
        frame_id INTEGER NOT NULL,
        params_id INTEGER NOT NULL REFERENCES codec_params (id),
        PRIMARY KEY (run_id, frame_id)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE evidence_lock (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recording_id INTEGER NOT NULL REFERENCES recording (id),
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL CHECK (end_ns >= start_ns),
        reason TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    ) STRICT""",
    "CREATE INDEX evidence_lock_recording ON evidence_lock (recording_id, start_ns)",
    # Segment files whose rows are gone but whose unlink may not have happened yet.
    "CREATE TABLE garbage (path TEXT PRIMARY KEY) STRICT",
)

#: The recording history index (history.py). It is derived from `run` and `segment` and rebuilt
#: by `history.HistoryIndex.reconcile` on every open, so it is created when missing instead of
#: through a schema upgrade: an index written before it existed gains it, backfilled, on open.
HISTORY_DDL = (
    # owner: the track id for track events, minus the recording id for recording events, so
    # that at one instant recording-level events sort before track-level ones (RS-S7).
    """CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY,
        recording_id INTEGER NOT NULL,
        owner INTEGER NOT NULL,
        topic INTEGER NOT NULL,
        utc_ns INTEGER NOT NULL,
        value INTEGER,
        data TEXT,
        run_id INTEGER
    ) STRICT""",
    # FindEvents pages: events of one recording in [t0, t1], either direction, keyset on
    # (utc_ns, owner, seq).
    "CREATE INDEX IF NOT EXISTS history_time ON history (recording_id, utc_ns, owner, seq)",
    # The state of one track or recording at an instant (virtual start-state events).
    "CREATE INDEX IF NOT EXISTS history_owner ON history (owner, topic, utc_ns, seq)",
    "CREATE INDEX IF NOT EXISTS history_run ON history (run_id) WHERE run_id IS NOT NULL",
)

#: UPGRADES[n] migrates a version-n index to version n+1 inside the opening transaction.
#: Add an entry (and bump SCHEMA_VERSION) for every schema change; never edit _DDL alone.
UPGRADES: dict[int, Callable[[sqlite3.Connection], None]] = {}


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the index with the pragmas every connection needs.

    Connections are in autocommit mode; writes go through `transaction`. They may be used from
    a thread other than the creating one, but by one thread at a time.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA foreign_keys = ON")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                conn.close()
                raise StorageError(f"{path}: cannot switch the index to WAL mode (got {mode!r})")
            # FULL: a commit is durable when it returns, so the ≤1 s loss bound also holds for
            # power loss, not only for process crashes (DESIGN.md, Alternatives).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the index {path}: {exc}") from None
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (disk full) leaves the transaction open; end it either way.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def schema_version(conn: sqlite3.Connection) -> int:
    """The version of an existing index, 0 for an empty database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        raise StorageError("the index has an empty schema_version table")
    return int(row[0])


def initialize(conn: sqlite3.Connection) -> None:
    """Create the schema in an empty database, or upgrade an older one to SCHEMA_VERSION."""
    with transaction(conn):
        version = schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the index has schema version {version}, newer than this Custos understands "
                f"({SCHEMA_VERSION}); use a newer Custos"
            )
        if version == 0:
            for statement in _DDL:
                conn.execute(statement)
            conn.executemany(
                "INSERT INTO time_source (code, name) VALUES (?, ?)",
                [(code, source.value) for source, code in TIME_SOURCE_CODES.items()],
            )
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        else:
            for step in range(version, SCHEMA_VERSION):
                upgrade = UPGRADES.get(step)
                if upgrade is None:
                    raise StorageError(f"no upgrade from index schema version {step} to {step + 1}")
                upgrade(conn)
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        for statement in HISTORY_DDL:
            conn.execute(statement)


def require_current(conn: sqlite3.Connection) -> None:
    """For read-only users (reports): refuse an index that is not at SCHEMA_VERSION."""
    version = schema_version(conn)
    if version != SCHEMA_VERSION:
        raise StorageError(
            f"the index has schema version {version}, this Custos reads {SCHEMA_VERSION}"
            + ("; open it with the engine once to upgrade it" if version < SCHEMA_VERSION else "")
        )
