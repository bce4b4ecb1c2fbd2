"""Reading recorded media: track extents and slices, frame rows by time, frame bytes, params.

`StoreReader` wraps one read connection; it never writes. The async Store runs it on its read
threads; tools that work on a stopped store (export, reports) can use it directly through
`StoreReader.open(data_dir)`. In WAL mode a reader sees the last committed flush and never
waits for the writer.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.core.errors import NotFoundError, StorageError
from app.core.media import Codec, CodecParams, TrackKind
from app.engine.storage import catalog, history, jobs, layout, media, tokens
from app.engine.storage.model import (
    EvidenceLock,
    FrameRef,
    HistoryEvent,
    HistoryTopic,
    Job,
    Receiver,
    Recording,
    Slice,
    StoredFrame,
    TrackMedia,
    params_from_json,
)
from app.engine.storage.schema import TIME_SOURCES_BY_CODE, connect, require_current

#: Frame rows returned per page by `frames`; pages keep each read transaction short.
DEFAULT_PAGE = 256
MAX_PAGE = 10_000
#: Largest single read of consecutive frames (a lone larger frame is still read whole).
MAX_READ_BYTES = 16 * 1024 * 1024

_FRAME_COLUMNS = (
    "f.id, s.run_id, f.segment_id, f.file_offset, f.size, f.media_ts, f.wall_ns, f.keyframe, "
    "f.time_source"
)
_FRAME_FROM = "FROM frame f JOIN segment s ON s.id = f.segment_id"


def _frame(row: tuple[Any, ...]) -> FrameRef:
    fid, run_id, seg_id, offset, size, media_ts, wall_ns, key, source = row
    return FrameRef(
        fid,
        run_id,
        seg_id,
        offset,
        size,
        media_ts,
        wall_ns,
        bool(key),
        TIME_SOURCES_BY_CODE[source],
    )


class StoreReader:
    """Queries over one connection (use it from one thread at a time)."""

    def __init__(self, conn: sqlite3.Connection, data_dir: Path) -> None:
        self._conn = conn
        self._data_dir = data_dir

    @classmethod
    @contextlib.contextmanager
    def open(cls, data_dir: Path) -> Iterator[StoreReader]:
        """A reader on its own read-only connection, for tools outside the engine."""
        conn = connect(layout.require_data_dir(data_dir), readonly=True)
        try:
            require_current(conn)
            yield cls(conn, data_dir)
        finally:
            conn.close()

    # ---------------------------------------------------------------- catalog

    def recordings(self) -> list[Recording]:
        return catalog.list_recordings(self._conn)

    def recording(self, token: str) -> Recording:
        return catalog.get_recording(self._conn, token)

    def receivers(self) -> list[Receiver]:
        return jobs.list_receivers(self._conn)

    def receiver(self, token: str) -> Receiver:
        return jobs.get_receiver(self._conn, token)

    def jobs(self) -> list[Job]:
        return jobs.list_jobs(self._conn)

    def job(self, token: str) -> Job:
        return jobs.get_job(self._conn, token)

    def evidence_locks(self, recording: str | None = None) -> list[EvidenceLock]:
        where, args = self._of_recording(recording)
        sql = (
            "SELECT l.id, r.token, l.start_ns, l.end_ns, l.reason, l.created_ns "
            f"FROM evidence_lock l JOIN recording r ON r.id = l.recording_id{where} ORDER BY l.id"
        )
        return [EvidenceLock(*row) for row in self._conn.execute(sql, args)]

    def _of_recording(self, recording: str | None) -> tuple[str, tuple[object, ...]]:
        """A constant WHERE clause keeping one recording (aliased r), and its arguments."""
        if recording is None:
            return "", ()
        return " WHERE r.id = ?", (tokens.recording_id(self._conn, recording),)

    # ---------------------------------------------------------------- extents

    def track_media(self, recording: str | None = None) -> list[TrackMedia]:
        """Extent, counts and slices of every track (of one recording, or of all)."""
        where, args = self._of_recording(recording)
        sql = (
            "SELECT r.token, t.token, t.kind, t.id FROM track t JOIN recording r "
            f"ON r.id = t.recording_id{where} ORDER BY r.id, t.id"
        )
        tracks = self._conn.execute(sql, args).fetchall()
        return [self._track_media(rec, tok, TrackKind(kind), tid) for rec, tok, kind, tid in tracks]

    def _track_media(
        self, recording: str, track: str, kind: TrackKind, track_id: int
    ) -> TrackMedia:
        # One read transaction, so that slices and the codec describe the same moment.
        with _snapshot(self._conn):
            rows = self._conn.execute(
                "SELECT run_id, seq, start_ns, end_ns, frame_count, length FROM segment "
                "WHERE track_id = ? AND frame_count > 0 ORDER BY run_id, seq",
                (track_id,),
            ).fetchall()
            codec_row = self._conn.execute(
                "SELECT p.json FROM run r JOIN codec_params p ON p.id = r.params_id "
                "WHERE r.track_id = ? ORDER BY r.id DESC LIMIT 1",
                (track_id,),
            ).fetchone()
        slices: list[Slice] = []
        prev: tuple[int, int] | None = None
        for run_id, seq, start, end, count, _length in rows:
            if prev == (run_id, seq - 1):  # the next segment of the same run: no interruption
                last = slices[-1]
                slices[-1] = Slice(run_id, last.start_ns, end, last.frame_count + count)
            else:
                slices.append(Slice(run_id, start, end, count))
            prev = (run_id, seq)
        slices.sort(key=lambda s: (s.start_ns, s.run_id))
        codec: Codec | None = None
        if codec_row is not None and slices:
            codec = params_from_json(codec_row[0]).codec
        return TrackMedia(
            recording,
            track,
            kind,
            codec,
            min((s.start_ns for s in slices), default=None),
            max((s.end_ns for s in slices), default=None),
            sum(s.frame_count for s in slices),
            sum(r[5] - layout.HEADER_SIZE for r in rows),
            tuple(slices),
        )

    # ---------------------------------------------------------------- frames

    def _track_id(self, recording: str, track: str) -> int:
        return tokens.track_row(self._conn, recording, track)[1]

    def frames(
        self,
        recording: str,
        track: str,
        start_ns: int,
        end_ns: int,
        *,
        after: FrameRef | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> list[FrameRef]:
        """Frames with start_ns ≤ wall_ns < end_ns in (wall_ns, id) order, after `after`."""
        rows = self._frame_rows(recording, track, start_ns, end_ns, after, limit)
        return [_frame(row) for row in rows]

    def _frame_rows(
        self,
        recording: str,
        track: str,
        start_ns: int,
        end_ns: int,
        after: FrameRef | None,
        limit: int = DEFAULT_PAGE,
        max_bytes: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Index rows of `frames`; with `max_bytes`, cut before the frame that would exceed it
        (the first row is always kept)."""
        limit = max(1, min(limit, MAX_PAGE))
        after_key = (after.wall_ns, after.id) if after is not None else (start_ns, -1)
        # The lower bound on wall_ns is what the index seeks to; the row-value comparison alone
        # would make every page scan from `start_ns` again.
        cursor = self._conn.execute(
            f"SELECT {_FRAME_COLUMNS} {_FRAME_FROM} WHERE f.track_id = ? AND f.wall_ns >= ? "
            "AND f.wall_ns < ? AND (f.wall_ns, f.id) > (?, ?) ORDER BY f.wall_ns, f.id LIMIT ?",
            (
                self._track_id(recording, track),
                max(start_ns, after_key[0]),
                end_ns,
                *after_key,
                limit,
            ),
        )
        if max_bytes is None:
            return cursor.fetchall()
        rows: list[tuple[Any, ...]] = []
        total = 0
        for row in cursor:
            total += row[4]
            if total > max_bytes and rows:
                break
            rows.append(row)
        cursor.close()
        return rows

    def frame(self, frame_id: int) -> FrameRef:
        row = self._conn.execute(
            f"SELECT {_FRAME_COLUMNS} {_FRAME_FROM} WHERE f.id = ?", (frame_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no frame {frame_id} (deleted by retention?)")
        return _frame(row)

    def keyframe_at_or_before(self, recording: str, track: str, wall_ns: int) -> FrameRef | None:
        """The newest keyframe with wall_ns ≤ the given time (where decoding can start)."""
        row = self._conn.execute(
            f"SELECT {_FRAME_COLUMNS} {_FRAME_FROM} WHERE f.track_id = ? AND f.keyframe = 1 "
            "AND f.wall_ns <= ? ORDER BY f.wall_ns DESC, f.id DESC LIMIT 1",
            (self._track_id(recording, track), wall_ns),
        ).fetchone()
        return _frame(row) if row is not None else None

    def first_frame(self, recording: str, track: str) -> FrameRef | None:
        return self._edge_frame(recording, track, "ASC")

    def last_frame(self, recording: str, track: str) -> FrameRef | None:
        return self._edge_frame(recording, track, "DESC")

    def _edge_frame(self, recording: str, track: str, order: str) -> FrameRef | None:
        row = self._conn.execute(
            f"SELECT {_FRAME_COLUMNS} {_FRAME_FROM} WHERE f.track_id = ? "
            f"ORDER BY f.wall_ns {order}, f.id {order} LIMIT 1",
            (self._track_id(recording, track),),
        ).fetchone()
        return _frame(row) if row is not None else None

    def params_for_frame(self, ref: FrameRef) -> CodecParams:
        """The codec parameters in force at this frame (the latest change at or before it)."""
        row = self._conn.execute(
            "SELECT p.json FROM param_change c JOIN codec_params p ON p.id = c.params_id "
            "WHERE c.run_id = ? AND c.frame_id <= ? ORDER BY c.frame_id DESC LIMIT 1",
            (ref.run_id, ref.id),
        ).fetchone()
        if row is None:
            row = self._conn.execute(
                "SELECT p.json FROM run r JOIN codec_params p ON p.id = r.params_id WHERE r.id = ?",
                (ref.run_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no run {ref.run_id} (deleted by retention?)")
        return params_from_json(row[0])

    # ---------------------------------------------------------------- history

    def _track_tokens(self, rec_id: int) -> dict[int, str]:
        return dict(
            self._conn.execute("SELECT id, token FROM track WHERE recording_id = ?", (rec_id,))
        )

    def history_page(
        self,
        recording: str,
        low_ns: int,
        high_ns: int,
        *,
        after: tuple[int, int, int] | None = None,
        descending: bool = False,
        topics: tuple[HistoryTopic, ...] = tuple(HistoryTopic),
        limit: int = DEFAULT_PAGE,
    ) -> list[HistoryEvent]:
        """Recording history events with low_ns ≤ utc_ns ≤ high_ns, after the keyset `after`
        (a previous event's `key`), in time order or its reverse (history.py)."""
        rec_id = tokens.recording_id(self._conn, recording)
        rows = history.page(
            self._conn,
            rec_id,
            low_ns,
            high_ns,
            after=after,
            descending=descending,
            topics=topics,
            limit=limit,
        )
        return history.events(self._conn, recording, self._track_tokens(rec_id), rows)

    def history_state(
        self, recording: str, at_ns: int, *, inclusive: bool = False
    ) -> tuple[bool, dict[str, bool]]:
        """IsRecording and each track's IsDataPresent at an instant: before the events at
        `at_ns`, or after them when `inclusive` (virtual start-state events, EV-20/21)."""
        rec_id = tokens.recording_id(self._conn, recording)
        is_recording = history.state_at(
            self._conn, -rec_id, HistoryTopic.RECORDING_STATE, at_ns, inclusive=inclusive
        )
        tracks = {
            token: history.state_at(
                self._conn, track_id, HistoryTopic.TRACK_STATE, at_ns, inclusive=inclusive
            )
            for track_id, token in self._track_tokens(rec_id).items()
        }
        return is_recording, tracks

    # ---------------------------------------------------------------- bytes

    def read_data(self, refs: list[FrameRef]) -> list[bytes]:
        """The stored bytes of each frame, exactly as appended.

        Frames that follow each other in one segment file (the usual case: segments are
        append-only) are read with one `pread` per run, up to MAX_READ_BYTES at a time.
        """
        if not refs:
            return []
        seg_ids = sorted({r.segment_id for r in refs})
        marks = ",".join("?" * len(seg_ids))
        paths = dict(
            self._conn.execute(
                f"SELECT s.id, {media.segment_path_sql()} FROM segment s JOIN track t "
                f"ON t.id = s.track_id WHERE s.id IN ({marks})",
                seg_ids,
            ).fetchall()
        )
        out: list[bytes] = []
        fds: dict[int, int] = {}
        try:
            for first, stop in _contiguous_runs(refs):
                ref = refs[first]
                fd = fds.get(ref.segment_id)
                if fd is None:
                    fd = fds[ref.segment_id] = self._open_segment(ref, paths.get(ref.segment_id))
                last = refs[stop - 1]
                span = last.offset + last.size - ref.offset
                data = os.pread(fd, span, ref.offset)
                if len(data) != span:
                    cut = next(
                        r for r in refs[first:stop] if r.offset + r.size > ref.offset + len(data)
                    )
                    raise StorageError(
                        f"segment {paths[ref.segment_id]} ends inside frame {cut.id} "
                        f"({max(0, ref.offset + len(data) - cut.offset)} of {cut.size} bytes); "
                        "run `custos check`"
                    )
                if stop - first == 1:
                    out.append(data)
                else:
                    base = ref.offset
                    out.extend(
                        data[r.offset - base : r.offset - base + r.size] for r in refs[first:stop]
                    )
        finally:
            for fd in fds.values():
                os.close(fd)
        return out

    def _open_segment(self, ref: FrameRef, relpath: str | None) -> int:
        if relpath is None:
            raise NotFoundError(f"frame {ref.id} is gone (deleted by retention?)")
        try:
            return os.open(self._data_dir / relpath, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"segment file {relpath} is gone (deleted by retention?)") from None

    def frames_with_data(
        self,
        recording: str,
        track: str,
        start_ns: int,
        end_ns: int,
        *,
        after: FrameRef | None = None,
        limit: int = DEFAULT_PAGE,
        max_bytes: int | None = None,
    ) -> list[StoredFrame]:
        """As `frames`, with the bytes; `max_bytes` ends the page before the frame that would
        take its data past that size (a page holds at least one frame; empty = no more)."""
        rows = self._frame_rows(recording, track, start_ns, end_ns, after, limit, max_bytes)
        refs = [_frame(row) for row in rows]
        return [StoredFrame(r, d) for r, d in zip(refs, self.read_data(refs), strict=True)]


def _contiguous_runs(refs: list[FrameRef]) -> Iterator[tuple[int, int]]:
    """[first, stop) index ranges of `refs` whose bytes follow each other in one segment."""
    first = 0
    size = refs[0].size
    for i in range(1, len(refs)):
        prev, ref = refs[i - 1], refs[i]
        if (
            ref.segment_id != prev.segment_id
            or ref.offset != prev.offset + prev.size
            or size + ref.size > MAX_READ_BYTES
        ):
            yield first, i
            first, size = i, 0
        size += ref.size
    yield first, len(refs)


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")
