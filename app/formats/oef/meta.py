"""The file-level `meta` of an ONVIF export: hdlr, suep, sumi, cstb and ipro — build and parse.

Layout (see DESIGN.md): meta (FullBox v0) { hdlr 'null', suep v1, sumi, cstb, ipro { count 1 } };
`ipro` is last so signing instances (`sinf`) can be appended to the end of the file. Every
parser here takes a box payload (bytes after the box header) and raises only `OefError`.
"""

from __future__ import annotations

import dataclasses
import struct

from app.formats.bmff.box import BoxError, box, cstring, full_box

#: Most suep entries (tracks) accepted from a file; an export has a handful.
MAX_SUEP_ENTRIES = 4096
#: Most cstb entries (one per track at most).
MAX_CSTB_ENTRIES = 4096
#: Longest string field (names, URLs, operator, notes) in bytes.
MAX_STRING_BYTES = 64 * 1024

#: Seconds from 1904-01-01 (ISO BMFF, suep.ExportUnitTime) to the Unix epoch.
ISO_EPOCH_UNIX_OFFSET_S = 2_082_844_800
#: 100-ns ticks from 1601-01-01 (FILETIME: cstb, sumi) to the Unix epoch.
FILETIME_UNIX_OFFSET = 116_444_736_000_000_000
NS_PER_S = 1_000_000_000
NS_PER_FILETIME_TICK = 100

#: Handler type of our file-level meta; ONVIF fixes none, so keep this stable forever.
META_HANDLER_TYPE = b"null"
META_HANDLER_NAME = "ONVIF export information"
UUID_SIZE = 16

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_CSTB_ENTRY = struct.Struct(">IQ")
_SUMI_FIXED = struct.Struct(">16s16s16sQQHH")


