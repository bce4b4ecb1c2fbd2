"""Sequence-order RTP packets that arrive over UDP slightly out of order (RFC 3550 §A.1 limits).

Packets are released as soon as they are next in sequence. A gap holds later packets back until
the missing one arrives or `window` packets are waiting; then the gap is given up and the
depacketizer, which sees the sequence jump, drops the damaged access unit. Late packets behind
the released sequence are dropped; a jump beyond MAX_DROPOUT (or far behind) is a sender restart
and resynchronizes.
"""

from __future__ import annotations

from app.protocols.rtp.packet import RtpPacket

#: Packets held back at most while waiting for a missing one (about 15 ms of a 4 Mbit/s stream).
DEFAULT_REORDER_WINDOW = 16
#: A forward jump larger than this is a sender restart, not loss (RFC 3550 §A.1).
MAX_DROPOUT = 3000
#: A packet further behind than this is a sender restart rather than a late packet.
MAX_MISORDER = 100
_SEQ_MOD = 1 << 16


class ReorderBuffer:
    """Releases the packets of one SSRC in sequence order, holding at most `window` of them."""

    def __init__(self, window: int = DEFAULT_REORDER_WINDOW) -> None:
        if not 1 <= window < MAX_MISORDER:
            raise ValueError(f"reorder window must be within 1…{MAX_MISORDER - 1}, got {window}")
        self.window = window
        #: Packets dropped because they arrived after their sequence number was released.
        self.late = 0
        self.duplicates = 0
        self._next: int | None = None
        self._held: dict[int, RtpPacket] = {}

    @property
    def held(self) -> int:
        return len(self._held)

    def push(self, packet: RtpPacket) -> list[RtpPacket]:
        """Take one packet; returns the packets now ready, in sequence order."""
        seq = packet.sequence
        if self._next is None:
            self._next = seq
        ahead = (seq - self._next) % _SEQ_MOD
        out: list[RtpPacket] = []
        if ahead >= _SEQ_MOD // 2:
            if _SEQ_MOD - ahead <= MAX_MISORDER:
                self.late += 1
                return out
            out, ahead = self.flush(), 0
            self._next = seq
        elif ahead > MAX_DROPOUT:
            out, ahead = self.flush(), 0
            self._next = seq
        elif seq in self._held:
            self.duplicates += 1
            return out
        self._held[seq] = packet
        if ahead >= self.window:
            out.extend(self._skip_to((seq - self.window + 1) % _SEQ_MOD))
        out.extend(self._drain())
        return out

    def flush(self) -> list[RtpPacket]:
        """Release every held packet in order, giving up on the gaps between them."""
        if self._next is None:
            return []
        start = self._next
        ordered = sorted(self._held.items(), key=lambda item: (item[0] - start) % _SEQ_MOD)
        self._held.clear()
        if ordered:
            self._next = (ordered[-1][0] + 1) % _SEQ_MOD
        return [packet for _, packet in ordered]

    def _skip_to(self, new_next: int) -> list[RtpPacket]:
        assert self._next is not None
        start = self._next
        span = (new_next - start) % _SEQ_MOD
        released = sorted(
            (seq for seq in self._held if (seq - start) % _SEQ_MOD < span),
            key=lambda seq: (seq - start) % _SEQ_MOD,
        )
        self._next = new_next
        return [self._held.pop(seq) for seq in released]

    def _drain(self) -> list[RtpPacket]:
        out = []
        while self._next in self._held:
            out.append(self._held.pop(self._next))
            self._next = (self._next + 1) % _SEQ_MOD
        return out
