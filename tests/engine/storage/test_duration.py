"""xs:duration parsing for MaximumRetentionTime: exact values, rejections, only DurationError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND
from app.engine.storage.duration import MAX_DURATION_CHARS, DurationError, parse_duration

DAY = 86_400 * NS_PER_SECOND


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0S", 0),
        ("-PT0S", 0),
        ("PT60M", 3600 * NS_PER_SECOND),
        ("PT1H", 3600 * NS_PER_SECOND),
        ("P30D", 30 * DAY),
        ("P1Y", 365 * DAY),
        ("P1M", 30 * DAY),
        ("P1DT12H", DAY + 12 * 3600 * NS_PER_SECOND),
        ("PT0.5S", NS_PER_SECOND // 2),
        ("PT1.000000001S", NS_PER_SECOND + 1),
        ("PT1.0000000019S", NS_PER_SECOND + 1),  # finer than 1 ns: truncated
        (" P2D\n", 2 * DAY),
        ("P0Y0M0DT0H0M0S", 0),
    ],
)
def test_parses_exact_nanoseconds(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1D",
        "PT1",
        "P1H",
        "PT1D",
        "P-1D",
        "-P1D",
        "P1.5D",
        "PT.5S",
        "P1 D",
        "pt1s",
        "P\u0661D",
        "P999999999999Y",
        "P" + "1" * MAX_DURATION_CHARS + "D",
    ],
)
def test_rejects_with_message(text: str) -> None:
    with pytest.raises(DurationError, match=r"duration|xs:duration|exceeds"):
        parse_duration(text)


def test_duration_error_is_a_config_error() -> None:
    # The SOAP edge maps ConfigError's kind to InvalidArgVal/BadConfiguration.
    assert issubclass(DurationError, ConfigError)


@settings(max_examples=500)
@given(st.text(max_size=80))
def test_garbage_raises_only_duration_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert 0 <= value < 2**63


@settings(max_examples=200)
@given(
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 2000),
    st.integers(0, 100),
    st.integers(0, 100),
    st.integers(0, 100_000),
    st.one_of(st.none(), st.integers(0, 999_999_999)),
)
def test_components_add_up(
    years: int, months: int, days: int, hours: int, minutes: int, seconds: int, nanos: int | None
) -> None:
    frac = "" if nanos is None else f".{nanos:09d}"
    text = f"P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}{frac}S"
    expected = (
        (years * 365 + months * 30 + days) * DAY
        + (hours * 3600 + minutes * 60 + seconds) * NS_PER_SECOND
        + (nanos or 0)
    )
    assert parse_duration(text) == expected