class OefError(BoxError):
    """An ONVIF export box (suep, sumi, cstb, ipro, sinf …) is malformed."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrackSource:
    """Where one track came from (suep entry). `uuid` and `kind` only for legacy v0 entries."""

    track_id: int
    name: str
    url: str
    mac: str
    line: str
    uuid: bytes | None = None
    kind: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ExportInfo:
    """Everything the exporter knows about an export part; input of `build_meta`."""

    unit_name: str
    unit_url: str
    unit_mac: str
    export_time_ns: int
    operator: str
    tracks: list[TrackSource]
    #: (track_id, UTC ns of the origin of that track's media timeline) → file-level cstb.
    start_times: list[tuple[int, int]]
    part_uuid: bytes
    predecessor_uuid: bytes
    successor_uuid: bytes
    start_ns: int
    duration_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class Suep:
    """A parsed SurveillanceExportBox; `track_id_bits` is 32 for the oxfplayer variant."""

    version: int
    unit_name: str
    unit_url: str
    unit_mac: str
    export_time_ns: int
    operator: str
    tracks: list[TrackSource]
    track_id_bits: int


@dataclasses.dataclass(frozen=True, slots=True)
class Sumi:
    """A parsed SAF identification box (multi-file ordering, start time and duration)."""

    part_uuid: bytes
    predecessor_uuid: bytes
    successor_uuid: bytes
    start_ns: int
    duration_ns: int
    predecessor_uri: str
    successor_uri: str

    @property
    def all_zero(self) -> bool:
        """isosign writes an all-zero sumi: it carries no information then."""
        return not any(self.part_uuid + self.predecessor_uuid + self.successor_uuid) and (
            self.start_ns == filetime_to_unix_ns(0) and self.duration_ns == 0
        )


# ---------------------------------------------------------------- epochs


def unix_ns_to_iso_seconds(ns: int) -> int:
    """Unix ns → whole seconds since 1904-01-01 (floored)."""
    return ns // NS_PER_S + ISO_EPOCH_UNIX_OFFSET_S


def iso_seconds_to_unix_ns(seconds: int) -> int:
    return (seconds - ISO_EPOCH_UNIX_OFFSET_S) * NS_PER_S


def unix_ns_to_filetime(ns: int) -> int:
    """Unix ns → 100-ns ticks since 1601-01-01 (floored)."""
    return ns // NS_PER_FILETIME_TICK + FILETIME_UNIX_OFFSET


def filetime_to_unix_ns(ticks: int) -> int:
    return (ticks - FILETIME_UNIX_OFFSET) * NS_PER_FILETIME_TICK


# ---------------------------------------------------------------- building


def _u64_field(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        raise ValueError(f"{what} {value} does not fit an unsigned 64-bit field")
    return _U64.pack(value)


def _uuid_field(value: bytes, what: str) -> bytes:
    if len(value) != UUID_SIZE:
        raise ValueError(f"{what} must be {UUID_SIZE} bytes, got {len(value)}")
    return value


def build_hdlr() -> bytes:
    """hdlr FullBox v0: pre_defined, handler_type 'null', 3 reserved words, name."""
    return full_box(
        b"hdlr", 0, 0, bytes(4), META_HANDLER_TYPE, bytes(12), cstring(META_HANDLER_NAME)
    )


def build_suep(info: ExportInfo) -> bytes:
    """suep version 1 with 16-bit TrackIDs (EX-10), one entry per track."""
    if len(info.tracks) > MAX_SUEP_ENTRIES:
        raise ValueError(f"{len(info.tracks)} tracks exceed MAX_SUEP_ENTRIES={MAX_SUEP_ENTRIES}")
    parts = [
        cstring(info.unit_name),
        cstring(info.unit_url),
        cstring(info.unit_mac),
        _u64_field(unix_ns_to_iso_seconds(info.export_time_ns), "export time"),
        cstring(info.operator),
        _U32.pack(len(info.tracks)),
    ]
    for track in info.tracks:
        if not 1 <= track.track_id <= 0xFFFF:
            raise ValueError(f"track ID {track.track_id} does not fit suep's 16-bit TrackID")
        parts += [
            _U16.pack(track.track_id),
            cstring(track.name),
            cstring(track.url),
            cstring(track.mac),
            cstring(track.line),
        ]
    return full_box(b"suep", 1, 0, *parts)


def build_sumi(info: ExportInfo) -> bytes:
    """sumi (compat, EX-20): part UUIDs, start and duration in 100 ns, no URIs."""
    return box(
        b"sumi",
        _uuid_field(info.part_uuid, "part UUID"),
        _uuid_field(info.predecessor_uuid, "predecessor UUID"),
        _uuid_field(info.successor_uuid, "successor UUID"),
        _u64_field(unix_ns_to_filetime(info.start_ns), "start time"),
        _u64_field(info.duration_ns // NS_PER_FILETIME_TICK, "duration"),
        _U16.pack(0),
        _U16.pack(0),
    )


def build_cstb(entries: list[tuple[int, int]]) -> bytes:
    """cstb from (track_id, UTC ns of the media origin) pairs (EX-11)."""
    if len(entries) > MAX_CSTB_ENTRIES:
        raise ValueError(f"{len(entries)} cstb entries exceed MAX_CSTB_ENTRIES={MAX_CSTB_ENTRIES}")
    body = [_U32.pack(len(entries))]
    for track_id, start_ns in entries:
        if not 1 <= track_id <= 0xFFFF_FFFF:
            raise ValueError(f"cstb track ID {track_id} must be 1..2^32-1")
        ticks = unix_ns_to_filetime(start_ns)
        if not 0 <= ticks <= 0xFFFF_FFFF_FFFF_FFFF:
            raise ValueError(f"cstb start time {start_ns} ns is outside the FILETIME range")
        body.append(_CSTB_ENTRY.pack(track_id, ticks))
    return box(b"cstb", *body)


def build_ipro(*sinfs: bytes) -> bytes:
    """ipro FullBox v0 with protection_count 1 (always 1, EX-12) and the given sinf boxes."""
    return full_box(b"ipro", 0, 0, _U16.pack(1), *sinfs)


def build_meta(info: ExportInfo) -> bytes:
    """The file-level meta of an unsigned export part (EX-30 order, ipro last, 32-bit sizes)."""
    children = [build_hdlr(), build_suep(info), build_sumi(info)]
    if info.start_times:
        children.append(build_cstb(info.start_times))
    children.append(build_ipro())
    meta = full_box(b"meta", 0, 0, *children)
    if len(meta) > 0xFFFF_FFFF:
        raise ValueError("meta box does not fit a 32-bit size (EX-31)")
    return meta


# ---------------------------------------------------------------- parsing


class _Reader:
    """Cursor over one box payload; every overrun is an OefError naming the box and offset."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise OefError(
                f"{self.what}: needs {n} bytes at payload offset {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos, self.pos + MAX_STRING_BYTES + 1)
        if end < 0:
            raise OefError(
                f"{self.what}: string at payload offset {self.pos} has no NUL within "
                f"MAX_STRING_BYTES={MAX_STRING_BYTES}"
            )
        raw = self.data[self.pos : end]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OefError(
                f"{self.what}: string at payload offset {self.pos} is not UTF-8 ({exc.reason})"
            ) from None
        self.pos = end + 1
        return text

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def count(self, n: int, limit: int, name: str) -> int:
        if n > limit:
            raise OefError(f"{self.what}: {name} {n} exceeds the limit {limit}")
        return n


