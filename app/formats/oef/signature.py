"""ONVIF export signatures, sans-IO: find signing instances, plan an append, hash, sign, verify.

What is signed (SG-01/SG-04, see DESIGN.md): the file from offset 0 to the end of instance k's
`sinf`, with that instance's `sibo` payload zeroed and the size fields of `ipro` and `meta` set
as if `sinf` k were the last box. All functions work on a Buffer (bytes or an mmap of the file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from app.formats.bmff.box import Box, BoxError, Buffer, box, children, full_box, iter_boxes
from app.formats.oef.der import DerError, decode_algorithm, encode_algorithm
from app.formats.oef.meta import OefError, build_cstb, build_hdlr, build_ipro

#: Most signing instances (sinf boxes) walked in one file.
MAX_SIGNING_INSTANCES = 1024
#: Largest signature accepted in a sibo (RSA-8192 = 1024 bytes).
MAX_SIGNATURE_BYTES = 1024
#: Largest DER certificate accepted in a cert box.
MAX_CERT_BYTES = 64 * 1024
#: Re-sign attempts until an ECDSA DER signature has the reserved length (SG-06b; p≈1/2 each).
MAX_ECDSA_ATTEMPTS = 64
#: Bytes hashed per update call: large, so hashlib runs long stretches without the GIL.
HASH_CHUNK = 8 * 1024 * 1024

SCHEME_OEFF = 0x6F656666
SCHEME_VERSION = 0x0001_0000
#: What onvif/isosign writes (EX-14a): upper-case type and a string-escape-bug version.
LEGACY_SCHEME_OEFF = 0x4F454646
LEGACY_SCHEME_VERSION = 0x0000_7830
#: ECDSA P-256 DER signature length reserved in sibo (70..72 occur; 71 is the most common).
ECDSA_P256_SIGNATURE_BYTES = 71

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class UnsupportedAlgorithmError(OefError):
    """sigC names an algorithm (or the certificate a key type) this verifier does not handle."""


@dataclasses.dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """A signature algorithm: kind 'rsa-pss' | 'rsa-pkcs1v15' | 'ecdsa' and its hashes."""

    kind: str
    hash_name: str
    mgf_hash_name: str = ""
    salt_length: int = 0

    @property
    def label(self) -> str:
        if self.kind == "rsa-pss":
            return (
                f"RSASSA-PSS {self.hash_name.upper()} MGF1-{self.mgf_hash_name.upper()} "
                f"salt {self.salt_length}"
            )
        if self.kind == "rsa-pkcs1v15":
            return f"RSASSA-PKCS1-v1_5 {self.hash_name.upper()}"
        return f"ECDSA {self.hash_name.upper()}"

    def new_hash(self) -> Any:
        """A fresh hashlib object for this algorithm's message digest."""
        return hashlib.new(self.hash_name)


#: The ONVIF default (SG-03): written without sigC.
DEFAULT_ALGORITHM = SignatureAlgorithm("rsa-pss", "sha256", "sha256", 20)
PKCS1V15_SHA256 = SignatureAlgorithm("rsa-pkcs1v15", "sha256")
ECDSA_SHA256 = SignatureAlgorithm("ecdsa", "sha256")


def parse_sigc(der: bytes) -> SignatureAlgorithm:
    """sigC payload (DER AlgorithmIdentifier) → algorithm; OefError / UnsupportedAlgorithmError."""
    try:
        fields = decode_algorithm(der)
    except DerError as exc:
        raise OefError(f"sigC: {exc}") from None
    kind = fields["kind"]
    if kind not in ("rsa-pss", "rsa-pkcs1v15", "ecdsa") or fields["hash"] not in _HASHES:
        raise UnsupportedAlgorithmError(f"sigC: unsupported algorithm {fields['oid']}")
    if kind == "rsa-pss" and fields["mgf_hash"] not in _HASHES:
        raise UnsupportedAlgorithmError(f"sigC: unsupported MGF1 hash {fields['mgf_hash']}")
    salt = int(fields.get("salt", 0))
    if not 0 <= salt <= MAX_SIGNATURE_BYTES:
        raise OefError(f"sigC: RSASSA-PSS salt length {salt} outside 0..{MAX_SIGNATURE_BYTES}")
    return SignatureAlgorithm(kind, fields["hash"], fields.get("mgf_hash", ""), salt)


