"""Recording history index: Recording/State and Track/State events derived from runs (spec 4.3).

Track/State is true at the first frame of every run of a track and false at its last frame
once the run has ended (EV-11). Recording/State is the union of its tracks' presence: true
when the first of its tracks becomes present, false when the last one stops (EV-10). Both
come from the same wall-clock values as the frame index, so the edges equal DataFrom/DataTo
and EarliestRecording/LatestRecording exactly (EV-12). The index is derived data: the write
thread brings it up to date after every flush cycle (`sync`), and `reconcile` rebuilds what is
missing on open, after crash recovery has closed the open runs at their last durable frame.
See DESIGN.md, "Recording history".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from app.engine.storage.model import HistoryEvent, HistoryTopic
from app.engine.storage.schema import transaction

#: Events returned per page by `page`; a page is one short read transaction.
MAX_PAGE = 10_000
#: A time before every recorded instant (SQLite INTEGER range).
MIN_NS = -(1 << 63)
MAX_NS = (1 << 63) - 1

_TRACK = int(HistoryTopic.TRACK_STATE)
_RECORDING = int(HistoryTopic.RECORDING_STATE)


class HistoryIndex:
    """The write thread's maintainer of the history table; only that thread calls it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        #: Runs with id ≤ this have been looked at; newer ones need a Track/State true.
        self._last_run = 0
        #: Open runs already looked at → whether their Track/State true is stored.
        self._watch: dict[int, bool] = {}

    def reconcile(self) -> None:
        """On open: drop events of deleted objects, add every missing run edge (backfill)."""
        with transaction(self._conn):
            self._conn.execute(
                "DELETE FROM history WHERE recording_id NOT IN (SELECT id FROM recording) "
                "OR (owner > 0 AND owner NOT IN (SELECT id FROM track))"
            )
            rows = self._conn.execute(
                "SELECT r.id, r.track_id, t.recording_id, r.open, "
                "EXISTS (SELECT 1 FROM history h WHERE h.run_id = r.id AND h.value = 1), "
                "EXISTS (SELECT 1 FROM history h WHERE h.run_id = r.id AND h.value = 0) "
                "FROM run r JOIN track t ON t.id = r.track_id ORDER BY r.id"
            ).fetchall()
            self._watch.clear()
            changed: dict[int, int] = {}
            for run_id, track_id, rec_id, is_open, has_true, has_false in rows:
                self._apply_run(
                    run_id,
                    track_id,
                    rec_id,
                    bool(is_open),
                    bool(has_true),
                    bool(has_false),
                    changed,
                )
            self._last_run = max((r[0] for r in rows), default=0)
            for rec_id, from_ns in changed.items():
                derive_recording(self._conn, rec_id, from_ns, MAX_NS)

    def sync(self) -> None:
        """After a flush cycle: edges of runs that started or ended since the last call."""
        ids = list(self._watch)
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(
            "SELECT r.id, r.track_id, t.recording_id, r.open FROM run r JOIN track t "
            f"ON t.id = r.track_id WHERE r.id > ? {f'OR r.id IN ({marks})' if ids else ''} "
            "ORDER BY r.id",
            (self._last_run, *ids),
        ).fetchall()
        for run_id in set(ids) - {r[0] for r in rows}:
            del self._watch[run_id]  # deleted with its track or recording
        if not rows:
            return
        changed: dict[int, int] = {}
        with transaction(self._conn):
            for run_id, track_id, rec_id, is_open in rows:
                has_true = self._watch.get(run_id, False)
                self._apply_run(run_id, track_id, rec_id, bool(is_open), has_true, False, changed)
            self._last_run = max(self._last_run, rows[-1][0])
            for rec_id, from_ns in changed.items():
                derive_recording(self._conn, rec_id, from_ns, MAX_NS)

    def _apply_run(
        self,
        run_id: int,
        track_id: int,
        rec_id: int,
        is_open: bool,
        has_true: bool,
        has_false: bool,
        changed: dict[int, int],
    ) -> None:
        first, last = self._conn.execute(
            "SELECT MIN(start_ns), MAX(end_ns) FROM segment WHERE run_id = ? AND frame_count > 0",
            (run_id,),
        ).fetchone()
        if first is not None and not has_true:
            # A wall clock that stepped back starts a run before the previous one ended; the
            # edge is clamped so that the track's events still alternate in time order.
            at = max(first, _last_time(self._conn, track_id, run_id - 1))
            _insert(self._conn, rec_id, track_id, _TRACK, at, True, run_id)
            changed[rec_id] = min(changed.get(rec_id, MAX_NS), at)
            has_true = True
        if is_open:
            self._watch[run_id] = has_true
            return
        self._watch.pop(run_id, None)
        if has_true and not has_false and last is not None:
            at = max(last, _last_time(self._conn, track_id, run_id))
            _insert(self._conn, rec_id, track_id, _TRACK, at, False, run_id)
            changed[rec_id] = min(changed.get(rec_id, MAX_NS), at)


