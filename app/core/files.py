"""Small files written whole or not at all: settings, ready files, keys and certificates."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: Mode of a file only its owner may read (passwords, keys; the default).
OWNER_ONLY = 0o600


def write_atomic(path: Path, data: bytes, *, mode: int = OWNER_ONLY) -> None:
    """Replace `path` with `data`: a temp file beside it (created with `mode`, fsynced) renamed
    over it, so a reader or a crash sees the old file or the new one, never a part of either.
    The temp file is removed when writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