def encode_sigc(algorithm: SignatureAlgorithm) -> bytes | None:
    """The sigC payload for `algorithm`, or None for the default (no sigC written, SG-03)."""
    if algorithm == DEFAULT_ALGORITHM:
        return None
    return encode_algorithm(
        algorithm.kind, algorithm.hash_name, algorithm.mgf_hash_name, algorithm.salt_length
    )


def signature_length(key: PrivateKey, algorithm: SignatureAlgorithm) -> int:
    """The sibo payload length reserved for `key` (RSA: modulus bytes; ECDSA: SG-06b)."""
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm.kind == "ecdsa":
            raise UnsupportedAlgorithmError("an RSA key cannot sign with ECDSA")
        return (key.key_size + 7) // 8
    if algorithm.kind != "ecdsa":
        raise UnsupportedAlgorithmError(f"an EC key cannot sign with {algorithm.label}")
    if key.curve.name != "secp256r1":
        raise UnsupportedAlgorithmError(f"EC curve {key.curve.name} (only P-256 is supported)")
    return ECDSA_P256_SIGNATURE_BYTES


def sign_digest(key: PrivateKey, algorithm: SignatureAlgorithm, digest: bytes) -> bytes:
    """Sign a precomputed digest, padded/retried to exactly `signature_length` bytes."""
    want = signature_length(key, algorithm)
    prehashed = utils.Prehashed(_HASHES[algorithm.hash_name]())
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _rsa_padding(algorithm), prehashed)
    for _ in range(MAX_ECDSA_ATTEMPTS):
        # ECDSA is randomised: a fresh attempt gives a new DER length (70..72 bytes).
        signature = key.sign(digest, ec.ECDSA(prehashed))
        if len(signature) == want:
            return signature
    raise UnsupportedAlgorithmError(
        f"no ECDSA signature of {want} bytes after {MAX_ECDSA_ATTEMPTS} attempts"
    )


def _rsa_padding(algorithm: SignatureAlgorithm) -> padding.AsymmetricPadding:
    if algorithm.kind == "rsa-pss":
        mgf = padding.MGF1(_HASHES[algorithm.mgf_hash_name]())
        return padding.PSS(mgf=mgf, salt_length=algorithm.salt_length)
    if algorithm.kind == "rsa-pkcs1v15":
        return padding.PKCS1v15()
    raise UnsupportedAlgorithmError(f"{algorithm.label} is not an RSA algorithm")


def verify_digest(
    public_key: object, algorithm: SignatureAlgorithm, digest: bytes, signature: bytes
) -> bool:
    """True if `signature` over `digest` checks out; UnsupportedAlgorithmError on a key mismatch."""
    prehashed = utils.Prehashed(_HASHES[algorithm.hash_name]())
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm.kind != "ecdsa":
            public_key.verify(signature, digest, _rsa_padding(algorithm), prehashed)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm.kind == "ecdsa":
            public_key.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            raise UnsupportedAlgorithmError(
                f"certificate key {type(public_key).__name__} cannot verify {algorithm.label}"
            )
    except InvalidSignature:
        return False
    return True


def pss_salt_length(public_key: rsa.RSAPublicKey, signature: bytes, digest: bytes) -> int | None:
    """The salt length actually used in an RSASSA-PSS/SHA-256 signature (EMSA-PSS decode), or
    None if the signature is not a valid PSS encoding of `digest` with any salt."""
    numbers = public_key.public_numbers()
    em_bits = public_key.key_size - 1
    em_len = (em_bits + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) != (public_key.key_size + 7) // 8 or value >= numbers.n:
        return None
    message = pow(value, numbers.e, numbers.n)
    if message.bit_length() > em_bits:
        return None
    em = message.to_bytes(em_len, "big")
    h_len = hashlib.sha256().digest_size
    if em_len < h_len + 2 or em[-1] != 0xBC:
        return None
    masked, h = em[: em_len - h_len - 1], em[em_len - h_len - 1 : -1]
    db = bytearray(a ^ b for a, b in zip(masked, _mgf1_sha256(h, len(masked)), strict=True))
    db[0] &= 0xFF >> (8 * em_len - em_bits)
    start = next((i for i, v in enumerate(db) if v), None)
    if start is None or db[start] != 1:
        return None
    salt = bytes(db[start + 1 :])
    if hashlib.sha256(bytes(8) + digest + salt).digest() != h:
        return None
    return len(salt)


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + _U32.pack(counter)).digest()
        counter += 1
    return bytes(out[:length])


