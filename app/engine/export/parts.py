"""One export part on disk: temp file, MP4 writer, file-level meta, rename — worker-thread side.

Everything here blocks (file I/O) and runs on the export's own worker thread, never on the loop.
A part is written to a hidden temp file next to its final name; only `commit` gives it the
final name, so a crash, an error or a cancel never leaves a half-written file under that name.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from app.core.errors import ConflictError, StorageError
from app.formats.bmff.mp4 import Mp4Summary, Mp4Writer, Sample, TrackSpec
from app.formats.oef.meta import ExportInfo, TrackSource, build_meta

#: Writes are gathered into buffers of this size before they reach the OS.
WRITE_BUFFER_BYTES = 1024 * 1024
PART_DIGITS = 3
#: Written bytes handed to the OS for write-back while the export goes on, so that the final
#: fsync waits only for the tail instead of the whole part (bench/export.py).
WRITEBACK_BYTES = 16 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _writeback_starter() -> Callable[[int, int, int], object] | None:
    """Linux sync_file_range(…, SYNC_FILE_RANGE_WRITE): start write-back, do not wait."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return lambda fd, offset, length: call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


#: None where unavailable: then the final fsync writes everything, as it would anyway.
_start_writeback = _writeback_starter()


def part_path(out_path: Path, index: int) -> Path:
    """`name.mp4` for part 1, then `name-002.mp4`, `name-003.mp4`, …"""
    if index == 1:
        return out_path
    return out_path.with_name(f"{out_path.stem}-{index:0{PART_DIGITS}d}{out_path.suffix}")


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


@dataclasses.dataclass(frozen=True, slots=True)
class PartIdentity:
    """What the part's meta says about the export (shared by all parts) and the set's chain."""

    unit_name: str
    unit_url: str
    unit_mac: str
    export_time_ns: int
    operator: str
    sources: tuple[TrackSource, ...]


class PartFile:
    """An open part: header written at creation, samples fed chunk by chunk, then sealed."""

    def __init__(
        self,
        index: int,
        out_path: Path,
        uuid: bytes,
        tracks: Sequence[TrackSpec],
        *,
        origin_ns: int,
        creation_ns: int,
    ) -> None:
        self.index = index
        self.uuid = uuid
        self.final = part_path(out_path, index)
        self.temp = temp_path(self.final)
        self.summary: Mp4Summary | None = None
        self.size = 0
        if self.final.exists():
            raise ConflictError(f"export target {self.final} exists already; not overwritten")
        self._file: BinaryIO | None = _open_new(self.temp)
        try:
            self.writer = Mp4Writer(
                self._file, tracks, origin_ns=origin_ns, creation_ns=creation_ns
            )
        except BaseException:
            self.discard()
            raise
        #: Upper bound of the file size for what was fed so far (kept by the job, loop side).
        self.planned = self.writer.bytes_written
        self._writeback_from = 0

    def feed(self, samples: Sequence[tuple[int, Sample]]) -> None:
        add = self.writer.add
        for track_id, sample in samples:
            add(track_id, sample)
        written = self.writer.bytes_written
        if _start_writeback is not None and written - self._writeback_from >= WRITEBACK_BYTES:
            assert self._file is not None
            self._file.flush()
            # Only a head start for the fsync in `seal`, which reports any write error.
            _start_writeback(
                self._file.fileno(), self._writeback_from, written - self._writeback_from
            )
            self._writeback_from = written

    def finish_media(self, successors: Mapping[int, Sample]) -> Mp4Summary:
        self.summary = self.writer.finish(successors)
        return self.summary

    def seal(
        self,
        identity: PartIdentity,
        predecessor: bytes,
        successor: bytes,
        sign: Callable[[Path], None] | None,
    ) -> None:
        """Append the file-level meta (part 2's builder), close, then sign the temp file."""
        assert self.summary is not None and self._file is not None
        summary = self.summary
        info = ExportInfo(
            unit_name=identity.unit_name,
            unit_url=identity.unit_url,
            unit_mac=identity.unit_mac,
            export_time_ns=identity.export_time_ns,
            operator=identity.operator,
            tracks=list(identity.sources),
            start_times=[(t.track_id, t.origin_ns) for t in summary.tracks],
            part_uuid=self.uuid,
            predecessor_uuid=predecessor,
            successor_uuid=successor,
            start_ns=summary.origin_ns,
            duration_ns=summary.duration_ns,
        )
        self._file.write(build_meta(info))
        self._close(durable=sign is None)
        if sign is not None:
            sign(self.temp)
            _fsync_path(self.temp)
        self.size = self.temp.stat().st_size

    def commit(self) -> None:
        """Give the sealed part its final name (refusing to replace a file that appeared)."""
        appeared = ConflictError(f"export target {self.final} appeared during the export")
        try:
            os.link(self.temp, self.final)
        except FileExistsError:
            raise appeared from None
        except OSError:
            # FAT/exFAT media (the usual evidence stick) have no hard links: check, then rename.
            if self.final.exists():
                raise appeared from None
            try:
                os.rename(self.temp, self.final)
            except OSError as exc:
                raise StorageError(f"cannot create export file {self.final}: {exc}") from exc
            return
        self.temp.unlink()

    def discard(self) -> None:
        """Drop the temp file (on error or cancel); never touches the final name."""
        with contextlib.suppress(OSError):
            self._close(durable=False)
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()

    def _close(self, *, durable: bool) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.flush()
            if durable:
                os.fsync(file.fileno())
        finally:
            file.close()


def _open_new(path: Path) -> BinaryIO:
    try:
        return open(path, "xb", buffering=WRITE_BUFFER_BYTES)
    except FileExistsError:
        raise ConflictError(
            f"{path} exists: another export to the same name is running, or one crashed "
            "(delete the .partial file)"
        ) from None
    except OSError as exc:
        raise StorageError(f"cannot create export file {path}: {exc}") from exc


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
