"""Time model: UTC wall clock as integer nanoseconds, NTP and ISO 8601 conversions, clocks.

See app/core/DESIGN.md. Every stored or transmitted instant is an `int` of nanoseconds since
1970-01-01T00:00:00Z (names end in `_ns`). Media clocks (RTP timestamps) are separate integers
with their own clock rate; the mapping between the two is per track and recorded with its source.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from typing import Protocol

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000
NS_PER_US = 1_000
#: Seconds between the NTP era 0 epoch (1900-01-01) and the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET_S = 2_208_988_800
_NTP_FRAC = 1 << 32

_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$"
)
_MAX_ISO_LENGTH = 64


class Clock(Protocol):
    """Where code asks for the time; inject a FakeClock in tests."""

    def wall_ns(self) -> int:
        """UTC now, nanoseconds since the Unix epoch."""
        ...

    def monotonic_ns(self) -> int:
        """A clock that never jumps, for timeouts and pacing."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def wall_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class FakeClock:
    """A clock tests move by hand; wall and monotonic advance together."""

    def __init__(self, wall_ns: int = 1_767_225_600 * NS_PER_SECOND) -> None:
        self._wall = wall_ns
        self._mono = 0

    def wall_ns(self) -> int:
        return self._wall

    def monotonic_ns(self) -> int:
        return self._mono

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a FakeClock only moves forward")
        self._wall += ns
        self._mono += ns


def ntp64_to_unix_ns(ntp: int) -> int:
    """A 64-bit NTP timestamp (era 0: 1900…2036) → Unix ns, rounded to the nearest ns."""
    seconds = ntp >> 32
    frac = ntp & 0xFFFF_FFFF
    return (seconds - NTP_UNIX_OFFSET_S) * NS_PER_SECOND + (
        frac * NS_PER_SECOND + _NTP_FRAC // 2
    ) // _NTP_FRAC


def unix_ns_to_ntp64(ns: int) -> int:
    """Unix ns → 64-bit NTP timestamp (era 0), fraction rounded to nearest."""
    seconds, rem = divmod(ns, NS_PER_SECOND)
    frac = (rem * _NTP_FRAC + NS_PER_SECOND // 2) // NS_PER_SECOND
    if frac >= _NTP_FRAC:
        seconds += 1
        frac -= _NTP_FRAC
    return ((seconds + NTP_UNIX_OFFSET_S) & 0xFFFF_FFFF) << 32 | frac


def to_datetime(ns: int) -> _dt.datetime:
    """Unix ns → aware UTC datetime (microsecond precision, as datetime allows)."""
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=ns // NS_PER_US)


def from_datetime(value: _dt.datetime) -> int:
    """Aware datetime → Unix ns; a naive datetime is refused (local time is a display concern)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: Custos keeps time in UTC; give a timezone")
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * NS_PER_US


def format_iso(ns: int, *, digits: int = 3) -> str:
    """Unix ns → '2026-11-21T14:00:00.123Z' with `digits` fractional digits (0…9)."""
    seconds, rem = divmod(ns, NS_PER_SECOND)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if digits <= 0:
        return base + "Z"
    frac = f"{rem:09d}"[:digits]
    return f"{base}.{frac}Z"


def parse_iso(text: str) -> int:
    """ISO 8601 date-time ('Z' or ±hh:mm offset, up to 9 fractional digits) → Unix ns.

    A value without a zone is taken as UTC, since every Custos interface speaks UTC.
    Raises ValueError with the offending text on anything else.
    """
    if len(text) > _MAX_ISO_LENGTH:
        raise ValueError(f"date-time too long ({len(text)} characters)")
    m = _ISO_RE.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO 8601 UTC date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    try:
        base = _dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=_dt.UTC)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {text!r} ({exc})") from None
    ns = from_datetime(base) + (second - min(second, 59)) * NS_PER_SECOND
    if frac:
        ns += int(frac.ljust(9, "0"))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        ns -= sign * (hh * 3600 + mm * 60) * NS_PER_SECOND
    return ns
