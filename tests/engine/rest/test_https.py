"""HTTPS certificates (tls.py): self-signed once and reused, configured pairs checked."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ConfigError, ErrorKind
from app.engine.rest.tls import (
    CERT_FILE,
    KEY_FILE,
    SELF_SIGNED_DAYS,
    TlsConfigError,
    check_pair,
    fingerprint,
    https_identity,
    self_signed,
)

NOW = datetime.datetime.now(datetime.UTC)


def make_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    """A test CA; its certificate file is what a client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Custos test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def issue(
    directory: Path,
    stem: str,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path],
    *,
    not_after: datetime.datetime | None = None,
    chain: bool = False,
) -> tuple[Path, Path, x509.Certificate]:
    """A server certificate for 127.0.0.1 signed by `ca`: (cert file, key file, certificate)."""
    ca_key, ca_cert, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=2))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if chain:
        pem += ca_cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / f"{stem}-cert.pem", directory / f"{stem}-key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file, cert


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_self_signed_pair_is_made_once_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cert_file, key_file = self_signed(data, hostname="recorder-7")
    first = (cert_file.read_bytes(), key_file.read_bytes())
    assert (cert_file.name, key_file.name) == (CERT_FILE, KEY_FILE)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert self_signed(data, hostname="another-name") == (cert_file, key_file)
    assert (cert_file.read_bytes(), key_file.read_bytes()) == first
    identity = https_identity(data)
    again = https_identity(data)
    assert identity.self_signed and identity.cert_file == cert_file
    assert identity.fingerprint == again.fingerprint
    cert = x509.load_pem_x509_certificate(first[0])
    assert identity.fingerprint == fingerprint(cert)
    assert len(identity.fingerprint) == 32 * 3 - 1 and identity.fingerprint.count(":") == 31
    assert not list(data.glob("*.tmp")), "no temporary files left behind"


def test_self_signed_names_loopback_host_and_listen_address(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path, hostname="recorder-7", addresses=("192.0.2.7",))
    cert = check_pair(cert_file, key_file)
    san = _san(cert)
    assert san.get_values_for_type(x509.DNSName) == ["recorder-7", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "::1",
        "192.0.2.7",
    ]
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "recorder-7"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=SELF_SIGNED_DAYS, minutes=5)


def test_non_ascii_host_name_falls_back_to_a_neutral_name(tmp_path: Path) -> None:
    cert = check_pair(*self_signed(tmp_path, hostname="kamera-büro"))
    assert _san(cert).get_values_for_type(x509.DNSName) == ["custos", "localhost"]


def test_torn_pair_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    old_key = key_file.read_bytes()
    cert_file.unlink()  # as if the engine died between writing the key and the certificate
    self_signed(tmp_path)
    assert key_file.read_bytes() != old_key
    check_pair(cert_file, key_file)


def test_loose_key_mode_and_missing_listen_address_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key_file = self_signed(tmp_path)
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="app.engine.rest.tls"):
        identity = https_identity(tmp_path, addresses=("192.0.2.9",))
    text = caplog.text
    assert f"{key_file} has mode 644" in text
    assert "does not name 192.0.2.9" in text
    # Reported, not changed: the pinned certificate stays the same.
    assert identity.fingerprint == fingerprint(check_pair(identity.cert_file, key_file))


def test_configured_chain_is_used_leaf_first(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert_file, key_file, leaf = issue(tmp_path, "server", ca, chain=True)
    identity = https_identity(tmp_path / "data", cert_file, key_file)
    assert not identity.self_signed
    assert (identity.cert_file, identity.key_file) == (cert_file, key_file)
    assert identity.fingerprint == fingerprint(leaf)
    assert not (tmp_path / "data" / CERT_FILE).exists(), "no self-signed pair when configured"
    # A chain with the CA first does not belong to the server key.
    swapped = tmp_path / "swapped.pem"
    swapped.write_bytes(
        ca[1].public_bytes(serialization.Encoding.PEM)
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(TlsConfigError, match="first certificate"):
        https_identity(tmp_path, swapped, key_file)


def test_expired_configured_certificate_is_served_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = make_ca(tmp_path)
    cert_file, key_file, _ = issue(tmp_path, "old", ca, not_after=NOW - datetime.timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="app.engine.rest.tls"):
        identity = https_identity(tmp_path, cert_file, key_file)
    assert identity.context is not None
    assert f"HTTPS certificate {cert_file} expired" in caplog.text


def _encrypted_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )


def test_unusable_configured_pairs_are_clear_errors_naming_the_file(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert_a, key_a, _ = issue(tmp_path, "a", ca)
    _, key_b, _ = issue(tmp_path, "b", ca)
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    encrypted = tmp_path / "encrypted.pem"
    _encrypted_key(encrypted)
    missing = tmp_path / "missing.pem"
    cases: list[tuple[Path, Path, str]] = [
        (cert_a, key_b, f"HTTPS key {key_b} does not match the certificate {cert_a}"),
        (missing, key_a, f"cannot read HTTPS certificate {missing}: No such file or directory"),
        (cert_a, missing, f"cannot read HTTPS key {missing}: No such file or directory"),
        (garbage, key_a, f"HTTPS certificate {garbage} holds no PEM certificate"),
        (key_a, key_a, f"HTTPS certificate {key_a} holds no PEM certificate"),
        (cert_a, cert_a, f"HTTPS key {cert_a} holds no PEM private key"),
        (cert_a, encrypted, f"HTTPS key {encrypted} is encrypted"),
    ]
    for cert_file, key_file, message in cases:
        with pytest.raises(TlsConfigError) as caught:
            https_identity(tmp_path, cert_file, key_file)
        assert caught.value.message.startswith(message), caught.value.message
        assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
        assert isinstance(caught.value, ConfigError)
    with pytest.raises(TlsConfigError, match="configured together"):
        https_identity(tmp_path, cert_a, None)


@settings(max_examples=40, deadline=None)
@given(
    cert_bytes=st.binary(max_size=300),
    key_bytes=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(
            lambda b: b"-----BEGIN PRIVATE KEY-----\n" + b + b"\n-----END PRIVATE KEY-----\n"
        ),
    ),
)
def test_garbage_files_never_escape_as_anything_but_tls_config_error(
    cert_bytes: bytes, key_bytes: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cert_file.write_bytes(cert_bytes)
        key_file.write_bytes(key_bytes)
        with pytest.raises(TlsConfigError) as caught:
            https_identity(Path(tmp), cert_file, key_file)
        assert str(cert_file) in caught.value.message or str(key_file) in caught.value.message
