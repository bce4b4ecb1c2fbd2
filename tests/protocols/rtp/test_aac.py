"""RFC 3640 AAC-hbr payload and the AudioSpecificConfig: layouts, timestamps, loss, round trips."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings

from app.core.errors import ConfigError, LimitError
from app.core.media import Codec, CodecParams
from app.protocols.rtp.aac import (
    AacDepacketizer,
    AacPacketizer,
    AacPayloadError,
    AudioConfigError,
    AudioSpecificConfig,
    audio_specific_config,
    parse_audio_specific_config,
)
from app.protocols.rtp.codec import Depacketizer, Packetizer
from app.protocols.rtp.packet import RtpPacket
from tests.protocols.rtp.test_jpeg import (
    ffmpeg_rtp,
    fuzz_packets,
    fuzz_tapes,
    gst_depayload,
    needs_gst,
    push_all,
    survives,
    to_packets,
)

RATE = 16_000
PARAMS = CodecParams(
    Codec.AAC, RATE, sample_rate=RATE, channels=1, audio_config=audio_specific_config(RATE, 1)
)
PT = 97


def bits_to_bytes(*fields: tuple[int, int]) -> bytes:
    """Pack (value, width) bit fields MSB first, zero-padded to a byte."""
    value = width = 0
    for field, size in fields:
        value, width = value << size | field, width + size
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


def hbr_payload(
    sizes: list[int], deltas: list[int] | None = None, data: bytes | None = None
) -> bytes:
    """An AAC-hbr payload built by hand: 13-bit sizes, 3-bit index/deltas."""
    deltas = deltas or [0] * len(sizes)
    headers = bits_to_bytes(*[(s << 3 | d, 16) for s, d in zip(sizes, deltas, strict=True)])
    body = data if data is not None else b"".join(bytes([i + 1]) * s for i, s in enumerate(sizes))
    return (16 * len(sizes)).to_bytes(2, "big") + headers + body


def sine_frames(seconds: float, rate: int = RATE) -> list[av.AudioFrame]:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1375 * t)).astype(
        np.float32
    )
    frames = []
    for i in range(0, len(wave) - 1023, 1024):
        frame = av.AudioFrame.from_ndarray(wave[None, i : i + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, i
        frames.append(frame)
    return frames


@functools.cache
def encoded_aus(seconds: float = 1.0) -> tuple[bytes, ...]:
    """Raw AAC-LC access units from PyAV's native encoder (no ADTS)."""
    ctx: Any = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = RATE, "mono", "fltp", 48_000
    packets = [p for f in [*sine_frames(seconds), None] for p in ctx.encode(f)]
    return tuple(bytes(p) for p in packets)


def decode_aus(aus: list[bytes]) -> np.ndarray[Any, Any]:
    ctx: Any = av.CodecContext.create("aac", "r")
    ctx.extradata = PARAMS.audio_config
    pcm = [f.to_ndarray() for au in aus for f in ctx.decode(av.Packet(au))]
    return np.concatenate(pcm, axis=1)


def test_classes_implement_the_contracts() -> None:
    depacketizer: Depacketizer = AacDepacketizer(PARAMS)  # checked by mypy
    packetizer: Packetizer = AacPacketizer(PARAMS)
    assert depacketizer.params is packetizer.params is PARAMS
    assert depacketizer.lost_units == 0


# ---------------------------------------------------------------- AudioSpecificConfig


@pytest.mark.parametrize(
    ("rate", "layout", "channels"),
    [(48_000, "stereo", 2), (16_000, "mono", 1), (44_100, "stereo", 2), (8_000, "mono", 1)],
)
def test_audio_specific_config_matches_ffmpegs(rate: int, layout: str, channels: int) -> None:
    ctx: Any = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
    ctx.open()
    extradata = bytes(ctx.extradata)  # FFmpeg appends a backward-compatible SBR sync extension
    config = audio_specific_config(rate, channels)
    assert len(config) == 2 and extradata.startswith(config)
    assert parse_audio_specific_config(extradata) == AudioSpecificConfig(2, rate, channels, 1024)


