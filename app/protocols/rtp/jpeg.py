"""RTP payload format for JPEG (RFC 2435): rebuild JFIF images from RTP, and split them into it.

RFC 2435 sends only the entropy-coded scan; the receiver rebuilds the JPEG headers from the
8-byte main header (type, Q, size in 8-pixel units), the restart marker header (types 64..127)
and the quantization table header (Q >= 128, first packet of a frame only). Huffman tables are
always the standard ones of ITU-T T.81 Annex K.3, so only baseline images that use them can be
sent; `parse_jpeg` says why when an image cannot.

Quantization tables in the RTP header and in DQT segments are both in zig-zag order, as the
RFC's reference code (and FFmpeg, GStreamer) write them.
"""

from __future__ import annotations

import dataclasses
import functools
import struct

from app.core.errors import ConfigError, ErrorKind, ProtocolError
from app.core.media import Codec, CodecParams
from app.protocols.rtp.codec import (
    DEFAULT_MAX_PAYLOAD,
    DepacketizedUnit,
    DepacketizeError,
    PayloadChunk,
)
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.reassembly import FragmentReassembler

#: Largest JPEG image reassembled or packetized (a 4K MJPEG frame is well below 2 MiB).
MAX_FRAME_BYTES = 8 * 1024 * 1024
#: RFC 2435 carries width and height in one byte each, in units of 8 pixels.
MAX_DIMENSION = 255 * 8
#: Most quantization tables accepted in one quantization table header.
MAX_QTABLES = 4
#: Most marker segments read before the scan of an image handed to the packetizer.
MAX_HEADER_SEGMENTS = 64

#: Types 0 (4:2:2) and 1 (4:2:0); +64 adds the restart marker header.
TYPE_422 = 0
TYPE_420 = 1
RESTART_TYPE_FLAG = 64
#: Q of 128..255 means the tables travel in-band; 255 means "new tables every frame".
Q_DYNAMIC = 255
Q_INBAND_MIN = 128

_MAIN = struct.Struct(
    "!IBBBB"
)  # type-specific(8) | fragment offset(24), type, Q, width/8, height/8
_RESTART = struct.Struct("!HH")  # restart interval, F(1) L(1) restart count(14)
_QTABLE = struct.Struct("!BBH")  # MBZ, precision bits, length
_SEGMENT = struct.Struct("!BBH")  # 0xFF, marker, length
#: F=1, L=1, count=0x3FFF: restart intervals are not aligned with packet boundaries.
_RESTART_UNALIGNED = 0xFFFF
_FIRST_PACKET_OVERHEAD = _MAIN.size + _RESTART.size + _QTABLE.size + 2 * 64
#: Smallest max_payload that still carries one scan byte in the first packet.
MIN_MAX_PAYLOAD = _FIRST_PACKET_OVERHEAD + 1

_SOI, _EOI, _SOS, _DQT, _DHT, _DRI, _SOF0, _SOF2 = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD, 0xC0, 0xC2
_EOI_BYTES = b"\xff\xd9"


class JpegPayloadError(DepacketizeError):
    """An RTP/JPEG payload violates RFC 2435 (or uses a part of it Custos does not support)."""


class JpegImageError(ProtocolError):
    """A JPEG image cannot be sent with RFC 2435 (malformed, or not a standard baseline image)."""


# ---------------------------------------------------------------- standard tables (T.81 Annex K)

# Tables K.1 and K.2 in natural (row-major) order; the RFC scales them for Q 1..99.
_LUMA_K1 = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA_K2 = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)  # fmt: skip

# Huffman tables K.3 (class << 4 | id, code counts per length, symbol values).
_HUFFMAN_SPECS = (
    (0x00, "00010501010101010100000000000000", "000102030405060708090a0b"),
    (0x01, "00030101010101010101010000000000", "000102030405060708090a0b"),
    (
        0x10,
        "0002010303020403050504040000017d",
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f024336272"
        "82090a161718191a25262728292a3435363738393a434445464748494a53545556575859"
        "5a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3"
        "a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2"
        "e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa",
    ),
    (
        0x11,
        "00020102040403040705040400010277",
        "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d1"
        "0a162434e125f11718191a262728292a35363738393a434445464748494a535455565758"
        "595a636465666768696a737475767778797a82838485868788898a92939495969798999a"
        "a2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9da"
        "e2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa",
    ),
)
#: (class << 4 | id) -> the table's bytes after that byte in a DHT segment.
STANDARD_HUFFMAN = {tc: bytes.fromhex(counts + values) for tc, counts, values in _HUFFMAN_SPECS}
_DHT_SEGMENT = b"".join(bytes([tc]) + table for tc, table in STANDARD_HUFFMAN.items())


