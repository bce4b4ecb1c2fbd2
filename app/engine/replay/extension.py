"""The ONVIF replay RTP header extension 0xABAC: NTP time, C/E/D/T flags and the PLAY's CSeq.

Placement follows PB-26a (what GStreamer's rtponvifparse needs): every packet of a unit carries
the extension with the same NTP time and CSeq; C on every packet of a clean point; D only on the
first packet (a DISCONT inside an FU-A sequence makes depayloaders drop the frame); E on every
packet of the last unit of a section; T only on the very last packet (rtponvifparse pushes EOS
right after it).

The NTP fraction is rounded up, not to nearest: then a receiver that truncates it to ns
(GStreamer's rtponvifparse) and one that rounds (app.core.time.ntp64_to_unix_ns) both recover
the stored wall clock to the nanosecond.
"""

from __future__ import annotations

import dataclasses
import struct

from app.core.time import NS_PER_SECOND, NTP_UNIX_OFFSET_S
from app.engine.rtsp.resource import ExtensionHook, RtpExtension

#: "Defined by profile" value of the replay extension (Streaming spec, PB-20).
REPLAY_EXTENSION_ID = 0xABAC
#: Bits of byte 8 of the extension data (PB-21).
FLAG_C = 0x80
FLAG_E = 0x40
FLAG_D = 0x20
FLAG_T = 0x10

_LAYOUT = struct.Struct("!IIBBH")
_NTP_FRAC = 1 << 32


@dataclasses.dataclass(frozen=True, slots=True)
class UnitMarks:
    """The replay flags of one access unit."""

    clean: bool = False
    end: bool = False
    discontinuity: bool = False
    terminal: bool = False


def replay_extension(wall_ns: int, flags: int, cseq: int) -> bytes:
    """The 12 data bytes: NTP timestamp of `wall_ns`, flag byte, CSeq low byte, zero padding."""
    seconds, rem = divmod(wall_ns, NS_PER_SECOND)
    fraction = -(-rem * _NTP_FRAC // NS_PER_SECOND)
    era_seconds = (seconds + NTP_UNIX_OFFSET_S) & 0xFFFF_FFFF
    return _LAYOUT.pack(era_seconds, fraction, flags, cseq & 0xFF, 0)


def extension_hook(wall_ns: int, cseq: int, marks: UnitMarks) -> ExtensionHook:
    """The per-packet hook that tags one unit's packets as PB-26a places the flags."""
    ntp_and_common = FLAG_C if marks.clean else 0
    if marks.end:
        ntp_and_common |= FLAG_E
    cache: dict[int, RtpExtension] = {}

    def hook(index: int, count: int) -> RtpExtension:
        flags = ntp_and_common
        if marks.discontinuity and index == 0:
            flags |= FLAG_D
        if marks.terminal and index == count - 1:
            flags |= FLAG_T
        found = cache.get(flags)
        if found is None:
            found = cache[flags] = (REPLAY_EXTENSION_ID, replay_extension(wall_ns, flags, cseq))
        return found

    return hook
