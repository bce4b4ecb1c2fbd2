"""Export signing keys: load from PEM or PKCS#12, or create the self-signed default exporter key.

A `Signer` holds a private key, its certificate (DER) and the signature algorithm. The default
key made by `default_signer` is self-signed: nobody but this installation vouches for it, so
its signatures verify as "valid-untrusted" unless an examiner pins its certificate.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from app.core.errors import ConfigError
from app.core.files import write_atomic
from app.formats.oef import signature as sig

logger = logging.getLogger(__name__)

#: RSA modulus of the self-signed default key (≥ 2048, SG-03).
DEFAULT_KEY_BITS = 3072
#: Validity of the self-signed default certificate.
DEFAULT_CERT_DAYS = 3650
#: Largest key/certificate file read.
MAX_KEY_FILE_BYTES = 1024 * 1024
DEFAULT_KEY_DIR = "export-signer"
UNTRUSTED_LABEL = "self-signed Custos exporter key (untrusted: no authority vouches for it)"

_ALGORITHMS = {
    "rsa-pss": sig.DEFAULT_ALGORITHM,
    "rsa-pkcs1v15": sig.PKCS1V15_SHA256,
    "ecdsa": sig.ECDSA_SHA256,
}


@dataclasses.dataclass(frozen=True)
class Signer:
    """A private key with its certificate and algorithm; `self_signed_default` marks the
    automatically created exporter key."""

    key: sig.PrivateKey
    cert_der: bytes
    algorithm: sig.SignatureAlgorithm = sig.DEFAULT_ALGORITHM
    self_signed_default: bool = False

    def __post_init__(self) -> None:
        sig.signature_length(self.key, self.algorithm)  # refuses key/algorithm mismatches
        cert = x509.load_der_x509_certificate(self.cert_der)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != self.key.public_key().public_bytes(*spki):
            raise ConfigError(
                f"the certificate ({cert.subject.rfc4514_string()}) does not belong to the key"
            )
        if isinstance(self.key, rsa.RSAPrivateKey) and self.key.key_size < 2048:
            raise ConfigError(f"RSA key of {self.key.key_size} bits; at least 2048 required")

    @property
    def signature_length(self) -> int:
        return sig.signature_length(self.key, self.algorithm)

    @property
    def sigc(self) -> bytes | None:
        """The sigC payload, None for the ONVIF default algorithm."""
        return sig.encode_sigc(self.algorithm)

    @property
    def description(self) -> str:
        subject = x509.load_der_x509_certificate(self.cert_der).subject.rfc4514_string()
        trust = f" — {UNTRUSTED_LABEL}" if self.self_signed_default else ""
        return f"{subject} ({self.algorithm.label}){trust}"

    def sign_digest(self, digest: bytes) -> bytes:
        return sig.sign_digest(self.key, self.algorithm, digest)


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _algorithm_for(key: object, algorithm: str | None) -> sig.SignatureAlgorithm:
    if algorithm is None:
        return (
            sig.ECDSA_SHA256
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else sig.DEFAULT_ALGORITHM
        )
    if algorithm not in _ALGORITHMS:
        raise ConfigError(
            f"unknown signature algorithm {algorithm!r} (one of {sorted(_ALGORITHMS)})"
        )
    return _ALGORITHMS[algorithm]


def load_signer(
    key_path: Path,
    cert_path: Path | None = None,
    password: str | None = None,
    algorithm: str | None = None,
) -> Signer:
    """A Signer from a PEM key + PEM/DER certificate, or from one PKCS#12 file (cert_path None).

    `algorithm`: 'rsa-pss' (default for RSA), 'rsa-pkcs1v15' or 'ecdsa' (default for EC P-256).
    Raises ConfigError naming the file on any problem; the password is never logged.
    """
    secret = password.encode("utf-8") if password is not None else None
    data = _read(key_path, "key file")
    key: object
    if cert_path is None:
        try:
            key, cert, _extra = pkcs12.load_key_and_certificates(data, secret)
        except ValueError as exc:
            raise ConfigError(f"{key_path}: not a PKCS#12 file or wrong password ({exc})") from None
        if key is None or cert is None:
            raise ConfigError(f"{key_path}: the PKCS#12 file lacks the key or the certificate")
        cert_der = cert.public_bytes(serialization.Encoding.DER)
    else:
        try:
            key = serialization.load_pem_private_key(data, secret)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{key_path}: not a PEM private key or wrong password ({exc})"
            ) from None
        cert_data = _read(cert_path, "certificate file")
        try:
            if b"-----BEGIN" in cert_data:
                cert = x509.load_pem_x509_certificates(cert_data)[0]
            else:
                cert = x509.load_der_x509_certificate(cert_data)
        except ValueError as exc:
            raise ConfigError(f"{cert_path}: not a PEM or DER certificate ({exc})") from None
        cert_der = cert.public_bytes(serialization.Encoding.DER)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path}: {type(key).__name__} keys cannot sign exports")
    try:
        return Signer(key, cert_der, _algorithm_for(key, algorithm))
    except sig.UnsupportedAlgorithmError as exc:
        raise ConfigError(f"{key_path}: {exc}") from None


def default_signer(data_dir: Path) -> Signer:
    """The installation's self-signed exporter key, created once (key file mode 0600).

    Logged and marked (`self_signed_default`, `description`) as untrusted every time it is used.
    """
    folder = data_dir / DEFAULT_KEY_DIR
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    if not key_path.exists():
        _create_default(folder, key_path, cert_path)
    signer = dataclasses.replace(load_signer(key_path, cert_path), self_signed_default=True)
    logger.warning("exports are signed with the %s", UNTRUSTED_LABEL)
    return signer


def self_signed_signer(
    common_name: str,
    *,
    key_bits: int = DEFAULT_KEY_BITS,
    days: int = DEFAULT_CERT_DAYS,
    not_before: _dt.datetime | None = None,
) -> Signer:
    """A new RSA key with a self-signed certificate marked untrusted, valid from `not_before`
    (default: five minutes ago) until `days` from now.

    It is what `default_signer` stores once per installation; benchmarks and tests use it for
    throwaway keys (a smaller `key_bits` makes them faster to create, an early `not_before`
    covers footage recorded at a fake clock's time).
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "self-signed, untrusted"),
        ]
    )
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), True
        )
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert.public_bytes(serialization.Encoding.DER))


def _create_default(folder: Path, key_path: Path, cert_path: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    signer = self_signed_signer(f"Custos exporter {socket.gethostname()}")
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = x509.load_der_x509_certificate(signer.cert_der).public_bytes(
        serialization.Encoding.PEM
    )
    # Each file appears whole; the key last, so a key file always has its certificate.
    write_atomic(cert_path, cert_pem, mode=0o644)
    write_atomic(key_path, key_pem)
    logger.warning("created a %s in %s", UNTRUSTED_LABEL, folder)
