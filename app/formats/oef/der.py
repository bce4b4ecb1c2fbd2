"""Minimal DER for sigC: decode and encode the signature AlgorithmIdentifiers ONVIF exports use.

Only what SG-06/§4.2 needs: RSASSA-PSS (RFC 4055 parameters with SHA-1 DEFAULTs),
sha*WithRSAEncryption and ecdsa-with-SHA*. Hash AlgorithmIdentifiers with NULL or absent
parameters are both accepted. Anything else decodes to kind 'unknown' with its OID.
"""

from __future__ import annotations

from typing import Any

from app.formats.oef.meta import OefError

#: Largest sigC payload accepted (the PSS identifier is about 65 bytes).
MAX_DER_BYTES = 1024
#: Deepest TLV nesting walked (PSS parameters reach 5).
MAX_DER_DEPTH = 8

_SEQUENCE = 0x30
_OID = 0x06
_NULL = 0x05
_INTEGER = 0x02

OID_RSASSA_PSS = "1.2.840.113549.1.1.10"
OID_MGF1 = "1.2.840.113549.1.1.8"
_RSA_PKCS1 = {
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
}
_ECDSA = {
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
}
_HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_HASH_BY_NAME = {name: oid for oid, name in _HASH_OIDS.items()}


class DerError(OefError):
    """A sigC payload is not the DER it claims to be."""


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the TLV at `pos`."""
    if end - pos < 2:
        raise DerError(f"truncated DER header at {pos}")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or end - pos < count:
            raise DerError(f"bad DER length form {first:#x}")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if length > end - pos:
        raise DerError(f"DER element of {length} bytes overruns its container at {pos}")
    return tag, pos, pos + length


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        element = _tlv(data, pos, end)
        out.append(element)
        pos = element[2]
    return out


def _oid(data: bytes, start: int, end: int) -> str:
    if start == end:
        raise DerError("empty OID")
    arcs: list[int] = []
    value = 0
    for byte in data[start:end]:
        value = value << 7 | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if data[end - 1] & 0x80:
        raise DerError("OID ends inside an arc")
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def _algorithm_id(data: bytes, start: int, end: int) -> tuple[str, tuple[int, int, int] | None]:
    """(OID, parameters element or None) of an AlgorithmIdentifier SEQUENCE's contents."""
    parts = _elements(data, start, end)
    if not parts or parts[0][0] != _OID or len(parts) > 2:
        raise DerError("AlgorithmIdentifier is not SEQUENCE { OID, parameters OPTIONAL }")
    oid = _oid(data, parts[0][1], parts[0][2])
    if len(parts) == 1:
        return oid, None
    if parts[1][0] == _NULL:
        if parts[1][1] != parts[1][2]:
            raise DerError("NULL parameters with content")
        return oid, None
    return oid, parts[1]


def _hash_name(data: bytes, element: tuple[int, int, int]) -> str:
    """The hash name of a hash AlgorithmIdentifier element (its OID if not a known hash)."""
    tag, cstart, cend = element
    if tag != _SEQUENCE:
        raise DerError("hash AlgorithmIdentifier is not a SEQUENCE")
    oid, _params = _algorithm_id(data, cstart, cend)
    return _HASH_OIDS.get(oid, oid)


def _integer(data: bytes, start: int, end: int) -> int:
    tag, cstart, cend = _tlv(data, start, end)
    if tag != _INTEGER or cstart == cend or cend - cstart > 4:
        raise DerError("expected a small INTEGER")
    return int.from_bytes(data[cstart:cend], "big", signed=True)


