"""Properties of replay planning and walking (plan.py, walk.py) over random GOP layouts.

A hypothesis-built recording (runs separated by gaps, GOPs of random length, P and B pictures)
in an in-memory store is played by the real ReplayProducer with Rate-Control no, for random
ranges, directions and Frames modes. What it sends is compared with an independent model of
PB-18 (start at a clean point), PB-28..30 (order), PB-14 (frame selection, intra spacing in
recording time) and PB-23..26 (C/D/E/T), and RTP times with PB-33.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.media import AccessUnit, Codec, TrackKind
from app.core.time import NS_PER_MS, NS_PER_SECOND
from app.engine.replay import FLAG_C, FLAG_D, FLAG_E, FLAG_T, ReplayProducer
from app.engine.replay.walk import ReplayTrack
from app.engine.rtsp.resource import (
    ExtensionHook,
    MediaOutput,
    PlayRequest,
    ReportMode,
    RtspStatusError,
)
from app.protocols.rtsp.headers import FramesHeader, FramesMode
from app.protocols.rtsp.message import RtspRequest
from app.protocols.rtsp.range import INVALID_RANGE, RangeUnit, TimeRange
from tests.engine.replay.memory_store import TRACK, MemoryStore, Picture

START_NS = 1_772_352_000 * NS_PER_SECOND
VIDEO = ReplayTrack(0, TRACK, TrackKind.VIDEO, Codec.H264, 90_000)
#: Frame spacings (ms) and gap lengths (× 100 ms) the layouts draw from.
SPACINGS_MS = (40, 100, 250)
MAX_GAP_STEPS = 30


@dataclasses.dataclass(frozen=True)
class Case:
    pictures: list[Picture]
    reverse: bool
    start: int | None
    end: int | None
    frames: FramesHeader | None

    @property
    def interval_ns(self) -> int:
        if self.frames is None or self.frames.interval_ms is None:
            return 0
        return self.frames.interval_ms * NS_PER_MS


@dataclasses.dataclass(frozen=True)
class Sent:
    wall_ns: int
    keyframe: bool
    flags: int
    rtp_time: int


class RecordingOutput:
    """A MediaOutput that records what was sent (one packet per unit: the hook's flags)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    @property
    def tracks(self) -> tuple[int, ...]:
        return (0,)

    async def send(
        self,
        track: int,
        unit: AccessUnit,
        *,
        rtp_time: int | None = None,
        extension: ExtensionHook | None = None,
    ) -> None:
        assert extension is not None and rtp_time is not None
        found = extension(0, 1)
        assert found is not None
        self.sent.append(Sent(unit.wall_ns, unit.keyframe, found[1][8], rtp_time))

    def offer(self, track: int, unit: AccessUnit) -> bool:
        raise AssertionError("replay never offers")

    async def drain(self) -> None:
        return None

    def rtp_timestamp(self, track: int, media_time: int) -> int:
        return media_time & 0xFFFFFFFF

    def set_report_mode(self, mode: ReportMode) -> None:
        assert mode is ReportMode.ZERO


@st.composite
def layouts(draw: st.DrawFn) -> list[Picture]:
    pictures: list[Picture] = []
    wall = START_NS
    for run in range(1, draw(st.integers(1, 3)) + 1):
        for size in draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)):
            for i in range(size):
                disposable = i > 0 and draw(st.booleans())
                pictures.append(Picture(wall, run, i == 0, disposable))
                wall += draw(st.sampled_from(SPACINGS_MS)) * NS_PER_MS
        wall += draw(st.integers(1, MAX_GAP_STEPS)) * 100 * NS_PER_MS
    return pictures


@st.composite
def cases(draw: st.DrawFn) -> Case:
    pictures = draw(layouts())
    earliest, latest = pictures[0].wall_ns, pictures[-1].wall_ns
    point = st.one_of(
        st.builds(
            lambda p, d: p.wall_ns + d, st.sampled_from(pictures), st.sampled_from((-1, 0, 1))
        ),
        st.integers(earliest - NS_PER_SECOND, latest + NS_PER_SECOND),
    )
    reverse = draw(st.booleans())
    start = draw(st.one_of(st.none(), point))
    end = draw(st.one_of(st.none(), point))
    if start is not None and end is not None and (start > end) != reverse and start != end:
        start, end = end, start
    frames = draw(
        st.one_of(
            st.none(),
            st.sampled_from([FramesHeader(FramesMode.ALL), FramesHeader(FramesMode.PREDICTED)]),
            st.builds(
                FramesHeader,
                st.just(FramesMode.INTRA),
                st.one_of(st.none(), st.integers(1, 3000)),
            ),
        )
    )
    return Case(pictures, reverse, start, end, frames)


