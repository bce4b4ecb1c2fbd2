"""Property tests: the H.264/H.265 depacketizers raise only DepacketizeError, whatever arrives."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.media import Codec, CodecParams
from app.formats.h26x import H264_SYNTAX, H265_SYNTAX, join_length_prefixed, split_length_prefixed
from app.protocols.rtp.codec import DepacketizedUnit, DepacketizeError
from app.protocols.rtp.h26x import (
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
)
from app.protocols.rtp.packet import RtpPacket
from tests.formats.h26x.streams import (
    H264_PPS,
    H265_PPS,
    H265_VPS,
    h264_slice,
    h264_sps,
    h265_slice,
    h265_sps,
)

EXAMPLES = 10_000

H264_PARAMS = CodecParams(Codec.H264, 90_000, 320, 240, parameter_sets=(h264_sps(20, 15), H264_PPS))
H265_PARAMS = CodecParams(
    Codec.H265, 90_000, 320, 240, parameter_sets=(H265_VPS, h265_sps(320, 240), H265_PPS)
)

# Payload prefixes that steer random bytes into every packetization branch.
H264_HEADS = [
    bytes((t,)) for t in (0x01, 0x05, 0x67, 0x68, 0x78, 0x7C, 0x79, 0x7A, 0x7B, 0x7D, 0x7E, 0x00)
]
H265_HEADS = [bytes((t << 1, 1)) for t in (1, 19, 21, 32, 33, 34, 48, 49, 50, 55)]


def _check(units: list[DepacketizedUnit], codec: Codec) -> None:
    syntax = H264_SYNTAX if codec is Codec.H264 else H265_SYNTAX
    for unit in units:
        nals = split_length_prefixed(unit.data)
        assert nals
        assert unit.keyframe == syntax.is_keyframe(nals)
        if unit.new_params is not None:
            assert unit.new_params.codec is codec


def _feed(
    depacketizer: H264Depacketizer | H265Depacketizer,
    packets: list[tuple[int, int, bool, bytes]],
) -> list[DepacketizedUnit]:
    out: list[DepacketizedUnit] = []
    seq, ts = 100, 5000
    for step, ts_step, marker, payload in packets:
        seq = (seq + step) & 0xFFFF
        ts = (ts + (0, 3600, 1 << 30)[ts_step]) & 0xFFFF_FFFF
        try:
            out.extend(depacketizer.push(RtpPacket(96, seq, ts, 7, payload, marker)))
        except DepacketizeError:
            pass
    out.extend(depacketizer.flush())
    return out


def _random_packets(blob: bytes, heads: list[bytes]) -> list[tuple[int, int, bool, bytes]]:
    """Decode a hypothesis byte string into packets (cheaper to shrink than nested lists):
    per packet one control byte (sequence step, timestamp step, marker, payload head), one
    length byte, then the payload body."""
    packets = []
    pos = 0
    while pos + 2 <= len(blob):
        control, size = blob[pos], blob[pos + 1] % 49
        body = blob[pos + 2 : pos + 2 + size]
        pos += 2 + size
        head = heads[(control >> 4) % len(heads)]
        packets.append((control & 3, (control >> 2) % 3, bool(control & 0x80), head + body))
    return packets


@functools.cache
def _valid_packets(codec: Codec) -> tuple[tuple[bytes, bool, int], ...]:
    """(payload, marker, frame index) of three frames, small MTU so FUs and params appear."""
    if codec is Codec.H264:
        frames = [
            [h264_slice(5, 300, seed=1)],
            [h264_slice(1, 90, seed=2), h264_slice(1, 60, first=False, seed=3)],
            [b"\x09\xf0", h264_slice(1, 250, seed=4)],
        ]
        packetizer: H264Packetizer | H265Packetizer = H264Packetizer(H264_PARAMS, 100)
    else:
        frames = [
            [h265_slice(19, 300, seed=1)],
            [h265_slice(1, 90, seed=2), h265_slice(1, 60, first=False, seed=3)],
            [h265_slice(1, 250, seed=4)],
        ]
        packetizer = H265Packetizer(H265_PARAMS, 100)
    return tuple(
        (chunk.payload, chunk.marker, index)
        for index, nals in enumerate(frames)
        for chunk in packetizer.packetize(join_length_prefixed(nals))
    )


_KINDS = ("flip", "truncate", "drop", "duplicate", "marker")


def _changes(blob: bytes) -> list[tuple[str, int, int]]:
    """Up to 4 mutations from a byte string: (kind, packet index, value) per 3 bytes."""
    return [
        (_KINDS[blob[i] % len(_KINDS)], blob[i + 1], blob[i + 2])
        for i in range(0, min(len(blob), 12) - 2, 3)
    ]


def _mutated(
    codec: Codec, changes: list[tuple[str, int, int]]
) -> list[tuple[int, int, bool, bytes]]:
    packets = [[payload, marker, index] for payload, marker, index in _valid_packets(codec)]
    drop: set[int] = set()
    dup: set[int] = set()
    for kind, where, value in changes:
        n = where % len(packets)
        payload = packets[n][0]
        assert isinstance(payload, bytes)
        if kind == "flip" and payload:
            pos = value % len(payload)
            packets[n][0] = (
                payload[:pos] + bytes((payload[pos] ^ (value | 1),)) + payload[pos + 1 :]
            )
        elif kind == "truncate":
            packets[n][0] = payload[: value % (len(payload) + 1)]
        elif kind == "drop":
            drop.add(n)
        elif kind == "duplicate":
            dup.add(n)
        else:
            packets[n][1] = not packets[n][1]
    feed: list[tuple[int, int, bool, bytes]] = []
    last_frame = 0
    for n, (payload, marker, index) in enumerate(packets):
        assert isinstance(payload, bytes) and isinstance(index, int)
        step = 2 if n - 1 in drop else 1
        if n in drop:
            continue
        feed.append((step, 1 if index != last_frame else 0, bool(marker), payload))
        if n in dup:
            feed.append((0, 0, bool(marker), payload))
        last_frame = index
    return feed


def _packets(blob: bytes, codec: Codec) -> list[tuple[int, int, bool, bytes]]:
    """Even first byte: random packets; odd: the valid stream with mutations."""
    if not blob or blob[0] % 2 == 0:
        return _random_packets(blob[1:], H264_HEADS if codec is Codec.H264 else H265_HEADS)
    return _mutated(codec, _changes(blob[1:]))


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=300))
def test_h264_depacketizer_raises_only_declared_errors(blob: bytes) -> None:
    _check(_feed(H264Depacketizer(H264_PARAMS), _packets(blob, Codec.H264)), Codec.H264)


@settings(max_examples=EXAMPLES)
@given(st.binary(max_size=300))
def test_h265_depacketizer_raises_only_declared_errors(blob: bytes) -> None:
    _check(_feed(H265Depacketizer(H265_PARAMS), _packets(blob, Codec.H265)), Codec.H265)


def test_unmutated_streams_give_three_units() -> None:
    for codec, depacketizer in (
        (Codec.H264, H264Depacketizer(H264_PARAMS)),
        (Codec.H265, H265Depacketizer(H265_PARAMS)),
    ):
        units = _feed(depacketizer, _mutated(codec, []))
        assert [u.keyframe for u in units] == [True, False, False]
        assert depacketizer.lost_units == 0
