"""`custos export`: export a time range of a recording from a data directory, with progress.

Runs the export job on its own event loop over the store (the engine must not be running on the
same data directory: the store refuses a second writer with a clear error). Ctrl+C cancels
cleanly — no partial file is left. Progress goes to stderr as one updating line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from app.core.time import format_iso
from app.engine.export.job import ExportProgress, ExportRequest, ExportResult, export_recording
from app.engine.export.keys import Signer, default_signer, load_signer
from app.engine.storage import Store

#: Seconds between two progress lines (a terminal need not redraw for every chunk).
PROGRESS_INTERVAL_S = 0.2


def signer_for(
    data_dir: Path,
    key: Path | None,
    cert: Path | None,
    password: str | None,
    *,
    unsigned: bool = False,
) -> Signer | None:
    """The signer of an export: the given key, else the installation's self-signed default."""
    if unsigned:
        return None
    if key is None:
        return default_signer(data_dir)
    return load_signer(key, cert, password)


def run_export_command(
    data_dir: Path,
    request: ExportRequest,
    *,
    out: TextIO,
    err: TextIO = sys.stderr,
) -> int:
    """Export, print what was written; 0 on success (errors propagate as CustosError)."""
    if request.signer is not None and request.signer.self_signed_default:
        print(f"note: signing with {request.signer.description}", file=err)
    reporter = _ProgressLine(err)
    result = asyncio.run(_export(data_dir, request, reporter))
    reporter.done()
    _print_result(result, request, out)
    return 0


async def _export(data_dir: Path, request: ExportRequest, reporter: _ProgressLine) -> ExportResult:
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, cancel.set)
    try:
        async with Store(data_dir) as store:
            return await export_recording(store, request, progress=reporter, cancel=cancel)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


class _ProgressLine:
    """Prints `42.0 %  1234 frames  12.3 MB  part 1` at most every PROGRESS_INTERVAL_S."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._last = 0.0
        self._tty = err.isatty()
        self._shown = False

    def __call__(self, progress: ExportProgress) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_INTERVAL_S:
            return
        self._last = now
        line = (
            f"{progress.fraction * 100:5.1f} %  {progress.frames} frames  "
            f"{progress.bytes / 1e6:.1f} MB  part {progress.part}"
        )
        if self._tty:
            self._err.write("\r" + line)
        else:
            self._err.write(line + "\n")
        self._err.flush()
        self._shown = True

    def done(self) -> None:
        if self._shown and self._tty:
            self._err.write("\n")


def _print_result(result: ExportResult, request: ExportRequest, out: TextIO) -> None:
    print(
        f"exported {result.recording} from {format_iso(result.start_ns)} "
        f"(requested {format_iso(result.requested_start_ns)}) "
        f"to {format_iso(result.requested_end_ns)}: {result.frames} frames",
        file=out,
    )
    for part in result.parts:
        gaps = f", {len(part.gaps)} gap(s)" if part.gaps else ""
        print(
            f"  {part.path}  {part.size} bytes, {part.frames} frames, "
            f"{part.duration_ns / 1e9:.3f} s{gaps}",
            file=out,
        )
    signed = "unsigned" if request.signer is None else f"signed ({request.signer.description})"
    print(f"  {signed}; check with: custos verify {result.parts[0].path}", file=out)
