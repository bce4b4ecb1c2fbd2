"""ISO BMFF boxes: a bounded, lazy box reader over a byte buffer and a small box writer.

Reading never copies media: `iter_boxes(buf, start, end)` yields `Box` records (type, offsets)
and `children(box)` walks into containers on demand. Every malformed input raises `BoxError`
(a ProtocolError) with the offset; limits below cap depth, count and sizes so a hostile file
cannot exhaust memory or recursion. Writing builds bytes: `box(b"moov", child, child, ...)`.
"""

from __future__ import annotations

import dataclasses
import mmap
import struct
from collections.abc import Iterator

from app.core.errors import ProtocolError

#: Deepest nesting walked (real files: about 8 — moov/trak/mdia/minf/stbl/stsd/avc1/avcC).
MAX_BOX_DEPTH = 16
#: Most boxes in one container (a file of many small fragments stays far below this).
MAX_CHILD_BOXES = 1_000_000
#: Largest payload read into memory as a whole by `payload()` (mdat is never read this way).
MAX_PAYLOAD_READ = 64 * 1024 * 1024

HEADER_SIZE = 8
LARGE_HEADER_SIZE = 16
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEADER = struct.Struct(">I4s")

#: What the reader accepts: whole files are best read through mmap (no copy of the media).
Buffer = bytes | bytearray | memoryview | mmap.mmap


class BoxError(ProtocolError):
    """A box is truncated, overlong, nested too deep or otherwise malformed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    """One box inside a buffer: `type` (4 bytes), where it starts, its payload and its end."""

    type: bytes
    offset: int
    header_size: int
    end: int
    #: Nesting depth (0 = top level), used to enforce MAX_BOX_DEPTH.
    depth: int = 0

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def size(self) -> int:
        return self.end - self.offset

    @property
    def payload_size(self) -> int:
        return self.end - self.payload_offset

    @property
    def name(self) -> str:
        """The four-character code for messages ('moov'; non-ASCII bytes escaped)."""
        return self.type.decode("latin-1").encode("unicode_escape").decode("ascii")


def iter_boxes(
    buf: Buffer, start: int = 0, end: int | None = None, *, depth: int = 0
) -> Iterator[Box]:
    """Boxes laid end to end in `buf[start:end]`; size 0 ('to the end') is accepted at any level.

    Raises BoxError for a header that does not fit, a size smaller than its header, a box that
    runs past `end`, or more than MAX_CHILD_BOXES boxes.
    """
    view = memoryview(buf).cast("B")
    limit = len(view) if end is None else end
    if not 0 <= start <= limit <= len(view):
        raise BoxError(f"box range {start}..{limit} outside a {len(view)}-byte buffer")
    if depth > MAX_BOX_DEPTH:
        raise BoxError(f"boxes nested deeper than {MAX_BOX_DEPTH} at offset {start}")
    pos = start
    count = 0
    while pos < limit:
        if limit - pos < HEADER_SIZE:
            raise BoxError(f"truncated box header at offset {pos} ({limit - pos} bytes left)")
        size, kind = _HEADER.unpack_from(view, pos)
        header = HEADER_SIZE
        if size == 1:
            if limit - pos < LARGE_HEADER_SIZE:
                raise BoxError(f"truncated 64-bit box size at offset {pos}")
            size = _U64.unpack_from(view, pos + HEADER_SIZE)[0]
            header = LARGE_HEADER_SIZE
        elif size == 0:
            size = limit - pos
        if size < header:
            raise BoxError(f"box {kind!r} at offset {pos} declares size {size} < its header")
        if size > limit - pos:
            raise BoxError(
                f"box {kind!r} at offset {pos} declares {size} bytes, only {limit - pos} remain"
            )
        count += 1
        if count > MAX_CHILD_BOXES:
            raise BoxError(f"more than {MAX_CHILD_BOXES} boxes in one container at {start}")
        yield Box(bytes(kind), pos, header, pos + size, depth)
        pos += size


def children(buf: Buffer, parent: Box, *, skip: int = 0) -> Iterator[Box]:
    """The boxes inside `parent`'s payload, after `skip` bytes (4 for a FullBox container)."""
    start = parent.payload_offset + skip
    if start > parent.end:
        raise BoxError(f"box {parent.name} at offset {parent.offset} is too short for its fields")
    return iter_boxes(buf, start, parent.end, depth=parent.depth + 1)