def test_audio_specific_config_bytes() -> None:
    assert audio_specific_config(48_000, 2) == bytes.fromhex("1190")
    assert audio_specific_config(16_000, 1) == bytes.fromhex("1408")
    assert audio_specific_config(8_000, 8) == bytes.fromhex("15b8")  # config 7 = 7.1
    # 50 kHz is not in the table: index 15 and 24 explicit bits.
    odd = audio_specific_config(50_000, 1)
    assert odd == bits_to_bytes((2, 5), (15, 4), (50_000, 24), (1, 4), (0, 3))
    assert parse_audio_specific_config(odd) == AudioSpecificConfig(2, 50_000, 1, 1024)


def test_parse_he_aac_960_and_escaped_object_types() -> None:
    he_aac = bits_to_bytes((5, 5), (6, 4), (2, 4), (3, 4), (2, 5), (0, 3))
    assert parse_audio_specific_config(he_aac) == AudioSpecificConfig(2, 24_000, 2, 1024, 48_000)
    aac_960 = bits_to_bytes((2, 5), (3, 4), (1, 4), (1, 1), (0, 2))
    assert parse_audio_specific_config(aac_960).frame_length == 960
    escaped = bits_to_bytes((31, 5), (10, 6), (3, 4), (2, 4))  # object type 42 (USAC)
    assert parse_audio_specific_config(escaped) == AudioSpecificConfig(42, 48_000, 2, 1024)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "of 0 bytes"),
        (bytes(65), "of 65 bytes"),
        (bits_to_bytes((2, 5), (13, 4), (1, 4), (0, 3)), "frequency index 13 is reserved"),
        (bits_to_bytes((2, 5), (3, 4), (9, 4), (0, 3)), "channel configuration 9"),
        (b"\x12", "of 1 bytes is truncated"),
        (bits_to_bytes((2, 5), (15, 4), (0, 24), (1, 4), (0, 3)), "sampling rate is 0"),
    ],
)
def test_malformed_audio_specific_config(data: bytes, message: str) -> None:
    with pytest.raises(AudioConfigError, match=message):
        parse_audio_specific_config(data)


