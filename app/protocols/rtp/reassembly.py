"""Loss handling shared by depacketizers that rebuild one unit from several RTP packets.

A unit with a missing piece is never emitted: it is dropped whole, counted in `lost_units`, and
the rest of its packets (same timestamp, up to the marker) are skipped instead of being taken for
the start of a new unit. Subclasses parse their payload format in `_accept` and keep the unit
being assembled in `_pending`.
"""

from __future__ import annotations

import abc
from typing import Generic, Protocol, TypeVar

from app.protocols.rtp.codec import DepacketizedUnit, DepacketizeError
from app.protocols.rtp.packet import RtpPacket


class PendingUnit(Protocol):
    """A unit being assembled: the RTP timestamp its packets share."""

    @property
    def timestamp(self) -> int: ...


_P = TypeVar("_P", bound=PendingUnit)


class FragmentReassembler(abc.ABC, Generic[_P]):
    """The `push`/`flush` of the Depacketizer contract around a format's `_accept`."""

    def __init__(self) -> None:
        self.lost_units = 0
        self._pending: _P | None = None
        #: Timestamp of a unit already counted lost whose remaining packets are skipped.
        self._skip_ts: int | None = None

    def push(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        pending = self._pending
        if pending is not None and not self._continues(pending, packet):
            self._lose(pending.timestamp, marker=False)
        if self._skip_ts is not None and self._skip_ts != packet.timestamp:
            self._skip_ts = None
        if self._skip_ts is not None:
            if packet.marker:
                self._skip_ts = None
            return []
        try:
            return self._accept(packet)
        except DepacketizeError:
            self._lose(packet.timestamp, packet.marker)
            raise

    def flush(self) -> list[DepacketizedUnit]:
        """A unit still missing packets at the end of the stream is lost."""
        if self._pending is not None:
            self._pending = None
            self.lost_units += 1
        self._skip_ts = None
        return []

    def _continues(self, pending: _P, packet: RtpPacket) -> bool:
        """Whether `packet` may belong to `pending`; a unit's packets share its timestamp."""
        return packet.timestamp == pending.timestamp

    def _lose(self, timestamp: int, marker: bool) -> None:
        """Drop the pending unit; unless this packet ended it, skip the rest of its packets."""
        self._pending = None
        self.lost_units += 1
        self._skip_ts = None if marker else timestamp

    @abc.abstractmethod
    def _accept(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        """Take a packet not being skipped; raise a DepacketizeError for a malformed one."""
