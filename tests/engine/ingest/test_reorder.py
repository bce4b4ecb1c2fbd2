"""UDP reorder buffer: order restored within the window, bounded; late and restart cases."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.ingest.reorder import MAX_DROPOUT, ReorderBuffer
from app.protocols.rtp.packet import RtpPacket


def packet(seq: int) -> RtpPacket:
    return RtpPacket(96, seq & 0xFFFF, 0, 1, seq.to_bytes(4, "big", signed=False))


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence for p in packets]


def feed(buffer: ReorderBuffer, order: list[int]) -> list[int]:
    out: list[int] = []
    for seq in order:
        out += seqs(buffer.push(packet(seq)))
    return out


def test_in_order_packets_pass_straight_through() -> None:
    buffer = ReorderBuffer(4)
    for seq in range(65_530, 65_540):  # across the 16-bit wrap
        assert seqs(buffer.push(packet(seq))) == [seq & 0xFFFF]
    assert buffer.held == 0


def test_swapped_packets_are_put_back_in_order() -> None:
    assert feed(ReorderBuffer(4), [10, 12, 11, 13, 15, 14]) == [10, 11, 12, 13, 14, 15]


def test_a_gap_is_given_up_when_the_window_fills() -> None:
    buffer = ReorderBuffer(3)
    assert feed(buffer, [1, 3, 4]) == [1]
    assert seqs(buffer.push(packet(5))) == [3, 4, 5]  # 2 is lost: 4 packets would exceed 3
    assert seqs(buffer.push(packet(2))) == []
    assert (buffer.late, buffer.held) == (1, 0)


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    buffer = ReorderBuffer(4)
    assert feed(buffer, [1, 2, 4, 4, 2, 3]) == [1, 2, 3, 4]
    assert (buffer.duplicates, buffer.late) == (1, 1)


@pytest.mark.parametrize("jump", [MAX_DROPOUT + 1, -150])
def test_a_sender_restart_resynchronizes(jump: int) -> None:
    buffer = ReorderBuffer(4)
    assert feed(buffer, [1000, 1001, 1003]) == [1000, 1001]
    restart = (1003 + jump) & 0xFFFF
    assert feed(buffer, [restart, restart + 1]) == [1003, restart, restart + 1]


def test_window_is_validated() -> None:
    with pytest.raises(ValueError, match="reorder window"):
        ReorderBuffer(0)


@st.composite
def jittered(draw: st.DrawFn) -> tuple[int, list[int], int]:
    """A run of sequence numbers, some lost, each displaced by less than the window."""
    window = draw(st.integers(1, 20))
    start = draw(st.integers(0, 0xFFFF))
    count = draw(st.integers(1, 300))
    loss = draw(st.sampled_from([0.0, 0.05, 0.3]))
    rnd = random.Random(draw(st.integers(0, 2**32)))  # hypothesis draws per call are slow
    kept = [start + i for i in range(count) if i == 0 or rnd.random() >= loss]
    keys = [i + rnd.randrange(window) + rnd.random() / 2 for i in range(len(kept))]
    order = [seq for _, seq in sorted(zip(keys, kept, strict=True))]
    # The first packet fixes the starting point; put the lowest sequence number first.
    order.remove(kept[0])
    return window, [kept[0], *order], len(kept)


@settings(max_examples=400)
@given(jittered())
def test_output_is_ordered_complete_and_bounded(case: tuple[int, list[int], int]) -> None:
    window, order, count = case
    buffer = ReorderBuffer(window)
    out: list[int] = []
    for seq in order:
        out += seqs(buffer.push(packet(seq)))
        assert buffer.held <= window
    out += seqs(buffer.flush())
    extended = [order[0] + ((s - order[0]) & 0xFFFF) for s in out]
    assert extended == sorted(extended), "released out of order"
    assert len(set(extended)) == len(extended), "released twice"
    # Whatever was not released was late: behind a gap the window had already given up.
    assert len(out) + buffer.late == count
