"""Removing media: segment rows go to the garbage table in a transaction, files follow after.

Order matters (DESIGN.md invariant 4): a file is unlinked only after the commit that moved its
path to `garbage`, and the garbage row is deleted only after the unlink is durable. A crash in
between leaves a garbage row, which the next open finishes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from app.engine.storage import layout
from app.engine.storage.schema import transaction

log = logging.getLogger(__name__)

#: Segment rows discarded per statement (SQLite's host-parameter limit is 32766 here).
_CHUNK = 500


def segment_path_sql(alias: str = "s") -> str:
    """SQL expression giving a segment's relative path (needs `track t` joined on the segment)."""
    return (
        f"'{layout.MEDIA_DIR}/' || t.recording_id || '/' || {alias}.track_id || '/' || "
        f"{alias}.run_id || '-' || {alias}.seq || '{layout.SEGMENT_SUFFIX}'"
    )


def discard_segments(conn: sqlite3.Connection, segment_ids: Iterable[int]) -> None:
    """Inside a transaction: drop segments with their frames, queue their files as garbage.

    Runs left without segments are dropped too unless a writer still has them open.
    """
    ids = list(segment_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"INSERT OR IGNORE INTO garbage (path) SELECT {segment_path_sql()} "
            f"FROM segment s JOIN track t ON t.id = s.track_id WHERE s.id IN ({marks})",
            chunk,
        )
        conn.execute(f"DELETE FROM frame WHERE segment_id IN ({marks})", chunk)
        conn.execute(f"DELETE FROM segment WHERE id IN ({marks})", chunk)
    drop_empty_runs(conn)


def drop_empty_runs(conn: sqlite3.Connection) -> None:
    """Delete closed runs that no longer have a segment, with their parameter-change rows."""
    empty = (
        "SELECT id FROM run r WHERE open = 0 "
        "AND NOT EXISTS (SELECT 1 FROM segment s WHERE s.run_id = r.id)"
    )
    conn.execute(f"DELETE FROM param_change WHERE run_id IN ({empty})")
    conn.execute(f"DELETE FROM run WHERE id IN ({empty})")


def collect_garbage(conn: sqlite3.Connection, data_dir: Path) -> list[str]:
    """Unlink every file listed in `garbage`, then forget them; returns the paths removed."""
    paths = [row[0] for row in conn.execute("SELECT path FROM garbage ORDER BY path")]
    if not paths:
        return []
    dirs: set[Path] = set()
    removed = []
    for rel in paths:
        path = data_dir / rel
        if layout.unlink_if_present(path):
            removed.append(rel)
        dirs.add(path.parent)
    for directory in dirs:
        if directory.is_dir():
            layout.fsync_dir(directory)
    with transaction(conn):
        conn.executemany("DELETE FROM garbage WHERE path = ?", [(p,) for p in paths])
    _prune_empty_dirs(data_dir, dirs)
    return removed


def _prune_empty_dirs(data_dir: Path, dirs: set[Path]) -> None:
    """Remove track and recording directories left empty (their ids are never reused)."""
    media = data_dir / layout.MEDIA_DIR
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        current = directory
        while current != media and current.is_relative_to(media):
            try:
                current.rmdir()
            except OSError:
                break  # not empty (or gone): the parents are not empty either
            current = current.parent
