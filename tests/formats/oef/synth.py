"""Test helpers: a small synthetic fragmented MP4 (with a recording gap), keys and certificates."""

from __future__ import annotations

import datetime as dt
import functools
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.formats.bmff.box import box, full_box
from app.formats.oef.meta import ExportInfo, TrackSource, build_meta

VECTORS = Path(__file__).resolve().parents[3] / ".." / "shared" / "test-vectors" / "oef"

#: 2027-01-01T00:00:00Z: inside every test certificate's validity and the vectors'.
NOW_NS = 1_798_761_600 * 1_000_000_000
START_NS = 1_767_225_600 * 1_000_000_000 + 500_000_000  # 2026-01-01T00:00:00.5Z
TIMESCALE = 90_000
FRAME = 3_000  # 30 fps


def export_info(start_ns: int = START_NS) -> ExportInfo:
    return ExportInfo(
        unit_name="Custos NVR",
        unit_url="http://nvr.example/onvif/device_service",
        unit_mac="08-00-27-00-0C-15",
        export_time_ns=start_ns + 3_600 * 1_000_000_000,
        operator="Officer Dibble",
        tracks=[TrackSource(1, "Gate camera", "rtsp://cam1.example/", "08:00:27:00:0C:16", "")],
        start_times=[(1, start_ns)],
        part_uuid=bytes(range(16)),
        predecessor_uuid=bytes(range(16)),
        successor_uuid=bytes(range(16)),
        start_ns=start_ns,
        duration_ns=4 * 1_000_000_000,
    )


def _trak() -> bytes:
    tkhd = full_box(b"tkhd", 0, 3, bytes(8), struct.pack(">I", 1), bytes(68))
    mdhd = full_box(b"mdhd", 0, 0, bytes(8), struct.pack(">II", TIMESCALE, 0), bytes(4))
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"video\x00")
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr))


def fragment(seq: int, base: int, frames: int, payload_byte: int) -> bytes:
    """moof (tfdt v1, per-sample durations and sizes) + its mdat of `frames` 40-byte samples."""
    samples = b"".join(struct.pack(">II", FRAME, 40) for _ in range(frames))
    traf = box(
        b"traf",
        full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
        full_box(b"tfdt", 1, 0, struct.pack(">Q", base)),
        full_box(b"trun", 0, 0x000301, struct.pack(">Ii", frames, 0), samples),
    )
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", seq)), traf)
    return moof + box(b"mdat", bytes([payload_byte]) * (40 * frames))


def synthetic_mp4(*, fragments: int = 4, frames: int = 30, gap_after: int = 2) -> bytes:
    """ftyp + moov + fragments of 1 s each; a 2 s recording gap before fragment `gap_after`."""
    out = [box(b"ftyp", b"isom", bytes(4), b"isomiso6mp41")]
    mvhd = full_box(b"mvhd", 0, 0, bytes(8), struct.pack(">II", 1000, 0), bytes(80))
    trex = full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0))
    out.append(box(b"moov", mvhd, _trak(), box(b"mvex", trex)))
    base = 0
    for i in range(fragments):
        if i == gap_after:
            base += 2 * TIMESCALE
        out.append(fragment(i + 1, base, frames, i + 1))
        base += frames * FRAME
    return b"".join(out)


def unsigned_export(path: Path, **kwargs: int) -> Path:
    path.write_bytes(synthetic_mp4(**kwargs) + build_meta(export_info()))
    return path


# ---------------------------------------------------------------- keys and certificates


@functools.cache
def rsa_key(n: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    """Deterministically cached RSA keys (key generation is the slow part of these tests)."""
    del n
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    del n
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    issuer_cn: str | None = None,
    ca: bool = False,
    not_before: dt.datetime = dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    not_after: dt.datetime = dt.datetime(2035, 1, 1, tzinfo=dt.UTC),
) -> x509.Certificate:
    """A certificate for `key`, self-signed unless `issuer_key` is given."""
    signer = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer_cn or cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(True, 0), True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), True
        )
    return builder.sign(signer, hashes.SHA256())