def parse_suep(payload: bytes) -> Suep:
    """suep payload (from version/flags on): v1 with 16-bit TrackID, else 32-bit, or legacy v0.

    The 32-bit-TrackID variant (oxfplayer) is accepted only if it consumes the payload exactly
    and the 16-bit reading does not.
    """
    head = _Reader(payload, "suep")
    version = head.u32() >> 24
    if version == 0:
        return _parse_suep_v0(head)
    if version != 1:
        raise OefError(f"suep: unsupported version {version}")
    errors: list[str] = []
    for bits in (16, 32):
        reader = _Reader(payload, "suep")
        reader.pos = 4
        try:
            suep = _parse_suep_v1(reader, bits)
        except OefError as exc:
            errors.append(str(exc))
            continue
        if reader.left == 0:
            return suep
        errors.append(f"suep ({bits}-bit TrackID): {reader.left} bytes left over")
    raise OefError("; ".join(errors))


def _suep_header(reader: _Reader) -> tuple[str, str, str, int, str]:
    name, url, mac = reader.string(), reader.string(), reader.string()
    seconds = reader.u64()
    return name, url, mac, iso_seconds_to_unix_ns(seconds), reader.string()


def _parse_suep_v1(reader: _Reader, bits: int) -> Suep:
    name, url, mac, export_ns, operator = _suep_header(reader)
    count = reader.count(reader.u32(), MAX_SUEP_ENTRIES, "entry_count")
    tracks = []
    for _ in range(count):
        track_id = reader.u16() if bits == 16 else reader.u32()
        tracks.append(
            TrackSource(
                track_id, reader.string(), reader.string(), reader.string(), reader.string()
            )
        )
    return Suep(1, name, url, mac, export_ns, operator, tracks, bits)


def _parse_suep_v0(reader: _Reader) -> Suep:
    name, url, mac, export_ns, operator = _suep_header(reader)
    tracks: list[TrackSource] = []
    for kind, has_line in (("video", True), ("audio", False)):
        count = reader.u8()
        for _ in range(count):
            uuid = reader.take(UUID_SIZE)
            src_name, src_url, src_mac = reader.string(), reader.string(), reader.string()
            line = reader.string() if has_line else ""
            tracks.append(TrackSource(0, src_name, src_url, src_mac, line, uuid, kind))
    if reader.left:
        raise OefError(f"suep v0: {reader.left} bytes left over after the entries")
    return Suep(0, name, url, mac, export_ns, operator, tracks, 0)


def parse_sumi(payload: bytes) -> Sumi:
    """sumi payload: UUIDs, FILETIME start, 100-ns duration, optional URIs."""
    reader = _Reader(payload, "sumi")
    part, pred, succ, start, duration, pred_len, succ_len = _SUMI_FIXED.unpack(
        reader.take(_SUMI_FIXED.size)
    )
    pred_uri = reader.string() if pred_len else ""
    succ_uri = reader.string() if succ_len else ""
    return Sumi(
        part,
        pred,
        succ,
        filetime_to_unix_ns(start),
        duration * NS_PER_FILETIME_TICK,
        pred_uri,
        succ_uri,
    )


def parse_cstb(payload: bytes) -> list[tuple[int, int]]:
    """cstb payload → [(track_id, UTC ns of the media origin)]; the payload must be exact."""
    reader = _Reader(payload, "cstb")
    count = reader.count(reader.u32(), MAX_CSTB_ENTRIES, "entry_count")
    if reader.left != count * _CSTB_ENTRY.size:
        raise OefError(
            f"cstb: {count} entries need {count * _CSTB_ENTRY.size} bytes, found {reader.left}"
        )
    entries = []
    for _ in range(count):
        track_id, ticks = _CSTB_ENTRY.unpack(reader.take(_CSTB_ENTRY.size))
        if track_id == 0:
            raise OefError("cstb: track_ID 0 is not allowed")
        entries.append((int(track_id), filetime_to_unix_ns(int(ticks))))
    return entries


def parse_hdlr(payload: bytes) -> bytes:
    """The handler_type of a hdlr payload."""
    reader = _Reader(payload, "hdlr")
    reader.take(8)
    return reader.take(4)


def parse_ipro_count(payload: bytes) -> int:
    """protection_count of an ipro payload (EX-12 wants 1)."""
    reader = _Reader(payload, "ipro")
    reader.take(4)
    return reader.u16()


def parse_auib(payload: bytes) -> str:
    """The UserInformation text of an auib payload (one NUL-terminated UTF-8 string)."""
    reader = _Reader(payload, "auib")
    text = reader.string()
    if reader.left:
        raise OefError(f"auib: {reader.left} bytes after the terminating NUL")
    return text