# ---------------------------------------------------------------------- the model


def _last_key_at_or_before(pictures: list[Picture], wall_ns: int) -> Picture | None:
    keys = [p for p in pictures if p.keyframe and p.wall_ns <= wall_ns]
    return keys[-1] if keys else None


def _select(case: Case, candidates: list[Picture]) -> list[Picture]:
    mode = case.frames.mode if case.frames is not None else FramesMode.ALL
    if mode is FramesMode.PREDICTED:
        return [p for p in candidates if not p.disposable]
    if mode is FramesMode.ALL:
        return candidates
    chosen: list[Picture] = []
    for p in candidates:
        if p.keyframe and (not chosen or p.wall_ns - chosen[-1].wall_ns >= case.interval_ns):
            chosen.append(p)
    return chosen


def expected_forward(case: Case) -> list[Picture] | None:
    """What PB-18(a/b) and PB-28 send; None = 457."""
    pics = case.pictures
    earliest, latest = pics[0].wall_ns, pics[-1].wall_ns
    start = earliest if case.start is None else max(case.start, earliest)
    if start > latest or (case.end is not None and case.end < earliest):
        return None
    runs = itertools.groupby(pics, key=lambda p: p.run_id)
    inside = any(g[0].wall_ns <= start <= g[-1].wall_ns for g in (list(g) for _, g in runs))
    end = case.end if case.end is not None else latest
    if inside:
        key = _last_key_at_or_before(pics, start)
    else:
        key = next((p for p in pics if p.keyframe and start <= p.wall_ns <= end), None)
    if key is None:
        return None
    return _select(case, [p for p in pics if key.wall_ns <= p.wall_ns <= end])


def expected_reverse(case: Case) -> list[list[Picture]] | None:
    """The GOPs PB-18(a/c) and PB-29/30 send, in sending order; None = 457."""
    pics = case.pictures
    earliest, latest = pics[0].wall_ns, pics[-1].wall_ns
    start = latest if case.start is None else min(case.start, latest)
    if start < earliest or (case.end is not None and case.end > latest):
        return None
    intra = case.frames is not None and case.frames.mode is FramesMode.INTRA
    step = max(1, case.interval_ns) if intra else 1
    gops: list[list[Picture]] = []
    key = _last_key_at_or_before(pics, start)
    upper = start
    while key is not None:
        if intra:
            gops.append([key])
        else:
            later = [p.wall_ns for p in pics if p.keyframe and p.wall_ns > key.wall_ns]
            stop = min([upper + 1, *later])
            gops.append(_select(case, [p for p in pics if key.wall_ns <= p.wall_ns < stop]))
        if case.end is not None and key.wall_ns <= case.end:
            break
        upper = key.wall_ns - 1
        key = _last_key_at_or_before(pics, key.wall_ns - step)
    return gops


# ---------------------------------------------------------------------- running it


def play(case: Case) -> tuple[list[Sent], int | None]:
    """(units sent, the Range start the PLAY reports); RtspStatusError propagates."""
    store = MemoryStore(case.pictures)
    producer = ReplayProducer(store.resource(), (VIDEO,))
    output = RecordingOutput()
    request = PlayRequest(
        request=RtspRequest("PLAY", "rtsp://127.0.0.1/replay/Prop"),
        cseq=7,
        range=(
            None
            if case.start is None and case.end is None
            else TimeRange(RangeUnit.CLOCK, case.start, case.end)
        ),
        scale=-1.0 if case.reverse else 1.0,
        speed=None,
        rate_control=False,
        frames=case.frames,
        immediate=None,
        require=(),
        tracks=(0,),
    )

    async def go() -> int | None:
        media_output: MediaOutput = output
        result = await producer.play(request, media_output)
        await producer.run(media_output)
        assert result.range is not None and isinstance(result.range.start, int)
        return result.range.start

    reported = asyncio.run(go())
    return output.sent, reported


