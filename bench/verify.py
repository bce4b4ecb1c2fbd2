"""Verify speed of a signed ~1 GB export vs hashlib SHA-256 of the same file, in the same run.

Usage: .venv/bin/python -m bench.verify [size_mb] (default 1024). Target: ratio ≥ 0.9.
The file is synthesized in a temporary directory (one large mdat, file-level meta, one RSA-PSS
signing instance) and removed afterwards. Both measurements read the same page-cached file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from app.engine.export.keys import self_signed_signer
from app.engine.export.sign import sign_file
from app.formats.bmff.box import box, box_header, full_box
from app.formats.oef.meta import ExportInfo, TrackSource, build_meta
from app.formats.oef.verify import verify_file

CHUNK = 8 * 1024 * 1024
MB = 1_000_000


def _synthesize(path: Path, size: int) -> None:
    info = ExportInfo(
        "bench", "", "", time.time_ns(), "", [TrackSource(1, "cam", "", "", "")],
        [(1, time.time_ns())], bytes(16), bytes(16), bytes(16), time.time_ns(), 0,
    )  # fmt: skip
    block = os.urandom(CHUNK)
    with open(path, "wb") as f:
        f.write(box(b"ftyp", b"isom", bytes(4), b"isomiso6"))
        f.write(box(b"moov", full_box(b"mvhd", 0, 0, bytes(96))))
        f.write(box_header(b"mdat", size))
        left = size
        while left:
            n = min(left, CHUNK)
            f.write(block[:n])
            left -= n
        f.write(build_meta(info))


def _sha256_file(path: Path) -> bytes:
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.digest()


def main(argv: list[str]) -> int:
    size = int(argv[1]) * 1024 * 1024 if len(argv) > 1 else 1024 * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="custos-bench-verify-") as tmp:
        path = Path(tmp) / "signed.mp4"
        _synthesize(path, size)
        signer = self_signed_signer("bench exporter", key_bits=2048)
        sign_file(path, signer)  # also warms the page cache
        total = path.stat().st_size
        t0 = time.perf_counter()
        _sha256_file(path)
        t_hash = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = verify_file(path)
        t_verify = time.perf_counter() - t0
        assert report.instances[0].integrity == "valid", report.to_text()
    hash_rate, verify_rate = total / MB / t_hash, total / MB / t_verify
    print(f"file           {total / MB:10.1f} MB")
    print(f"hashlib sha256 {hash_rate:10.1f} MB/s ({t_hash:.3f} s)")
    print(f"verify_file    {verify_rate:10.1f} MB/s ({t_verify:.3f} s)")
    print(f"ratio verify/hashlib {verify_rate / hash_rate:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