def _last_time(conn: sqlite3.Connection, track_id: int, run_id: int) -> int:
    """The newest edge of this track's runs up to `run_id` (later runs may exist in a backfill)."""
    row = conn.execute(
        "SELECT utc_ns FROM history WHERE owner = ? AND topic = ? AND run_id <= ? "
        "ORDER BY utc_ns DESC, seq DESC LIMIT 1",
        (track_id, _TRACK, run_id),
    ).fetchone()
    return MIN_NS if row is None else int(row[0])


def _insert(
    conn: sqlite3.Connection,
    rec_id: int,
    owner: int,
    topic: int,
    utc_ns: int,
    value: bool,
    run_id: int | None = None,
) -> None:
    conn.execute(
        "INSERT INTO history (recording_id, owner, topic, utc_ns, value, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (rec_id, owner, topic, utc_ns, int(value), run_id),
    )


def _state_before(conn: sqlite3.Connection, owner: int, topic: int, at_ns: int) -> bool:
    row = conn.execute(
        "SELECT value FROM history WHERE owner = ? AND topic = ? AND utc_ns < ? "
        "ORDER BY utc_ns DESC, seq DESC LIMIT 1",
        (owner, topic, at_ns),
    ).fetchone()
    return row is not None and bool(row[0])


def derive_recording(conn: sqlite3.Connection, rec_id: int, from_ns: int, settle_ns: int) -> None:
    """Inside a transaction: recompute Recording/State from its tracks' events from `from_ns` on.

    Track events at or after `from_ns` may have changed, none after `settle_ns`. The walk
    stops at the first instant ≥ settle_ns where the derived state agrees with the stored
    events, so a change at the tail (live recording) or head (retention) touches few rows.
    """
    track_ids = [
        r[0] for r in conn.execute("SELECT id FROM track WHERE recording_id = ?", (rec_id,))
    ]
    present = {t for t in track_ids if _state_before(conn, t, _TRACK, from_ns)}
    state = bool(present)
    desired: list[tuple[int, bool]] = []
    until = MAX_NS
    walk = conn.execute(
        "SELECT utc_ns, owner, value FROM history WHERE recording_id = ? AND utc_ns >= ? "
        "AND owner > 0 AND topic = ? ORDER BY utc_ns, owner, seq",
        (rec_id, from_ns, _TRACK),
    )
    group_at: int | None = None
    for utc_ns, owner, value in walk:
        if group_at is not None and utc_ns != group_at:
            state = _close_group(desired, state, bool(present), group_at)
            if group_at >= settle_ns and state == _stored_state(conn, rec_id, group_at):
                until = group_at
                break
        group_at = utc_ns
        if value:
            present.add(owner)
        else:
            present.discard(owner)
    else:
        if group_at is not None:
            state = _close_group(desired, state, bool(present), group_at)
    walk.close()
    stored = conn.execute(
        "SELECT utc_ns, value FROM history WHERE owner = ? AND topic = ? AND utc_ns >= ? "
        "AND utc_ns <= ? ORDER BY utc_ns, seq",
        (-rec_id, _RECORDING, from_ns, until),
    ).fetchall()
    if [(t, bool(v)) for t, v in stored] == desired:
        return
    conn.execute(
        "DELETE FROM history WHERE owner = ? AND topic = ? AND utc_ns >= ? AND utc_ns <= ?",
        (-rec_id, _RECORDING, from_ns, until),
    )
    for utc_ns, value in desired:
        _insert(conn, rec_id, -rec_id, _RECORDING, utc_ns, value)


def _close_group(desired: list[tuple[int, bool]], state: bool, now: bool, at: int) -> bool:
    """One instant's track events applied: a recording event if the union changed."""
    if now != state:
        desired.append((at, now))
    return now


def _stored_state(conn: sqlite3.Connection, rec_id: int, at_ns: int) -> bool:
    return _state_before(conn, -rec_id, _RECORDING, at_ns + 1)


def prune(conn: sqlite3.Connection, track_ids: Iterable[int]) -> None:
    """Inside a transaction, after retention deleted data of these tracks (EV-16).

    Events older than a track's remaining data go; if the track was present going into its
    new DataFrom, its last older true event moves to DataFrom, so the edges still equal
    DataFrom and the state at any remaining instant is still computable. The recording
    events are then re-derived over the changed head.
    """
    recs: dict[int, tuple[int, int]] = {}
    for track_id in set(track_ids):
        row = conn.execute(
            "SELECT t.recording_id, (SELECT MIN(start_ns) FROM segment s WHERE s.track_id = t.id "
            "AND s.frame_count > 0) FROM track t WHERE t.id = ?",
            (track_id,),
        ).fetchone()
        if row is None:
            continue
        rec_id, data_from = row
        if data_from is None:
            conn.execute("DELETE FROM history WHERE owner = ?", (track_id,))
            data_from = MAX_NS
        else:
            _cut_head(conn, track_id, _TRACK, data_from)
        low, high = recs.get(rec_id, (MAX_NS, MIN_NS))
        recs[rec_id] = (min(low, data_from), max(high, data_from))
    for rec_id, (low, high) in recs.items():
        earliest = conn.execute(
            "SELECT MIN(s.start_ns) FROM segment s JOIN track t ON t.id = s.track_id "
            "WHERE t.recording_id = ? AND s.frame_count > 0",
            (rec_id,),
        ).fetchone()[0]
        if earliest is None:
            conn.execute("DELETE FROM history WHERE recording_id = ?", (rec_id,))
            continue
        conn.execute(
            "DELETE FROM history WHERE owner = ? AND topic = ? AND utc_ns < ?",
            (-rec_id, _RECORDING, earliest),
        )
        derive_recording(conn, rec_id, min(low, earliest), max(high, earliest))


