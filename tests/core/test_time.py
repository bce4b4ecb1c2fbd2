"""Time model: NTP and ISO conversions are exact where the formats allow."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.time import (
    NS_PER_SECOND,
    FakeClock,
    format_iso,
    from_datetime,
    ntp64_to_unix_ns,
    parse_iso,
    to_datetime,
    unix_ns_to_ntp64,
)

# NTP era 0 covers 1900..2036; Custos only meets instants after 1970.
ERA0_NS = st.integers(min_value=0, max_value=(2**32 - 2_208_988_800 - 1) * NS_PER_SECOND)


@given(ERA0_NS)
def test_ntp_round_trip_within_one_ns(ns: int) -> None:
    assert abs(ntp64_to_unix_ns(unix_ns_to_ntp64(ns)) - ns) <= 1


def test_ntp_known_value() -> None:
    # 2026-01-01T00:00:00Z = 1767225600 Unix = 3976214400 NTP seconds; 0.5 s = 0x80000000
    assert unix_ns_to_ntp64(1_767_225_600 * NS_PER_SECOND + NS_PER_SECOND // 2) == (
        3_976_214_400 << 32 | 0x8000_0000
    )


@given(st.integers(min_value=0, max_value=4_102_444_800 * NS_PER_SECOND))
def test_iso_round_trip_nanoseconds(ns: int) -> None:
    assert parse_iso(format_iso(ns, digits=9)) == ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T14:00:00Z", 1_795_269_600 * NS_PER_SECOND),
        ("2026-11-21T15:00:00+01:00", 1_795_269_600 * NS_PER_SECOND),
        ("2026-11-21T14:00:00.25Z", 1_795_269_600 * NS_PER_SECOND + 250_000_000),
        ("2026-11-21 14:00:00", 1_795_269_600 * NS_PER_SECOND),
    ],
)
def test_parse_iso_forms(text: str, expected: int) -> None:
    assert parse_iso(text) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-21T14:00" + "0" * 80]
)
def test_parse_iso_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"date-time"):
        parse_iso(text)


def test_datetime_round_trip_and_naive_refused() -> None:
    ns = 1_795_269_600 * NS_PER_SECOND + 123_456_000
    assert from_datetime(to_datetime(ns)) == ns
    with pytest.raises(ValueError, match="naive"):
        from_datetime(dt.datetime(2026, 1, 1))


def test_fake_clock_moves_forward_only() -> None:
    clock = FakeClock(wall_ns=10)
    clock.advance(5)
    assert (clock.wall_ns(), clock.monotonic_ns()) == (15, 5)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
