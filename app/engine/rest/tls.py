"""HTTPS for the engine's HTTP server (AU-04): a configured certificate or a self-signed one.

The self-signed certificate is made once (EC P-256, 10 years, the host name, loopback and the
listen address as subject alternative names) and reused across restarts, so clients can pin it
by its SHA-256 fingerprint. A configured pair is checked before it is used: every problem is a
TlsConfigError naming the offending file, never an OpenSSL traceback.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.core.errors import ConfigError
from app.core.files import write_atomic

log = logging.getLogger(__name__)

#: File names of the generated pair in the data directory.
CERT_FILE = "rest-cert.pem"
KEY_FILE = "rest-key.pem"
#: Validity of a generated certificate.
SELF_SIGNED_DAYS = 3650
#: Largest certificate or key file read (a long chain is a few tens of KiB).
MAX_PEM_BYTES = 1024 * 1024
#: Longest common name X.509 allows (RFC 5280 ub-common-name).
MAX_COMMON_NAME_CHARS = 64
#: Key file permission bits; anything looser is reported.
KEY_MODE = 0o600

_LOOPBACK_NAMES = ("localhost",)
_SERVER_KEY_TYPES = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
ServerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


class TlsConfigError(ConfigError):
    """The HTTPS certificate or key cannot be used (missing, unreadable, malformed, mismatched)."""


@dataclasses.dataclass(frozen=True)
class HttpsIdentity:
    """What the HTTPS listener presents, with the context to serve it."""

    cert_file: Path
    key_file: Path
    #: SHA-256 of the leaf certificate's DER, upper-case hex pairs joined by ':' (as openssl).
    fingerprint: str
    self_signed: bool
    context: ssl.SSLContext


def self_signed(
    data_dir: Path, *, hostname: str | None = None, addresses: Sequence[str] = ()
) -> tuple[Path, Path]:
    """(certificate, key) files in `data_dir`, generated on first use (key mode 0600).

    `addresses` (IP literals, e.g. the listen address) join the subject alternative names of a
    new certificate; an existing pair is reused as it is so its fingerprint stays pinned.
    """
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    name = _dns_name(hostname or socket.gethostname())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:MAX_COMMON_NAME_CHARS])])
    now = datetime.datetime.now(datetime.UTC)
    dns = dict.fromkeys((name, *_LOOPBACK_NAMES))
    ips = dict.fromkeys(ipaddress.ip_address(a) for a in (*_LOOPBACK_ADDRESSES, *addresses))
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first, certificate last, each replaced atomically: a crash in between leaves no
    # certificate, so the next start makes a fresh pair instead of reusing a torn one.
    write_atomic(key_path, key_bytes, mode=KEY_MODE)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("generated a self-signed HTTPS certificate %s (%s)", cert_path, fingerprint(cert))
    return cert_path, key_path


def check_pair(cert_file: Path, key_file: Path) -> x509.Certificate:
    """The leaf certificate of a PEM chain file after checking the PEM key file belongs to it."""
    certs = _load_certificates(cert_file)
    key = _load_private_key(key_file)
    leaf_public = (
        certs[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_public != key_public:
        raise TlsConfigError(
            f"HTTPS key {key_file} does not match the certificate {cert_file} "
            "(the first certificate in the file must be the one issued for this key)"
        )
    return certs[0]


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context for aiohttp's TCPSite(ssl_context=…); checks the pair first."""
    check_pair(cert_file, key_file)
    return _context(cert_file, key_file)


def _context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        # check_pair parsed both, so this is OpenSSL refusing what cryptography accepted.
        raise TlsConfigError(
            f"HTTPS certificate {cert_file} with key {key_file} refused by OpenSSL: {exc}"
        ) from None
    return context


def https_identity(
    data_dir: Path,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    addresses: Sequence[str] = (),
    now: datetime.datetime | None = None,
) -> HttpsIdentity:
    """The configured pair, or the data dir's self-signed one, checked and loaded (blocking)."""
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError("an HTTPS certificate and its key must be configured together")
    configured = cert_file is not None and key_file is not None
    if cert_file is None or key_file is None:
        cert_file, key_file = self_signed(data_dir, addresses=addresses)
        _warn_loose_mode(key_file)
    leaf = check_pair(cert_file, key_file)
    context = _context(cert_file, key_file)
    _warn_validity(leaf, cert_file, now or datetime.datetime.now(datetime.UTC))
    if not configured:
        _warn_missing_addresses(leaf, cert_file, addresses)
    return HttpsIdentity(cert_file, key_file, fingerprint(leaf), not configured, context)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER as 'AB:CD:…', the form browsers and openssl show."""
    return _colon_hex(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


def der_fingerprint(der: bytes) -> str:
    """fingerprint() of a DER certificate as a peer presents it (e.g. SSLObject.getpeercert)."""
    return _colon_hex(hashlib.sha256(der).digest())


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def _dns_name(host: str) -> str:
    # DNSName must be IA5 (ASCII); a host name outside it gets a neutral one, loopback still works.
    host = host.strip().rstrip(".")
    return host if host and host.isascii() else "custos"


def _read_pem(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PEM_BYTES:
            raise TlsConfigError(f"HTTPS {what} {path} is {size} bytes (limit {MAX_PEM_BYTES})")
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read HTTPS {what} {path}: {exc.strerror}") from None


def _load_certificates(path: Path) -> list[x509.Certificate]:
    data = _read_pem(path, "certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TlsConfigError(f"HTTPS certificate {path} holds no PEM certificate")
    return certs


def _load_private_key(path: Path) -> ServerKey:
    data = _read_pem(path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsConfigError(
            f"HTTPS key {path} is encrypted; give an unencrypted key readable only by the engine"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsConfigError(f"HTTPS key {path} holds no PEM private key") from None
    if not isinstance(key, _SERVER_KEY_TYPES):
        raise TlsConfigError(f"HTTPS key {path} is a {type(key).__name__}, not an RSA or EC key")
    return key


def _warn_loose_mode(key_file: Path) -> None:
    mode = key_file.stat().st_mode & 0o777
    if mode & ~KEY_MODE:
        log.warning("HTTPS key %s has mode %o; other users may read it (chmod 600)", key_file, mode)


def _warn_validity(leaf: x509.Certificate, cert_file: Path, now: datetime.datetime) -> None:
    # Served anyway: a recorder must stay reachable; clients decide about an expired certificate.
    if now > leaf.not_valid_after_utc:
        log.warning("HTTPS certificate %s expired at %s", cert_file, leaf.not_valid_after_utc)
    elif now < leaf.not_valid_before_utc:
        log.warning(
            "HTTPS certificate %s is not valid before %s", cert_file, leaf.not_valid_before_utc
        )


def _warn_missing_addresses(
    leaf: x509.Certificate, cert_file: Path, addresses: Sequence[str]
) -> None:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        present = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        present = set()
    missing = [a for a in addresses if str(ipaddress.ip_address(a)) not in present]
    if missing:
        log.warning(
            "self-signed HTTPS certificate %s does not name %s; clients checking host names "
            "will refuse it (delete %s and %s to make a new one, or configure a certificate)",
            cert_file,
            ", ".join(missing),
            CERT_FILE,
            KEY_FILE,
        )
