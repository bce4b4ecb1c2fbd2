"""G.711 (PCMU/PCMA) payload: pass-through units, sample-boundary splitting, PyAV round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings

from app.core.errors import ConfigError
from app.core.media import Codec, CodecParams
from app.protocols.rtp.codec import DepacketizedUnit, Depacketizer, Packetizer
from app.protocols.rtp.g711 import G711_CLOCK_RATE, G711Depacketizer, G711Packetizer
from app.protocols.rtp.packet import RtpPacket
from tests.protocols.rtp.test_jpeg import (
    ffmpeg_rtp,
    fuzz_packets,
    fuzz_tapes,
    gst_depayload,
    needs_gst,
    push_all,
    survives,
)

PCMU = CodecParams(Codec.PCMU, G711_CLOCK_RATE, sample_rate=8000, channels=1)
PCMA = CodecParams(Codec.PCMA, G711_CLOCK_RATE, sample_rate=8000, channels=1)
CODECS = pytest.mark.parametrize(
    ("params", "encoder", "pt"),
    [(PCMU, "pcm_mulaw", 0), (PCMA, "pcm_alaw", 8)],
    ids=["PCMU", "PCMA"],
)


def tone_frames(seconds: float, layout: str = "mono") -> list[av.AudioFrame]:
    channels = 2 if layout == "stereo" else 1
    t = np.arange(int(seconds * 8000)) / 8000
    wave = (12_000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    samples = np.repeat(wave[None, :], channels, axis=0).T.reshape(1, -1)  # interleaved s16
    frames = []
    for start in range(0, len(t), 160):
        block = samples[:, start * channels : (start + 160) * channels]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="s16", layout=layout)
        frame.sample_rate, frame.pts = 8000, start
        frames.append(frame)
    return frames


def encode_g711(encoder: str, seconds: float, layout: str = "mono") -> bytes:
    ctx: Any = av.CodecContext.create(encoder, "w")
    ctx.sample_rate, ctx.layout, ctx.format = 8000, layout, "s16"
    return b"".join(bytes(p) for f in [*tone_frames(seconds, layout), None] for p in ctx.encode(f))


def decode_g711(decoder: str, data: bytes, layout: str = "mono") -> np.ndarray[Any, Any]:
    ctx: Any = av.CodecContext.create(decoder, "r")
    ctx.sample_rate, ctx.layout = 8000, layout
    return np.concatenate([f.to_ndarray() for f in ctx.decode(av.Packet(data))], axis=1)


def send(params: CodecParams, data: bytes, max_payload: int, ts0: int, pt: int) -> list[RtpPacket]:
    """Packetize one unit as a sender does: each chunk's timestamp is the unit's + ts_offset."""
    return [
        RtpPacket(pt, seq, (ts0 + chunk.ts_offset) & 0xFFFF_FFFF, 7, chunk.payload, chunk.marker)
        for seq, chunk in enumerate(G711Packetizer(params, max_payload).packetize(data))
    ]


def test_classes_implement_the_contracts() -> None:
    depacketizer: Depacketizer = G711Depacketizer(PCMA)  # checked by mypy
    packetizer: Packetizer = G711Packetizer(PCMA)
    assert depacketizer.params is packetizer.params is PCMA


def test_each_packet_is_one_unit() -> None:
    depacketizer = G711Depacketizer(PCMU)
    unit = DepacketizedUnit(b"\x7f\xff\x00", 0xFFFF_FFF0, keyframe=True)
    assert depacketizer.push(RtpPacket(0, 1, 0xFFFF_FFF0, 1, b"\x7f\xff\x00")) == [unit]
    assert depacketizer.push(RtpPacket(0, 2, 0xFFFF_FFF3, 1, b"")) == []
    assert depacketizer.flush() == [] and depacketizer.lost_units == 0


def test_splitting_respects_sample_boundaries() -> None:
    chunks = G711Packetizer(PCMU, max_payload=300).packetize(bytes(range(250)) * 4)
    assert [len(c.payload) for c in chunks] == [300, 300, 300, 100]
    assert b"".join(c.payload for c in chunks) == bytes(range(250)) * 4
    assert not any(c.marker for c in chunks)  # continuous audio: no talkspurt starts
    assert [c.ts_offset for c in chunks] == [0, 300, 600, 900]
    stereo = CodecParams(Codec.PCMA, 8000, channels=2)
    stereo_chunks = G711Packetizer(stereo, 301).packetize(bytes(700))
    assert [len(c.payload) for c in stereo_chunks] == [300, 300, 100]
    assert [c.ts_offset for c in stereo_chunks] == [0, 150, 300]
    assert G711Packetizer(PCMU).packetize(b"") == []
    with pytest.raises(ConfigError, match="max_payload 1 holds no 2-byte sample"):
        G711Packetizer(stereo, 1)
    with pytest.raises(ConfigError, match="codec MPEG4-GENERIC"):
        G711Depacketizer(CodecParams(Codec.AAC, 16_000))


@CODECS
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_pyav_round_trip(params: CodecParams, encoder: str, pt: int, layout: str) -> None:
    channels = 2 if layout == "stereo" else 1
    params = CodecParams(params.codec, 8000, sample_rate=8000, channels=channels)
    encoded = encode_g711(encoder, 0.5, layout)
    assert len(encoded) == 4000 * channels
    packets = send(params, encoded, max_payload=321, ts0=0xFFFF_FF00, pt=pt)
    chunk = 321 - 321 % channels  # whole sampling instants only
    assert all(len(p.payload) == chunk for p in packets[:-1])
    units = push_all(G711Depacketizer(params), packets)
    assert b"".join(u.data for u in units) == encoded
    expected_ts = [(0xFFFF_FF00 + i * chunk // channels) & 0xFFFF_FFFF for i in range(len(units))]
    assert [u.rtp_timestamp for u in units] == expected_ts
    decoded = decode_g711(encoder, b"".join(u.data for u in units), layout)
    assert np.array_equal(decoded, decode_g711(encoder, encoded, layout))
    assert np.abs(decoded.astype(np.int32)).max() > 10_000  # it is the tone, not silence


@settings(max_examples=10_000)
@given(tape=fuzz_tapes)
def test_fuzzed_packets_raise_only_depacketize_errors(tape: bytes) -> None:
    valid = send(PCMU, bytes(range(256)), max_payload=100, ts0=0, pt=0)
    depacketizer = G711Depacketizer(PCMU)
    survives(depacketizer, fuzz_packets(tape, valid, [b""]))
    (unit,) = depacketizer.push(RtpPacket(0, 9, 1_000_000, 1, b"\x01\x02"))
    assert (unit.data, unit.rtp_timestamp) == (b"\x01\x02", 1_000_000)


@pytest.mark.interop
@CODECS
def test_ffmpeg_rtp_muxer_packets_depacketize(params: CodecParams, encoder: str, pt: int) -> None:
    def setup(stream: Any) -> None:
        stream.layout = "mono"

    encoded, packets = ffmpeg_rtp(encoder, 8000, tone_frames(0.5), setup)
    assert {p.payload_type for p in packets} == {pt}
    units = push_all(G711Depacketizer(params), packets)
    assert b"".join(u.data for u in units) == b"".join(encoded)
    start, offset = units[0].rtp_timestamp, 0
    for unit in units:
        assert unit.rtp_timestamp == (start + offset) & 0xFFFF_FFFF
        offset += len(unit.data)


@pytest.mark.interop
@needs_gst
@CODECS
def test_gstreamer_depayloads_our_packets(
    tmp_path: Path, params: CodecParams, encoder: str, pt: int
) -> None:
    encoded = encode_g711(encoder, 0.25)
    packets = send(params, encoded, max_payload=160, ts0=1234, pt=pt)
    caps = (
        f"application/x-rtp,media=audio,clock-rate=8000,encoding-name={params.codec},payload={pt}"
    )
    depay = "rtppcmudepay" if params.codec is Codec.PCMU else "rtppcmadepay"
    assert b"".join(gst_depayload(tmp_path, packets, caps, depay)) == encoded