# ---------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """The boxes of one signing instance (`sinf`); `problems` lists structural faults."""

    index: int
    sinf: Box
    schm: Box | None
    schi: Box | None
    sibo: Box | None
    cert: Box | None
    sigc: Box | None
    auib: Box | None
    cstb: Box | None
    unknown: tuple[str, ...]
    problems: tuple[str, ...]
    #: The cstb sat directly in sinf (allowed by its own definition; oxfplayer flags it).
    cstb_in_sinf: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where the export boxes are: top-level boxes, the file-level meta, ipro and instances."""

    file_size: int
    top: list[Box]
    meta: Box | None
    meta_children: list[Box]
    ipro: Box | None
    instances: list[Instance]

    def meta_child(self, kind: bytes) -> list[Box]:
        return [b for b in self.meta_children if b.type == kind]


def locate(buf: Buffer) -> Layout:
    """Parse the top level, the file-level meta, ipro and every sinf; BoxError if malformed."""
    size = len(memoryview(buf))
    top = list(iter_boxes(buf))
    metas = [b for b in top if b.type == b"meta"]
    if len(metas) > 1:
        raise OefError(f"{len(metas)} file-level meta boxes (offsets {[b.offset for b in metas]})")
    if not metas:
        return Layout(size, top, None, [], None, [])
    meta = metas[0]
    meta_children = list(children(buf, meta, skip=4))
    ipros = [b for b in meta_children if b.type == b"ipro"]
    if len(ipros) > 1:
        raise OefError(f"{len(ipros)} ipro boxes in the file-level meta at {meta.offset}")
    if not ipros:
        return Layout(size, top, meta, meta_children, None, [])
    ipro = ipros[0]
    instances: list[Instance] = []
    for child in children(buf, ipro, skip=6):
        if child.type != b"sinf":
            raise OefError(f"unexpected {child.name} box at offset {child.offset} inside ipro")
        if len(instances) >= MAX_SIGNING_INSTANCES:
            raise OefError(f"more than MAX_SIGNING_INSTANCES={MAX_SIGNING_INSTANCES} sinf boxes")
        instances.append(_instance(buf, len(instances) + 1, child))
    return Layout(size, top, meta, meta_children, ipro, instances)


def _instance(buf: Buffer, index: int, sinf: Box) -> Instance:
    problems: list[str] = []
    unknown: list[str] = []

    def single(found: list[Box], what: str, required: bool) -> Box | None:
        if len(found) > 1 or (required and not found):
            problems.append(f"{len(found)} {what} boxes (expected {'one' if required else '≤1'})")
        return found[0] if found else None

    sinf_kids = list(children(buf, sinf))
    schm = single([b for b in sinf_kids if b.type == b"schm"], "schm", True)
    schi = single([b for b in sinf_kids if b.type == b"schi"], "schi", True)
    unknown += [b.name for b in sinf_kids if b.type not in (b"schm", b"schi", b"cstb")]
    sinf_cstb = single([b for b in sinf_kids if b.type == b"cstb"], "cstb in sinf", False)
    kids = list(children(buf, schi)) if schi is not None else []
    found = {kind: [b for b in kids if b.type == kind] for kind in _SCHI_KINDS}
    unknown += [b.name for b in kids if b.type not in _SCHI_KINDS]
    sibo = single(found[b"sibo"], "sibo", True)
    cert = single(found[b"cert"], "cert", True)
    cstb = single(found[b"cstb"], "cstb", False)
    if cstb is not None and sinf_cstb is not None:
        problems.append("cstb in both sinf and schi")
    if schm is not None and schm.payload_size != 12:
        problems.append(f"schm payload is {schm.payload_size} bytes, expected 12 (no URI)")
    if sibo is not None and not 0 < sibo.payload_size <= MAX_SIGNATURE_BYTES:
        problems.append(f"sibo payload of {sibo.payload_size} bytes (1..{MAX_SIGNATURE_BYTES})")
    if cert is not None and not 0 < cert.payload_size <= MAX_CERT_BYTES:
        problems.append(f"cert payload of {cert.payload_size} bytes (1..{MAX_CERT_BYTES})")
    return Instance(
        index,
        sinf,
        schm,
        schi,
        sibo,
        cert,
        single(found[b"sigC"], "sigC", False),
        single(found[b"auib"], "auib", False),
        cstb or sinf_cstb,
        tuple(unknown),
        tuple(problems),
        cstb is None and sinf_cstb is not None,
    )


_SCHI_KINDS = (b"sibo", b"cert", b"sigC", b"auib", b"cstb")


def scheme(buf: Buffer, schm: Box) -> tuple[int, int]:
    """(scheme_type, scheme_version) of a schm box."""
    if schm.payload_size < 12:
        raise OefError(f"schm at offset {schm.offset} is too short")
    view = memoryview(buf).cast("B")
    return (
        _U32.unpack_from(view, schm.payload_offset + 4)[0],
        _U32.unpack_from(view, schm.payload_offset + 8)[0],
    )


# ---------------------------------------------------------------- hashing


def size_patch(container: Box, new_end: int) -> tuple[int, bytes]:
    """(offset, bytes) rewriting `container`'s size field as if it ended at `new_end`."""
    new_size = new_end - container.offset
    if container.header_size == 8:
        if new_size > 0xFFFF_FFFF:
            raise OefError(f"{container.name} size {new_size} does not fit its 32-bit field")
        return container.offset, _U32.pack(new_size)
    return container.offset + 8, _U64.pack(new_size)


