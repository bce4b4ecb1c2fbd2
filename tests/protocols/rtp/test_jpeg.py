"""RFC 2435 JPEG payload: header layouts, reconstruction, loss, PyAV/FFmpeg/GStreamer round trips.

The interop helpers at the bottom (FFmpeg's RTP muxer over loopback UDP, GStreamer through a
pcap file) are shared with test_aac.py and test_g711.py, as is the packet mutation strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fractions
import functools
import itertools
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ConfigError, ErrorKind
from app.core.media import Codec, CodecParams
from app.protocols.rtp import jpeg
from app.protocols.rtp.codec import (
    DepacketizedUnit,
    DepacketizeError,
    Depacketizer,
    Packetizer,
    PayloadChunk,
)
from app.protocols.rtp.jpeg import (
    STANDARD_HUFFMAN,
    JpegDepacketizer,
    JpegImageError,
    JpegPacketizer,
    JpegPayloadError,
    parse_jpeg,
    standard_qtables,
)
from app.protocols.rtp.packet import RtpPacket, parse_rtp

PARAMS = CodecParams(Codec.JPEG, 90_000)
PT = 26
GST = shutil.which("gst-launch-1.0")
needs_gst = pytest.mark.skipif(GST is None, reason="gst-launch-1.0 (GStreamer) is not installed")


# ---------------------------------------------------------------- helpers


def sample_image(width: int, height: int, seed: int = 0) -> np.ndarray[Any, Any]:
    """RGB gradients with some noise: every coefficient class occurs, 0xFF gets stuffed."""
    yy, xx = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 40, (height, width))
    rgb = np.stack([xx * 255 // width, yy * 255 // height, (xx * yy + noise) % 256], -1)
    return rgb.astype(np.uint8)


def encode_mjpeg(
    width: int = 128,
    height: int = 96,
    *,
    pix_fmt: str = "yuvj420p",
    threads: int = 1,
    huffman: str = "default",
    seed: int = 0,
) -> bytes:
    """One JPEG from PyAV's mjpeg encoder; slice threads make it write DRI and RST markers."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = fractions.Fraction(1, 25)
    ctx.thread_type = "SLICE"
    ctx.thread_count = threads
    ctx.options = {"huffman": huffman}
    frame = av.VideoFrame.from_ndarray(sample_image(width, height, seed), format="rgb24")
    packets = ctx.encode(frame.reformat(format=pix_fmt)) + ctx.encode(None)
    assert len(packets) == 1
    return bytes(packets[0])


def decode_jpeg(data: bytes) -> list[np.ndarray[Any, Any]]:
    """The decoded Y, Cb, Cr planes, exactly as the decoder produced them."""
    frames = av.CodecContext.create("mjpeg", "r").decode(av.Packet(data))
    assert len(frames) == 1
    return [
        np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:, : plane.width]
        for plane in frames[0].planes
    ]


def same_pixels(a: bytes, b: bytes) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(decode_jpeg(a), decode_jpeg(b), strict=True))


def to_packets(
    chunks: Sequence[PayloadChunk], timestamp: int, first_seq: int = 0, pt: int = PT
) -> list[RtpPacket]:
    return [
        RtpPacket(pt, (first_seq + i) & 0xFFFF, timestamp, 0x1234, c.payload, c.marker)
        for i, c in enumerate(chunks)
    ]


def push_all(depacketizer: Depacketizer, packets: Iterable[RtpPacket]) -> list[DepacketizedUnit]:
    units: list[DepacketizedUnit] = []
    for packet in packets:
        units.extend(depacketizer.push(packet))
    return units


def segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, body) of every segment before the scan, SOS included."""
    assert data[:2] == b"\xff\xd8"
    pos, out = 2, []
    while True:
        marker, length = data[pos + 1], struct.unpack_from("!H", data, pos + 2)[0]
        out.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            return out


def main_header(payload: bytes) -> tuple[int, int, int, int, int, int]:
    """(type-specific, offset, type, Q, width/8, height/8)."""
    word, jtype, q, w8, h8 = struct.unpack_from("!IBBBB", payload)
    return word >> 24, word & 0xFFFFFF, jtype, q, w8, h8


def rfc2435_packet(
    offset: int,
    scan: bytes,
    *,
    jtype: int = 1,
    q: int = 50,
    size: tuple[int, int] = (128, 96),
    restart: int | None = None,
    qtables: bytes | None = None,
    precision: int = 0,
) -> bytes:
    """Build one RTP/JPEG payload by hand (independent of the packetizer under test)."""
    head = struct.pack("!IBBBB", offset, jtype, q, size[0] // 8, size[1] // 8)
    if restart is not None:
        head += struct.pack("!HH", restart, 0xFFFF)
    if qtables is not None:
        head += struct.pack("!BBH", 0, precision, len(qtables)) + qtables
    return head + scan


def test_classes_implement_the_contracts() -> None:
    depacketizer: Depacketizer = JpegDepacketizer(PARAMS)  # checked by mypy
    packetizer: Packetizer = JpegPacketizer(PARAMS)
    assert depacketizer.params is packetizer.params is PARAMS
    assert depacketizer.lost_units == 0


# ---------------------------------------------------------------- standard tables


def test_standard_huffman_tables_equal_ffmpegs() -> None:
    dht = [body for marker, body in segments(encode_mjpeg()) if marker == 0xC4]
    assert len(dht) == 1
    body, tables = dht[0], {}
    while body:
        size = 17 + sum(body[1:17])
        tables[body[0]] = body[1:size]
        body = body[size:]
    assert tables == STANDARD_HUFFMAN


def test_standard_qtables_follow_rfc2435_appendix_a() -> None:
    luma50, chroma50 = standard_qtables(50)  # scale 100 %: tables K.1/K.2 in zig-zag order
    assert list(luma50[:10]) == [16, 11, 12, 14, 12, 10, 16, 14, 13, 14]
    assert luma50[63] == 99 and chroma50[:4] == bytes([17, 18, 18, 24]) and chroma50[63] == 99
    luma10, _ = standard_qtables(10)  # scale 5000/10 = 500 %
    assert luma10[0] == 80 and luma10[63] == 255  # 99 * 5 clamps to 255
    luma99, chroma99 = standard_qtables(99)  # scale 2 %: (16*2+50)//100 = 0 clamps to 1
    assert set(luma99) == {1, 2} and luma99[0] == 1  # 121 * 2 % rounds to 2
    assert standard_qtables(127) == standard_qtables(100) == (luma99, chroma99)
    assert set(standard_qtables(1)[1]) == {255}
    with pytest.raises(ValueError, match="Q 128"):
        standard_qtables(128)


# ---------------------------------------------------------------- packetizer → depacketizer


@pytest.mark.parametrize("threads", [1, 2], ids=["no-restart", "restart"])
def test_pyav_mjpeg_round_trip_is_bit_exact(threads: int) -> None:
    original = encode_mjpeg(160, 96, threads=threads)
    image = parse_jpeg(original)
    assert image.jpeg_type == jpeg.TYPE_420 and (image.width, image.height) == (160, 96)
    assert (image.restart_interval != 0) == (threads > 1)

    chunks = JpegPacketizer(PARAMS, max_payload=400).packetize(original)
    assert len(chunks) > 3
    assert [c.marker for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(len(c.payload) <= 400 for c in chunks)
    offset, scan_parts = 0, []
    for i, chunk in enumerate(chunks):
        tspec, off, jtype, q, w8, h8 = main_header(chunk.payload)
        assert (tspec, off, q, w8, h8) == (0, offset, 255, 20, 12)
        pos = 8
        if image.restart_interval:
            assert jtype == 65
            assert struct.unpack_from("!HH", chunk.payload, 8) == (image.restart_interval, 0xFFFF)
            pos += 4
        else:
            assert jtype == 1
        if i == 0:  # Q=255: MBZ, precision 0 (8-bit), 128 bytes of luma + chroma tables
            assert chunk.payload[pos : pos + 4] == b"\x00\x00\x00\x80"
            assert chunk.payload[pos + 4 : pos + 132] == image.luma_table + image.chroma_table
            pos += 132
        scan_parts.append(chunk.payload[pos:])
        offset += len(chunk.payload) - pos
    assert b"".join(scan_parts) == image.scan

    depacketizer = JpegDepacketizer(PARAMS)
    units = push_all(depacketizer, to_packets(chunks, timestamp=123_456, first_seq=65_530))
    assert len(units) == 1 and depacketizer.lost_units == 0
    unit = units[0]
    assert unit.rtp_timestamp == 123_456 and unit.keyframe
    assert unit.new_params == dataclasses.replace(PARAMS, width=160, height=96)
    assert unit.data.endswith(b"\xff\xd9")
    rebuilt = parse_jpeg(unit.data)
    assert rebuilt.scan == image.scan  # entropy-coded data untouched
    assert rebuilt.restart_interval == image.restart_interval
    assert same_pixels(unit.data, original)


def test_rebuilt_headers_are_byte_exact() -> None:
    scan = b"\x12\x34\xff\x00\x56"
    luma, chroma = bytes(range(1, 65)), bytes(range(65, 129))
    payload = rfc2435_packet(0, scan, jtype=64, q=255, size=(64, 32), restart=7,
                             qtables=luma + chroma)  # fmt: skip
    (unit,) = JpegDepacketizer(PARAMS).push(RtpPacket(PT, 1, 90, 1, payload, marker=True))
    dht = b"".join(bytes([tc]) + table for tc, table in STANDARD_HUFFMAN.items())
    expected = b"".join(
        [
            b"\xff\xd8",
            b"\xff\xdb\x00\x84\x00" + luma + b"\x01" + chroma,
            # SOF0: 8-bit, 32 rows, 64 columns, Y h2v1 (type 0 = 4:2:2) table 0, Cb/Cr 1x1 table 1
            bytes.fromhex("ffc0 0011 08 0020 0040 03 012100 021101 031101"),
            b"\xff\xc4" + struct.pack("!H", 2 + len(dht)) + dht,
            bytes.fromhex("ffdd 0004 0007"),
            bytes.fromhex("ffda 000c 03 0100 0211 0311 00 3f 00"),
            scan,
            b"\xff\xd9",
        ]
    )
    assert unit.data == expected


def test_q_below_128_uses_the_scaled_standard_tables() -> None:
    original = encode_mjpeg()
    scan = parse_jpeg(original).scan
    payload = rfc2435_packet(0, scan, q=50)
    (unit,) = JpegDepacketizer(PARAMS).push(RtpPacket(PT, 1, 0, 1, payload, marker=True))
    dqt = dict(segments(unit.data))[0xDB]
    luma, chroma = standard_qtables(50)
    assert dqt == b"\x00" + luma + b"\x01" + chroma
    sof = dict(segments(unit.data))[0xC0]
    assert sof == bytes.fromhex("08 0060 0080 03 012200 021101 031101")
    assert [p.shape for p in decode_jpeg(unit.data)] == [(96, 128), (48, 64), (48, 64)]


def test_one_inband_table_serves_luma_and_chroma() -> None:
    """FFmpeg's RTP muxer sends a single 64-byte table when the image has only one."""
    table = bytes(range(2, 66))
    payload = rfc2435_packet(0, b"\x00", q=255, qtables=table)
    (unit,) = JpegDepacketizer(PARAMS).push(RtpPacket(PT, 1, 0, 1, payload, marker=True))
    assert dict(segments(unit.data))[0xDB] == b"\x00" + table + b"\x01" + table


