"""The data directory on disk: file names, the segment header, durable file operations, LOCK.

    DATA/LOCK                       flock()ed by the one process that owns the store; its pid
    DATA/index.sqlite3 (-wal, -shm) the index (schema.py)
    DATA/media/<rec id>/<track id>/<run id>-<seq>.seg   segment files

Directory names are the integer row ids, never client tokens: a token is any string of up to
64 characters and must not be able to name a path.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
from pathlib import Path

from app.core.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)

DB_FILE = "index.sqlite3"
LOCK_FILE = "LOCK"
MEDIA_DIR = "media"
SEGMENT_SUFFIX = ".seg"

SEGMENT_MAGIC = b"CUSTOSEG"
SEGMENT_FORMAT_VERSION = 1
#: magic, format version, reserved (0), segment id — big-endian; access units follow back to back.
_HEADER = struct.Struct("!8sIIQ")
HEADER_SIZE = _HEADER.size

_SEGMENT_PATH_RE = re.compile(r"media/(\d+)/(\d+)/(\d+)-(\d+)\.seg", re.ASCII)


def segment_relpath(recording_id: int, track_id: int, run_id: int, seq: int) -> str:
    """Path of a segment file relative to the data directory, with '/' separators."""
    return f"{MEDIA_DIR}/{recording_id}/{track_id}/{run_id}-{seq}{SEGMENT_SUFFIX}"


def parse_segment_relpath(relpath: str) -> tuple[int, int, int, int] | None:
    """(recording id, track id, run id, seq) of a segment path, None for any other name."""
    m = _SEGMENT_PATH_RE.fullmatch(relpath)
    if m is None:
        return None
    rec, track, run, seq = (int(g) for g in m.groups())
    return rec, track, run, seq


def segment_header(segment_id: int) -> bytes:
    return _HEADER.pack(SEGMENT_MAGIC, SEGMENT_FORMAT_VERSION, 0, segment_id)


def header_problem(data: bytes, segment_id: int) -> str | None:
    """Why `data` (the first HEADER_SIZE bytes of a file) is not this segment's header."""
    if len(data) < HEADER_SIZE:
        return f"header is {len(data)} bytes, expected {HEADER_SIZE}"
    magic, version, _reserved, stored_id = _HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        return f"bad magic {magic!r}"
    if version != SEGMENT_FORMAT_VERSION:
        return f"segment format version {version}, expected {SEGMENT_FORMAT_VERSION}"
    if stored_id != segment_id:
        return f"header names segment {stored_id}, the index says {segment_id}"
    return None


def fsync_dir(path: Path) -> None:
    """Make the names in a directory durable (a new or removed file is not, until this)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(root: Path, relative_dir: str) -> None:
    """mkdir -p below `root`, fsyncing each parent whose entries changed."""
    current = root
    for part in Path(relative_dir).parts:
        child = current / part
        if not child.is_dir():
            child.mkdir()
            fsync_dir(current)
        current = child


def create_segment_file(data_dir: Path, relpath: str, segment_id: int) -> int:
    """Create a new segment file holding only its header; returns an append-only fd.

    The header is written but not yet fsynced; the first flush that indexes frames in the file
    syncs both the file and its directory before committing.
    """
    path = data_dir / relpath
    make_dirs_durable(data_dir, str(Path(relpath).parent))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(path, flags, 0o640)
    try:
        write_all(fd, segment_header(segment_id))
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a short write is legal, e.g. near a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def truncate_durably(path: Path, length: int) -> None:
    """Cut a file to `length` bytes and make the new size durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_if_present(path: Path) -> bool:
    """Remove a file; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class DirLock:
    """Exclusive ownership of a data directory by one process, via flock on DATA/LOCK.

    The kernel drops an flock when its process dies, so a crash never leaves the directory
    locked; the pid written inside only tells a newcomer who holds it, or that the last owner
    did not shut down cleanly.
    """

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; True if the previous owner left without releasing it (a crash)."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConflictError(
                f"data directory {self._path.parent} is in use by process {holder}"
            ) from None
        stale = os.pread(fd, 32, 0).strip()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        if stale:
            log.warning(
                "data directory %s: previous owner (pid %s) did not shut down cleanly",
                self._path.parent,
                stale.decode("ascii", "replace"),
            )
        return bool(stale)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the flock


def require_data_dir(data_dir: Path) -> Path:
    """The index path of an existing store, for tools that must not create one."""
    db = data_dir / DB_FILE
    if not db.is_file():
        raise NotFoundError(f"{data_dir} holds no Custos store (no {DB_FILE})")
    return db
