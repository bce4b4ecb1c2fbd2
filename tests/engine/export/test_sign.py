"""Signing and countersigning: byte layout, algorithms, key loading, transactional failure."""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from app.core.errors import ConfigError, ConflictError
from app.engine.export.keys import Signer, default_signer, load_signer
from app.engine.export.sign import run_countersign_command, sign_file
from app.formats.bmff.box import payload
from app.formats.oef import report as r
from app.formats.oef import signature as s
from app.formats.oef.verify import verify_file
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
PEM = serialization.Encoding.PEM


def _rsa_signer(n: int = 0, algorithm: s.SignatureAlgorithm = s.DEFAULT_ALGORITHM) -> Signer:
    return Signer(rsa_key(n), certificate(rsa_key(n), f"Signer {n}").public_bytes(DER), algorithm)


def test_default_signature_layout(tmp_path: Path) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    before = path.read_bytes()
    signer = _rsa_signer()
    sign_file(path, signer, note="exported for case 17")
    after = path.read_bytes()
    layout = s.locate(after)
    assert layout.meta is not None and layout.ipro is not None
    (inst,) = layout.instances
    # Only the meta and ipro size fields change before the appended sinf (SG-11).
    assert after[: layout.meta.offset] == before[: layout.meta.offset]
    assert (
        after[layout.meta.offset + 4 : layout.ipro.offset]
        == before[layout.meta.offset + 4 : layout.ipro.offset]
    )
    assert struct.unpack_from(">I", after, layout.meta.offset)[0] == len(after) - layout.meta.offset
    assert inst.sinf.end == len(after)
    # sinf { schm 'oeff' 0x00010000, schi { sibo(256), cert, auib } } — no sigC for the default.
    assert after[inst.sinf.offset + 8 : inst.sinf.offset + 28] == bytes.fromhex(
        "00000014736368 6d00000000 6f656666 00010000".replace(" ", "")
    )
    assert inst.sibo is not None and inst.sibo.payload_size == 256
    assert inst.sibo.payload_offset == inst.sinf.offset + s.SIBO_OFFSET_IN_SINF
    assert inst.sigc is None and inst.cert is not None and inst.auib is not None
    assert payload(after, inst.cert) == signer.cert_der
    assert payload(after, inst.auib) == b"exported for case 17\x00"
    report = verify_file(path, now_ns=NOW_NS)
    assert report.verdict == r.VALID_UNTRUSTED
    assert report.instances[0].pss_salt_length == 20
    assert report.warnings == []


@pytest.mark.parametrize(
    ("make", "sigc_hex", "length"),
    [
        (
            lambda: Signer(ec_key(), certificate(ec_key(), "EC").public_bytes(DER), s.ECDSA_SHA256),
            "300a06082a8648ce3d040302",
            71,
        ),
        (lambda: _rsa_signer(1, s.PKCS1V15_SHA256), "300d06092a864886f70d01010b0500", 256),
    ],
    ids=["ecdsa-p256", "rsa-pkcs1v15"],
)
def test_non_default_algorithms_round_trip(
    tmp_path: Path, make: object, sigc_hex: str, length: int
) -> None:
    signer: Signer = make()  # type: ignore[operator]
    path = unsigned_export(tmp_path / "a.mp4")
    for _ in range(3):  # ECDSA: a fresh random length each time, the reserved one is kept
        sign_file(path, signer)
    data = path.read_bytes()
    for inst in s.locate(data).instances:
        assert inst.sigc is not None and payload(data, inst.sigc).hex() == sigc_hex
        assert inst.sibo is not None and inst.sibo.payload_size == length
    report = verify_file(path, now_ns=NOW_NS)
    assert [i.integrity for i in report.instances] == ["valid"] * 3
    assert "NON_DEFAULT_ALGORITHM" in {w.code for w in report.warnings}


def test_sign_plain_mp4_without_meta_and_countersign_isosign_file(tmp_path: Path) -> None:
    frag = tmp_path / "frag.mp4"
    frag.write_bytes((VECTORS / "frag.mp4").read_bytes())
    sign_file(frag, _rsa_signer())
    layout = s.locate(frag.read_bytes())
    assert [b.type for b in layout.meta_children] == [b"hdlr", b"ipro"]
    assert verify_file(frag, now_ns=NOW_NS).instances[0].integrity == "valid"
    signed2 = tmp_path / "signed2.mp4"
    signed2.write_bytes((VECTORS / "signed2.mp4").read_bytes())
    sign_file(signed2, _rsa_signer(1), note="third", cstb=[(1, START_NS)])
    report = verify_file(signed2, now_ns=NOW_NS)
    assert [i.integrity for i in report.instances] == ["valid"] * 3
    assert report.instances[2].start_times == [(1, START_NS)]
    assert report.start_source == "signing instance 3 (CN=Signer 1)"


