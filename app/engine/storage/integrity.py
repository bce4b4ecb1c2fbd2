"""Verify the index against the segment files (fsck), repair, and recover after a crash.

Recovery on open and `check(repair=True)` share one procedure per segment (DESIGN.md,
"Crash recovery" and "Check"): rows whose bytes are missing are dropped, bytes no row points to
are truncated, segments without frames disappear, the segment's summary is recomputed.
Problems that no crash can cause (overlapping rows, a wall clock running backwards within a run,
a foreign header, a checksum mismatch) are reported and never "repaired": that would destroy
evidence of what happened.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from app.core.errors import ConflictError
from app.engine.storage import layout, media
from app.engine.storage.schema import connect, require_current, transaction

log = logging.getLogger(__name__)

#: Segments verified per batch (keeps memory flat on stores with millions of segments).
_BATCH = 1000
RECOVERED_REASON = "unclean shutdown: run ended at its last durable frame"

# Problem kinds; the first group is repairable.
MISSING_FILE = "missing-file"
SHORT_FILE = "short-file"
TRAILING_BYTES = "trailing-bytes"
EMPTY_SEGMENT = "empty-segment"
SEGMENT_SUMMARY = "segment-summary"
ORPHAN_FILE = "orphan-file"
OPEN_RUN = "open-run"
EMPTY_RUN = "empty-run"
PENDING_DELETE = "pending-delete"
OVERLAP = "overlap"
UNINDEXED_BYTES = "unindexed-bytes"
WALL_CLOCK_ORDER = "wall-clock-order"
BAD_HEADER = "bad-header"
CHECKSUM = "checksum"
INDEX_CORRUPT = "index-corrupt"


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One inconsistency; `repaired` tells whether this run of check/recovery fixed it."""

    kind: str
    detail: str
    path: str | None = None
    segment_id: int | None = None
    #: Index rows concerned (dropped when repaired).
    frames: int = 0
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(slots=True)
class CheckReport:
    """Result of `check`, JSON-able via to_json() for `custos check --json`."""

    data_dir: str
    #: The store was open in another process: in-flight data was not judged, nothing repaired.
    live: bool
    repair: bool
    deep: bool
    #: The last owner did not close the store (a crash): open runs and unindexed tails are
    #: expected and are what the engine's recovery (or repair) puts right.
    unclean_shutdown: bool = False
    recordings: int = 0
    tracks: int = 0
    runs: int = 0
    segments: int = 0
    frames: int = 0
    bytes: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The store was consistent as found: no problem at all."""
        return not self.problems

    @property
    def repaired_ok(self) -> bool:
        """Nothing is left wrong: every problem found was repaired (or there was none)."""
        return all(p.repaired for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["problems"] = [p.to_json() for p in self.problems]
        doc["ok"] = self.ok
        doc["repaired_ok"] = self.repaired_ok
        return doc

    def to_text(self) -> str:
        """A human-readable summary, one line per problem."""
        mode = (
            "live (store in use, read-only)"
            if self.live
            else ("repair" if self.repair else "check")
        )
        lines = [
            f"{self.data_dir}: {mode}{', deep' if self.deep else ''}: "
            f"{self.recordings} recordings, {self.tracks} tracks, {self.runs} runs, "
            f"{self.segments} segments, {self.frames} frames, {self.bytes} bytes"
        ]
        for p in self.problems:
            where = f" {p.path}" if p.path else ""
            state = " [repaired]" if p.repaired else ""
            lines.append(f"  {p.kind}{where}: {p.detail}{state}")
        if self.unclean_shutdown and not self.repair:
            lines.append(
                "  (the store was not closed cleanly: opening it in the engine, or --repair, "
                "recovers what a crash leaves)"
            )
        if self.ok:
            lines.append("no problems found")
        elif self.repaired_ok:
            lines.append(f"{len(self.problems)} problems found, all repaired")
        else:
            left = sum(not p.repaired for p in self.problems)
            lines.append(f"{len(self.problems)} problems found, {left} not repaired")
        return "\n".join(lines)


@dataclasses.dataclass(slots=True)
class _Segment:
    id: int
    run_id: int
    seq: int
    sealed: bool
    length: int
    frame_count: int
    start_ns: int | None
    end_ns: int | None
    relpath: str


@dataclasses.dataclass(slots=True)
class _Fix:
    """What repairing one segment takes."""

    drop_frames: list[int] = dataclasses.field(default_factory=list)
    delete_segment: bool = False
    truncate_to: int | None = None
    summary: tuple[int, int, int | None, int | None] | None = None


_SEGMENT_SELECT = (
    "SELECT s.id, s.run_id, s.seq, s.sealed, s.length, s.frame_count, s.start_ns, s.end_ns, "
    f"{media.segment_path_sql()} FROM segment s JOIN track t ON t.id = s.track_id"
)


def _segment(row: tuple[Any, ...]) -> _Segment:
    return _Segment(row[0], row[1], row[2], bool(row[3]), *row[4:9])


def _verify_segment(
    conn: sqlite3.Connection,
    data_dir: Path,
    seg: _Segment,
    *,
    prev_wall: int | None,
    live: bool = False,
    deep: bool = False,
) -> tuple[list[Problem], _Fix, int | None]:
    """Problems of one segment, the fix for them, and its last wall_ns (for the run order)."""
    frames = conn.execute(
        "SELECT id, file_offset, size, wall_ns, crc32 FROM frame WHERE segment_id = ? ORDER BY id",
        (seg.id,),
    ).fetchall()
    problems: list[Problem] = []
    fix = _Fix()

    def report(kind: str, detail: str, count: int = 0) -> None:
        problems.append(Problem(kind, detail, seg.relpath, seg.id, count))

    path = data_dir / seg.relpath
    try:
        file_size = path.stat().st_size
    except FileNotFoundError:
        fix.delete_segment = True
        if frames:
            report(
                MISSING_FILE, f"file missing; {len(frames)} index rows point into it", len(frames)
            )
        else:
            report(EMPTY_SEGMENT, "segment without frames or file")
        return problems, fix, prev_wall
    kept: list[tuple[Any, ...]] = []
    indexed_end = layout.HEADER_SIZE
    overlaps = unindexed = 0
    for row in frames:
        _fid, offset, size, _wall, _crc = row
        if offset + size > file_size:
            fix.drop_frames.append(row[0])
            continue
        if offset < indexed_end:
            overlaps += 1
        elif offset > indexed_end:
            unindexed += offset - indexed_end
        indexed_end = max(indexed_end, offset + size)
        kept.append(row)
    if fix.drop_frames:
        report(
            SHORT_FILE,
            f"file is {file_size} bytes; {len(fix.drop_frames)} index rows point past its end",
            len(fix.drop_frames),
        )
    if not kept:
        fix.delete_segment = True
        if not frames:
            report(EMPTY_SEGMENT, "segment without frames")
        return problems, fix, prev_wall
    with path.open("rb") as f:
        header_issue = layout.header_problem(f.read(layout.HEADER_SIZE), seg.id)
        if header_issue:
            report(BAD_HEADER, header_issue)
        if deep:
            fd = f.fileno()
            bad = sum(zlib.crc32(os.pread(fd, r[2], r[1])) != r[4] for r in kept)
            if bad:
                report(CHECKSUM, f"{bad} frames do not match their CRC-32", bad)
    if overlaps:
        report(OVERLAP, f"{overlaps} frames overlap the previous frame or the header", overlaps)
    if unindexed:
        report(UNINDEXED_BYTES, f"{unindexed} bytes between frames belong to no frame")
    backwards = 0
    for row in kept:
        if prev_wall is not None and row[3] < prev_wall:
            backwards += 1
        prev_wall = row[3]
    if backwards:
        report(WALL_CLOCK_ORDER, f"wall clock steps back {backwards} times within run {seg.run_id}")
    in_flight = live and not seg.sealed
    if file_size > indexed_end and not in_flight:
        fix.truncate_to = indexed_end
        report(TRAILING_BYTES, f"{file_size - indexed_end} bytes after the last indexed frame")
    summary = (indexed_end, len(kept), kept[0][3], kept[-1][3])
    if summary != (seg.length, seg.frame_count, seg.start_ns, seg.end_ns):
        fix.summary = summary
        if not fix.drop_frames:  # dropped rows already explain the difference
            report(
                SEGMENT_SUMMARY,
                f"segment row says {seg.frame_count} frames / {seg.length} "
                f"bytes, the frames say {len(kept)} / {indexed_end}",
            )
    return problems, fix, prev_wall


def _apply(conn: sqlite3.Connection, data_dir: Path, seg: _Segment, fix: _Fix, seal: bool) -> None:
    """Carry out a fix: the file shrinks first, then the index changes.

    In this order no remaining row ever points past the file, and a segment is never sealed
    with a tail that only recovery of unsealed segments would have removed.
    """
    if fix.truncate_to is not None and not fix.delete_segment:
        layout.truncate_durably(data_dir / seg.relpath, fix.truncate_to)
    with transaction(conn):
        if fix.delete_segment:
            media.discard_segments(conn, [seg.id])
        else:
            conn.executemany("DELETE FROM frame WHERE id = ?", [(f,) for f in fix.drop_frames])
            if fix.summary is not None:
                conn.execute(
                    "UPDATE segment SET length = ?, frame_count = ?, start_ns = ?, end_ns = ? "
                    "WHERE id = ?",
                    (*fix.summary, seg.id),
                )
            if seal:
                conn.execute("UPDATE segment SET sealed = 1 WHERE id = ?", (seg.id,))


def _repaired(problems: list[Problem], fix: _Fix) -> list[Problem]:
    fixed = {MISSING_FILE, SHORT_FILE, TRAILING_BYTES, EMPTY_SEGMENT, SEGMENT_SUMMARY}
    if fix.delete_segment:
        fixed.add(BAD_HEADER)  # the file went with its segment
    return [dataclasses.replace(p, repaired=p.kind in fixed) for p in problems]


def settle_segment(
    conn: sqlite3.Connection, data_dir: Path, segment_id: int, relpath: str | None = None
) -> list[Problem]:
    """Bring one unsealed segment to its last durable frame and seal it (or remove it).

    `relpath` names the file to remove when the row itself was rolled back.
    """
    row = conn.execute(f"{_SEGMENT_SELECT} WHERE s.id = ?", (segment_id,)).fetchone()
    if row is None:
        if relpath is not None and layout.unlink_if_present(data_dir / relpath):
            layout.fsync_dir((data_dir / relpath).parent)
        return []
    seg = _segment(row)
    problems, fix, _ = _verify_segment(conn, data_dir, seg, prev_wall=None)
    _apply(conn, data_dir, seg, fix, seal=True)
    return _repaired(problems, fix)


def _close_open_runs(conn: sqlite3.Connection) -> int:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE run SET open = 0, end_reason = ? WHERE open = 1", (RECOVERED_REASON,)
        )
        media.drop_empty_runs(conn)
    return cur.rowcount


def recover(conn: sqlite3.Connection, data_dir: Path) -> list[Problem]:
    """What a crash can leave behind, put right; runs on open before anything else writes."""
    problems: list[Problem] = []
    pending = conn.execute("SELECT COUNT(*) FROM garbage").fetchone()[0]
    if pending:
        media.collect_garbage(conn, data_dir)
        problems.append(
            Problem(PENDING_DELETE, f"finished {pending} file deletions", repaired=True)
        )
    unsealed = [r[0] for r in conn.execute("SELECT id FROM segment WHERE sealed = 0 ORDER BY id")]
    for segment_id in unsealed:
        problems.extend(settle_segment(conn, data_dir, segment_id))
    closed = _close_open_runs(conn)
    if closed:
        problems.append(Problem(OPEN_RUN, f"closed {closed} runs left open", repaired=True))
    media.collect_garbage(conn, data_dir)
    for p in problems:
        log.warning("recovery: %s %s: %s", p.kind, p.path or "", p.detail)
    return problems


def check(data_dir: Path, repair: bool = False, *, deep: bool = False) -> CheckReport:
    """Verify every index row against its segment file; optionally repair (see module doc).

    While an engine holds the store, the check runs read-only ('live') and ignores data still
    being written; repair then refuses (ConflictError), since two writers would race.
    `deep` also reads every frame and compares its CRC-32.
    """
    db = layout.require_data_dir(data_dir)
    lock = layout.DirLock(data_dir)
    live = unclean = False
    try:
        unclean = lock.acquire()
    except ConflictError as exc:
        if repair:
            raise ConflictError(f"{exc.message}; stop it before repairing") from None
        live = True
    try:
        conn = connect(db, readonly=live)
        try:
            require_current(conn)
            report = CheckReport(str(data_dir), live, repair, deep, unclean)
            _check_all(conn, data_dir, report, repair and not live)
        finally:
            conn.close()
    finally:
        lock.release()
    return report


def _check_all(conn: sqlite3.Connection, data_dir: Path, report: CheckReport, repair: bool) -> None:
    integrity = conn.execute("PRAGMA quick_check").fetchall()
    if integrity != [("ok",)]:
        report.problems.append(Problem(INDEX_CORRUPT, "; ".join(str(r[0]) for r in integrity[:10])))
    pending = conn.execute("SELECT COUNT(*) FROM garbage").fetchone()[0]
    if pending:
        report.problems.append(
            Problem(
                PENDING_DELETE, f"{pending} deleted segment files not yet removed", repaired=repair
            )
        )
        if repair:
            media.collect_garbage(conn, data_dir)
    _check_segments(conn, data_dir, report, repair)
    if not report.live:
        open_runs = conn.execute("SELECT COUNT(*) FROM run WHERE open = 1").fetchone()[0]
        empty_runs = conn.execute(
            "SELECT COUNT(*) FROM run r WHERE open = 0 AND NOT EXISTS "
            "(SELECT 1 FROM segment s WHERE s.run_id = r.id)"
        ).fetchone()[0]
        if open_runs:
            report.problems.append(
                Problem(OPEN_RUN, f"{open_runs} runs open with no writer", repaired=repair)
            )
        if empty_runs:
            report.problems.append(
                Problem(EMPTY_RUN, f"{empty_runs} runs without segments", repaired=repair)
            )
        if repair and (open_runs or empty_runs):
            _close_open_runs(conn)
    _check_orphans(conn, data_dir, report, repair)
    if repair:
        media.collect_garbage(conn, data_dir)
    for table, attr in (("recording", "recordings"), ("track", "tracks"), ("run", "runs")):
        setattr(report, attr, conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _check_segments(
    conn: sqlite3.Connection, data_dir: Path, report: CheckReport, repair: bool
) -> None:
    last = (0, 0)
    prev_run, prev_wall = None, None
    while True:
        if report.live:
            conn.execute("BEGIN")  # one snapshot per batch: rows and summaries agree
        rows = conn.execute(
            f"{_SEGMENT_SELECT} WHERE (s.run_id, s.seq) > (?, ?) ORDER BY s.run_id, s.seq LIMIT ?",
            (*last, _BATCH),
        ).fetchall()
        results = []
        for row in rows:
            seg = _segment(row)
            if seg.run_id != prev_run:
                prev_run, prev_wall = seg.run_id, None
            problems, fix, prev_wall = _verify_segment(
                conn, data_dir, seg, prev_wall=prev_wall, live=report.live, deep=report.deep
            )
            results.append((seg, problems, fix))
        if report.live:
            conn.execute("COMMIT")
        for seg, problems, fix in results:
            if report.live and problems and not _segment_exists(conn, seg.id):
                continue  # retention deleted it while we looked
            if repair and problems:
                _apply(conn, data_dir, seg, fix, seal=seg.sealed)
                problems = _repaired(problems, fix)
            report.problems.extend(problems)
            if not fix.delete_segment:
                length, count = (seg.length, seg.frame_count)
                if fix.summary is not None:
                    length, count = fix.summary[0], fix.summary[1]
                report.segments += 1
                report.frames += count
                report.bytes += length
        if len(rows) < _BATCH:
            return
        last = (rows[-1][1], rows[-1][2])


def _segment_exists(conn: sqlite3.Connection, segment_id: int) -> bool:
    return conn.execute("SELECT 1 FROM segment WHERE id = ?", (segment_id,)).fetchone() is not None


def _check_orphans(
    conn: sqlite3.Connection, data_dir: Path, report: CheckReport, repair: bool
) -> None:
    """Every file under media/ must belong to a segment row (or be queued for deletion)."""
    media_dir = data_dir / layout.MEDIA_DIR
    for dirpath, _dirnames, filenames in os.walk(media_dir):
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(data_dir).as_posix()
            if _is_known(conn, rel) or (report.live and not path.exists()):
                continue  # (live: retention removed it while we looked)
            report.problems.append(
                Problem(ORPHAN_FILE, "file belongs to no segment", rel, repaired=repair)
            )
            if repair:
                path.unlink()
                layout.fsync_dir(path.parent)


def _is_known(conn: sqlite3.Connection, rel: str) -> bool:
    parsed = layout.parse_segment_relpath(rel)
    if parsed is not None:
        rec_id, track_id, run_id, seq = parsed
        if conn.execute(
            "SELECT 1 FROM segment s JOIN track t ON t.id = s.track_id WHERE s.run_id = ? "
            "AND s.seq = ? AND s.track_id = ? AND t.recording_id = ?",
            (run_id, seq, track_id, rec_id),
        ).fetchone():
            return True
    return conn.execute("SELECT 1 FROM garbage WHERE path = ?", (rel,)).fetchone() is not None