def test_sixteen_bit_tables_become_16_bit_dqt() -> None:
    luma = bytes(range(128))
    chroma = bytes(range(64))
    payload = rfc2435_packet(0, b"\x00", q=255, qtables=luma + chroma, precision=0b01)
    (unit,) = JpegDepacketizer(PARAMS).push(RtpPacket(PT, 1, 0, 1, payload, marker=True))
    assert dict(segments(unit.data))[0xDB] == b"\x10" + luma + b"\x01" + chroma


def test_q_128_to_254_tables_are_remembered_q_255_tables_are_not() -> None:
    tables = bytes(range(1, 129))
    depacketizer = JpegDepacketizer(PARAMS)
    first = rfc2435_packet(0, b"\x01", q=200, qtables=tables)
    (unit1,) = depacketizer.push(RtpPacket(PT, 1, 0, 1, first, marker=True))
    later = rfc2435_packet(0, b"\x02", q=200, qtables=b"")  # length 0: "as before"
    (unit2,) = depacketizer.push(RtpPacket(PT, 2, 3000, 1, later, marker=True))
    assert dict(segments(unit2.data))[0xDB] == dict(segments(unit1.data))[0xDB]
    for q in (201, 255):
        with pytest.raises(JpegPayloadError, match=f"Q {q} refers to quantization tables never"):
            depacketizer.push(
                RtpPacket(PT, 3, 6000 + q, 1, rfc2435_packet(0, b"", q=q, qtables=b""), True)
            )
    assert depacketizer.lost_units == 2


