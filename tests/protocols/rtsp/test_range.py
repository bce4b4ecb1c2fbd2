"""The Range header: npt and clock forms, open/closed/reverse ranges, UTC ns conversions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.time import NS_PER_SECOND, parse_iso
from app.protocols.rtsp.message import RtspParseError
from app.protocols.rtsp.range import (
    NOW,
    RangeUnit,
    TimeRange,
    clock_range,
    format_clock,
    npt_range,
    parse_clock,
    parse_range,
)

CLOCK = RangeUnit.CLOCK
NPT = RangeUnit.NPT
T_1149 = parse_iso("2009-06-15T11:49:00Z")
T_1150 = parse_iso("2009-06-15T11:50:00Z")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # ONVIF Streaming §6.5.1 examples.
        ("clock=20090615T114900.440Z-", TimeRange(CLOCK, T_1149 + 440_000_000)),
        (
            "clock=20090615T114900.440Z-20090615T115000Z",
            TimeRange(CLOCK, T_1149 + 440 * 10**6, T_1150),
        ),
        (
            "clock=20090615T115000.440Z-20090615T114900Z",
            TimeRange(CLOCK, T_1150 + 440 * 10**6, T_1149),
        ),
        # GStreamer writes nine fraction digits.
        ("clock=20090615T114900.440000000Z-", TimeRange(CLOCK, T_1149 + 440_000_000)),
        ("clock=20261121T140000.25Z-", TimeRange(CLOCK, parse_iso("2026-11-21T14:00:00.25Z"))),
        ("clock=-20090615T115000Z", TimeRange(CLOCK, None, T_1150)),
        ("clock", TimeRange(CLOCK)),
        # RFC 2326 §3.6 npt forms.
        ("npt=0.000-", TimeRange(NPT, 0)),
        ("npt=now-", TimeRange(NPT, NOW)),
        ("npt=10-20.5", TimeRange(NPT, 10 * NS_PER_SECOND, 20_500_000_000)),
        ("npt=-20", TimeRange(NPT, None, 20 * NS_PER_SECOND)),
        ("npt=00:01:02.5-", TimeRange(NPT, 62_500_000_000)),
        ("npt=12.-", TimeRange(NPT, 12 * NS_PER_SECOND)),
        (" NPT = 1 - 2 ", TimeRange(NPT, NS_PER_SECOND, 2 * NS_PER_SECOND)),
        # RFC 2326 §12.29 time= parameter.
        (
            "npt=0-;time=19970123T153600Z",
            TimeRange(NPT, 0, None, parse_iso("1997-01-23T15:36:00Z")),
        ),
    ],
)
def test_parse(value: str, expected: TimeRange) -> None:
    assert parse_range(value) == expected


def test_reverse_flag() -> None:
    assert parse_range("clock=20090615T115000.440Z-20090615T114900Z").reverse
    assert not parse_range("clock=20090615T114900Z-20090615T115000Z").reverse
    assert not parse_range("clock=20090615T114900Z-").reverse
    assert not npt_range(NOW, 5).reverse


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("smpte=0:10:20-;time=19970123T153600Z", 457),
        ("bytes=0-100", 457),
        ("clock=2009-06-15T11:49:00Z-", 400),
        ("clock=20090615T114900+01:00-", 400),
        ("clock=20091315T114900Z-", 400),
        ("clock=20090615T114900.1234567890Z-", 400),
        ("clock=now-", 400),
        ("npt=abc-", 400),
        ("npt=1:99:00-", 400),
        ("npt=5", 400),
        ("npt=-", 400),
        ("clock=20090615T114900Z-;time=yesterday", 400),
    ],
)
def test_invalid(value: str, status: int) -> None:
    with pytest.raises(RtspParseError) as info:
        parse_range(value)
    assert info.value.status == status


def test_format() -> None:
    assert clock_range(T_1149 + 440_000_000).to_header() == "clock=20090615T114900.44Z-"
    assert clock_range(T_1150, T_1149).to_header() == "clock=20090615T115000Z-20090615T114900Z"
    assert npt_range(0).to_header() == "npt=0.000-"
    assert npt_range(NOW).to_header() == "npt=now-"
    assert npt_range(1_234_567_891, None).to_header() == "npt=1.234567891-"
    assert TimeRange(NPT, 0, None, T_1149).to_header() == "npt=0.000-;time=20090615T114900Z"


def test_leap_second_folds_into_the_next_second() -> None:
    assert parse_clock("20161231T235960Z") == parse_iso("2017-01-01T00:00:00Z")


@settings(max_examples=1_000)
@given(st.integers(0, 253_402_300_799 * NS_PER_SECOND))
def test_clock_round_trip_is_exact_to_the_nanosecond(ns: int) -> None:
    assert parse_clock(format_clock(ns)) == ns


@settings(max_examples=500)
@given(
    unit=st.sampled_from([CLOCK, NPT]),
    start=st.none() | st.integers(0, 4_000_000_000 * NS_PER_SECOND),
    end=st.none() | st.integers(0, 4_000_000_000 * NS_PER_SECOND),
)
def test_range_round_trip(unit: RangeUnit, start: int | None, end: int | None) -> None:
    if start is None and end is None:
        return
    value = TimeRange(unit, start, end)
    assert parse_range(value.to_header()) == value


@settings(max_examples=2_000)
@given(st.text(max_size=80) | st.from_regex(r"(clock|npt)=[0-9TZ.:\-;a-z=]{0,40}"))
def test_random_text_raises_only_parse_errors(value: str) -> None:
    try:
        parse_range(value)
    except RtspParseError as exc:
        assert exc.status in (400, 457)
