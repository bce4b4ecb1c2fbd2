"""Retention: MaximumRetentionTime per recording, a global disk budget, evidence locks.

Deletion is by whole sealed segment, oldest first (by the wall clock of its first frame), and
never touches a segment that overlaps an evidence lock of its recording or one still being
written. Locked data still counts against the budget, so a budget smaller than the locked
data cannot be met; the sweep then deletes all it may and says so.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from app.core.errors import ConfigError, NotFoundError
from app.engine.storage import history, layout, media, tokens
from app.engine.storage.model import DeletedSegment, EvidenceLock
from app.engine.storage.schema import transaction

log = logging.getLogger(__name__)

MAX_LOCK_REASON_CHARS = 1024
REASON_AGE = "max-retention"
REASON_BUDGET = "disk-budget"
#: Segment ids per IN (...) list, well under SQLite's bound-parameter limit.
_CHUNK = 500

_LOCKED = (
    "EXISTS (SELECT 1 FROM evidence_lock l WHERE l.recording_id = t.recording_id "
    "AND l.start_ns <= s.end_ns AND l.end_ns >= s.start_ns)"
)
_CANDIDATE = (
    "SELECT s.id, r.token, t.token, s.start_ns, s.end_ns, s.frame_count, s.length "
    "FROM segment s JOIN track t ON t.id = s.track_id JOIN recording r ON r.id = t.recording_id "
    f"WHERE s.sealed = 1 AND NOT {_LOCKED}"
)


def sweep(
    conn: sqlite3.Connection, data_dir: Path, now_ns: int, budget_bytes: int
) -> list[DeletedSegment]:
    """Delete what retention requires; returns the deleted segments, oldest first."""
    doomed: dict[int, DeletedSegment] = {}
    for row in conn.execute(
        f"{_CANDIDATE} AND r.max_retention_ns > 0 AND s.end_ns < ? - r.max_retention_ns "
        "ORDER BY s.start_ns, s.id",
        (now_ns,),
    ):
        doomed[row[0]] = _deleted(row, REASON_AGE)
    if budget_bytes > 0:
        total = conn.execute("SELECT COALESCE(SUM(length), 0) FROM segment").fetchone()[0]
        total -= sum(d.bytes + layout.HEADER_SIZE for d in doomed.values())
        if total > budget_bytes:
            cursor = conn.execute(f"{_CANDIDATE} ORDER BY s.start_ns, s.id")
            for row in cursor:
                if total <= budget_bytes:
                    break
                if row[0] not in doomed:
                    doomed[row[0]] = _deleted(row, REASON_BUDGET)
                    total -= row[6]
            cursor.close()  # finish the statement before the deleting transaction
            if total > budget_bytes:
                log.warning(
                    "disk budget of %d bytes cannot be met: %d bytes remain in segments that "
                    "are evidence-locked or still being written",
                    budget_bytes,
                    total,
                )
    if not doomed:
        return []
    track_ids: set[int] = set()
    ids = list(doomed)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        track_ids.update(
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT track_id FROM segment WHERE id IN ({marks})", chunk
            )
        )
    with transaction(conn):
        media.discard_segments(conn, doomed)
        # EV-16: history older than the remaining data goes in the same transaction.
        history.prune(conn, track_ids)
    media.collect_garbage(conn, data_dir)
    deleted = sorted(doomed.values(), key=lambda d: (d.start_ns, d.recording, d.track))
    log.info(
        "retention deleted %d segments (%d bytes)", len(deleted), sum(d.bytes for d in deleted)
    )
    return deleted


def _deleted(row: tuple[int, str, str, int, int, int, int], reason: str) -> DeletedSegment:
    _id, recording, track, start, end, frames, length = row
    return DeletedSegment(recording, track, start, end, frames, length - layout.HEADER_SIZE, reason)


def add_lock(
    conn: sqlite3.Connection,
    recording: str,
    start_ns: int,
    end_ns: int,
    reason: str,
    now_ns: int,
) -> EvidenceLock:
    """Protect [start_ns, end_ns] of a recording from retention until the lock is removed."""
    if end_ns < start_ns:
        raise ConfigError(f"evidence lock ends ({end_ns}) before it starts ({start_ns})")
    if len(reason) > MAX_LOCK_REASON_CHARS:
        raise ConfigError(
            f"lock reason of {len(reason)} characters exceeds {MAX_LOCK_REASON_CHARS}"
        )
    with transaction(conn):
        rec_id = tokens.recording_id(conn, recording)
        cur = conn.execute(
            "INSERT INTO evidence_lock (recording_id, start_ns, end_ns, reason, created_ns) "
            "VALUES (?, ?, ?, ?, ?)",
            (rec_id, start_ns, end_ns, reason, now_ns),
        )
    assert cur.lastrowid is not None
    return EvidenceLock(cur.lastrowid, recording, start_ns, end_ns, reason, now_ns)


def remove_lock(conn: sqlite3.Connection, lock_id: int) -> None:
    with transaction(conn):
        cur = conn.execute("DELETE FROM evidence_lock WHERE id = ?", (lock_id,))
        if cur.rowcount == 0:
            raise NotFoundError(f"no evidence lock {lock_id}")