def test_scan_ending_in_eoi_keeps_a_single_eoi() -> None:
    payload = rfc2435_packet(0, b"\x11\x22\xff\xd9")
    (unit,) = JpegDepacketizer(PARAMS).push(RtpPacket(PT, 1, 0, 1, payload, marker=True))
    assert unit.data.endswith(b"\x11\x22\xff\xd9") and unit.data.count(b"\xff\xd9") == 1


def test_new_params_only_when_the_size_changes() -> None:
    depacketizer = JpegDepacketizer(dataclasses.replace(PARAMS, width=128, height=96))
    sizes = [(128, 96), (128, 96), (320, 240), (320, 240), (128, 96)]
    changes = []
    for i, size in enumerate(sizes):
        payload = rfc2435_packet(0, b"\x00", size=size)
        (unit,) = depacketizer.push(RtpPacket(PT, i, i * 3600, 1, payload, marker=True))
        changes.append(unit.new_params and (unit.new_params.width, unit.new_params.height))
    assert changes == [None, None, (320, 240), None, (128, 96)]
    assert (depacketizer.params.width, depacketizer.params.height) == (128, 96)


# ---------------------------------------------------------------- loss


def _three_frames() -> tuple[list[list[RtpPacket]], list[bytes]]:
    packetizer = JpegPacketizer(PARAMS, max_payload=300)
    frames, expected = [], []
    for n in range(3):
        image = encode_mjpeg(64, 48, seed=n)
        packets = to_packets(packetizer.packetize(image), timestamp=n * 3600, first_seq=n * 100)
        frames.append(packets)
        (unit,) = push_all(JpegDepacketizer(PARAMS), packets)
        expected.append(unit.data)
    return frames, expected