@pytest.mark.parametrize(
    ("args", "message"),
    [((48_000, 7), "channel count 7"), ((48_000, 0), "channel count 0"),
     ((48_000, 2, 5), "object type 5"), ((0, 2), "sample rate 0")],
)  # fmt: skip
def test_audio_specific_config_refuses_what_it_cannot_say(
    args: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        audio_specific_config(*args)


# ---------------------------------------------------------------- packetizer


def test_one_au_per_packet_layout() -> None:
    (chunk,) = AacPacketizer(PARAMS).packetize(b"\xaa" * 300)
    # AU-headers-length 16 bits; AU-size 300 (13 bits) and AU-index 0 (3 bits) = 300 << 3.
    assert chunk.payload == b"\x00\x10" + (300 << 3).to_bytes(2, "big") + b"\xaa" * 300
    assert chunk.marker


def test_big_au_is_fragmented_with_the_whole_size_in_every_header() -> None:
    au = bytes(range(256)) * 12  # 3072 bytes
    chunks = AacPacketizer(PARAMS, max_payload=1000).packetize(au)
    assert [len(c.payload) for c in chunks] == [1000, 1000, 1000, 4 + 3072 - 3 * 996]
    assert [c.marker for c in chunks] == [False, False, False, True]
    assert all(c.payload[:4] == b"\x00\x10" + (3072 << 3).to_bytes(2, "big") for c in chunks)
    assert b"".join(c.payload[4:] for c in chunks) == au


def test_other_header_layouts_and_limits() -> None:
    lbr = AacPacketizer(PARAMS, size_length=6, index_length=2, index_delta_length=2)
    (chunk,) = lbr.packetize(b"\x01" * 40)
    assert chunk.payload == b"\x00\x08" + bytes([40 << 2]) + b"\x01" * 40
    with pytest.raises(LimitError, match="AU of 64 bytes exceeds the 6-bit AU-size field"):
        lbr.packetize(bytes(64))
    with pytest.raises(LimitError, match="AU of 8192 bytes exceeds the 13-bit"):
        AacPacketizer(PARAMS).packetize(bytes(8192))
    with pytest.raises(ConfigError, match="max_payload 4 leaves no room"):
        AacPacketizer(PARAMS, max_payload=4)
    with pytest.raises(ConfigError, match="sizelength 17"):
        AacDepacketizer(PARAMS, size_length=17)
    with pytest.raises(ConfigError, match="indexdeltalength 9"):
        AacDepacketizer(PARAMS, index_delta_length=9)
    with pytest.raises(ConfigError, match="codec JPEG"):
        AacPacketizer(CodecParams(Codec.JPEG, 90_000))


# ---------------------------------------------------------------- depacketizer


def test_several_aus_in_one_packet_get_consecutive_timestamps() -> None:
    depacketizer = AacDepacketizer(PARAMS)
    packet = RtpPacket(PT, 1, 0xFFFF_FC00, 1, hbr_payload([100, 50, 70]), marker=True)
    units = depacketizer.push(packet)
    assert [(len(u.data), u.data[:1], u.rtp_timestamp) for u in units] == [
        (100, b"\x01", 0xFFFF_FC00),
        (50, b"\x02", 0),  # + 1024 wraps around 2**32
        (70, b"\x03", 1024),
    ]
    assert all(u.keyframe and u.new_params is None for u in units)


def test_empty_aus_are_skipped_and_a_complete_fragmented_au_needs_no_marker() -> None:
    depacketizer = AacDepacketizer(PARAMS)
    units = depacketizer.push(RtpPacket(PT, 1, 0, 1, hbr_payload([0, 4]), marker=True))
    assert [(u.data, u.rtp_timestamp) for u in units] == [(b"\x02" * 4, 1024)]
    first = hbr_payload([6], data=b"abc")
    assert depacketizer.push(RtpPacket(PT, 2, 2048, 1, first, marker=False)) == []
    last = hbr_payload([6], data=b"def")  # a sender that forgets the marker bit
    (unit,) = depacketizer.push(RtpPacket(PT, 3, 2048, 1, last, marker=False))
    assert (unit.data, unit.rtp_timestamp, depacketizer.lost_units) == (b"abcdef", 2048, 0)


def test_index_deltas_skip_interleaved_aus() -> None:
    units = AacDepacketizer(PARAMS).push(
        RtpPacket(PT, 1, 10_000, 1, hbr_payload([10, 10, 10], deltas=[5, 2, 0]), marker=True)
    )
    assert [u.rtp_timestamp for u in units] == [10_000, 10_000 + 3 * 1024, 10_000 + 4 * 1024]


def test_frame_length_follows_the_config_and_clock() -> None:
    aac_960 = bits_to_bytes((2, 5), (3, 4), (1, 4), (1, 1), (0, 2))
    params = CodecParams(Codec.AAC, 48_000, audio_config=aac_960)
    assert AacDepacketizer(params).frame_length == 960
    he_aac = bits_to_bytes((5, 5), (6, 4), (2, 4), (3, 4), (2, 5), (0, 3))  # core 24 kHz
    params = CodecParams(Codec.AAC, 48_000, audio_config=he_aac)
    assert AacDepacketizer(params).frame_length == 2048  # 1024 core samples at a 48 kHz clock
    assert AacDepacketizer(CodecParams(Codec.AAC, 44_100)).frame_length == 1024
    assert AacDepacketizer(params, frame_length=512).frame_length == 512
    with pytest.raises(ConfigError, match="frame length 0 must be positive"):
        AacDepacketizer(params, frame_length=0)


def test_pyav_aac_round_trip_with_fragmentation() -> None:
    aus = list(encoded_aus())
    assert len(aus) > 10 and max(len(a) for a in aus) > 120
    packetizer = AacPacketizer(PARAMS, max_payload=120)
    packets: list[RtpPacket] = []
    for i, au in enumerate(aus):
        chunks = packetizer.packetize(au)
        packets += to_packets(chunks, timestamp=5_000 + i * 1024, first_seq=len(packets), pt=PT)
    assert len(packets) > len(aus)  # some AUs were fragmented
    depacketizer = AacDepacketizer(PARAMS)
    units = push_all(depacketizer, packets)
    assert depacketizer.lost_units == 0
    assert [u.data for u in units] == aus
    assert [u.rtp_timestamp for u in units] == [5_000 + i * 1024 for i in range(len(aus))]
    assert np.array_equal(decode_aus([u.data for u in units]), decode_aus(aus))


def _fragmented_stream() -> tuple[list[list[RtpPacket]], list[bytes]]:
    """Three AUs (the middle one in 4 fragments) as packets per AU."""
    aus = [b"\x01" * 50, bytes(range(200)) * 2, b"\x03" * 60]
    packetizer = AacPacketizer(PARAMS, max_payload=120)
    groups, seq = [], 0
    for i, au in enumerate(aus):
        packets = to_packets(packetizer.packetize(au), i * 1024, first_seq=seq, pt=PT)
        groups.append(packets)
        seq += len(packets)
    assert len(groups[1]) == 4
    return groups, aus


@pytest.mark.parametrize("missing", [0, 1, 3])
def test_a_lost_fragment_drops_exactly_its_au(missing: int) -> None:
    groups, aus = _fragmented_stream()
    damaged = [p for i, p in enumerate(groups[1]) if i != missing]
    depacketizer = AacDepacketizer(PARAMS)
    units = push_all(depacketizer, [*groups[0], *damaged, *groups[2]])
    assert [(u.data, u.rtp_timestamp) for u in units] == [(aus[0], 0), (aus[2], 2048)]
    assert depacketizer.lost_units == 1


def test_a_short_au_without_a_sequence_gap_is_dropped() -> None:
    """A sender that renumbers after loss: only the AU size tells the fragment is missing."""
    groups, aus = _fragmented_stream()
    middle = groups[1]
    renumbered = [middle[0], middle[1], RtpPacket(PT, middle[2].sequence, 1024, 1,
                                                   middle[3].payload, marker=True)]  # fmt: skip
    depacketizer = AacDepacketizer(PARAMS)
    units = push_all(depacketizer, [*groups[0], *renumbered, *groups[2]])
    assert [u.data for u in units] == [aus[0], aus[2]] and depacketizer.lost_units == 1


def test_flush_counts_an_unfinished_au() -> None:
    groups, _ = _fragmented_stream()
    depacketizer = AacDepacketizer(PARAMS)
    assert push_all(depacketizer, groups[1][:2]) == []
    assert depacketizer.flush() == [] and depacketizer.lost_units == 1


@pytest.mark.parametrize(
    ("payload", "marker", "message"),
    [
        (b"\x00", True, "payload of 1 bytes has no AU-headers-length"),
        (b"\x00\x40\x00\x00", True, "headers of 64 bits overrun the 4-byte packet"),
        (b"\x00\x0f\x00\x08", True, "AU-headers-length 15 is not whole headers"),
        (b"\x00\x00", True, "no AU headers"),
        (hbr_payload([10, 20], data=bytes(25)), True, "add up to 30 bytes, the packet has 25"),
        (hbr_payload([300], data=bytes(100)), True, "AU of 300 bytes has only 100 in its last"),
        ((513 * 16).to_bytes(2, "big") + bytes(1026), True, "more than 512 AU headers"),
    ],
)
def test_malformed_payloads_name_the_offending_value(
    payload: bytes, marker: bool, message: str
) -> None:
    depacketizer = AacDepacketizer(PARAMS)
    with pytest.raises(AacPayloadError, match=message):
        depacketizer.push(RtpPacket(PT, 1, 0, 1, payload, marker))
    assert depacketizer.lost_units == 1
    (unit,) = depacketizer.push(RtpPacket(PT, 2, 1024, 1, hbr_payload([5]), marker=True))
    assert unit.data == b"\x01" * 5 and depacketizer.lost_units == 1


def test_a_fragment_with_another_size_is_refused() -> None:
    depacketizer = AacDepacketizer(PARAMS)
    assert depacketizer.push(RtpPacket(PT, 1, 0, 1, hbr_payload([300], data=bytes(100)))) == []
    with pytest.raises(
        AacPayloadError, match=r"headers \[\(301, 0\)\] do not continue an AU of 300"
    ):
        depacketizer.push(RtpPacket(PT, 2, 0, 1, hbr_payload([301], data=bytes(100))))
    assert depacketizer.lost_units == 1
    # the rest of that AU is skipped without another count
    assert (
        depacketizer.push(RtpPacket(PT, 3, 0, 1, hbr_payload([300], data=bytes(100)), True)) == []
    )
    assert depacketizer.lost_units == 1


@functools.cache
def _fuzz_stream() -> tuple[tuple[RtpPacket, ...], tuple[bytes, ...]]:
    """Two AUs in one packet, then one AU in three fragments."""
    aus = encoded_aus()[:3]
    first = RtpPacket(
        PT, 0, 0, 1, hbr_payload([len(aus[0]), len(aus[1])], data=aus[0] + aus[1]), True
    )
    chunks = AacPacketizer(PARAMS, max_payload=len(aus[2]) // 3 + 5).packetize(aus[2])
    assert len(chunks) >= 3
    return (first, *to_packets(chunks, 2048, first_seq=1, pt=PT)), aus


_AAC_PREFIXES = [b"\x00\x10", b"\x00\x20", b"\x00\x30", b"\x00\x08", b"\x00\x11"]


@settings(max_examples=10_000)
@given(tape=fuzz_tapes)
def test_fuzzed_packets_raise_only_depacketize_errors(tape: bytes) -> None:
    packets, aus = _fuzz_stream()
    depacketizer = AacDepacketizer(PARAMS)
    survives(depacketizer, fuzz_packets(tape, packets, _AAC_PREFIXES), AacPayloadError)
    fresh = [RtpPacket(PT, 40_000 + p.sequence, p.timestamp + 1_000_000, 1, p.payload, p.marker)
             for p in packets]  # fmt: skip
    units = push_all(depacketizer, fresh)
    assert [(u.data, u.rtp_timestamp) for u in units] == [
        (aus[0], 1_000_000),
        (aus[1], 1_001_024),
        (aus[2], 1_002_048),
    ]


# ---------------------------------------------------------------- third-party peers


@pytest.mark.interop
def test_ffmpeg_rtp_muxer_aus_depacketize_unchanged() -> None:
    def setup(stream: Any) -> None:
        stream.layout, stream.bit_rate = "mono", 48_000

    encoded, packets = ffmpeg_rtp("aac", RATE, sine_frames(1.0), setup)
    assert packets and all(p.marker for p in packets)
    depacketizer = AacDepacketizer(PARAMS)
    units = push_all(depacketizer, packets)
    assert depacketizer.lost_units == 0
    # FFmpeg's muxer keeps the last AU buffered for aggregation and never sends it.
    assert len(units) == len(encoded) - 1 > 10
    assert [u.data for u in units] == encoded[: len(units)]
    start = units[0].rtp_timestamp
    assert [u.rtp_timestamp - start for u in units] == [i * 1024 for i in range(len(units))]


@pytest.mark.interop
@needs_gst
def test_gstreamer_depayloads_our_packets(tmp_path: Path) -> None:
    aus = list(encoded_aus(0.5))
    packetizer = AacPacketizer(PARAMS, max_payload=150)  # several AUs get fragmented
    packets: list[RtpPacket] = []
    for i, au in enumerate(aus):
        packets += to_packets(packetizer.packetize(au), i * 1024, first_seq=len(packets), pt=PT)
    caps = (
        f"application/x-rtp,media=audio,clock-rate={RATE},encoding-name=MPEG4-GENERIC,"
        f"payload={PT},mode=AAC-hbr,sizelength=13,indexlength=3,indexdeltalength=3,"
        f"streamtype=5,config={PARAMS.audio_config.hex()}"
    )
    assert gst_depayload(tmp_path, packets, caps, "rtpmp4gdepay") == aus
