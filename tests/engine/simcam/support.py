"""Test helpers for the simulated camera: a recording sink, virtual time, decoding stamps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import av

from app.core.media import AccessUnit, CodecParams
from app.core.time import FakeClock
from app.formats.h26x import length_prefixed_to_annexb
from app.formats.stamp import Stamp, read_stamp

NS = 1_000_000_000


class RecordingSink:
    """Keeps every call, and the monotonic time of each frame's delivery."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.tracks: tuple[CodecParams, ...] = ()
        self.units: dict[int, list[AccessUnit]] = {0: [], 1: []}
        self.delivered_at: dict[int, list[int]] = {0: [], 1: []}
        self.params: set[CodecParams] = set()
        self.stops: list[str | None] = []

    def start(self, tracks: Sequence[CodecParams]) -> None:
        self.tracks = tuple(tracks)

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        self.units[track].append(unit)
        self.params.add(params)
        if self.clock is not None:
            self.delivered_at[track].append(self.clock.monotonic_ns())

    def stop(self, reason: str | None) -> None:
        self.stops.append(reason)

    @property
    def video(self) -> list[AccessUnit]:
        return self.units[0]

    @property
    def audio(self) -> list[AccessUnit]:
        return self.units[1]


class VirtualTime:
    """A camera `sleep` that advances a FakeClock instead of waiting, until `end_ns`.

    A sleep that would reach `end_ns` sets `reached` and never returns (the test then stops the
    camera), so exactly the units due before `end_ns` are delivered. `oversleep_ns(i)` makes
    wake-up number i late by that much, like a busy event loop.
    """

    def __init__(self, clock: FakeClock, end_ns: int, oversleep_ns: list[int] | None = None):
        self.clock = clock
        self.end_ns = end_ns
        self.reached = asyncio.Event()
        self._oversleep = list(oversleep_ns or [])
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        ns = round(seconds * NS)
        late = self._oversleep[self.sleeps % len(self._oversleep)] if self._oversleep else 0
        self.sleeps += 1
        if self.clock.monotonic_ns() + ns + late >= self.end_ns:
            self.reached.set()
            await asyncio.Event().wait()
        self.clock.advance(ns + late)
        await asyncio.sleep(0)


def decode_stamps(units: list[AccessUnit]) -> list[Stamp]:
    """Decode the units in order with PyAV (one picture per unit) and read every stamp."""
    decoder = av.CodecContext.create("h264", "r")
    stamps = []
    for i, unit in enumerate(units):
        pictures = decoder.decode(av.Packet(length_prefixed_to_annexb(unit.data)))
        assert len(pictures) == 1, f"unit {i} decoded to {len(pictures)} pictures"
        stamps.append(read_stamp(pictures[0].to_ndarray(format="gray")))
    return stamps
