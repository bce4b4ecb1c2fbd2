"""FragmentReassembler: lost units are counted once and their remaining packets skipped."""

from __future__ import annotations

import dataclasses

import pytest

from app.protocols.rtp.codec import DepacketizedUnit, DepacketizeError
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.reassembly import FragmentReassembler

#: A packet of the toy format: (RTP timestamp, payload, marker); payload b"!" is malformed.
Packet = tuple[int, bytes, bool]


@dataclasses.dataclass
class _Unit:
    timestamp: int
    parts: list[bytes]


class _Joiner(FragmentReassembler[_Unit]):
    """Toy format: a unit joins its payloads up to the marker."""

    def _accept(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        if packet.payload == b"!":
            raise DepacketizeError("bad packet")
        if self._pending is None:
            self._pending = _Unit(packet.timestamp, [])
        self._pending.parts.append(packet.payload)
        if not packet.marker:
            return []
        unit, self._pending = self._pending, None
        return [DepacketizedUnit(b"".join(unit.parts), unit.timestamp, keyframe=True)]


def _push_all(joiner: _Joiner, packets: list[Packet]) -> tuple[list[tuple[int, bytes]], int]:
    """(timestamp, data) of every unit emitted, and how many packets were refused."""
    units: list[tuple[int, bytes]] = []
    refused = 0
    for seq, (ts, payload, marker) in enumerate(packets):
        try:
            out = joiner.push(RtpPacket(96, seq, ts, 1, payload, marker))
        except DepacketizeError:
            refused += 1
            continue
        units.extend((u.rtp_timestamp, u.data) for u in out)
    return units, refused


@pytest.mark.parametrize(
    ("packets", "units", "refused", "lost"),
    [
        pytest.param(
            [(3000, b"ab", False), (3000, b"cd", True)], [(3000, b"abcd")], 0, 0, id="whole"
        ),
        pytest.param(
            [(3000, b"ab", False), (6000, b"xy", False), (6000, b"z", True)],
            [(6000, b"xyz")],
            0,
            1,
            id="cut-short-by-a-new-timestamp",
        ),
        pytest.param(
            # After the bad packet the rest of its unit is skipped up to the marker; the next
            # unit, even of the same timestamp, is whole again.
            [
                (3000, b"ab", False),
                (3000, b"!", False),
                (3000, b"cd", False),
                (3000, b"e", True),
                (3000, b"gh", True),
            ],
            [(3000, b"gh")],
            1,
            1,
            id="malformed-middle-packet",
        ),
        pytest.param(
            [(3000, b"!", True), (3000, b"ok", True)], [(3000, b"ok")], 1, 1, id="malformed-last"
        ),
    ],
)
def test_units_and_losses(
    packets: list[Packet], units: list[tuple[int, bytes]], refused: int, lost: int
) -> None:
    joiner = _Joiner()
    assert _push_all(joiner, packets) == (units, refused)
    assert joiner.lost_units == lost


def test_flush_counts_an_open_unit_lost_once_and_emits_nothing() -> None:
    joiner = _Joiner()
    assert _push_all(joiner, [(3000, b"ab", False)]) == ([], 0)
    assert joiner.flush() == []
    assert joiner.flush() == []
    assert joiner.lost_units == 1
