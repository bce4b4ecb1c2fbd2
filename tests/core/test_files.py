"""write_atomic: whole file or the old one, the requested mode, no temp file left behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.core.files import OWNER_ONLY, write_atomic


def test_replaces_with_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "settings.json"
    write_atomic(path, b"one")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == OWNER_ONLY
    write_atomic(path, b"two", mode=0o644)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]


def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "key.pem"
    write_atomic(path, b"old")

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("app.core.files.os.replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]
