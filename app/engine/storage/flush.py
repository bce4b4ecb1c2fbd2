"""The write thread's half of recording: buffered access units → segment bytes → index rows.

One flush cycle handles every writer's batch together (DESIGN.md, "Write"):

1. plan: walk the batches; rows for new runs, segments and codec parameters are inserted in a
   first transaction (a segment row always exists before its file);
2. files: create new segment files, append the bytes, fdatasync each file, fsync new names;
3. index: insert the frame rows and update segments and runs in a second transaction.

An index row is therefore committed only after its bytes are durable. Any failure ends the
affected runs at their last durable frame; nothing half-written stays indexed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import zlib
from pathlib import Path

from app.core.media import AccessUnit, CodecParams, TrackKind
from app.core.time import Clock
from app.engine.storage import integrity, layout, media
from app.engine.storage.model import RecordingStatus, StoreOptions, params_to_json
from app.engine.storage.schema import TIME_SOURCE_CODES, transaction

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class FrameOp:
    unit: AccessUnit
    params: CodecParams


@dataclasses.dataclass(frozen=True, slots=True)
class EndRunOp:
    #: None for an orderly end (writer closed, source stopped cleanly).
    reason: str | None


Op = FrameOp | EndRunOp


@dataclasses.dataclass(slots=True)
class FlushOutcome:
    """What one cycle did for one writer; applied to its stats on the loop thread."""

    frames_written: int = 0
    bytes_written: int = 0
    runs_started: int = 0
    #: Video frames before the first keyframe of a run (undecodable on their own).
    frames_skipped: int = 0
    frames_failed: int = 0
    error: str | None = None
    #: The writer's run was ended by an error; its next frame must start a new run.
    run_broken: bool = False


@dataclasses.dataclass(slots=True)
class _Segment:
    id: int
    relpath: str
    fd: int | None = None
    #: Values including this cycle's planned frames (committed at the end of the cycle).
    length: int = layout.HEADER_SIZE
    frames: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    sealed: bool = False
    chunks: list[bytes] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class _TrackState:
    recording_id: int
    track_id: int
    kind: TrackKind
    run_id: int | None = None
    params: CodecParams | None = None
    next_seq: int = 1
    #: The segment frames go to; None between runs.
    segment: _Segment | None = None
    #: Every segment whose file is open: the current one and any sealed but not yet committed.
    open_segments: list[_Segment] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class _Plan:
    state: _TrackState
    touched: list[_Segment] = dataclasses.field(default_factory=list)
    frame_rows: list[tuple[int, ...]] = dataclasses.field(default_factory=list)
    param_rows: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    run_closes: list[tuple[int, str | None]] = dataclasses.field(default_factory=list)
    outcome: FlushOutcome = dataclasses.field(default_factory=FlushOutcome)


class Flusher:
    """State of every open writer on the write thread; only that thread calls it."""

    def __init__(
        self, conn: sqlite3.Connection, data_dir: Path, clock: Clock, options: StoreOptions
    ) -> None:
        self._conn = conn
        self._data_dir = data_dir
        self._clock = clock
        self._options = options
        self._states: dict[int, _TrackState] = {}
        self._next_frame_id = 1
        self._params_ids: dict[str, int] = {}

    def load(self) -> None:
        """Continue frame ids after the highest ever issued (ids are never reused)."""
        row = self._conn.execute(
            "SELECT MAX(COALESCE((SELECT value FROM counter WHERE name = 'frame'), 0), "
            "COALESCE((SELECT MAX(id) FROM frame), 0))"
        ).fetchone()
        self._next_frame_id = int(row[0]) + 1

    def add_track(self, key: int, recording_id: int, track_id: int, kind: TrackKind) -> None:
        self._states[key] = _TrackState(recording_id, track_id, kind)

    def remove_track(self, key: int) -> None:
        """Forget a writer; its run must have been ended by an EndRunOp already."""
        state = self._states.pop(key)
        if state.run_id is not None:  # pragma: no cover - the writer always ends its run
            self._abort(state, "writer removed with its run open")

    def abort(self, keys: list[int], reason: str) -> None:
        """End the runs of these writers after an unexpected failure of a cycle."""
        self._rollback()
        for key in keys:
            self._abort(self._states[key], reason)

    # ------------------------------------------------------------------ one cycle

    def flush(self, batches: dict[int, list[Op]]) -> dict[int, FlushOutcome]:
        """Make every batch durable (or fail it as a whole per writer); see the module doc."""
        plans: list[_Plan] = []
        try:
            for key, ops in batches.items():
                plans.append(self._plan(self._states[key], ops))
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            return self._fail(batches, plans, f"index error while planning: {exc}")
        written = self._write_files(plans)
        try:
            self._commit(written)
        except (sqlite3.Error, OSError) as exc:
            self._rollback()
            failed = {id(p) for p in written}
            return self._fail(
                batches,
                [p for p in plans if id(p) in failed],
                f"index error while committing: {exc}",
                handled=tuple(p for p in plans if id(p) not in failed),
            )
        for plan in written:
            self._settle_plan(plan)
        return {key: plan.outcome for key, plan in zip(batches, plans, strict=True)}

    def _plan(self, state: _TrackState, ops: list[Op]) -> _Plan:
        plan = _Plan(state)
        for op in ops:
            if isinstance(op, EndRunOp):
                if state.run_id is not None:
                    self._end_run(state, plan, op.reason)
                continue
            unit = op.unit
            if state.run_id is None:
                if state.kind is TrackKind.VIDEO and not unit.keyframe:
                    plan.outcome.frames_skipped += 1
                    continue
                self._start_run(state, op.params)
                plan.outcome.runs_started += 1
                params_changed = True
            else:
                params_changed = op.params is not state.params and op.params != state.params
            segment = state.segment
            if segment is None or self._should_rotate(state, segment, unit):
                if segment is not None:
                    segment.sealed = True
                segment = self._new_segment(state)
            frame_id = self._next_frame_id
            self._next_frame_id += 1
            if params_changed:
                assert state.run_id is not None
                plan.param_rows.append((state.run_id, frame_id, self._params_id(op.params)))
                state.params = op.params
            size = len(unit.data)
            plan.frame_rows.append(
                (
                    frame_id,
                    segment.id,
                    state.track_id,
                    segment.length,
                    size,
                    unit.media_ts,
                    unit.wall_ns,
                    int(unit.keyframe),
                    TIME_SOURCE_CODES[unit.time_source],
                    zlib.crc32(unit.data),
                )
            )
            segment.chunks.append(unit.data)
            segment.length += size
            segment.frames += 1
            if segment.start_ns is None:
                segment.start_ns = unit.wall_ns
            segment.end_ns = unit.wall_ns
            if not plan.touched or plan.touched[-1] is not segment:
                plan.touched.append(segment)
            plan.outcome.frames_written += 1
            plan.outcome.bytes_written += size
        return plan

    def _structural(self) -> None:
        """Open the planning transaction on first use (most cycles need none)."""
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")

    def _params_id(self, params: CodecParams) -> int:
        text = params_to_json(params)
        cached = self._params_ids.get(text)
        if cached is not None:
            return cached
        self._structural()
        self._conn.execute("INSERT OR IGNORE INTO codec_params (json) VALUES (?)", (text,))
        row = self._conn.execute("SELECT id FROM codec_params WHERE json = ?", (text,)).fetchone()
        self._params_ids[text] = int(row[0])
        return int(row[0])

    def _start_run(self, state: _TrackState, params: CodecParams) -> None:
        self._structural()
        params_id = self._params_id(params)
        cur = self._conn.execute(
            "INSERT INTO run (track_id, params_id, open, started_ns) VALUES (?, ?, 1, ?)",
            (state.track_id, params_id, self._clock.wall_ns()),
        )
        self._conn.execute(
            "UPDATE recording SET status = ? WHERE id = ?",
            (RecordingStatus.RECORDING.value, state.recording_id),
        )
        assert cur.lastrowid is not None
        state.run_id = cur.lastrowid
        state.next_seq = 1
        state.params = None  # the first frame records the run's parameters as a change

    def _should_rotate(self, state: _TrackState, segment: _Segment, unit: AccessUnit) -> bool:
        if segment.start_ns is None:
            return False
        age = unit.wall_ns - segment.start_ns
        size = segment.length - layout.HEADER_SIZE + len(unit.data)
        limit_age, limit_size = (
            self._options.segment_max_duration_ns,
            self._options.segment_max_bytes,
        )
        if age >= 2 * limit_age or size > 2 * limit_size:
            return True
        # Video segments start at keyframes so every segment decodes (and is deleted) on its own.
        sync_point = unit.keyframe or state.kind is not TrackKind.VIDEO
        return sync_point and (age >= limit_age or size > limit_size)

    def _new_segment(self, state: _TrackState) -> _Segment:
        assert state.run_id is not None
        self._structural()
        seq = state.next_seq
        state.next_seq += 1
        cur = self._conn.execute(
            "INSERT INTO segment (run_id, seq, track_id, sealed, length, frame_count) "
            "VALUES (?, ?, ?, 0, ?, 0)",
            (state.run_id, seq, state.track_id, layout.HEADER_SIZE),
        )
        assert cur.lastrowid is not None
        relpath = layout.segment_relpath(state.recording_id, state.track_id, state.run_id, seq)
        state.segment = _Segment(cur.lastrowid, relpath)
        state.open_segments.append(state.segment)
        return state.segment

    def _end_run(self, state: _TrackState, plan: _Plan, reason: str | None) -> None:
        assert state.run_id is not None
        if state.segment is not None:
            state.segment.sealed = True
            if not plan.touched or plan.touched[-1] is not state.segment:
                plan.touched.append(state.segment)
        plan.run_closes.append((state.run_id, reason))
        state.run_id = None
        state.segment = None
        state.params = None

    def _write_files(self, plans: list[_Plan]) -> list[_Plan]:
        """Phase 2; returns the plans whose bytes are durable, fails the others."""
        written = []
        new_dirs: set[Path] = set()
        for plan in plans:
            try:
                for segment in plan.touched:
                    if segment.fd is None:
                        segment.fd = layout.create_segment_file(
                            self._data_dir, segment.relpath, segment.id
                        )
                        new_dirs.add((self._data_dir / segment.relpath).parent)
                    if segment.chunks:
                        layout.write_all(segment.fd, b"".join(segment.chunks))
                        segment.chunks.clear()
                    os.fdatasync(segment.fd)
            except OSError as exc:
                log.exception("cannot write segment data of track %d", plan.state.track_id)
                self._fail_plan(plan, f"write error: {exc.strerror or exc}")
                continue
            written.append(plan)
        try:
            for directory in new_dirs:
                layout.fsync_dir(directory)
        except OSError as exc:
            log.exception("cannot sync segment directory")
            for plan in written:
                self._fail_plan(plan, f"directory sync error: {exc.strerror or exc}")
            return []
        return written

    def _commit(self, plans: list[_Plan]) -> None:
        """Phase 3: one transaction indexes everything written in this cycle."""
        if not plans:
            return
        with transaction(self._conn):
            for plan in plans:
                self._conn.executemany(
                    "INSERT INTO frame (id, segment_id, track_id, file_offset, size, media_ts, "
                    "wall_ns, keyframe, time_source, crc32) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    plan.frame_rows,
                )
                self._conn.executemany(
                    "INSERT INTO param_change (run_id, frame_id, params_id) VALUES (?, ?, ?)",
                    plan.param_rows,
                )
                for seg in plan.touched:
                    self._conn.execute(
                        "UPDATE segment SET length = ?, frame_count = ?, start_ns = ?, "
                        "end_ns = ?, sealed = ? WHERE id = ?",
                        (seg.length, seg.frames, seg.start_ns, seg.end_ns, int(seg.sealed), seg.id),
                    )
                for run_id, reason in plan.run_closes:
                    self._close_run(run_id, reason, plan.state.recording_id)
            self._conn.execute(
                "INSERT INTO counter (name, value) VALUES ('frame', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (self._next_frame_id - 1,),
            )

    def _close_run(self, run_id: int, reason: str | None, recording_id: int) -> None:
        self._conn.execute("UPDATE run SET open = 0, end_reason = ? WHERE id = ?", (reason, run_id))
        self._conn.execute(
            "UPDATE recording SET status = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM run r "
            "JOIN track t ON t.id = r.track_id WHERE t.recording_id = ? AND r.open = 1)",
            (RecordingStatus.STOPPED.value, recording_id, recording_id),
        )

    def _settle_plan(self, plan: _Plan) -> None:
        """After the commit: sealed segments are final, their files close."""
        for seg in plan.touched:
            if seg.sealed:
                if seg.fd is not None:
                    os.close(seg.fd)
                    seg.fd = None
                plan.state.open_segments.remove(seg)

    # ------------------------------------------------------------------ failures

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        # Rolled-back inserts may have cached ids that do not exist.
        self._params_ids.clear()

    def _fail(
        self,
        batches: dict[int, list[Op]],
        failed: list[_Plan],
        error: str,
        handled: tuple[_Plan, ...] = (),
    ) -> dict[int, FlushOutcome]:
        """Fail a cycle: `failed` plans and writers without a plan; `handled` failed earlier."""
        log.error("recording flush failed: %s", error)
        for plan in failed:
            self._fail_plan(plan, error)
        plans = {id(p.state): p for p in (*failed, *handled)}
        outcomes: dict[int, FlushOutcome] = {}
        for key, ops in batches.items():
            state = self._states[key]
            known = plans.get(id(state))
            if known is not None:
                outcomes[key] = known.outcome
                continue
            self._abort(state, error)
            frames = sum(isinstance(op, FrameOp) for op in ops)
            outcomes[key] = FlushOutcome(frames_failed=frames, error=error, run_broken=True)
        return outcomes

    def _fail_plan(self, plan: _Plan, error: str) -> None:
        outcome = plan.outcome
        outcome.frames_failed += outcome.frames_written
        outcome.frames_written = outcome.bytes_written = 0
        outcome.error = error
        outcome.run_broken = True
        self._abort(plan.state, error)

    def _abort(self, state: _TrackState, reason: str) -> None:
        """End a run at its last durable frame after an error; the index stays the truth.

        The run id and segments may come from a rolled-back transaction; settling then finds
        no rows and only removes files that were created for them.
        """
        segments, state.open_segments = state.open_segments, []
        for seg in segments:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None
        run_id = state.run_id
        state.run_id, state.segment, state.params = None, None, None
        try:
            for seg in segments:
                integrity.settle_segment(self._conn, self._data_dir, seg.id, seg.relpath)
            with transaction(self._conn):
                if run_id is not None:
                    self._close_run(run_id, reason, state.recording_id)
                media.drop_empty_runs(self._conn)
            media.collect_garbage(self._conn, self._data_dir)
        except (sqlite3.Error, OSError):
            # The next open's recovery finishes this from the committed index.
            log.exception("cannot settle track %d after a write error", state.track_id)