def decode_algorithm(der: bytes) -> dict[str, Any]:
    """A sigC payload → {'kind', 'oid', 'hash', 'mgf_hash', 'salt'} (kind 'unknown' if foreign)."""
    if len(der) > MAX_DER_BYTES:
        raise DerError(f"sigC of {len(der)} bytes exceeds MAX_DER_BYTES={MAX_DER_BYTES}")
    tag, start, end = _tlv(der, 0, len(der))
    if tag != _SEQUENCE or end != len(der):
        raise DerError("sigC is not exactly one SEQUENCE")
    oid, params = _algorithm_id(der, start, end)
    if oid in _RSA_PKCS1:
        return {"kind": "rsa-pkcs1v15", "oid": oid, "hash": _RSA_PKCS1[oid]}
    if oid in _ECDSA:
        return {"kind": "ecdsa", "oid": oid, "hash": _ECDSA[oid]}
    if oid != OID_RSASSA_PSS:
        return {"kind": "unknown", "oid": oid, "hash": ""}
    # RFC 4055 DEFAULTs: SHA-1, MGF1-SHA-1, salt 20, trailer 1.
    fields: dict[str, Any] = {
        "kind": "rsa-pss",
        "oid": oid,
        "hash": "sha1",
        "mgf_hash": "sha1",
        "salt": 20,
    }
    if params is None:
        return fields
    ptag, pstart, pend = params
    if ptag != _SEQUENCE:
        raise DerError("RSASSA-PSS parameters are not a SEQUENCE")
    for ctag, cstart, cend in _elements(der, pstart, pend):
        if ctag == 0xA0:
            fields["hash"] = _hash_name(der, _tlv(der, cstart, cend))
        elif ctag == 0xA1:
            mtag, mstart, mend = _tlv(der, cstart, cend)
            if mtag != _SEQUENCE:
                raise DerError("maskGenAlgorithm is not a SEQUENCE")
            parts = _elements(der, mstart, mend)
            if len(parts) != 2 or parts[0][0] != _OID:
                raise DerError("maskGenAlgorithm is not { OID, hash AlgorithmIdentifier }")
            if _oid(der, parts[0][1], parts[0][2]) != OID_MGF1:
                fields["mgf_hash"] = "unknown-mgf"
            else:
                fields["mgf_hash"] = _hash_name(der, parts[1])
        elif ctag == 0xA2:
            fields["salt"] = _integer(der, cstart, cend)
        elif ctag == 0xA3:
            if _integer(der, cstart, cend) != 1:
                raise DerError("RSASSA-PSS trailerField other than 1 (0xBC)")
        else:
            raise DerError(f"unexpected RSASSA-PSS parameter tag {ctag:#x}")
    return fields


# ---------------------------------------------------------------- encoding


def _encode(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _encode_oid(oid: str) -> bytes:
    arcs = [int(a) for a in oid.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _encode(_OID, bytes(out))


def _hash_algorithm_id(name: str) -> bytes:
    # NULL parameters, as OpenSSL writes them (§4.2 table).
    return _encode(_SEQUENCE, _encode_oid(_HASH_BY_NAME[name]) + b"\x05\x00")


def encode_algorithm(kind: str, hash_name: str, mgf_hash: str = "", salt: int = 0) -> bytes:
    """The DER AlgorithmIdentifier for a signature algorithm (§4.2 byte-exact forms)."""
    if kind == "rsa-pkcs1v15":
        oid = next(o for o, h in _RSA_PKCS1.items() if h == hash_name)
        return _encode(_SEQUENCE, _encode_oid(oid) + b"\x05\x00")
    if kind == "ecdsa":
        oid = next(o for o, h in _ECDSA.items() if h == hash_name)
        return _encode(_SEQUENCE, _encode_oid(oid))
    if kind != "rsa-pss":
        raise ValueError(f"cannot encode signature algorithm kind {kind!r}")
    params = _encode(0xA0, _hash_algorithm_id(hash_name))
    mgf = _encode(_SEQUENCE, _encode_oid(OID_MGF1) + _hash_algorithm_id(mgf_hash))
    params += _encode(0xA1, mgf)
    if salt != 20:
        params += _encode(0xA2, _encode(_INTEGER, salt.to_bytes(salt.bit_length() // 8 + 1, "big")))
    return _encode(_SEQUENCE, _encode_oid(OID_RSASSA_PSS) + _encode(_SEQUENCE, params))
