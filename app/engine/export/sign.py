"""Seal an export file: append one signing instance and sign the file, transactionally (SG-12).

Used for the exporter's own signature and for countersigning (`custos countersign`): both append
a `sinf` to `ipro` and never touch earlier instances (SG-11). Blocking file work: call it from
an executor, never on the event loop.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path
from typing import BinaryIO, TextIO

from app.core.errors import ConflictError, CustosError, StorageError
from app.engine.export.keys import Signer, load_signer
from app.formats.bmff.box import BoxError
from app.formats.oef import signature as s
from app.formats.oef.report import EXIT_USAGE

logger = logging.getLogger(__name__)


def sign_file(
    path: Path,
    signer: Signer,
    note: str | None = None,
    cstb: list[tuple[int, int]] | None = None,
) -> None:
    """Append a signing instance to the export at `path` and sign the whole file.

    `note` becomes the instance's auib text; `cstb` ((track_id, UTC ns of the media origin)
    pairs) a start-time correction attested by this signer. On any failure the file is put
    back exactly as it was (length and size fields) and the error is raised.
    """
    sinf = s.build_sinf(
        signer.signature_length,
        signer.cert_der,
        signer.sigc,
        note,
        cstb,
    )
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        plan = _plan(f, size, sinf, path)
        originals = [(off, _read_at(f, off, len(data))) for off, data in plan.patches]
        try:
            _write_at(f, plan.offset, plan.data)
            for off, data in plan.patches:
                _write_at(f, off, data)
            f.flush()
            signature = _sign(f, plan, signer)
            _write_at(f, plan.sibo_offset, signature)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            # SG-12: never leave a half-appended (unsigned, zero-signature) instance behind.
            f.truncate(size)
            for off, data in originals:
                _write_at(f, off, data)
            f.flush()
            os.fsync(f.fileno())
            raise
    logger.info("signed %s with %s", path, signer.description)


def _plan(f: BinaryIO, size: int, sinf: bytes, path: Path) -> s.AppendPlan:
    if size == 0:
        raise ConflictError(f"cannot sign {path}: the file is empty")
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        try:
            return s.plan_append(s.locate(mapped), sinf)
        except BoxError as exc:
            raise ConflictError(f"cannot sign {path}: {exc}") from None


def _sign(f: BinaryIO, plan: s.AppendPlan, signer: Signer) -> bytes:
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        hasher = signer.algorithm.new_hash()
        s.hash_update(hasher, mapped, 0, plan.end)
    digest = hasher.digest()
    signature = signer.sign_digest(digest)
    if len(signature) != plan.sibo_length:
        raise StorageError(
            f"signature of {len(signature)} bytes does not fit the {plan.sibo_length}-byte sibo"
        )
    # Self-check before committing: catches a key/certificate mix-up at the source.
    cert_key = signer.key.public_key()
    if not s.verify_digest(cert_key, signer.algorithm, digest, signature):
        raise StorageError("the fresh signature does not verify; the file was left unchanged")
    return signature


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def _write_at(f: BinaryIO, offset: int, data: bytes) -> None:
    f.seek(offset)
    f.write(data)


def run_countersign_command(
    path: Path,
    key_path: Path,
    cert_path: Path | None,
    password: str | None,
    note: str | None,
    out: TextIO,
    cstb: list[tuple[int, int]] | None = None,
) -> int:
    """`custos countersign FILE --key K [--cert C] [--password P] [--note TEXT]` → exit status.

    0 on success; EXIT_USAGE (5) with a one-line message on bad arguments, keys or files.
    """
    try:
        signer = load_signer(key_path, cert_path, password)
        sign_file(path, signer, note, cstb)
    except (CustosError, OSError) as exc:
        message = exc.message if isinstance(exc, CustosError) else f"{path}: {exc.strerror}"
        out.write(f"countersign failed: {message}\n")
        return EXIT_USAGE
    out.write(f"{path}: signing instance appended by {signer.description}\n")
    return 0


__all__ = ["run_countersign_command", "sign_file"]
