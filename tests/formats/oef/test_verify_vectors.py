"""The isosign-signed test vectors (shared/test-vectors/oef) verify as their README says."""

from __future__ import annotations

import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from app.formats.oef import report as r
from app.formats.oef.signature import locate
from app.formats.oef.verify import load_certificates, verify_buffer, verify_file
from tests.formats.oef.synth import NOW_NS, VECTORS


def _cert(name: str) -> x509.Certificate:
    return load_certificates((VECTORS / name).read_bytes())[0]


def _codes(report: r.VerificationReport) -> set[str]:
    return {w.code for w in report.warnings}


def test_frag_is_unsigned() -> None:
    report = verify_file(VECTORS / "frag.mp4", now_ns=NOW_NS)
    assert report.verdict == r.UNSIGNED and report.exit_code == 2
    assert report.instances == []
    assert report.duration_ns == 4_000_000_000


def test_signed1_one_valid_instance_untrusted_without_anchor() -> None:
    report = verify_file(VECTORS / "signed1.mp4", now_ns=NOW_NS)
    assert report.verdict == r.VALID_UNTRUSTED
    (inst,) = report.instances
    assert (inst.integrity, inst.trust, inst.pss_salt_length) == ("valid", "untrusted", 20)
    assert inst.certificate is not None and inst.certificate.subject == "O=Lab,CN=Test Exporter"
    assert inst.certificate.sha256 == _cert("cert.pem").fingerprint(hashes.SHA256()).hex()
    assert inst.signed_bytes == report.file_size == 32598
    # isosign quirks are conformance warnings, not tampering.
    assert {"LEGACY_SCHEME", "SUMI_ZERO", "SUEP_MISSING"} <= _codes(report)
    assert inst.scheme == "4f454646/0x00007830"


def test_signed1_trusted_with_its_certificate_as_anchor() -> None:
    report = verify_file(VECTORS / "signed1.mp4", [VECTORS / "cert.pem"], now_ns=NOW_NS)
    assert report.verdict == r.VALID_TRUSTED and report.exit_code == 0
    assert report.instances[0].chain == ["O=Lab,CN=Test Exporter"]


def test_signed2_both_instances_valid_second_carries_cstb_and_auib() -> None:
    anchors = [_cert("cert.pem"), _cert("cert2.pem")]
    report = verify_file(VECTORS / "signed2.mp4", anchors, now_ns=NOW_NS)
    assert report.verdict == r.VALID_TRUSTED
    first, second = report.instances
    assert (first.verdict, second.verdict) == (r.VALID_TRUSTED, r.VALID_TRUSTED)
    assert first.note is None and first.start_times == []
    assert second.note == "received by clerk"
    # 2026-03-01T10:20:30.5Z, attested by the second signer.
    assert second.start_times == [(1, 1_772_360_430_500_000_000)]
    assert report.start_ns == 1_772_360_430_500_000_000
    assert report.start_source == "signing instance 2 (O=Lab,CN=Court Receiving Office)"
    assert first.signed_bytes == 32598 and second.signed_bytes == 33791


def test_signed2_with_only_first_anchor_is_valid_untrusted_overall() -> None:
    report = verify_file(VECTORS / "signed2.mp4", [VECTORS / "cert.pem"], now_ns=NOW_NS)
    assert report.verdict == r.VALID_UNTRUSTED
    assert [i.trust for i in report.instances] == ["trusted", "untrusted"]


def _strip_second(data: bytes) -> bytes:
    layout = locate(data)
    assert layout.meta is not None and layout.ipro is not None
    end = layout.instances[0].sinf.end
    out = bytearray(data[:end])
    struct.pack_into(">I", out, layout.meta.offset, end - layout.meta.offset)
    struct.pack_into(">I", out, layout.ipro.offset, end - layout.ipro.offset)
    return bytes(out)


def test_stripping_instance_2_leaves_instance_1_valid() -> None:
    stripped = _strip_second((VECTORS / "signed2.mp4").read_bytes())
    report = verify_buffer(stripped, [_cert("cert.pem")], now_ns=NOW_NS)
    assert report.verdict == r.VALID_TRUSTED
    assert len(report.instances) == 1
    # Byte-identical to signed1 (isosign appends without touching instance 1).
    assert stripped == (VECTORS / "signed1.mp4").read_bytes()


def test_editing_instance_2_auib_invalidates_only_instance_2() -> None:
    data = bytearray((VECTORS / "signed2.mp4").read_bytes())
    auib = locate(bytes(data)).instances[1].auib
    assert auib is not None
    data[auib.payload_offset] ^= 0x20  # "received" -> "Received"
    report = verify_buffer(bytes(data), [_cert("cert.pem"), _cert("cert2.pem")], now_ns=NOW_NS)
    assert [i.verdict for i in report.instances] == [r.VALID_TRUSTED, r.INVALID]
    assert report.instances[1].note == "Received by clerk"
    assert report.verdict == r.INVALID and report.exit_code == 3
    assert "CSTB_UNVERIFIED" in _codes(report)


@pytest.mark.parametrize("name", ["signed1.mp4", "signed2.mp4"])
def test_media_byte_flip_invalidates_every_instance(name: str) -> None:
    data = bytearray((VECTORS / name).read_bytes())
    data[5000] ^= 0x01  # inside the first mdat
    report = verify_buffer(bytes(data), now_ns=NOW_NS)
    assert report.verdict == r.INVALID
    assert all(i.integrity == "invalid" for i in report.instances)