class _Boom(RuntimeError):
    pass


def test_failed_signing_restores_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    sign_file(path, _rsa_signer())
    before = path.read_bytes()

    def boom(self: Signer, digest: bytes) -> bytes:
        raise _Boom("HSM unplugged")

    monkeypatch.setattr(Signer, "sign_digest", boom)
    with pytest.raises(_Boom):
        sign_file(path, _rsa_signer(1), note="never written")
    assert path.read_bytes() == before


def test_refuses_files_where_meta_is_not_last(tmp_path: Path) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    path.write_bytes(path.read_bytes() + struct.pack(">I4s", 8, b"free"))
    before = path.read_bytes()
    with pytest.raises(ConflictError, match="not the last box"):
        sign_file(path, _rsa_signer())
    assert path.read_bytes() == before


def _write_key(path: Path, key: object, password: bytes | None) -> None:
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, enc)  # type: ignore[attr-defined]
    )


def test_load_signer_pem_pkcs12_and_errors(tmp_path: Path) -> None:
    cert = certificate(rsa_key(), "PEM signer")
    _write_key(tmp_path / "key.pem", rsa_key(), b"s3cret")
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(PEM))
    (tmp_path / "cert.der").write_bytes(cert.public_bytes(DER))
    signer = load_signer(tmp_path / "key.pem", tmp_path / "cert.pem", "s3cret")
    assert signer.algorithm == s.DEFAULT_ALGORITHM and signer.cert_der == cert.public_bytes(DER)
    assert load_signer(tmp_path / "key.pem", tmp_path / "cert.der", "s3cret").sigc is None
    assert load_signer(
        tmp_path / "key.pem", tmp_path / "cert.pem", "s3cret", "rsa-pkcs1v15"
    ).sigc == bytes.fromhex("300d06092a864886f70d01010b0500")
    with pytest.raises(ConfigError, match="wrong password") as info:
        load_signer(tmp_path / "key.pem", tmp_path / "cert.pem", "nope")
    assert "nope" not in str(info.value)
    p12 = pkcs12.serialize_key_and_certificates(
        b"ec", ec_key(), certificate(ec_key(), "P12"), None,
        serialization.BestAvailableEncryption(b"pw"),
    )  # fmt: skip
    (tmp_path / "id.p12").write_bytes(p12)
    ec_signer = load_signer(tmp_path / "id.p12", None, "pw")
    assert ec_signer.algorithm == s.ECDSA_SHA256 and ec_signer.signature_length == 71
    with pytest.raises(ConfigError, match="PKCS#12"):
        load_signer(tmp_path / "id.p12", None, "wrong")
    with pytest.raises(ConfigError, match="does not belong"):
        load_signer(tmp_path / "key.pem", tmp_path / "cert.pem", "s3cret", None).__class__(
            rsa_key(1), cert.public_bytes(DER)
        )
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_signer(tmp_path / "missing.pem", tmp_path / "cert.pem")


def test_default_signer_created_once_0600_and_untrusted(tmp_path: Path) -> None:
    first = default_signer(tmp_path)
    key_file = tmp_path / "export-signer" / "key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    second = default_signer(tmp_path)
    assert second.cert_der == first.cert_der and second.self_signed_default
    assert "untrusted" in first.description
    path = unsigned_export(tmp_path / "a.mp4")
    sign_file(path, first)
    assert verify_file(path, now_ns=None).verdict == r.VALID_UNTRUSTED


def test_run_countersign_command(tmp_path: Path) -> None:
    path = unsigned_export(tmp_path / "a.mp4")
    sign_file(path, _rsa_signer())
    _write_key(tmp_path / "clerk.key", rsa_key(1), None)
    (tmp_path / "clerk.pem").write_bytes(certificate(rsa_key(1), "Clerk").public_bytes(PEM))
    out = io.StringIO()
    code = run_countersign_command(
        path, tmp_path / "clerk.key", tmp_path / "clerk.pem", None, "received", out
    )
    assert code == 0 and "CN=Clerk" in out.getvalue()
    report = verify_file(path, now_ns=NOW_NS)
    assert [i.note for i in report.instances] == [None, "received"]
    assert all(i.integrity == "valid" for i in report.instances)
    failed = io.StringIO()
    assert run_countersign_command(path, tmp_path / "x.key", None, None, None, failed) == 5
    assert "countersign failed" in failed.getvalue()