@pytest.mark.parametrize("missing", ["first", "middle", "last"])
def test_a_lost_fragment_drops_exactly_its_frame(missing: str) -> None:
    frames, expected = _three_frames()
    damaged = list(frames[1])
    assert len(damaged) >= 3
    del damaged[{"first": 0, "middle": len(damaged) // 2, "last": -1}[missing]]
    depacketizer = JpegDepacketizer(PARAMS)
    units = push_all(depacketizer, [*frames[0], *damaged, *frames[2]])
    assert [u.data for u in units] == [expected[0], expected[2]]
    assert [u.rtp_timestamp for u in units] == [0, 7200]
    assert depacketizer.lost_units == 1


def test_flush_drops_and_counts_an_unfinished_frame() -> None:
    frames, _ = _three_frames()
    depacketizer = JpegDepacketizer(PARAMS)
    assert push_all(depacketizer, frames[0][:-1]) == []
    assert depacketizer.flush() == []
    assert depacketizer.lost_units == 1
    assert depacketizer.flush() == [] and depacketizer.lost_units == 1


def test_oversized_frame_is_refused_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = _three_frames()
    monkeypatch.setattr(jpeg, "MAX_FRAME_BYTES", 700)
    depacketizer = JpegDepacketizer(PARAMS)
    with pytest.raises(JpegPayloadError, match="exceeds 700 bytes"):
        push_all(depacketizer, frames[0])
    assert depacketizer.lost_units == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00\x00", "payload of 3 bytes has no 8-byte header"),
        (rfc2435_packet(0, b"", jtype=2), "type 2 is not supported"),
        (rfc2435_packet(0, b"", jtype=129), "type 129 is not supported"),
        (rfc2435_packet(0, b"", jtype=64), "type 64 packet lacks its restart header"),
        (rfc2435_packet(0, b"", q=0), "Q 0 is reserved"),
        (rfc2435_packet(0, b"", size=(0, 96)), "image size 0x96 is empty"),
        (rfc2435_packet(0, b"", q=255), "Q 255 packet lacks its quantization table header"),
        (rfc2435_packet(0, b"", q=255) + b"\x00\x00\x00\x80" + bytes(64), "128 bytes overrun"),
        (rfc2435_packet(0, b"", q=255, qtables=bytes(100)), "length 100 is not whole"),
        (rfc2435_packet(0, b"", q=255, qtables=bytes(320)), "more than 4 quantization tables"),
    ],
)
def test_malformed_payloads_name_the_offending_value(payload: bytes, message: str) -> None:
    depacketizer = JpegDepacketizer(PARAMS)
    with pytest.raises(JpegPayloadError, match=message):
        depacketizer.push(RtpPacket(PT, 1, 0, 1, payload, marker=False))
    assert depacketizer.lost_units == 1
    # The rest of that frame is skipped, not counted again; the next frame decodes.
    assert depacketizer.push(RtpPacket(PT, 2, 0, 1, rfc2435_packet(8, b""), True)) == []
    assert len(depacketizer.push(RtpPacket(PT, 3, 90, 1, rfc2435_packet(0, b"\0"), True))) == 1
    assert depacketizer.lost_units == 1


# ---------------------------------------------------------------- packetizer refusals


# SOI, SOF0 with one 8-bit component (greyscale), SOS, one scan byte, EOI.
_GREY_JPEG = bytes.fromhex("ffd8 ffc0 000b 08 0010 0010 01 011100 ffda 0008 01 0100 003f00 00 ffd9")


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("make", "message", "kind"),
    [
        (lambda: encode_mjpeg(huffman="optimal"), "Huffman table 0x00 is not the standard",
         ErrorKind.UNIMPLEMENTED),
        (lambda: encode_mjpeg(pix_fmt="yuvj422p"), "sampling factors 221212 are neither",
         ErrorKind.UNIMPLEMENTED),
        (lambda: encode_mjpeg(pix_fmt="yuvj444p"), "sampling factors 121212",
         ErrorKind.UNIMPLEMENTED),
        (lambda: _patched(encode_mjpeg(), b"\xff\xc0", b"\xff\xc2"), "progressive JPEG",
         ErrorKind.UNIMPLEMENTED),
        (lambda: _patched(encode_mjpeg(), b"\xff\xc0", b"\xff\xc1"), "SOF marker 0xc1",
         ErrorKind.UNIMPLEMENTED),
        (lambda: _patched(encode_mjpeg(), b"\xff\xdb\x00\x43\x00", b"\xff\xdb\x00\x43\x10"),
         "table 0 has 16-bit precision", ErrorKind.UNIMPLEMENTED),
        (lambda: encode_mjpeg(2048, 16), "size 2048x16 exceeds RFC 2435's 2040",
         ErrorKind.UNIMPLEMENTED),
        (lambda: encode_mjpeg()[:-2], "not terminated by EOI", ErrorKind.INVALID_ARGUMENT),
        (lambda: _GREY_JPEG, "1 components of 8 bits", ErrorKind.UNIMPLEMENTED),
        (lambda: b"\x89PNG" + encode_mjpeg(), "starts with 8950, not SOI",
         ErrorKind.INVALID_ARGUMENT),
        (lambda: encode_mjpeg()[:200], "ends before its scan|malformed",
         ErrorKind.INVALID_ARGUMENT),
    ],
)  # fmt: skip
def test_packetizer_refuses_what_rfc2435_cannot_carry(
    make: Callable[[], bytes], message: str, kind: ErrorKind
) -> None:
    with pytest.raises(JpegImageError, match=message) as caught:
        JpegPacketizer(PARAMS).packetize(make())
    assert caught.value.kind is kind