def _cut_head(conn: sqlite3.Connection, owner: int, topic: int, data_from: int) -> None:
    last = conn.execute(
        "SELECT seq, value FROM history WHERE owner = ? AND topic = ? AND utc_ns < ? "
        "ORDER BY utc_ns DESC, seq DESC LIMIT 1",
        (owner, topic, data_from),
    ).fetchone()
    if last is None:
        return
    keep = last[0] if last[1] else None
    conn.execute(
        "DELETE FROM history WHERE owner = ? AND topic = ? AND utc_ns < ? AND seq IS NOT ?",
        (owner, topic, data_from, keep),
    )
    if keep is not None:
        # Moved, not re-inserted: its old seq keeps it before later events at the same instant.
        conn.execute("UPDATE history SET utc_ns = ? WHERE seq = ?", (data_from, keep))


def forget_track(conn: sqlite3.Connection, rec_id: int, track_id: int) -> None:
    """Inside a transaction, after a track was deleted: its events go, the recording's adapt."""
    span = conn.execute(
        "SELECT MIN(utc_ns), MAX(utc_ns) FROM history WHERE owner = ?", (track_id,)
    ).fetchone()
    conn.execute("DELETE FROM history WHERE owner = ?", (track_id,))
    if span[0] is not None:
        derive_recording(conn, rec_id, span[0], span[1])


def forget_recording(conn: sqlite3.Connection, rec_id: int) -> None:
    conn.execute("DELETE FROM history WHERE recording_id = ?", (rec_id,))


# -------------------------------------------------------------------- reading


def page(
    conn: sqlite3.Connection,
    rec_id: int,
    low_ns: int,
    high_ns: int,
    *,
    after: tuple[int, int, int] | None,
    descending: bool,
    topics: Sequence[HistoryTopic],
    limit: int,
) -> list[tuple[int, int, int, int, int]]:
    """Events of one recording with low_ns ≤ utc_ns ≤ high_ns past the keyset `after`.

    Rows are (utc_ns, owner, seq, topic, value) in (utc_ns, owner, seq) order, ascending or
    descending. One index range scan (history_time), so the first page costs the same
    whatever the size of the history.
    """
    limit = max(1, min(limit, MAX_PAGE))
    if not topics:
        return []
    cmp, order = ("<", "DESC") if descending else (">", "ASC")
    bound = (
        after
        if after is not None
        else ((high_ns, MAX_NS, MAX_NS) if descending else (low_ns, MIN_NS, MIN_NS))
    )
    marks = ",".join("?" * len(topics))
    return conn.execute(
        "SELECT utc_ns, owner, seq, topic, value FROM history WHERE recording_id = ? "
        f"AND utc_ns >= ? AND utc_ns <= ? AND (utc_ns, owner, seq) {cmp} (?, ?, ?) "
        f"AND topic IN ({marks}) ORDER BY utc_ns {order}, owner {order}, seq {order} LIMIT ?",
        (rec_id, low_ns, high_ns, *bound, *(int(t) for t in topics), limit),
    ).fetchall()


def state_at(
    conn: sqlite3.Connection, owner: int, topic: HistoryTopic, at_ns: int, *, inclusive: bool
) -> bool:
    """The property value at an instant: before the events at `at_ns`, or after them."""
    return _state_before(conn, owner, int(topic), at_ns + 1 if inclusive else at_ns)


def events(
    conn: sqlite3.Connection,
    recording: str,
    track_tokens: dict[int, str],
    rows: list[tuple[int, int, int, int, int]],
) -> list[HistoryEvent]:
    """Page rows as HistoryEvents (`track_tokens`: track id → token of the recording)."""
    return [
        HistoryEvent(
            recording,
            track_tokens.get(owner, "") if owner > 0 else "",
            HistoryTopic(topic),
            utc_ns,
            bool(value),
            (utc_ns, owner, seq),
        )
        for utc_ns, owner, seq, topic, value in rows
    ]


def bulk_insert(
    conn: sqlite3.Connection, rows: Iterable[tuple[int, int, HistoryTopic, int, bool]]
) -> int:
    """Inside a transaction: append (recording id, owner, topic, utc_ns, value) rows as they
    are, for benchmarks and imports (owner: track id, or minus the recording id). No checks:
    the caller guarantees alternation and time order per owner."""
    cur = conn.executemany(
        "INSERT INTO history (recording_id, owner, topic, utc_ns, value) VALUES (?, ?, ?, ?, ?)",
        ((r, o, int(t), u, int(v)) for r, o, t, u, v in rows),
    )
    return cur.rowcount