def _zigzag() -> tuple[int, ...]:
    """Natural-order index of each zig-zag position (diagonals, alternating direction)."""
    cells = sorted(
        ((r, c) for r in range(8) for c in range(8)),
        key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]),
    )
    return tuple(r * 8 + c for r, c in cells)


_ZIGZAG = _zigzag()


@functools.lru_cache(maxsize=128)
def standard_qtables(q: int) -> tuple[bytes, bytes]:
    """(luma, chroma) tables in zig-zag order for Q 1..127, scaled as RFC 2435 Appendix A."""
    if not 1 <= q < Q_INBAND_MIN:
        raise ValueError(f"Q {q} has no standard tables (1..127)")
    factor = min(q, 99)  # Q 100..127 are reserved; the RFC's code treats them as 99
    scale = 5000 // factor if factor < 50 else 200 - 2 * factor

    def scaled(table: tuple[int, ...]) -> bytes:
        return bytes(min(255, max(1, (table[i] * scale + 50) // 100)) for i in _ZIGZAG)

    return scaled(_LUMA_K1), scaled(_CHROMA_K2)


def _segment(marker: int, body: bytes) -> bytes:
    return _SEGMENT.pack(0xFF, marker, len(body) + 2) + body


@functools.lru_cache(maxsize=32)
def jpeg_headers(
    jpeg_type: int, width: int, height: int, luma: bytes, chroma: bytes, restart_interval: int
) -> bytes:
    """SOI up to and including SOS for an RFC 2435 frame (type 0/1, tables of 64 or 128 bytes)."""
    dqt = b"".join(
        bytes([(len(table) == 128) << 4 | table_id]) + table
        for table_id, table in ((0, luma), (1, chroma))
    )
    luma_sampling = 0x21 if jpeg_type == TYPE_422 else 0x22
    sof = struct.pack("!BHHB", 8, height, width, 3) + bytes(
        [1, luma_sampling, 0, 2, 0x11, 1, 3, 0x11, 1]
    )
    parts = [b"\xff\xd8", _segment(_DQT, dqt), _segment(_SOF0, sof), _segment(_DHT, _DHT_SEGMENT)]
    if restart_interval:
        parts.append(_segment(_DRI, struct.pack("!H", restart_interval)))
    parts.append(_segment(_SOS, bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])))
    return b"".join(parts)


# ---------------------------------------------------------------- depacketizer


@dataclasses.dataclass(frozen=True, slots=True)
class _Fragment:
    offset: int
    jpeg_type: int  # 0 or 1, restart flag removed
    q: int
    width: int
    height: int
    restart_interval: int
    #: In-band tables of the first packet (Q >= 128); empty when none were sent.
    tables: tuple[bytes, ...]
    data: memoryview


def _parse_fragment(payload: bytes) -> _Fragment:
    if len(payload) < _MAIN.size:
        raise JpegPayloadError(f"RTP/JPEG payload of {len(payload)} bytes has no 8-byte header")
    word, jpeg_type, q, width8, height8 = _MAIN.unpack_from(payload)
    offset = word & 0xFF_FFFF
    pos = _MAIN.size
    restart_interval = 0
    if RESTART_TYPE_FLAG <= jpeg_type < 128:
        if len(payload) < pos + _RESTART.size:
            raise JpegPayloadError(f"RTP/JPEG type {jpeg_type} packet lacks its restart header")
        restart_interval = _RESTART.unpack_from(payload, pos)[0]
        pos += _RESTART.size
        jpeg_type -= RESTART_TYPE_FLAG
    if jpeg_type not in (TYPE_422, TYPE_420):
        raise JpegPayloadError(f"RTP/JPEG type {jpeg_type} is not supported (only 0, 1, 64, 65)")
    if q == 0:
        raise JpegPayloadError("RTP/JPEG Q 0 is reserved")
    if width8 == 0 or height8 == 0:
        raise JpegPayloadError(f"RTP/JPEG image size {width8 * 8}x{height8 * 8} is empty")
    tables: tuple[bytes, ...] = ()
    if offset == 0 and q >= Q_INBAND_MIN:
        tables, pos = _parse_qtables(payload, pos, q)
    data = memoryview(payload)[pos:]
    return _Fragment(offset, jpeg_type, q, width8 * 8, height8 * 8, restart_interval, tables, data)


def _parse_qtables(payload: bytes, pos: int, q: int) -> tuple[tuple[bytes, ...], int]:
    if len(payload) < pos + _QTABLE.size:
        raise JpegPayloadError(f"RTP/JPEG Q {q} packet lacks its quantization table header")
    _mbz, precision, length = _QTABLE.unpack_from(payload, pos)
    pos += _QTABLE.size
    end = pos + length
    if end > len(payload):
        raise JpegPayloadError(
            f"RTP/JPEG quantization tables of {length} bytes overrun the {len(payload)}-byte packet"
        )
    tables: list[bytes] = []
    while pos < end:
        if len(tables) == MAX_QTABLES:
            raise JpegPayloadError(f"RTP/JPEG sends more than {MAX_QTABLES} quantization tables")
        size = 128 if precision >> len(tables) & 1 else 64
        if pos + size > end:
            raise JpegPayloadError(f"RTP/JPEG quantization table length {length} is not whole")
        tables.append(bytes(payload[pos : pos + size]))
        pos += size
    return tuple(tables), end


@dataclasses.dataclass(slots=True)
class _Frame:
    timestamp: int
    headers: bytes
    width: int
    height: int
    parts: list[memoryview]
    size: int = 0


class JpegDepacketizer(FragmentReassembler[_Frame]):
    """Reassembles RFC 2435 frames into complete JFIF images; every image is a keyframe.

    Fragments must arrive with contiguous offsets; a frame with a gap, a missing first or last
    packet is dropped whole and counted in `lost_units`, and its remaining packets are skipped.
    """

    def __init__(self, params: CodecParams) -> None:
        if params.codec is not Codec.JPEG:
            raise ConfigError(f"JpegDepacketizer cannot handle codec {params.codec}")
        super().__init__()
        self.params = params
        #: In-band tables of Q 128..254, which later frames may refer to with length 0.
        self._known_tables: dict[int, tuple[bytes, bytes]] = {}

    def _accept(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        fragment = _parse_fragment(packet.payload)
        frame = self._pending
        if frame is None:
            if fragment.offset != 0:  # the first packet was lost
                self._lose(packet.timestamp, packet.marker)
                return []
            frame = self._pending = self._start(packet.timestamp, fragment)
        elif fragment.offset != frame.size:
            self._lose(packet.timestamp, packet.marker)
            return []
        if len(frame.headers) + frame.size + len(fragment.data) > MAX_FRAME_BYTES:
            raise JpegPayloadError(
                f"RTP/JPEG frame at timestamp {packet.timestamp} exceeds {MAX_FRAME_BYTES} bytes"
            )
        frame.parts.append(fragment.data)
        frame.size += len(fragment.data)
        if not packet.marker:
            return []
        self._pending = None
        return [self._finish(frame)]

    def _start(self, ts: int, fragment: _Fragment) -> _Frame:
        q = fragment.q
        if q < Q_INBAND_MIN:
            luma, chroma = standard_qtables(q)
        elif fragment.tables:
            luma = fragment.tables[0]
            chroma = fragment.tables[1] if len(fragment.tables) > 1 else luma
            if q != Q_DYNAMIC:
                self._known_tables[q] = (luma, chroma)
        elif q in self._known_tables:
            luma, chroma = self._known_tables[q]
        else:
            raise JpegPayloadError(f"RTP/JPEG Q {q} refers to quantization tables never received")
        headers = jpeg_headers(
            fragment.jpeg_type,
            fragment.width,
            fragment.height,
            luma,
            chroma,
            fragment.restart_interval,
        )
        return _Frame(ts, headers, fragment.width, fragment.height, [])

    def _finish(self, frame: _Frame) -> DepacketizedUnit:
        scan = b"".join(frame.parts)
        # Some senders keep the image's EOI at the end of the scan; it must not appear twice.
        trailer = b"" if scan.endswith(_EOI_BYTES) else _EOI_BYTES
        new_params = None
        if (frame.width, frame.height) != (self.params.width, self.params.height):
            new_params = dataclasses.replace(self.params, width=frame.width, height=frame.height)
            self.params = new_params
        return DepacketizedUnit(
            frame.headers + scan + trailer, frame.timestamp, keyframe=True, new_params=new_params
        )


# ---------------------------------------------------------------- packetizer


@dataclasses.dataclass(frozen=True, slots=True)
class JpegImage:
    """What RFC 2435 carries of a baseline JPEG image."""

    jpeg_type: int  # TYPE_422 or TYPE_420
    width: int
    height: int
    #: 8-bit tables in zig-zag order, as in DQT.
    luma_table: bytes
    chroma_table: bytes
    restart_interval: int
    #: Entropy-coded scan data (restart markers included), without the EOI.
    scan: bytes


def _unsupported(message: str) -> JpegImageError:
    return JpegImageError(message, kind=ErrorKind.UNIMPLEMENTED)


def _scan_end(data: bytes, pos: int) -> int:
    """Index of the marker that ends the entropy-coded segment starting at `pos`."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise JpegImageError("JPEG scan data is not terminated by EOI")
        follower = data[pos + 1]
        if follower == 0 or 0xD0 <= follower <= 0xD7:  # stuffed 0xFF or restart marker
            pos += 2
        elif follower == 0xFF:  # fill byte before a marker
            pos += 1
        else:
            return pos


class _ImageParser:
    """Collects the marker segments of one JPEG image up to its single scan."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.qtables: dict[int, bytes] = {}
        self.restart_interval = 0
        self.sof: bytes | None = None

    def parse(self) -> JpegImage:
        data = self.data
        if len(data) > MAX_FRAME_BYTES:
            raise JpegImageError(f"JPEG image of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
        if not data.startswith(b"\xff\xd8"):
            raise JpegImageError(f"JPEG image starts with {data[:2].hex()}, not SOI ffd8")
        pos = 2
        for _ in range(MAX_HEADER_SEGMENTS):
            while pos < len(data) and data[pos] == 0xFF and data[pos + 1 : pos + 2] == b"\xff":
                pos += 1  # fill bytes
            if pos + _SEGMENT.size > len(data):
                raise JpegImageError("JPEG image ends before its scan")
            ff, marker, length = _SEGMENT.unpack_from(data, pos)
            body = data[pos + 4 : pos + 2 + length]
            if ff != 0xFF or length < 2 or len(body) != length - 2:
                raise JpegImageError(f"JPEG marker segment at byte {pos} is malformed")
            pos += 2 + length
            if marker == _SOS:
                return self._finish(body, pos)
            self._header_segment(marker, body)
        raise JpegImageError(f"JPEG image has more than {MAX_HEADER_SEGMENTS} header segments")

    def _header_segment(self, marker: int, body: bytes) -> None:
        if marker == _DQT:
            i = 0
            while i < len(body):
                precision, table_id = body[i] >> 4, body[i] & 0x0F
                if precision != 0:
                    raise _unsupported(f"JPEG quantization table {table_id} has 16-bit precision")
                self.qtables[table_id] = body[i + 1 : i + 65]
                i += 65
            if i != len(body):
                raise JpegImageError(f"JPEG DQT segment of {len(body)} bytes is not whole")
        elif marker == _DHT:
            i = 0
            while i < len(body):
                table_class = body[i]
                size = 17 + sum(body[i + 1 : i + 17])
                if body[i + 1 : i + size] != STANDARD_HUFFMAN.get(table_class):
                    raise _unsupported(
                        f"JPEG Huffman table {table_class:#04x} is not the standard one of "
                        "T.81 Annex K.3, which RFC 2435 receivers assume"
                    )
                i += size
        elif marker == _DRI:
            if len(body) != 2:
                raise JpegImageError(f"JPEG DRI segment has {len(body)} bytes, expected 2")
            self.restart_interval = struct.unpack("!H", body)[0]
        elif marker == _SOF0:
            self.sof = body
        elif marker == _SOF2:
            raise _unsupported("progressive JPEG cannot be sent with RFC 2435")
        elif 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise _unsupported(f"JPEG SOF marker {marker:#04x}: only baseline (SOF0) is supported")
        # APPn, COM and other informational segments are not carried by RFC 2435.

    def _finish(self, sos: bytes, scan_start: int) -> JpegImage:
        if self.sof is None:
            raise JpegImageError("JPEG image has no SOF0 before its scan")
        if len(self.sof) < 6 or len(self.sof) != 6 + 3 * self.sof[5]:
            raise JpegImageError(f"JPEG SOF0 segment of {len(self.sof)} bytes is malformed")
        if self.sof[0] != 8 or self.sof[5] != 3:
            raise _unsupported(
                f"JPEG image has {self.sof[5]} components of {self.sof[0]} bits; "
                "RFC 2435 carries 8-bit YCbCr"
            )
        height, width = struct.unpack_from("!HH", self.sof, 1)
        comps = [self.sof[6 + 3 * i : 9 + 3 * i] for i in range(3)]
        sampling = tuple(c[1] for c in comps)
        if sampling not in ((0x21, 0x11, 0x11), (0x22, 0x11, 0x11)):
            raise _unsupported(
                f"JPEG sampling factors {bytes(sampling).hex()} are neither 4:2:2 (211111) "
                "nor 4:2:0 (221111)"
            )
        expected_sos = bytes([3, comps[0][0], 0x00, comps[1][0], 0x11, comps[2][0], 0x11, 0, 63, 0])
        if sos != expected_sos:
            raise _unsupported(f"JPEG scan header {sos.hex()} is not one interleaved baseline scan")
        luma_id, cb_id, cr_id = comps[0][2], comps[1][2], comps[2][2]
        for table_id in (luma_id, cb_id, cr_id):
            if len(self.qtables.get(table_id, b"")) != 64:
                raise JpegImageError(f"JPEG quantization table {table_id} is missing")
        if self.qtables[cb_id] != self.qtables[cr_id]:
            raise _unsupported("JPEG Cb and Cr use different quantization tables")
        if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
            raise _unsupported(f"JPEG size {width}x{height} exceeds RFC 2435's {MAX_DIMENSION}")
        end = _scan_end(self.data, scan_start)
        if self.data[end + 1] != _EOI:
            raise _unsupported(f"JPEG has marker ff{self.data[end + 1]:02x} after its first scan")
        return JpegImage(
            jpeg_type=TYPE_422 if sampling[0] == 0x21 else TYPE_420,
            width=width,
            height=height,
            luma_table=self.qtables[luma_id],
            chroma_table=self.qtables[cb_id],
            restart_interval=self.restart_interval,
            scan=self.data[scan_start:end],
        )


def parse_jpeg(data: bytes) -> JpegImage:
    """Take apart a baseline JPEG for RFC 2435; JpegImageError says what does not fit."""
    return _ImageParser(data).parse()


class JpegPacketizer:
    """Splits a baseline JPEG into RFC 2435 payloads: Q=255 with in-band tables, marker on last.

    Sizes that are not multiples of 8 are rounded up (RFC 2435 cannot say otherwise); the
    receiver then decodes the padding the encoder put into the last block row/column.
    """

    def __init__(self, params: CodecParams, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if params.codec is not Codec.JPEG:
            raise ConfigError(f"JpegPacketizer cannot handle codec {params.codec}")
        if max_payload < MIN_MAX_PAYLOAD:
            raise ConfigError(f"JPEG max_payload {max_payload} is below {MIN_MAX_PAYLOAD}")
        self.params = params
        self.max_payload = max_payload

    def packetize(self, data: bytes) -> list[PayloadChunk]:
        image = parse_jpeg(data)
        restart = b""
        jpeg_type = image.jpeg_type
        if image.restart_interval:
            jpeg_type += RESTART_TYPE_FLAG
            restart = _RESTART.pack(image.restart_interval, _RESTART_UNALIGNED)
        width8, height8 = -(-image.width // 8), -(-image.height // 8)
        qtables = _QTABLE.pack(0, 0, 128) + image.luma_table + image.chroma_table
        scan = image.scan
        chunks: list[PayloadChunk] = []
        offset = 0
        while True:
            main = _MAIN.pack(offset, jpeg_type, Q_DYNAMIC, width8, height8)
            head = main + restart + (qtables if offset == 0 else b"")
            end = min(len(scan), offset + self.max_payload - len(head))
            last = end == len(scan)
            chunks.append(PayloadChunk(head + scan[offset:end], marker=last))
            if last:
                return chunks
            offset = end
