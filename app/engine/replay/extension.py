"""The ONVIF replay RTP header extension 0xABAC: NTP time, C/E/D/T flags and the PLAY's CSeq.

Placement follows PB-26a (what GStreamer's rtponvifparse needs): every packet of a unit carries
the extension with the same NTP time and CSeq; C on every packet of a clean point; D only on the
first packet (a DISCONT inside an FU-A sequence makes depayloaders drop the frame); E on every
packet of the last unit of a section; T only on the very last packet (rtponvifparse pushes EOS
right after it).
"""

from __future__ import annotations

import dataclasses
import struct

from app.core.time import unix_ns_to_ntp64
from app.engine.rtsp.resource import ExtensionHook, RtpExtension

#: "Defined by profile" value of the replay extension (Streaming spec, PB-20).
REPLAY_EXTENSION_ID = 0xABAC
#: Bits of byte 8 of the extension data (PB-21).
FLAG_C = 0x80
FLAG_E = 0x40
FLAG_D = 0x20
FLAG_T = 0x10

_LAYOUT = struct.Struct("!QBBH")


@dataclasses.dataclass(frozen=True, slots=True)
class UnitMarks:
    """The replay flags of one access unit."""

    clean: bool = False
    end: bool = False
    discontinuity: bool = False
    terminal: bool = False


def replay_extension(wall_ns: int, flags: int, cseq: int) -> bytes:
    """The 12 data bytes: NTP timestamp of `wall_ns`, flag byte, CSeq low byte, zero padding."""
    return _LAYOUT.pack(unix_ns_to_ntp64(wall_ns), flags, cseq & 0xFF, 0)


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
