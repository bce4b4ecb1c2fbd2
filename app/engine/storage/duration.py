"""xs:duration (XML Schema 1.0 §3.2.6) → nanoseconds, for ONVIF MaximumRetentionTime.

The store keeps the client's original string verbatim (conformance tools compare it as text) and
uses the parsed value only for retention. Years and months have no fixed length; retention
treats them as 365 and 30 days, which errs on keeping data a little longer than a calendar
reading would for months of 31 days.
"""

from __future__ import annotations

import re

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND

#: Longest duration text accepted; a legitimate value is a handful of characters.
MAX_DURATION_CHARS = 64
#: Largest value representable in an SQLite INTEGER (signed 64-bit); ~292 years in ns.
MAX_DURATION_NS = (1 << 63) - 1

_DAY_NS = 86_400 * NS_PER_SECOND
_YEAR_NS = 365 * _DAY_NS
_MONTH_NS = 30 * _DAY_NS

_DURATION_RE = re.compile(
    r"(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?)?",
    re.ASCII,  # \d must not accept other scripts' digits, which int() would happily convert
)


class DurationError(ConfigError):
    """The text is not an xs:duration the store can use as a retention time."""


def parse_duration(text: str) -> int:
    """Parse a non-negative xs:duration such as 'PT0S', 'P30D' or 'PT1H30M' into ns.

    Fractions finer than 1 ns are truncated. Raises DurationError naming the text for anything
    that is not a valid, non-negative duration below MAX_DURATION_NS.
    """
    if len(text) > MAX_DURATION_CHARS:
        raise DurationError(f"duration of {len(text)} characters exceeds {MAX_DURATION_CHARS}")
    # xs:duration allows surrounding whitespace (whiteSpace=collapse) but nothing inside.
    stripped = text.strip(" \t\r\n")
    m = _DURATION_RE.fullmatch(stripped)
    if m is None or stripped.endswith(("P", "T")):
        raise DurationError(f"not an xs:duration: {text!r}")
    sign, years, months, days, hours, minutes, seconds, frac = m.groups()
    if frac is not None and seconds is None:  # pragma: no cover - the regex cannot produce it
        raise DurationError(f"not an xs:duration: {text!r}")
    total = (
        int(years or 0) * _YEAR_NS
        + int(months or 0) * _MONTH_NS
        + int(days or 0) * _DAY_NS
        + int(hours or 0) * 3600 * NS_PER_SECOND
        + int(minutes or 0) * 60 * NS_PER_SECOND
        + int(seconds or 0) * NS_PER_SECOND
        + int((frac or "0")[:9].ljust(9, "0"))
    )
    if sign and total:
        raise DurationError(f"negative duration {text!r}: a retention time must be ≥ 0")
    if total > MAX_DURATION_NS:
        raise DurationError(f"duration {text!r} exceeds the largest storable value (~292 years)")
    return total