def instance_patches(layout: Layout, instance: Instance) -> list[tuple[int, bytes]]:
    """The SG-04 alterations for verifying `instance`: meta/ipro sizes, zero sibo payload."""
    if layout.meta is None or layout.ipro is None or instance.sibo is None:
        raise OefError("instance has no meta/ipro/sibo to patch")
    end = instance.sinf.end
    sibo = instance.sibo
    return [
        size_patch(layout.meta, end),
        size_patch(layout.ipro, end),
        (sibo.payload_offset, bytes(sibo.payload_size)),
    ]


def hash_update(
    hasher: Any, buf: Buffer, start: int, end: int, patches: Sequence[tuple[int, bytes]] = ()
) -> None:
    """Feed buf[start:end] into `hasher` with sorted, non-overlapping `patches` substituted."""
    view = memoryview(buf).cast("B")
    pos = start
    for offset, data in sorted(patches):
        if offset < pos or offset + len(data) > end:
            raise OefError(f"patch at offset {offset} is outside {pos}..{end} or overlaps")
        _hash_span(hasher, view, pos, offset)
        hasher.update(data)
        pos = offset + len(data)
    _hash_span(hasher, view, pos, end)


def _hash_span(hasher: Any, view: memoryview, start: int, end: int) -> None:
    for pos in range(start, end, HASH_CHUNK):
        hasher.update(view[pos : min(pos + HASH_CHUNK, end)])


# ---------------------------------------------------------------- appending an instance


@dataclasses.dataclass(frozen=True, slots=True)
class AppendPlan:
    """How to add one instance: write `data` at `offset`, apply `patches` (size fields), then
    sign file[0:end] and write the signature at `sibo_offset` (`sibo_length` bytes)."""

    offset: int
    data: bytes
    patches: list[tuple[int, bytes]]
    sibo_offset: int
    sibo_length: int

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


#: sinf header + schm (20) + schi header + sibo header: where the signature starts in a sinf.
SIBO_OFFSET_IN_SINF = 8 + 20 + 8 + 8