def find(buf: Buffer, parent: Box | None, kind: bytes, *, skip: int = 0) -> list[Box]:
    """Every direct child of `parent` (or top-level box when None) of type `kind`."""
    boxes = iter_boxes(buf) if parent is None else children(buf, parent, skip=skip)
    return [b for b in boxes if b.type == kind]


def find_one(buf: Buffer, parent: Box | None, kind: bytes, *, skip: int = 0) -> Box:
    """The single child of type `kind`; BoxError if there is none or more than one."""
    found = find(buf, parent, kind, skip=skip)
    where = "at top level" if parent is None else f"in {parent.name} at {parent.offset}"
    if len(found) != 1:
        raise BoxError(f"expected one {kind.decode('latin-1')} {where}, found {len(found)}")
    return found[0]


def payload(buf: Buffer, box: Box) -> bytes:
    """A copy of the box payload (BoxError above MAX_PAYLOAD_READ: stream big boxes instead)."""
    if box.payload_size > MAX_PAYLOAD_READ:
        raise BoxError(f"box {box.name} payload of {box.payload_size} bytes is too large to read")
    return bytes(memoryview(buf).cast("B")[box.payload_offset : box.end])


def full_box_header(buf: Buffer, box: Box) -> tuple[int, int]:
    """(version, flags) of a FullBox."""
    if box.payload_size < 4:
        raise BoxError(f"full box {box.name} at offset {box.offset} has no version/flags")
    word = _U32.unpack_from(memoryview(buf).cast("B"), box.payload_offset)[0]
    return word >> 24, word & 0xFFFFFF


# ---------------------------------------------------------------- writing


def box(kind: bytes, *parts: bytes) -> bytes:
    """A box of type `kind` holding the concatenated `parts` (64-bit size when needed)."""
    if len(kind) != 4:
        raise ValueError(f"box type must be 4 bytes, got {kind!r}")
    body = b"".join(parts)
    size = HEADER_SIZE + len(body)
    if size <= 0xFFFFFFFF:
        return _HEADER.pack(size, kind) + body
    return _HEADER.pack(1, kind) + _U64.pack(LARGE_HEADER_SIZE + len(body)) + body


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """A FullBox: version (8 bits) and flags (24 bits) before the payload."""
    if not 0 <= version <= 0xFF or not 0 <= flags <= 0xFFFFFF:
        raise ValueError(f"bad FullBox version/flags {version}/{flags:#x}")
    return box(kind, _U32.pack(version << 24 | flags), *parts)


def box_header(kind: bytes, payload_size: int, *, large: bool = False) -> bytes:
    """Just the header of a box whose payload is written separately (streamed mdat)."""
    if large or HEADER_SIZE + payload_size > 0xFFFFFFFF:
        return _HEADER.pack(1, kind) + _U64.pack(LARGE_HEADER_SIZE + payload_size)
    return _HEADER.pack(HEADER_SIZE + payload_size, kind)


def cstring(text: str) -> bytes:
    """A null-terminated UTF-8 string field (EX-10: 'not applicable' is just the NUL)."""
    data = text.encode("utf-8")
    if b"\x00" in data:
        raise ValueError("string field must not contain NUL")
    return data + b"\x00"


def read_cstring(data: bytes, pos: int) -> tuple[str, int]:
    """(text, position after the NUL) of a null-terminated UTF-8 string at `pos`."""
    end = data.find(b"\x00", pos)
    if end < 0:
        raise BoxError(f"string at payload offset {pos} has no terminating NUL")
    try:
        return data[pos:end].decode("utf-8"), end + 1
    except UnicodeDecodeError as exc:
        raise BoxError(f"string at payload offset {pos} is not UTF-8: {exc.reason}") from None
