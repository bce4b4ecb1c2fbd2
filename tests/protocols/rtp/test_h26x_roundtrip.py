"""Real encoder output (PyAV libx264/libx265) through packetizer → RTP → depacketizer → decoder."""

from __future__ import annotations

import pytest

from app.core.media import Codec, CodecParams
from app.formats.h26x import (
    H264_SYNTAX,
    H265_SYNTAX,
    NalSyntax,
    join_length_prefixed,
    split_length_prefixed,
)
from app.protocols.rtp.codec import DepacketizedUnit
from app.protocols.rtp.formats import depacketizer_for, packetizer_for
from app.protocols.rtp.packet import RtpPacket, parse_rtp
from tests.formats.h26x.streams import EncodedUnit, decode, encode, h265_units, has_encoder

TICKS_PER_FRAME = 3600
#: Start near the 32-bit wrap so the stream crosses it.
FIRST_TS = 0xFFFF_FFFF - 5 * TICKS_PER_FRAME


def _stored_layout(units: list[EncodedUnit], syntax: NalSyntax) -> list[bytes]:
    """What the depacketizer must output: every keyframe with its parameter sets in front."""
    sets: dict[int, bytes] = {}
    out = []
    for unit in units:
        nals = split_length_prefixed(unit.data)
        sets.update(syntax.parameter_sets_in(nals))
        present = {syntax.nal_type(n) for n in nals}
        if unit.keyframe:
            missing = [sets[t] for t in syntax.parameter_set_types if t not in present]
            nals = missing + nals
        out.append(join_length_prefixed(nals))
    return out


def _round_trip(
    units: list[EncodedUnit], params: CodecParams, max_payload: int
) -> tuple[list[DepacketizedUnit], int]:
    packetizer = packetizer_for(params, max_payload)
    depacketizer = depacketizer_for(params)
    out: list[DepacketizedUnit] = []
    seq = 65_000
    packets = 0
    for index, unit in enumerate(units):
        ts = (FIRST_TS + index * TICKS_PER_FRAME) & 0xFFFF_FFFF
        for chunk in packetizer.packetize(unit.data):
            assert len(chunk.payload) <= max_payload
            wire = RtpPacket(96, seq & 0xFFFF, ts, 0xCAFE, chunk.payload, chunk.marker).to_bytes()
            out.extend(depacketizer.push(parse_rtp(wire)))
            seq += 1
            packets += 1
    out.extend(depacketizer.flush())
    assert depacketizer.lost_units == 0
    return out, packets


def _params(codec: Codec, units: list[EncodedUnit], syntax: NalSyntax) -> CodecParams:
    sets = syntax.parameter_sets_in(split_length_prefixed(units[0].data))
    info = syntax.parse_sps(sets[syntax.sps_type])
    return CodecParams(
        codec,
        90_000,
        info.width,
        info.height,
        parameter_sets=tuple(sets[t] for t in syntax.parameter_set_types),
    )


CASES = [
    ("libx264", Codec.H264, 320, 180, ()),
    ("libx264", Codec.H264, 352, 288, (("x264-params", "slices=3"),)),
    ("libx265", Codec.H265, 320, 184, ()),
]


@pytest.mark.parametrize(("encoder", "codec", "width", "height", "extra"), CASES)
@pytest.mark.parametrize("max_payload", [1400, 300])
def test_encoded_stream_round_trip(
    encoder: str,
    codec: Codec,
    width: int,
    height: int,
    extra: tuple[tuple[str, str], ...],
    max_payload: int,
) -> None:
    if not has_encoder(encoder):
        pytest.skip(f"{encoder} not in this FFmpeg build")
    syntax = H264_SYNTAX if codec is Codec.H264 else H265_SYNTAX
    units = list(encode(encoder, width, height, frames=30, gop=10, extra=extra))
    assert len(units) == 30
    assert [u.keyframe for u in units] == [i % 10 == 0 for i in range(30)]
    params = _params(codec, units, syntax)
    out, packets = _round_trip(units, params, max_payload)
    assert packets > len(units)  # big frames were fragmented
    assert [u.data for u in out] == _stored_layout(units, syntax)
    assert [u.keyframe for u in out] == [u.keyframe for u in units]
    assert [u.rtp_timestamp for u in out] == [
        (FIRST_TS + i * TICKS_PER_FRAME) & 0xFFFF_FFFF for i in range(30)
    ]
    assert all(u.new_params is None for u in out)
    decoder = "h264" if codec is Codec.H264 else "hevc"
    assert decode(decoder, [u.data for u in out]) == [(width, height)] * 30


def test_in_band_parameter_sets_without_sdp() -> None:
    """A camera that sends no sprop: params (and the picture size) come from the stream."""
    units = list(encode("libx264", 320, 180, frames=12, gop=10))
    out, _ = _round_trip(units, CodecParams(Codec.H264, 90_000), 1400)
    assert [u.data for u in out] == [u.data for u in units]
    first = out[0].new_params
    assert first is not None
    assert (first.width, first.height) == (320, 180)
    assert len(first.parameter_sets) == 2
    assert all(u.new_params is None for u in out[1:])


def test_hand_made_h265_round_trip() -> None:
    """Without libx265 this is the H.265 round trip; with it, an extra multi-slice case."""
    units = h265_units()
    params = _params(Codec.H265, units, H265_SYNTAX)
    assert (params.width, params.height) == (640, 360)
    out, _ = _round_trip(units, params, 1000)
    assert [u.data for u in out] == [u.data for u in units]
    assert [u.keyframe for u in out] == [u.keyframe for u in units]
