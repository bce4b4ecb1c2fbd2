"""The RTSP Range header (RFC 2326 §12.29, §3.6, §3.7) in its `npt=` and `clock=` forms.

    Range: npt=0.000-            npt=now-          npt=10-20.5       npt=00:01:02.5-
    Range: clock=20261121T140000.25Z-              clock=20261121T140000Z-20261121T150000Z
    Range: clock=20261121T150000Z-20261121T140000Z (reverse: start after end, ONVIF replay)
    Range: clock=-20261121T150000Z                 ;time=20261121T140000Z (when to act)

Clock times are UTC instants in app.core.time ns; npt times are ns offsets from the start of
the presentation. `start` is always the first point given, so a reverse range has start > end.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import re
from collections.abc import Callable
from typing import Literal

from app.core.time import NS_PER_SECOND, from_datetime
from app.protocols.rtsp.message import RtspParseError

#: Longest Range header value accepted.
MAX_RANGE_CHARS = 256
#: Status for a Range the server cannot use (RFC 2326 §11.3.7 "Invalid Range").
INVALID_RANGE = 457

NOW: Literal["now"] = "now"
RangePoint = int | Literal["now"]

_CLOCK = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z")
_NPT_SEC = re.compile(r"(\d{1,12})(?:\.(\d{0,9}))?")
_NPT_HMS = re.compile(r"(\d{1,9}):([0-5]\d):([0-5]\d)(?:\.(\d{0,9}))?")


class RangeUnit(enum.StrEnum):
    NPT = "npt"
    CLOCK = "clock"


@dataclasses.dataclass(frozen=True, slots=True)
class TimeRange:
    """A parsed Range value; None marks an open end, NOW (npt only) the live point."""

    unit: RangeUnit
    start: RangePoint | None = None
    end: RangePoint | None = None
    #: The `time=` parameter (when the server should act), Unix ns.
    time_ns: int | None = None

    @property
    def reverse(self) -> bool:
        """A closed range whose first point lies after its second (reverse playback)."""
        return (
            isinstance(self.start, int)
            and isinstance(self.end, int)
            and self.start > self.end  # both ints: no "now"
        )

    def to_header(self) -> str:
        fmt = format_clock if self.unit is RangeUnit.CLOCK else format_npt
        start = "" if self.start is None else _point(self.start, fmt)
        end = "" if self.end is None else _point(self.end, fmt)
        text = f"{self.unit.value}={start}-{end}"
        if self.time_ns is not None:
            text += f";time={format_clock(self.time_ns)}"
        return text


def clock_range(start_ns: int | None, end_ns: int | None = None) -> TimeRange:
    return TimeRange(RangeUnit.CLOCK, start_ns, end_ns)


def npt_range(start: RangePoint | None, end: RangePoint | None = None) -> TimeRange:
    return TimeRange(RangeUnit.NPT, start, end)


def parse_range(value: str) -> TimeRange:
    """Parse a Range value; syntax errors are 400, units other than npt/clock are 457."""
    text = value.strip()
    if len(text) > MAX_RANGE_CHARS:
        raise RtspParseError(f"Range header of {len(text)} characters is too long")
    spec, _, params = text.partition(";")
    unit_text, sep, points = spec.partition("=")
    unit_name = unit_text.strip().lower()
    if unit_name not in ("npt", "clock"):
        raise RtspParseError(f"unsupported Range unit {unit_text.strip()!r}", status=INVALID_RANGE)
    unit = RangeUnit(unit_name)
    time_ns = _parse_params(params)
    if not sep:
        # "clock" alone is legal in the ONVIF grammar: the whole recording, from its start.
        return TimeRange(unit, time_ns=time_ns)
    first, dash, second = points.strip().partition("-")
    if not dash:
        raise RtspParseError(f"Range {text!r} has no '-' between start and end")
    first, second = first.strip(), second.strip()
    if not first and not second:
        raise RtspParseError(f"Range {text!r} has neither start nor end")
    parse = parse_clock if unit is RangeUnit.CLOCK else parse_npt
    start = parse(first) if first else None
    end = parse(second) if second else None
    return TimeRange(unit, start, end, time_ns)


def parse_clock(text: str) -> int:
    """`YYYYMMDDThhmmss[.fraction]Z` (UTC, 1–9 fraction digits) → Unix ns."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise RtspParseError(f"invalid clock time {text[:40]!r}, expected YYYYMMDDThhmmss[.f]Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        # A leap second (60) is folded into the next second rather than refused.
        base = _dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=_dt.UTC)
    except ValueError as exc:
        raise RtspParseError(f"invalid clock time {text!r}: {exc}") from None
    ns = from_datetime(base) + (second - min(second, 59)) * NS_PER_SECOND
    if match.group(7):
        ns += int(match.group(7).ljust(9, "0"))
    return ns


def format_clock(ns: int) -> str:
    """Unix ns → `YYYYMMDDThhmmss[.fraction]Z`, fraction without trailing zeros."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=seconds)
    text = moment.strftime("%Y%m%dT%H%M%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def parse_npt(text: str) -> RangePoint:
    """`now`, seconds (`12.5`) or `h:mm:ss[.fraction]` → NOW or ns."""
    text = text.strip()
    if text.lower() == NOW:
        return NOW
    if match := _NPT_SEC.fullmatch(text):
        return int(match.group(1)) * NS_PER_SECOND + _fraction_ns(match.group(2))
    if match := _NPT_HMS.fullmatch(text):
        hours, minutes, seconds = (int(g) for g in match.groups()[:3])
        total = (hours * 3600 + minutes * 60 + seconds) * NS_PER_SECOND
        return total + _fraction_ns(match.group(4))
    raise RtspParseError(f"invalid npt time {text[:40]!r}")


def format_npt(ns: int) -> str:
    """ns → seconds with at least 3 decimals (`12.500`), more when needed."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    digits = f"{frac:09d}".rstrip("0")
    return f"{seconds}.{digits.ljust(3, '0')}"


def _point(value: RangePoint, fmt: Callable[[int], str]) -> str:
    return NOW if isinstance(value, str) else fmt(value)


def _fraction_ns(digits: str | None) -> int:
    return int(digits.ljust(9, "0")) if digits else 0


def _parse_params(params: str) -> int | None:
    time_ns = None
    for item in params.split(";"):
        name, sep, val = item.partition("=")
        if name.strip().lower() == "time" and sep:
            time_ns = parse_clock(val)
    return time_ns
