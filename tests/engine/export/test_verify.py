"""The verifier on our own signed exports: tampering, truncation, trust verdicts, CLI glue."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import random
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.engine.export.keys import Signer
from app.engine.export.sign import sign_file
from app.engine.export.verify import run_verify_command
from app.formats.oef import report as r
from app.formats.oef import signature as s
from app.formats.oef.verify import verify_buffer, verify_file
from tests.formats.oef.synth import (
    NOW_NS,
    START_NS,
    VECTORS,
    certificate,
    ec_key,
    rsa_key,
    unsigned_export,
)

DER = serialization.Encoding.DER


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(DER)


@functools.cache
def _clerk_cert() -> x509.Certificate:
    return certificate(ec_key(), "Clerk")


@pytest.fixture
def exporter() -> tuple[Signer, x509.Certificate]:
    cert = certificate(rsa_key(), "Custos Exporter")
    return Signer(rsa_key(), _der(cert)), cert


@pytest.fixture
def signed(tmp_path: Path, exporter: tuple[Signer, x509.Certificate]) -> Path:
    """A synthetic export signed by the exporter (RSA-PSS) and countersigned (ECDSA + note)."""
    path = unsigned_export(tmp_path / "export.mp4")
    sign_file(path, exporter[0])
    clerk = Signer(ec_key(), _der(_clerk_cert()), s.ECDSA_SHA256)
    sign_file(path, clerk, note="received by clerk", cstb=[(1, START_NS + 1_000_000_000)])
    return path


def test_one_thousand_single_byte_flips_never_valid(signed: Path) -> None:
    data = signed.read_bytes()
    rng = random.Random(5)
    verdicts: dict[str, int] = {}
    for position in rng.sample(range(len(data)), 1_000) if len(data) >= 1_000 else []:
        tampered = bytearray(data)
        tampered[position] ^= rng.randrange(1, 256)
        report = verify_buffer(bytes(tampered), now_ns=NOW_NS)
        assert report.verdict in (r.INVALID, r.MALFORMED), (position, report.to_text())
        verdicts[report.verdict] = verdicts.get(report.verdict, 0) + 1
    assert sum(verdicts.values()) == 1_000
    assert verdicts.get(r.INVALID, 0) > 500  # most bytes are media: hash mismatch


def test_every_truncation_is_malformed_or_unsigned_prefix(signed: Path) -> None:
    data = signed.read_bytes()
    for cut in range(1, len(data), 7):
        report = verify_buffer(data[:cut], now_ns=NOW_NS)
        # A cut on a box boundary before meta is a complete, unsigned MP4; anything else lies.
        assert report.verdict in (r.MALFORMED, r.UNSIGNED), cut
        if report.verdict == r.UNSIGNED:
            assert cut < data.rfind(b"meta")


@pytest.mark.parametrize("delta", [-1, 1, 8, 1 << 24, -(1 << 8)])
@pytest.mark.parametrize("kind", [b"moov", b"moof", b"mdat", b"meta", b"ipro", b"sinf", b"sibo"])
def test_box_size_lies_are_malformed_or_invalid(signed: Path, kind: bytes, delta: int) -> None:
    data = bytearray(signed.read_bytes())
    pos = data.find(kind) - 4
    size = struct.unpack_from(">I", data, pos)[0]
    struct.pack_into(">I", data, pos, (size + delta) & 0xFFFF_FFFF)
    report = verify_buffer(bytes(data), now_ns=NOW_NS)
    assert report.verdict in (r.MALFORMED, r.INVALID)


def test_appended_data_is_not_covered(signed: Path) -> None:
    report = verify_buffer(signed.read_bytes() + bytes(16), now_ns=NOW_NS)
    assert report.verdict in (r.INVALID, r.MALFORMED)
    report = verify_buffer(signed.read_bytes() + struct.pack(">I4s", 8, b"free"), now_ns=NOW_NS)
    assert report.verdict == r.INVALID
    assert "LAYOUT_NONCANONICAL" in {w.code for w in report.warnings}
    assert "8 bytes at the end of the file are not covered" in report.reasons[0]


def test_report_content(signed: Path, exporter: tuple[Signer, x509.Certificate]) -> None:
    # Both self-signed certificates given as anchors: pinned, hence trusted.
    report = verify_file(signed, [exporter[1], _clerk_cert()], now_ns=NOW_NS)
    assert report.verdict == r.VALID_TRUSTED
    assert (report.unit_name, report.operator) == ("Custos NVR", "Officer Dibble")
    assert report.export_time_ns == START_NS - 500_000_000 + 3_600_000_000_000
    (track,) = report.tracks
    assert (track.source_name, track.source_url) == ("Gate camera", "rtsp://cam1.example/")
    # The clerk's correction (+1 s) wins over the file cstb, and names its signer.
    assert report.start_ns == START_NS + 1_000_000_000
    assert report.start_source == "signing instance 2 (CN=Clerk)"
    assert [(rec.source, rec.signer) for rec in report.start_times] == [
        ("file cstb", None),
        ("signing instance 2", "CN=Clerk"),
    ]
    # 4 fragments of 1 s with a 2 s recording gap before the third.
    assert report.duration_ns == 6_000_000_000
    (gap,) = track.gaps
    assert (gap.media_offset_ns, gap.duration_ns) == (2_000_000_000, 2_000_000_000)
    assert gap.start_ns == START_NS + 3_000_000_000
    first, second = report.instances
    assert first.algorithm == "RSASSA-PSS SHA256 MGF1-SHA256 salt 20"
    assert second.algorithm == "ECDSA SHA256" and second.note == "received by clerk"
    assert first.certificate is not None and first.certificate.public_key == "RSA-2048"


def _sign_with(path: Path, key: object, cert: x509.Certificate) -> Path:
    sign_file(path, Signer(key, _der(cert)))  # type: ignore[arg-type]
    return path


def test_untrusted_signer(tmp_path: Path) -> None:
    path = _sign_with(unsigned_export(tmp_path / "a.mp4"), rsa_key(), certificate(rsa_key(), "X"))
    other = certificate(rsa_key(1), "Someone else")
    report = verify_file(path, [other], now_ns=NOW_NS)
    assert report.verdict == r.VALID_UNTRUSTED and report.exit_code == 1
    assert report.instances[0].trust == "untrusted"


def test_chain_to_supplied_ca_is_trusted_and_forged_leaf_is_not(tmp_path: Path) -> None:
    ca_key, leaf_key = rsa_key(1), rsa_key(2)
    ca = certificate(ca_key, "Police Root CA", ca=True)
    leaf = certificate(leaf_key, "Exporter 7", issuer_key=ca_key, issuer_cn="Police Root CA")
    path = _sign_with(unsigned_export(tmp_path / "a.mp4"), leaf_key, leaf)
    report = verify_file(path, [ca], now_ns=NOW_NS)
    assert report.verdict == r.VALID_TRUSTED
    assert report.instances[0].chain == ["CN=Exporter 7", "CN=Police Root CA"]
    # Same names, but issued by another key: the chain does not verify.
    forged = certificate(leaf_key, "Exporter 7", issuer_key=rsa_key(3), issuer_cn="Police Root CA")
    path2 = _sign_with(unsigned_export(tmp_path / "b.mp4"), leaf_key, forged)
    report2 = verify_file(path2, [ca], now_ns=NOW_NS)
    assert report2.verdict == r.VALID_UNTRUSTED
    assert report2.instances[0].trust == "untrusted"


def test_expired_certificate(tmp_path: Path) -> None:
    cert = certificate(
        rsa_key(),
        "Old exporter",
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    )
    path = _sign_with(unsigned_export(tmp_path / "a.mp4"), rsa_key(), cert)
    report = verify_file(path, [cert], now_ns=NOW_NS)
    assert report.verdict == r.VALID_UNTRUSTED
    inst = report.instances[0]
    assert (inst.integrity, inst.trust) == ("valid", "expired")
    assert inst.reasons == ["certificate expired at now"]
    # Still valid at the claimed export time (2026-01-01): trusted while it lasted.
    assert verify_file(path, [cert], now_ns=START_NS).verdict == r.VALID_TRUSTED


def test_wrong_key_certificate_is_invalid(tmp_path: Path) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    cert = certificate(rsa_key(), "Exporter")
    sign_file(path, Signer(rsa_key(), _der(cert)))
    data = bytearray(path.read_bytes())
    # Swap in a certificate of another key with the same DER length.
    layout = s.locate(bytes(data))
    cert_box = layout.instances[0].cert
    assert cert_box is not None
    other = _der(certificate(rsa_key(1), "Exporter"))
    if len(other) == cert_box.payload_size:
        data[cert_box.payload_offset : cert_box.end] = other
        report = verify_buffer(bytes(data), [certificate(rsa_key(1), "Exporter")], now_ns=NOW_NS)
        assert report.verdict == r.INVALID
    with pytest.raises(Exception, match="does not belong to the key"):
        Signer(rsa_key(), other)


def test_unsupported_algorithm_is_invalid(tmp_path: Path) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    sign_file(path, Signer(rsa_key(), _der(certificate(rsa_key(), "E")), s.PKCS1V15_SHA256))
    data = bytearray(path.read_bytes())
    sigc = s.locate(bytes(data)).instances[0].sigc
    assert sigc is not None
    data[sigc.end - 3] ^= 0x70  # sha256WithRSA (…01 0b) → 1.2.840.113549.1.1.123, unknown
    report = verify_buffer(bytes(data), now_ns=NOW_NS)
    assert report.instances[0].integrity == "unsupported-algorithm"
    assert report.verdict == r.INVALID


def test_run_verify_command_json_and_exit_codes(signed: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_verify_command(signed, [], True, out, now_ns=NOW_NS) == 1
    doc = json.loads(out.getvalue())
    assert doc["schema_version"] == 1 and doc["verdict"] == "valid-untrusted"
    assert doc["exit_code"] == 1
    assert doc["export"]["export_time_utc"] == "2026-01-01T01:00:00.000Z"
    assert [i["verdict"] for i in doc["instances"]] == ["valid-untrusted"] * 2
    assert doc["instances"][1]["certificate"]["subject"] == "CN=Clerk"
    assert doc["tracks"][0]["gaps"][0]["duration_ns"] == 2_000_000_000
    text = io.StringIO()
    assert run_verify_command(VECTORS / "frag.mp4", [], False, text, now_ns=NOW_NS) == 2
    assert "UNSIGNED" in text.getvalue()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(signed.read_bytes()[:-3])
    assert run_verify_command(broken, [], False, io.StringIO(), now_ns=NOW_NS) == 4
    missing = io.StringIO()
    assert run_verify_command(tmp_path / "nope.mp4", [], False, missing) == r.EXIT_USAGE
    assert "cannot read" in missing.getvalue()
    bad_trust = tmp_path / "trust.pem"
    bad_trust.write_bytes(b"garbage")
    assert run_verify_command(signed, [bad_trust], False, io.StringIO()) == r.EXIT_USAGE


def test_empty_and_garbage_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert verify_file(empty).verdict == r.UNSIGNED
    assert verify_buffer(b"\x00\x00\x00\x07abcd").verdict == r.MALFORMED
    assert verify_buffer(struct.pack(">I4sQ", 1, b"mdat", 1 << 40)).verdict == r.MALFORMED