def test_packetizer_rejects_a_payload_budget_without_room() -> None:
    with pytest.raises(ConfigError, match="max_payload 144 is below 145"):
        JpegPacketizer(PARAMS, max_payload=144)
    chunks = JpegPacketizer(PARAMS, max_payload=145).packetize(encode_mjpeg(16, 16))
    assert len(chunks[0].payload) == 145 and all(len(c.payload) <= 145 for c in chunks)
    with pytest.raises(ConfigError, match="codec PCMU"):
        JpegDepacketizer(CodecParams(Codec.PCMU, 8000))


def test_sizes_that_are_not_multiples_of_8_round_up() -> None:
    (chunk,) = JpegPacketizer(PARAMS, max_payload=60_000).packetize(encode_mjpeg(100, 50))
    assert main_header(chunk.payload)[4:] == (13, 7)


# ---------------------------------------------------------------- fuzzing


# Shared with test_aac.py / test_g711.py. Hypothesis draws one byte string per example and
# `fuzz_packets` reads it like a tape: one draw costs a fraction of building the packets from
# many small strategies, which matters at 10,000 examples per depacketizer.
fuzz_tapes = st.binary(min_size=1, max_size=600)


class _Tape:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1] if self.pos <= len(self.data) else 0

    def take(self, n: int) -> bytes:
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def more(self) -> bool:
        return self.pos < len(self.data)


def fuzz_packets(
    data: bytes, valid: Sequence[RtpPacket], prefixes: Sequence[bytes]
) -> list[RtpPacket]:
    """Random packets (some behind a plausible header from `prefixes`), or `valid` with 1-4
    edits: bit flips, cuts, splices, drops, repeats, marker and timestamp changes."""
    tape = _Tape(data)
    if tape.byte() & 1:
        out: list[RtpPacket] = []
        while tape.more() and len(out) < 6:
            flags = tape.byte()
            payload = tape.take(tape.byte())
            if flags & 8:
                payload = prefixes[tape.byte() % len(prefixes)] + payload
            out.append(RtpPacket(PT, len(out), (flags & 3) * 3600, 1, payload, bool(flags & 4)))
        return out
    out = list(valid)
    for _ in range(1 + tape.byte() % 4):
        kind, where, junk = tape.byte() % 7, tape.byte() << 8 | tape.byte(), tape.take(8)
        i = where % len(out)
        packet, payload = out[i], out[i].payload
        pos = where % (len(payload) + 1)
        edited = payload
        if kind == 0 and pos < len(payload):
            edited = payload[:pos] + bytes([payload[pos] ^ (tape.byte() or 1)]) + payload[pos + 1 :]
        elif kind == 1:
            edited = payload[:pos]
        elif kind == 2:
            edited = payload[:pos] + junk + payload[pos:]
        elif kind == 3 and len(out) > 1:
            del out[i]
        elif kind == 4:
            out.insert(i, packet)
        elif kind == 5:
            out[i] = dataclasses.replace(packet, marker=not packet.marker)
        elif kind == 6:
            out[i] = dataclasses.replace(packet, timestamp=packet.timestamp + tape.byte())
        if edited is not payload:
            out[i] = dataclasses.replace(packet, payload=edited)
    return out


def survives(
    depacketizer: Depacketizer,
    packets: Iterable[RtpPacket],
    declared: type[DepacketizeError] = DepacketizeError,
) -> None:
    """Push everything; only the module's declared DepacketizeError subclass may escape."""
    for packet in packets:
        with contextlib.suppress(declared):
            depacketizer.push(packet)
    assert depacketizer.lost_units >= 0


#: Plausible main headers (offset, type, Q, 48x32) for random payloads to sit behind.
_JPEG_PREFIXES = [
    struct.pack("!IBBBB", offset, jtype, q, 6, 4)
    for offset in (0, 8, 192)
    for jtype in (1, 65, 2)
    for q in (50, 200, 255)
]


