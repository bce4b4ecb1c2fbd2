"""ONVIF ExportRecordedData, GetExportRecordedDataState, StopExportRecordedData (RC-19..RC-21).

The device exports in the one format it advertises, "ONVIF" (the signed ONVIF export file
format, written by app/engine/export). Files go to the engine's single export storage: the
StorageToken must be EXPORT_STORAGE_TOKEN and RelativePath a relative directory below the data
directory's `exports/` (never outside it). Each export runs as a task; its state is polled by
token and kept for a while after it ends so clients can read the final progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from app.core.errors import CustosError
from app.core.time import Clock, format_iso
from app.engine.export import ExportProgress, ExportRequest, export_recording
from app.engine.export.keys import Signer
from app.engine.onvif.convert import required, text, utc_ns
from app.engine.onvif.search import search_scope
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.search import resolve_scope
from app.engine.storage import Store
from app.protocols.soap.fault import SoapFault

log = logging.getLogger(__name__)

#: The only export format (EX-05) and the only storage configuration (EX-06) the device has.
EXPORT_FORMAT = "ONVIF"
EXPORT_STORAGE_TOKEN = "LocalExports"
EXPORT_DIR = "exports"
#: Most export operations remembered (running or finished); the oldest finished go first.
MAX_EXPORT_OPERATIONS = 32
#: Longest RelativePath accepted.
MAX_RELATIVE_PATH_CHARS = 256


@dataclasses.dataclass
class _Operation:
    token: str
    files: list[Path]
    progress: list[float]
    task: asyncio.Task[None] | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    def state(self) -> dict[str, Any]:
        total = sum(self.progress) / len(self.progress) if self.progress else 1.0
        return {
            "Progress": round(total, 4),
            "FileProgressStatus": {
                "FileProgress": [
                    {"FileName": path.name, "Progress": round(p, 4)}
                    for path, p in zip(self.files, self.progress, strict=True)
                ]
            },
        }


class RecordingExportService(OnvifService):
    """The export operations of the Recording Control service (same WSDL, own handlers)."""

    service = "recording"

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        clock: Clock,
        signer: Callable[[], Signer],
        *,
        unit_name: str = "Custos",
    ) -> None:
        self._store = store
        self._root = data_dir / EXPORT_DIR
        self._clock = clock
        self._signer = signer
        self._unit_name = unit_name
        self._operations: dict[str, _Operation] = {}

    @operation("ExportRecordedData", AccessClass.READ_MEDIA)
    async def export_recorded_data(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-19: start one export per recording in scope; answer at once with the file names."""
        if text(req.FileFormat) != EXPORT_FORMAT:
            raise _bad_configuration(f"export file format {text(req.FileFormat)!r} (use ONVIF)")
        folder = self._destination(required(req.StorageDestination, "StorageDestination"))
        start = utc_ns(req.StartPoint, "StartPoint") if req.StartPoint is not None else None
        end = utc_ns(req.EndPoint, "EndPoint") if req.EndPoint is not None else None
        try:
            infos = await resolve_scope(self._store, search_scope(req.SearchScope))
        except CustosError as exc:
            raise SoapFault.sender("InvalidArgVal", "InvalidToken", reason=exc.message) from None
        jobs: list[ExportRequest] = []
        for info in infos:
            if info.earliest_ns is None or info.latest_ns is None:
                continue
            low = max(start, info.earliest_ns) if start is not None else info.earliest_ns
            high = min(end, info.latest_ns + 1) if end is not None else info.latest_ns + 1
            if high <= low:
                continue
            name = f"{info.token}-{format_iso(low, digits=0).replace(':', '')}.mp4"
            jobs.append(self._request(info.token, low, high, folder / name, ctx))
        if not jobs:
            raise _bad_configuration("no recorded data in the export scope and time range")
        self._forget_finished()
        if len(self._operations) >= MAX_EXPORT_OPERATIONS:
            raise SoapFault.receiver("Action", reason="too many exports are running")
        op = _Operation(
            "EXP_" + secrets.token_hex(6), [j.out_path for j in jobs], [0.0] * len(jobs)
        )
        op.task = asyncio.create_task(self._run(op, jobs), name=f"onvif export {op.token}")
        self._operations[op.token] = op
        log.info("ONVIF export %s by %r: %d file(s)", op.token, ctx.caller.user, len(jobs))
        return {"OperationToken": op.token, "FileNames": [str(p.name) for p in op.files]}

    @operation("GetExportRecordedDataState", AccessClass.READ_MEDIA)
    async def get_export_recorded_data_state(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-21."""
        return self._operation(req.OperationToken).state()

    @operation("StopExportRecordedData", AccessClass.READ_MEDIA)
    async def stop_export_recorded_data(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RC-20: cancel (no partial file is left) and answer the final progress."""
        op = self._operation(req.OperationToken)
        if op.task is not None and not op.task.done():
            op.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await op.task
        return op.state()

    async def close(self) -> None:
        """Cancel running exports (engine shutdown)."""
        for op in self._operations.values():
            if op.task is not None and not op.task.done():
                op.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await op.task

    # ---------------------------------------------------------------- internals

    def _request(
        self, recording: str, start: int, end: int, out: Path, ctx: RequestContext
    ) -> ExportRequest:
        return ExportRequest(
            recording=recording,
            start_ns=start,
            end_ns=end,
            out_path=out,
            operator=ctx.caller.user or "",
            unit_name=self._unit_name,
            unit_url=ctx.base_url,
        )

    def _destination(self, value: Any) -> Path:
        token = text(value.StorageToken)
        if token != EXPORT_STORAGE_TOKEN:
            raise SoapFault.sender(
                "InvalidArgVal", "InvalidStorage", reason=f"unknown StorageToken {token[:64]!r}"
            )
        relative = text(value.RelativePath)
        path = PurePosixPath(relative)
        if (
            len(relative) > MAX_RELATIVE_PATH_CHARS
            or path.is_absolute()
            or ".." in path.parts
            or "\\" in relative
            or "\x00" in relative
        ):
            raise _bad_configuration(f"RelativePath {relative[:64]!r} must stay below the storage")
        return self._root.joinpath(*path.parts)

    async def _run(self, op: _Operation, jobs: list[ExportRequest]) -> None:
        try:
            signer = await asyncio.to_thread(self._signer)
            for index, job in enumerate(jobs):
                await asyncio.to_thread(job.out_path.parent.mkdir, parents=True, exist_ok=True)

                def report(progress: ExportProgress, index: int = index) -> None:
                    # 1.0 only once the file is signed and in place (set below).
                    op.progress[index] = min(progress.fraction, 0.99)

                request = dataclasses.replace(job, signer=signer)
                await export_recording(self._store, request, progress=report, clock=self._clock)
                op.progress[index] = 1.0
        except CustosError as exc:
            op.error = exc.message
            log.warning("ONVIF export %s failed: %s", op.token, exc.message)
        except Exception:
            op.error = "internal error"
            log.exception("ONVIF export %s failed", op.token)

    def _operation(self, token: Any) -> _Operation:
        op = self._operations.get(text(token))
        if op is None:
            raise _bad_configuration(f"no export operation {text(token)[:64]!r}")
        return op

    def _forget_finished(self) -> None:
        finished = [t for t, op in self._operations.items() if op.done]
        while len(self._operations) >= MAX_EXPORT_OPERATIONS and finished:
            del self._operations[finished.pop(0)]


def _bad_configuration(reason: str) -> SoapFault:
    return SoapFault.sender("InvalidArgVal", "BadConfiguration", reason=reason)
