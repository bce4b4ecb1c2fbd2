"""ExportRecordedData / GetExportRecordedDataState / StopExportRecordedData on a running engine.

RC-19..RC-21 and §5 EX-01..EX-06 through the independent zeep client: the signed file lands in
the export storage and verifies; bad format, storage, path and operation tokens fault exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions

from app.core.config import EngineConfig, SimcamSource
from app.engine.onvif.export import EXPORT_STORAGE_TOKEN
from app.engine.runtime import Engine, EngineSettings
from app.formats.oef.verify import verify_file
from tests.peers.onvif_zeep import validated_service

PASSWORD = "export-admin-pw"


@pytest.fixture
async def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Engine]:
    monkeypatch.setenv("CUSTOS_ADMIN_PASSWORD", PASSWORD)
    settings = EngineSettings(
        data_dir=tmp_path,
        config=EngineConfig(sources=(SimcamSource(size=(1024, 576), audio=False),)),
        rtsp_port=0,
        http_port=0,
    )
    async with Engine(settings) as running:
        await asyncio.sleep(3.0)  # a little footage to export
        yield running


def _recording(engine: Engine) -> Any:
    url = str(engine.ready_info()["onvif_url"]).replace("device_service", "recording_service")
    return validated_service("recording", url, "admin", PASSWORD)


def _subcodes(fault: zeep.exceptions.Fault) -> list[str]:
    return [q.localname for q in fault.subcodes or []]


@pytest.mark.slow
async def test_rc19_export_writes_a_signed_file_and_reports_progress(engine: Engine) -> None:
    svc = _recording(engine)
    caps = await asyncio.to_thread(svc.GetServiceCapabilities)
    assert caps.SupportedExportFileFormats == ["ONVIF"]

    answer = await asyncio.to_thread(
        svc.ExportRecordedData,
        SearchScope={"IncludedRecordings": ["SimCam"]},
        FileFormat="ONVIF",
        StorageDestination={"StorageToken": EXPORT_STORAGE_TOKEN, "RelativePath": "case-1"},
    )
    assert answer.OperationToken and len(answer.FileNames) == 1
    state: Any = None
    for _ in range(200):
        state = await asyncio.to_thread(
            svc.GetExportRecordedDataState, OperationToken=answer.OperationToken
        )
        if state.Progress >= 1.0:
            break
        await asyncio.sleep(0.05)
    assert state is not None and state.Progress == 1.0
    assert state.FileProgressStatus.FileProgress[0].FileName == answer.FileNames[0]

    path = engine.settings.data_dir / "exports" / "case-1" / answer.FileNames[0]
    report = await asyncio.to_thread(verify_file, path)
    assert report.verdict == "valid-untrusted"  # the installation's self-signed key
    stopped = await asyncio.to_thread(
        svc.StopExportRecordedData, OperationToken=answer.OperationToken
    )
    assert stopped.Progress == 1.0


@pytest.mark.slow
async def test_rc19_to_rc21_faults_change_nothing(engine: Engine) -> None:
    svc = _recording(engine)
    good = {"StorageToken": EXPORT_STORAGE_TOKEN, "RelativePath": "x"}
    escaping = {"StorageToken": EXPORT_STORAGE_TOKEN, "RelativePath": "../x"}
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"FileFormat": "AVI", "StorageDestination": good}, ["InvalidArgVal", "BadConfiguration"]),
        (
            {"FileFormat": "ONVIF", "StorageDestination": {"StorageToken": "nas"}},
            ["InvalidArgVal", "InvalidStorage"],
        ),
        (
            {"FileFormat": "ONVIF", "StorageDestination": escaping},
            ["InvalidArgVal", "BadConfiguration"],
        ),
    ]
    for kwargs, expected in cases:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await asyncio.to_thread(
                svc.ExportRecordedData, SearchScope={"IncludedRecordings": ["SimCam"]}, **kwargs
            )
        assert _subcodes(caught.value) == expected, kwargs
    with pytest.raises(zeep.exceptions.Fault) as caught:
        await asyncio.to_thread(
            svc.ExportRecordedData,
            SearchScope={"IncludedRecordings": ["NoSuchRecording"]},
            FileFormat="ONVIF",
            StorageDestination=good,
        )
    assert _subcodes(caught.value) == ["InvalidArgVal", "InvalidToken"]
    for op in ("GetExportRecordedDataState", "StopExportRecordedData"):
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await asyncio.to_thread(getattr(svc, op), OperationToken="EXP_unknown")
        assert _subcodes(caught.value) == ["InvalidArgVal", "BadConfiguration"]
    assert not (engine.settings.data_dir / "exports").exists()