@functools.cache
def _fuzz_frame() -> tuple[tuple[RtpPacket, ...], bytes]:
    image = encode_mjpeg(48, 32, threads=2)  # with a restart interval
    chunks = JpegPacketizer(PARAMS, max_payload=200).packetize(image)
    packets = tuple(to_packets(chunks, timestamp=5_000))
    (unit,) = push_all(JpegDepacketizer(PARAMS), packets)
    return packets, unit.data


@settings(max_examples=10_000)
@given(tape=fuzz_tapes)
def test_fuzzed_packets_raise_only_depacketize_errors(tape: bytes) -> None:
    packets, expected = _fuzz_frame()
    depacketizer = JpegDepacketizer(PARAMS)
    survives(depacketizer, fuzz_packets(tape, packets, _JPEG_PREFIXES), JpegPayloadError)
    fresh = [dataclasses.replace(p, timestamp=1_000_000) for p in packets]
    units = push_all(depacketizer, fresh)
    assert [(u.data, u.rtp_timestamp) for u in units] == [(expected, 1_000_000)]


# ---------------------------------------------------------------- third-party peers


def ffmpeg_rtp(
    codec: str, rate: int, frames: Sequence[Any], setup: Callable[[Any], None]
) -> tuple[list[bytes], list[RtpPacket]]:
    """Encode `frames` with PyAV and send them through FFmpeg's RTP muxer to a loopback socket.

    Returns the encoded packets and the RTP packets FFmpeg sent (RTCP left out). Loopback UDP
    delivers into the socket buffer during `sendto`, so every datagram is queued on return.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        encoded: list[bytes] = []
        url = f"rtp://127.0.0.1:{port}?rtcpport={port}&pkt_size=1200"
        with av.open(url, "w", format="rtp") as out:
            stream: Any = out.add_stream(codec, rate=rate)
            setup(stream)
            for frame in [*frames, None]:
                for packet in stream.encode(frame):
                    encoded.append(bytes(packet))
                    out.mux(packet)
        sock.setblocking(False)
        datagrams = []
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(sock.recv(65_536))
    rtp = [parse_rtp(d) for d in datagrams if not 200 <= d[1] <= 204]
    steps = [(b.sequence - a.sequence) & 0xFFFF for a, b in itertools.pairwise(rtp)]
    gaps = [step for step in steps if step != 1]
    assert not gaps, f"datagrams lost in the socket buffer: sequence steps {gaps}"
    return encoded, rtp


def write_pcap(path: Path, packets: Sequence[RtpPacket], clock_rate: int) -> None:
    """A pcap of the packets as IPv4/UDP datagrams, timed by their RTP timestamps."""
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65_535, 1)]
    for packet in packets:
        rtp = packet.to_bytes()
        udp = struct.pack("!HHHH", 5004, 5004, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         b"\x7f\0\0\1", b"\x7f\0\0\1") + udp  # fmt: skip
        frame = bytes(12) + b"\x08\x00" + ip
        micros = (packet.timestamp - packets[0].timestamp) * 1_000_000 // clock_rate
        records.append(struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000,
                                   len(frame), len(frame)) + frame)  # fmt: skip
    path.write_bytes(b"".join(records))


def gst_depayload(
    tmp_path: Path, packets: Sequence[RtpPacket], caps: str, depay: str
) -> list[bytes]:
    """Feed packets to a GStreamer depayloader (via pcapparse); one output file per buffer."""
    clock_rate = int(caps.split("clock-rate=")[1].split(",")[0])
    write_pcap(tmp_path / "in.pcap", packets, clock_rate)
    assert GST is not None
    source, sink = f"location={tmp_path / 'in.pcap'}", f"location={tmp_path / 'out%05d.bin'}"
    argv = [GST, "-q", "filesrc", source, "!", "pcapparse", "!", caps, "!", depay, "!",
            "multifilesink", sink]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [p.read_bytes() for p in sorted(tmp_path.glob("out*.bin"))]


@pytest.mark.interop
def test_ffmpeg_rtp_muxer_frames_depacketize_to_the_encoded_images() -> None:
    images = [sample_image(320, 240, seed) for seed in range(3)]

    def setup(stream: Any) -> None:
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuvj420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.options = {"huffman": "default"}

    frames = []
    for pts, rgb in enumerate(images):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
        frame.pts = pts
        frames.append(frame)
    encoded, packets = ffmpeg_rtp("mjpeg", 25, frames, setup)
    assert {p.payload_type for p in packets} == {26}
    depacketizer = JpegDepacketizer(PARAMS)
    units = push_all(depacketizer, packets)
    assert len(units) == len(encoded) == 3 and depacketizer.lost_units == 0
    assert [u.rtp_timestamp - units[0].rtp_timestamp for u in units] == [0, 3600, 7200]
    for unit, original in zip(units, encoded, strict=True):
        assert parse_jpeg(unit.data).scan == parse_jpeg(original).scan
        assert same_pixels(unit.data, original)


def _gst_jpeg(tmp_path: Path, raw_format: str) -> bytes:
    assert GST is not None
    out = tmp_path / f"{raw_format}.jpg"
    argv = [GST, "-q", "videotestsrc", "num-buffers=1", "pattern=smpte", "!",
            f"video/x-raw,format={raw_format},width=176,height=144", "!", "jpegenc", "!",
            "filesink", f"location={out}"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return out.read_bytes()


@pytest.mark.interop
@needs_gst
@pytest.mark.parametrize(
    ("raw_format", "jtype"), [("Y42B", jpeg.TYPE_422), ("I420", jpeg.TYPE_420)]
)
def test_gstreamer_jpegenc_images_round_trip(tmp_path: Path, raw_format: str, jtype: int) -> None:
    original = _gst_jpeg(tmp_path, raw_format)
    assert parse_jpeg(original).jpeg_type == jtype
    chunks = JpegPacketizer(PARAMS, max_payload=500).packetize(original)
    assert {main_header(c.payload)[2] for c in chunks} == {jtype}
    (unit,) = push_all(JpegDepacketizer(PARAMS), to_packets(chunks, 0))
    assert parse_jpeg(unit.data).scan == parse_jpeg(original).scan
    assert same_pixels(unit.data, original)


@pytest.mark.interop
@needs_gst
def test_gstreamer_depayloads_our_packets(tmp_path: Path) -> None:
    originals = [encode_mjpeg(160, 96, threads=2), _gst_jpeg(tmp_path, "Y42B")]
    packetizer = JpegPacketizer(PARAMS, max_payload=500)
    packets: list[RtpPacket] = []
    for n, image in enumerate(originals):
        packets += to_packets(packetizer.packetize(image), n * 3600, first_seq=len(packets))
    caps = "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26"
    images = gst_depayload(tmp_path, packets, caps, "rtpjpegdepay")
    assert len(images) == 2
    for theirs, original in zip(images, originals, strict=True):
        assert same_pixels(theirs, original)


@pytest.mark.interop
@needs_gst
def test_gstreamer_rtpjpegpay_packets_depacketize(tmp_path: Path) -> None:
    assert GST is not None
    argv = [GST, "-q", "videotestsrc", "num-buffers=3", "pattern=ball", "!",
            "video/x-raw,format=I420,width=320,height=240,framerate=25/1", "!", "jpegenc", "!",
            "tee", "name=t", "t.", "!", "queue", "!", "multifilesink",
            f"location={tmp_path / 'jpeg%05d.jpg'}", "t.", "!", "queue", "!",
            "rtpjpegpay", "mtu=700", "!", "identity", "!", "multifilesink",
            f"location={tmp_path / 'rtp%05d.bin'}"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    originals = [p.read_bytes() for p in sorted(tmp_path.glob("jpeg*.jpg"))]
    packets = [parse_rtp(p.read_bytes()) for p in sorted(tmp_path.glob("rtp*.bin"))]
    depacketizer = JpegDepacketizer(PARAMS)
    units = push_all(depacketizer, packets)
    assert len(units) == len(originals) == 3 and depacketizer.lost_units == 0
    assert units[0].new_params is not None and units[0].new_params.width == 320
    for unit, original in zip(units, originals, strict=True):
        assert same_pixels(unit.data, original)