def check_common(sent: list[Sent]) -> None:
    walls = [s.wall_ns for s in sent]
    assert len(set(walls)) == len(walls), "a frame was sent twice"
    assert [bool(s.flags & FLAG_C) for s in sent] == [s.keyframe for s in sent]
    assert [bool(s.flags & FLAG_T) for s in sent] == [False] * (len(sent) - 1) + [True]
    assert all(s.flags & 0x0F == 0 for s in sent)
    # Rate-Control no: RTP times are the stored wall clocks from the first unit on (PB-33).
    for s in sent:
        assert s.rtp_time == (s.wall_ns - sent[0].wall_ns) * 90_000 // NS_PER_SECOND


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_replay_sends_exactly_the_frames_the_range_direction_and_mode_select(case: Case) -> None:
    want_forward = None if case.reverse else expected_forward(case)
    want_reverse = expected_reverse(case) if case.reverse else None
    if want_forward is None and want_reverse is None:
        with pytest.raises(RtspStatusError) as refused:
            play(case)
        assert refused.value.status == INVALID_RANGE
        return
    sent, reported = play(case)
    check_common(sent)
    walls = [s.wall_ns for s in sent]
    mode = case.frames.mode if case.frames is not None else FramesMode.ALL
    if want_forward is not None:
        assert walls == [p.wall_ns for p in want_forward]
        # Forward: strictly increasing, from the clean point the PLAY reports, inside the range.
        assert all(a < b for a, b in itertools.pairwise(walls))
        assert reported == walls[0] and sent[0].keyframe
        if case.end is not None:
            assert walls[-1] <= case.end
        runs = {p.wall_ns: p.run_id for p in case.pictures}
        for i, s in enumerate(sent):
            new_section = i == 0 or runs[walls[i - 1]] != runs[s.wall_ns]
            assert bool(s.flags & FLAG_D) == new_section, (i, s)
            section_end = i == len(sent) - 1 or runs[walls[i + 1]] != runs[s.wall_ns]
            assert bool(s.flags & FLAG_E) == section_end, (i, s)
        if mode is FramesMode.INTRA:
            assert all(b - a >= case.interval_ns for a, b in itertools.pairwise(walls))
    else:
        assert want_reverse is not None
        assert walls == [p.wall_ns for gop in want_reverse for p in gop]
        # Reverse: GOPs last to first, forward order inside, D on each GOP's first unit.
        gop_starts = [i for i, s in enumerate(sent) if s.flags & FLAG_D]
        gops = [walls[a:b] for a, b in itertools.pairwise([*gop_starts, len(walls)])]
        assert gop_starts[:1] == [0]
        assert all(a < b for gop in gops for a, b in itertools.pairwise(gop))
        assert all(a[0] > b[-1] for a, b in itertools.pairwise(gops))
        assert all(sent[i].keyframe for i in gop_starts)
        # E: the last unit of a GOP that follows a gap or the start of the footage (PB-29).
        intra = mode is FramesMode.INTRA
        step = max(1, case.interval_ns) if intra else 1
        runs = {p.wall_ns: p.run_id for p in case.pictures}
        for gop, start in zip(gops, gop_starts, strict=True):
            before = _last_key_at_or_before(case.pictures, gop[0] - step)
            section_end = before is None or before.run_id != runs[gop[0]]
            flags = [bool(sent[start + i].flags & FLAG_E) for i in range(len(gop))]
            assert flags == [False] * (len(gop) - 1) + [section_end], (gop, flags)
        limit = case.start if case.start is not None else case.pictures[-1].wall_ns
        assert max(walls) <= limit
        if mode is FramesMode.INTRA:
            assert all(len(g) == 1 for g in gops)
            assert all(a - b >= max(1, case.interval_ns) for (a,), (b,) in itertools.pairwise(gops))
    if mode is FramesMode.ALL:
        # Nothing between the first and the last unit sent is left out (PB-28/29).
        span = [p.wall_ns for p in case.pictures if min(walls) <= p.wall_ns <= max(walls)]
        assert sorted(walls) == span