def build_sinf(
    signature_bytes: int,
    cert_der: bytes,
    sigc: bytes | None = None,
    note: str | None = None,
    cstb: list[tuple[int, int]] | None = None,
) -> bytes:
    """A signing instance with a zero sibo of its final length (sibo first: fixed offset)."""
    if not 0 < signature_bytes <= MAX_SIGNATURE_BYTES:
        raise ValueError(f"signature length {signature_bytes} outside 1..{MAX_SIGNATURE_BYTES}")
    if not 0 < len(cert_der) <= MAX_CERT_BYTES:
        raise ValueError(f"certificate of {len(cert_der)} bytes outside 1..{MAX_CERT_BYTES}")
    schi = [box(b"sibo", bytes(signature_bytes)), box(b"cert", cert_der)]
    if sigc is not None:
        schi.append(box(b"sigC", sigc))
    if cstb:
        schi.append(build_cstb(cstb))
    if note is not None:
        data = note.encode("utf-8")
        if b"\x00" in data:
            raise ValueError("note must not contain NUL")
        schi.append(box(b"auib", data + b"\x00"))
    schm = full_box(b"schm", 0, 0, _U32.pack(SCHEME_OEFF), _U32.pack(SCHEME_VERSION))
    return box(b"sinf", schm, box(b"schi", *schi))


def plan_append(layout: Layout, sinf: bytes) -> AppendPlan:
    """Plan appending `sinf` (from build_sinf) at the end of the file (SG-11).

    No meta: append meta{hdlr, ipro{sinf}}. Meta without ipro: append ipro{sinf}. Otherwise
    append the sinf to ipro. meta (and ipro) must end the file: anything after them could not
    be signed in a way the reference tools verify (EX-30).
    """
    end = layout.file_size
    sibo_length = _U32.unpack_from(sinf, 8 + 20 + 8)[0] - 8
    if layout.meta is None:
        data = full_box(b"meta", 0, 0, build_hdlr(), build_ipro(sinf))
        return AppendPlan(
            end, data, [], end + len(data) - len(sinf) + SIBO_OFFSET_IN_SINF, sibo_length
        )
    if layout.meta.end != end:
        raise OefError(
            f"the file-level meta at offset {layout.meta.offset} is not the last box "
            f"(it ends at {layout.meta.end}, the file at {end})"
        )
    if layout.ipro is None:
        data = build_ipro(sinf)
        grow = [layout.meta]
    else:
        if layout.ipro.end != end:
            raise OefError(f"ipro at offset {layout.ipro.offset} is not the last box of meta")
        data = sinf
        grow = [layout.ipro, layout.meta]
    new_end = end + len(data)
    patches = [size_patch(container, new_end) for container in grow]
    return AppendPlan(end, data, patches, new_end - len(sinf) + SIBO_OFFSET_IN_SINF, sibo_length)


def signature_remnants(buf: Buffer, layout: Layout) -> list[int]:
    """Offsets of box-shaped 'sinf'/'sibo'/'schm' headers outside ipro and outside mdat.

    A single flipped byte can rename meta or ipro and make a signed file look unsigned; what
    is left of its instances still shows, so such a file is reported malformed, not unsigned.
    """
    view = memoryview(buf).cast("B")
    skip = [(b.offset, b.end) for b in layout.top if b.type in (b"mdat", b"free", b"skip")]
    if layout.ipro is not None:
        skip.append((layout.ipro.offset, layout.ipro.end))
    found = []
    for top in layout.top:
        if any(a <= top.offset < b for a, b in skip):
            continue
        data = bytes(view[top.offset : top.end]) if top.size <= HASH_CHUNK else b""
        for tag in (b"sinf", b"sibo", b"schm"):
            pos = data.find(tag, 4)
            while pos >= 0:
                size = _U32.unpack_from(data, pos - 4)[0]
                absolute = top.offset + pos - 4
                inside_ipro = any(a <= absolute < b for a, b in skip)
                if 8 <= size <= len(data) - pos + 4 and not inside_ipro:
                    found.append(absolute)
                pos = data.find(tag, pos + 1)
    return sorted(found)


__all__ = [
    "BoxError",
    "DEFAULT_ALGORITHM",
    "ECDSA_SHA256",
    "PKCS1V15_SHA256",
    "AppendPlan",
    "Instance",
    "Layout",
    "OefError",
    "SignatureAlgorithm",
    "UnsupportedAlgorithmError",
]
