"""H.264/H.265 NAL units: Annex B and length-prefixed framing, headers, emulation prevention."""

from __future__ import annotations

import struct

from app.core.errors import ProtocolError

#: Largest single NAL unit accepted (a 4K intra slice stays well below this).
MAX_NAL_BYTES = 4 * 1024 * 1024
#: Most NAL units in one access unit (slices + parameter sets + SEI of one frame).
MAX_NALS_PER_AU = 1024
#: Size of the big-endian length field in front of each NAL in stored access units.
LENGTH_PREFIX_BYTES = 4

_START_CODE = b"\x00\x00\x01"
_LENGTH = struct.Struct("!I")


class H26xError(ProtocolError):
    """An H.264/H.265 bitstream, NAL unit or parameter set is malformed or over a limit."""


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (3- or 4-byte start codes; leading junk ignored).

    Trailing zero bytes belong to the next start code (or trailing_zero_8bits), never to a NAL.
    """
    nals: list[bytes] = []
    pos = data.find(_START_CODE)
    while pos >= 0:
        start = pos + 3
        nxt = data.find(_START_CODE, start)
        end = len(data) if nxt < 0 else nxt
        nal = data[start:end].rstrip(b"\x00")
        if nal:
            _check_nal(nal, len(nals))
            nals.append(bytes(nal))
        pos = nxt
    return nals


def join_annexb(nals: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Annex B byte stream with 4-byte start codes (what decoders and files accept)."""
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def split_length_prefixed(data: bytes) -> list[bytes]:
    """NAL units of a stored access unit (each behind a 4-byte big-endian length)."""
    nals: list[bytes] = []
    pos = 0
    size = len(data)
    while pos < size:
        if pos + LENGTH_PREFIX_BYTES > size:
            raise H26xError(f"truncated NAL length field at byte {pos} of {size}")
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += LENGTH_PREFIX_BYTES
        if length == 0:
            raise H26xError(f"zero-length NAL unit at byte {pos - LENGTH_PREFIX_BYTES}")
        if length > MAX_NAL_BYTES:
            raise H26xError(f"NAL unit of {length} bytes exceeds MAX_NAL_BYTES={MAX_NAL_BYTES}")
        if pos + length > size:
            raise H26xError(f"NAL unit of {length} bytes at byte {pos} runs past the end ({size})")
        _check_count(len(nals))
        nals.append(bytes(data[pos : pos + length]))
        pos += length
    return nals


def join_length_prefixed(nals: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A stored access unit from NAL units (inverse of split_length_prefixed)."""
    for index, nal in enumerate(nals):
        _check_nal(nal, index)
    return b"".join(_LENGTH.pack(len(nal)) + nal for nal in nals)


def annexb_to_length_prefixed(data: bytes) -> bytes:
    """Annex B byte stream → stored access unit layout."""
    return join_length_prefixed(split_annexb(data))


def length_prefixed_to_annexb(data: bytes) -> bytes:
    """Stored access unit layout → Annex B byte stream."""
    return join_annexb(split_length_prefixed(data))


def h264_nal_type(nal: bytes) -> int:
    """nal_unit_type of an H.264 NAL unit (5 bits after forbidden_zero_bit and nal_ref_idc)."""
    if not nal:
        raise H26xError("empty H.264 NAL unit has no header")
    return nal[0] & 0x1F


def h265_nal_type(nal: bytes) -> int:
    """nal_unit_type of an H.265 NAL unit (6 bits of the 2-byte header)."""
    if len(nal) < 2:
        raise H26xError(f"H.265 NAL unit of {len(nal)} bytes has no 2-byte header")
    return (nal[0] >> 1) & 0x3F


def remove_emulation_prevention(data: bytes) -> bytes:
    """NAL payload → RBSP: drop each 0x03 that follows two zero bytes.

    bytes.replace scans left to right without overlap, which is exactly the spec's rule that
    the zero count restarts after an emulation_prevention_three_byte.
    """
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """RBSP → NAL payload: insert 0x03 wherever two zeros precede a byte ≤ 3 or the end."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    if zeros >= 2:
        out.append(3)  # an RBSP ending in a cabac_zero_word gets a final 0x03 (7.4.1)
    return bytes(out)


def _check_nal(nal: bytes, index: int) -> None:
    if not nal:
        raise H26xError(f"NAL unit {index} is empty")
    if len(nal) > MAX_NAL_BYTES:
        raise H26xError(f"NAL unit of {len(nal)} bytes exceeds MAX_NAL_BYTES={MAX_NAL_BYTES}")
    _check_count(index)


def _check_count(index: int) -> None:
    if index >= MAX_NALS_PER_AU:
        raise H26xError(f"more than MAX_NALS_PER_AU={MAX_NALS_PER_AU} NAL units in one unit")
