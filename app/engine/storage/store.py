"""Store: the recording store as the engine uses it — an async context manager over a data dir.

Threads: the asyncio loop calls every method here. SQLite and file I/O run on threads the store
owns: one write thread (flushes, catalog changes, retention, recovery — serialized, so the index
has a single writer) and `read_workers` read threads, each with its own WAL connection, so
readers never wait for a flush and a flush never waits for a reader. The one exception: small
catalog and history reads first try the loop's own WAL connection within a 2 ms budget and
move to a read thread past it (`_quick_read`, DESIGN.md invariant 12).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from app.core.errors import ConflictError, NotFoundError, StorageError
from app.core.media import CodecParams, TrackKind
from app.core.time import Clock, SystemClock
from app.engine.revisions import PerRevision
from app.engine.storage import (
    catalog,
    history,
    integrity,
    jobs,
    layout,
    media,
    retention,
    tokens,
)
from app.engine.storage.flush import Flusher, FlushOutcome, FrameOp, Op
from app.engine.storage.model import (
    DeletedSegment,
    EvidenceLock,
    FrameRef,
    HistoryEvent,
    HistoryTopic,
    Job,
    JobConfig,
    JobMode,
    JobState,
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    Recording,
    RecordingConfig,
    StoredFrame,
    StoreOptions,
    Track,
    TrackMedia,
)
from app.engine.storage.reader import DEFAULT_PAGE, StoreReader
from app.engine.storage.schema import connect, initialize
from app.engine.storage.schema import transaction as schema_transaction
from app.engine.storage.writer import TrackWriter

log = logging.getLogger(__name__)

#: Distinct history_pages asks whose last read is kept for equal asks of the same revision.
MAX_SHARED_HISTORY_READS = 64
#: A quick read runs on the event loop's own connection for at most this long; past it the
#: query is interrupted and run again on a read thread (see `_quick_read`).
QUICK_READ_BUDGET_S = 0.002
#: SQLite VM instructions between two looks at the clock during a quick read.
QUICK_READ_CHECK_EVERY = 1000

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _translated(fn: Callable[[], _T]) -> _T:
    """Run a store query; driver and OS errors become StorageError (kind DATA_LOSS)."""
    try:
        return fn()
    except sqlite3.Error as exc:
        raise StorageError(f"recording index error: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"recording storage I/O error: {exc}") from exc


class Store:
    """The recording store of one data directory. Open it with `async with Store(dir) as s:`.

    The constructor does no I/O; `open` takes the directory lock, creates or upgrades the
    index and runs crash recovery (its findings are in `recovery`).
    """

    def __init__(
        self, data_dir: Path, *, clock: Clock | None = None, options: StoreOptions | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.options = options or StoreOptions()
        self.recovery: list[integrity.Problem] = []
        self._clock: Clock = clock or SystemClock()
        self._dir_lock = layout.DirLock(self.data_dir)
        self._state = "new"
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._flusher: Flusher | None = None
        self._history: history.HistoryIndex | None = None
        self._read_conns: list[sqlite3.Connection] = []
        #: The event loop's own read connection (quick reads), opened on first use.
        self._loop_conn: sqlite3.Connection | None = None
        self._idle_read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        self._reads: set[asyncio.Future[Any]] = set()
        self._writers: dict[int, TrackWriter] = {}
        self._writer_tracks: dict[tuple[str, str], int] = {}
        self._next_key = 0
        self._wake: asyncio.Event | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_waiters: list[asyncio.Future[None]] = []
        #: Grows after every call on the write thread (flush cycles, catalog, jobs, retention),
        #: i.e. whenever what readers see may have changed: read caches keyed on it are exact.
        self.revision = 0
        self._recordings = PerRevision(self._read_recordings)
        #: Recent history_pages asks, each shared by equal asks of the same revision.
        self._history_reads: collections.OrderedDict[
            tuple[object, ...], PerRevision[tuple[tuple[HistoryEvent, ...], ...]]
        ] = collections.OrderedDict()

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self._state != "new":
            raise ConflictError(f"store {self.data_dir} was opened before; make a new Store")
        self._state = "opening"
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="custos-storage-write")
        self._read_pool = ThreadPoolExecutor(
            max(1, self.options.read_workers), thread_name_prefix="custos-storage-read"
        )
        try:
            await self._on_write_thread(self._open_sync)
        except BaseException:
            self._shutdown_pools()
            self._state = "closed"
            raise
        self._wake = asyncio.Event()
        self._flush_task = asyncio.create_task(self._flush_loop(), name="custos-storage-flush")
        self._state = "open"

    def _open_sync(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._dir_lock.acquire()
        conn = None
        try:
            conn = connect(self.data_dir / layout.DB_FILE)
            initialize(conn)
            self.recovery = integrity.recover(conn, self.data_dir)
            catalog.reset_runtime_state(conn)
            # After recovery closed the open runs at their last durable frame (EV-11).
            index = history.HistoryIndex(conn)
            index.reconcile()
            flusher = Flusher(conn, self.data_dir, self._clock, self.options)
            flusher.load()
        except BaseException:
            if conn is not None:
                conn.close()
            self._dir_lock.release()
            raise
        self._conn, self._flusher, self._history = conn, flusher, index

    async def close(self) -> None:
        """End every writer's run, make everything durable, release the directory."""
        if self._state != "open":
            return
        self._state = "closing"
        for writer in list(self._writers.values()):
            try:
                await writer.close()
            except Exception:
                log.exception("closing the writer of %s/%s failed", writer.recording, writer.track)
        assert self._wake is not None and self._flush_task is not None
        self._state = "stopping"
        self._wake.set()
        try:
            await self._flush_task
            if self._reads:
                await asyncio.wait(self._reads)
        finally:
            try:
                await self._on_write_thread(self._close_sync)
            finally:
                self._shutdown_pools()
                self._state = "closed"

    def _close_sync(self) -> None:
        # A read whose awaiting task was cancelled keeps running in its thread (an executor job
        # cannot be interrupted) and is no longer in `_reads`: wait for every such job before
        # its connection is closed under it (closing a connection in use crashes sqlite3).
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)
        # Readers first: the last connection to close checkpoints the WAL into the index.
        for conn in self._read_conns:
            conn.close()
        self._read_conns.clear()
        if self._loop_conn is not None:  # idle: quick reads need the store open
            self._loop_conn.close()
            self._loop_conn = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._dir_lock.release()

    def _shutdown_pools(self) -> None:
        # Every job has finished when this runs, so joining the idle threads is immediate.
        for pool in (self._read_pool, self._write_pool):
            if pool is not None:
                pool.shutdown(wait=True)

    def _require_open(self) -> None:
        if self._state != "open":
            raise ConflictError(f"store {self.data_dir} is not open ({self._state})")

    # ---------------------------------------------------------------- threads

    async def _on_write_thread(self, fn: Callable[_P, _T], *args: _P.args, **kw: _P.kwargs) -> _T:
        loop = asyncio.get_running_loop()
        call = functools.partial(_translated, functools.partial(fn, *args, **kw))
        return await loop.run_in_executor(self._write_pool, self._revised, call)

    def _revised(self, call: Callable[[], _T]) -> _T:
        # Bumped on the write thread once the change is committed, even when the caller was
        # cancelled meanwhile: a reader that sees the new revision also sees the change.
        try:
            return call()
        finally:
            self.revision += 1

    def _conn_or_fail(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ConflictError(f"store {self.data_dir} is not open")
        return self._conn

    async def _write(
        self, fn: Callable[Concatenate[sqlite3.Connection, _P], _T], *a: _P.args, **kw: _P.kwargs
    ) -> _T:
        """A catalog/retention change on the write thread."""
        self._require_open()
        conn = self._conn_or_fail()
        return await self._on_write_thread(fn, conn, *a, **kw)

    async def _read(
        self, fn: Callable[Concatenate[StoreReader, _P], _T], *a: _P.args, **kw: _P.kwargs
    ) -> _T:
        """A query on a read thread with a pooled connection."""
        self._require_open()
        loop = asyncio.get_running_loop()
        call = functools.partial(self._with_reader, lambda reader: fn(reader, *a, **kw))
        future = loop.run_in_executor(self._read_pool, _translated, call)
        self._reads.add(future)
        try:
            return await future
        finally:
            self._reads.discard(future)

    async def _quick_read(
        self, fn: Callable[Concatenate[StoreReader, _P], _T], *a: _P.args, **kw: _P.kwargs
    ) -> _T:
        """A small query on the event loop itself, or on a read thread if it is not small.

        Handing a query to a read thread costs two GIL handoffs and a loop turn, 5-20 ms on a
        busy 2-core machine, for queries that run in 0.1-0.3 ms (bench/soap --mix engine). So
        catalog and history-page reads try the loop's own WAL connection first, with a budget:
        a progress handler interrupts the query once QUICK_READ_BUDGET_S has passed, and a
        busy database answers at once (no busy wait); either way the query runs again on a
        read thread. The loop is held at most about one budget (plus one page-cache miss).
        """
        self._require_open()
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = connect(self.data_dir / layout.DB_FILE, readonly=True)
            conn.execute("PRAGMA busy_timeout = 0")
        deadline = time.perf_counter() + QUICK_READ_BUDGET_S
        over = False

        def over_budget() -> int:
            nonlocal over
            over = time.perf_counter() > deadline
            return int(over)  # nonzero interrupts the statement (sqlite3.OperationalError)

        conn.set_progress_handler(over_budget, QUICK_READ_CHECK_EVERY)
        try:
            return _translated(functools.partial(fn, StoreReader(conn, self.data_dir), *a, **kw))
        except StorageError as exc:
            cause = exc.__cause__
            busy = isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorcode in (
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            )
            if not (over or busy):
                raise
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        return await self._read(fn, *a, **kw)

    def _with_reader(self, fn: Callable[[StoreReader], _T]) -> _T:
        with self._read_conns_lock:
            conn = self._idle_read_conns.pop() if self._idle_read_conns else None
        if conn is None:
            conn = connect(self.data_dir / layout.DB_FILE, readonly=True)
            with self._read_conns_lock:
                self._read_conns.append(conn)
        try:
            return fn(StoreReader(conn, self.data_dir))
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._read_conns_lock:
                self._idle_read_conns.append(conn)

    # ---------------------------------------------------------------- flushing

    async def flush(self) -> None:
        """Return once everything appended before the call is durable and indexed."""
        if self._state not in ("open", "closing") or self._wake is None:
            raise ConflictError(f"store {self.data_dir} is not open ({self._state})")
        future = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(future)
        self._wake.set()
        await future

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        interval = self.options.flush_interval_s
        next_at = loop.time() + interval
        try:
            while True:
                # Cycles start `interval` apart (or at once when woken), so no frame waits
                # longer than one interval plus one cycle before it is durable.
                while not self._wake.is_set() and self._state != "stopping":
                    remaining = next_at - loop.time()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), remaining)
                self._wake.clear()
                next_at = loop.time() + interval
                await self._flush_cycle()
                if self._state == "stopping" and not self._flush_waiters:
                    return
        finally:
            for future in self._flush_waiters:
                if not future.done():
                    future.set_exception(ConflictError(f"store {self.data_dir} stopped"))

    async def _flush_cycle(self) -> None:
        assert self._flusher is not None
        waiters, self._flush_waiters = self._flush_waiters, []
        batches, taken = {}, {}
        for key, writer in self._writers.items():
            ops, nbytes = writer.take()
            if ops:
                batches[key], taken[key] = ops, nbytes
        try:
            if batches:
                outcomes = await self._on_write_thread(self._flush_sync, batches)
                for key, outcome in outcomes.items():
                    self._writers[key].settle(outcome, taken[key])
        except Exception as exc:
            log.exception("recording flush cycle failed")
            with contextlib.suppress(Exception):
                await self._on_write_thread(self._flusher.abort, list(batches), str(exc))
            with contextlib.suppress(Exception):
                await self._on_write_thread(self._sync_history)
            for key, ops in batches.items():
                frames = sum(isinstance(op, FrameOp) for op in ops)
                failed = FlushOutcome(frames_failed=frames, error=str(exc), run_broken=True)
                self._writers[key].settle(failed, taken[key])
        finally:
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    def _flush_sync(self, batches: dict[int, list[Op]]) -> dict[int, FlushOutcome]:
        assert self._flusher is not None
        outcomes = self._flusher.flush(batches)
        self._sync_history()
        return outcomes

    def _sync_history(self) -> None:
        # Derived data: a failure here must not fail the media, and the next cycle (or the
        # next open's reconcile) catches up.
        if self._history is None:
            return
        try:
            self._history.sync()
        except (sqlite3.Error, OSError):
            log.exception("cannot update the recording history index")
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    # ---------------------------------------------------------------- writers

    async def open_writer(self, recording: str, track: str) -> TrackWriter:
        """The writer of one track; one per track at a time (ConflictError otherwise)."""
        self._require_open()
        assert self._flusher is not None and self._wake is not None
        rec_id, track_id, kind = await self._write(tokens.track_row, recording, track)
        if (recording, track) in self._writer_tracks:
            raise ConflictError(f"track {recording}/{track} already has a writer")
        key = self._next_key
        self._next_key += 1
        self._writer_tracks[(recording, track)] = key  # reserved before the next await
        try:
            await self._on_write_thread(self._flusher.add_track, key, rec_id, track_id, kind)
        except BaseException:
            del self._writer_tracks[(recording, track)]
            raise
        writer = TrackWriter(
            key=key,
            recording=recording,
            track=track,
            kind=kind,
            options=self.options,
            wake=self._wake.set,
            flush=self.flush,
            release=self._release_writer,
        )
        self._writers[key] = writer
        return writer

    async def _release_writer(self, writer: TrackWriter) -> None:
        assert self._flusher is not None
        self._writers.pop(writer.key, None)
        self._writer_tracks.pop((writer.recording, writer.track), None)
        await self._on_write_thread(self._flusher.remove_track, writer.key)

    def _refuse_if_writing(self, recording: str, track: str | None = None) -> None:
        for rec, trk in self._writer_tracks:
            if rec == recording and track in (None, trk):
                raise ConflictError(f"track {rec}/{trk} is being recorded; stop its writer first")

    # ---------------------------------------------------------------- catalog

    async def create_recording(
        self, config: RecordingConfig, *, token: str | None = None
    ) -> Recording:
        """RC-02: a recording with tracks VIDEO001/AUDIO001/META001; token generated if None."""
        return await self._write(catalog.create_recording, config, self._clock.wall_ns(), token)

    async def set_recording_config(self, token: str, config: RecordingConfig) -> Recording:
        return await self._write(catalog.set_recording_config, token, config)

    async def delete_recording(self, token: str) -> None:
        """RC-03: the recording, its tracks, media, jobs and their auto-created receivers."""
        self._refuse_if_writing(token)
        await self._write(_delete_recording, token)
        await self._write(media.collect_garbage, self.data_dir)

    async def create_track(
        self, recording: str, kind: TrackKind, description: str = "", *, token: str | None = None
    ) -> Track:
        return await self._write(catalog.create_track, recording, kind, description, token)

    async def set_track_description(self, recording: str, track: str, description: str) -> Track:
        return await self._write(catalog.set_track_description, recording, track, description)

    async def delete_track(self, recording: str, track: str) -> None:
        self._refuse_if_writing(recording, track)
        await self._write(_delete_track, recording, track)
        await self._write(media.collect_garbage, self.data_dir)

    async def recordings(self) -> list[Recording]:
        # Asked by every GetRecordings, search and replay DESCRIBE, changed only by a write:
        # one read per revision (read after the revision was seen, so never older than it).
        return list(await self._recordings.get(self.revision))

    async def _read_recordings(self) -> tuple[Recording, ...]:
        return tuple(await self._quick_read(StoreReader.recordings))

    async def recording(self, token: str) -> Recording:
        return await self._read(StoreReader.recording, token)

    async def create_receiver(
        self, config: ReceiverConfig, *, token: str | None = None, auto_created: bool = False
    ) -> Receiver:
        return await self._write(
            jobs.create_receiver, config, token=token, auto_created=auto_created
        )

    async def configure_receiver(self, token: str, config: ReceiverConfig) -> Receiver:
        return await self._write(jobs.configure_receiver, token, config)

    async def set_receiver_mode(self, token: str, mode: ReceiverMode) -> Receiver:
        return await self._write(jobs.set_receiver_mode, token, mode)

    async def delete_receiver(self, token: str) -> None:
        await self._write(jobs.delete_receiver, token)

    async def receivers(self) -> list[Receiver]:
        return await self._read(StoreReader.receivers)

    async def receiver(self, token: str) -> Receiver:
        return await self._read(StoreReader.receiver, token)

    async def create_job(self, config: JobConfig, *, token: str | None = None) -> Job:
        return await self._write(jobs.create_job, config, self._clock.wall_ns(), token)

    async def set_job_config(self, token: str, config: JobConfig) -> Job:
        return await self._write(jobs.set_job_config, token, config, self._clock.wall_ns())

    async def set_job_mode(self, token: str, mode: JobMode) -> Job:
        return await self._write(jobs.set_job_mode, token, mode, self._clock.wall_ns())

    async def set_job_state(self, token: str, state: JobState) -> None:
        await self._write(jobs.set_job_state, token, state)

    async def delete_job(self, token: str) -> None:
        await self._write(jobs.delete_job, token)

    async def jobs(self) -> list[Job]:
        return await self._read(StoreReader.jobs)

    async def job(self, token: str) -> Job:
        return await self._read(StoreReader.job, token)

    # ---------------------------------------------------------------- media reads

    async def track_media(self, recording: str | None = None) -> list[TrackMedia]:
        """Extent, frame count and slices (gaps between them) of every track."""
        return await self._quick_read(StoreReader.track_media, recording)

    async def frames(
        self, recording: str, track: str, start_ns: int, end_ns: int, *, page: int = DEFAULT_PAGE
    ) -> AsyncIterator[FrameRef]:
        """Index rows with start_ns ≤ wall_ns < end_ns, in wall-clock order, page by page."""
        after: FrameRef | None = None
        while True:
            refs = await self._read(
                StoreReader.frames, recording, track, start_ns, end_ns, after=after, limit=page
            )
            for ref in refs:
                yield ref
            if len(refs) < page:
                return
            after = refs[-1]

    async def read_frames(
        self, recording: str, track: str, start_ns: int, end_ns: int, *, page: int = DEFAULT_PAGE
    ) -> AsyncIterator[StoredFrame]:
        """As `frames`, with each frame's bytes."""
        after: FrameRef | None = None
        while True:
            frames = await self._read(
                StoreReader.frames_with_data,
                recording,
                track,
                start_ns,
                end_ns,
                after=after,
                limit=page,
            )
            for frame in frames:
                yield frame
            if len(frames) < page:
                return
            after = frames[-1].ref

    async def read_frame_page(
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
        """One page of `read_frames` after `after`, ended before `max_bytes` of data (at least
        one frame); consecutive frames of a segment come from one read. Empty: no more."""
        return await self._read(
            StoreReader.frames_with_data,
            recording,
            track,
            start_ns,
            end_ns,
            after=after,
            limit=limit,
            max_bytes=max_bytes,
        )

    async def keyframe_at_or_before(
        self, recording: str, track: str, wall_ns: int
    ) -> FrameRef | None:
        return await self._read(StoreReader.keyframe_at_or_before, recording, track, wall_ns)

    async def first_frame(self, recording: str, track: str) -> FrameRef | None:
        return await self._read(StoreReader.first_frame, recording, track)

    async def last_frame(self, recording: str, track: str) -> FrameRef | None:
        return await self._read(StoreReader.last_frame, recording, track)

    async def read_frame(self, ref: FrameRef) -> bytes:
        return (await self._read(StoreReader.read_data, [ref]))[0]

    async def params_for_frame(self, ref: FrameRef) -> CodecParams:
        return await self._read(StoreReader.params_for_frame, ref)

    # ---------------------------------------------------------------- history

    async def history_page(
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
        """One page of a recording's history events in [low_ns, high_ns] (StoreReader)."""
        return await self._read(
            StoreReader.history_page,
            recording,
            low_ns,
            high_ns,
            after=after,
            descending=descending,
            topics=topics,
            limit=limit,
        )

    async def history_pages(
        self,
        requests: Sequence[tuple[str, int, int, tuple[int, int, int] | None]],
        *,
        descending: bool,
        topics: tuple[HistoryTopic, ...],
        limit: int,
    ) -> list[list[HistoryEvent]]:
        """Several recordings' next pages in one trip to a read thread (search merges them).

        Equal asks within one store revision share one read (many clients running the same
        search, e.g. every GUI opening today's timeline): see `PerRevision`.
        """
        asked = tuple(requests)
        key = (asked, descending, topics, limit)
        shared = self._history_reads.get(key)
        if shared is None:

            def pages(reader: StoreReader) -> tuple[tuple[HistoryEvent, ...], ...]:
                out = []
                for rec, low, high, after in asked:
                    try:
                        page = reader.history_page(
                            rec,
                            low,
                            high,
                            after=after,
                            descending=descending,
                            topics=topics,
                            limit=limit,
                        )
                    except NotFoundError:
                        page = []  # deleted meanwhile: an open search just sees no more events
                    out.append(tuple(page))
                return tuple(out)

            shared = self._history_reads[key] = PerRevision(lambda: self._quick_read(pages))
            if len(self._history_reads) > MAX_SHARED_HISTORY_READS:
                self._history_reads.popitem(last=False)
        else:
            self._history_reads.move_to_end(key)
        return [list(page) for page in await shared.get(self.revision)]

    async def history_state(
        self, recording: str, at_ns: int, *, inclusive: bool = False
    ) -> tuple[bool, dict[str, bool]]:
        """IsRecording and IsDataPresent per track at an instant (StoreReader.history_state)."""
        return await self._quick_read(
            StoreReader.history_state, recording, at_ns, inclusive=inclusive
        )

    # ---------------------------------------------------------------- retention

    async def sweep(self, *, budget_bytes: int | None = None) -> list[DeletedSegment]:
        """Apply MaximumRetentionTime and the disk budget now; returns what was deleted.

        `budget_bytes` overrides `options.disk_budget_bytes` (0 = no budget).
        """
        budget = self.options.disk_budget_bytes if budget_bytes is None else budget_bytes
        return await self._write(retention.sweep, self.data_dir, self._clock.wall_ns(), budget)

    async def add_evidence_lock(
        self, recording: str, start_ns: int, end_ns: int, reason: str
    ) -> EvidenceLock:
        now = self._clock.wall_ns()
        return await self._write(retention.add_lock, recording, start_ns, end_ns, reason, now)

    async def remove_evidence_lock(self, lock_id: int) -> None:
        await self._write(retention.remove_lock, lock_id)

    async def evidence_locks(self, recording: str | None = None) -> list[EvidenceLock]:
        return await self._read(StoreReader.evidence_locks, recording)


def _delete_recording(conn: sqlite3.Connection, token: str) -> None:
    rec_id = tokens.recording_id(conn, token)
    catalog.delete_recording(conn, token)
    # A crash in between leaves orphan events, which the next open's reconcile drops.
    with schema_transaction(conn):
        history.forget_recording(conn, rec_id)


def _delete_track(conn: sqlite3.Connection, recording: str, track: str) -> None:
    rec_id, track_id, _kind = tokens.track_row(conn, recording, track)
    catalog.delete_track(conn, recording, track)
    with schema_transaction(conn):
        history.forget_track(conn, rec_id, track_id)
