"""LiveHub: fan-out to sinks, keyframe starts, the drop-and-resync policy, the end of a run."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from collections.abc import Sequence

import pytest

from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.ports import LiveSource, MediaSink
from app.engine.live import LiveHub, Subscription

VIDEO = CodecParams(Codec.H264, 90_000, width=1024, height=576, parameter_sets=(b"\x67", b"\x68"))
AUDIO = CodecParams(Codec.PCMU, 8_000, sample_rate=8_000, channels=1)
TRACKS = (VIDEO, AUDIO)
GOP = 10
T0_NS = 1_767_225_600_000_000_000


def video(n: int) -> AccessUnit:
    return AccessUnit(
        data=n.to_bytes(4, "big"),
        media_ts=n * 3600,
        wall_ns=T0_NS + n * 40_000_000,
        keyframe=n % GOP == 0,
        time_source=TimeSource.LOCAL_CAPTURE,
    )


def audio(k: int) -> AccessUnit:
    return AccessUnit(bytes(160), k * 160, T0_NS + k * 20_000_000, True, TimeSource.LOCAL_CAPTURE)


def push_video(hub: LiveHub, frames: range) -> None:
    for n in frames:
        hub.frame(0, video(n), VIDEO)


def queued(subscription: Subscription) -> list[tuple[int, int]]:
    """Drain what is queued now (without waiting) as (track, media_ts)."""
    items = []
    while subscription._queue:
        track, unit = subscription._queue.popleft()
        items.append((track, unit.media_ts))
    return items


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def start(self, tracks: Sequence[CodecParams]) -> None:
        self.calls.append(("start", tuple(tracks)))

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        self.calls.append(("frame", (track, unit.media_ts, params.codec)))

    def stop(self, reason: str | None) -> None:
        self.calls.append(("stop", reason))


class FailingSink(RecordingSink):
    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        super().frame(track, unit, params)
        raise OSError("disk full")


def test_hub_is_a_media_sink_and_a_live_source() -> None:
    hub = LiveHub()
    sink: MediaSink = hub
    source: LiveSource = hub
    assert source.tracks() == ()
    sink.start(TRACKS)
    assert source.tracks() == TRACKS
    sink.stop(None)
    assert source.tracks() == ()


def test_sinks_get_every_frame_of_the_run_in_order() -> None:
    hub = LiveHub()
    first, second = RecordingSink(), RecordingSink()
    hub.add_sink(first)
    hub.add_sink(second)
    hub.start(TRACKS)
    assert hub.tracks() == TRACKS
    hub.frame(1, audio(0), AUDIO)  # sinks never wait for a keyframe at the start of a run
    push_video(hub, range(3))
    hub.stop("camera unplugged")
    expected = [
        ("start", TRACKS),
        ("frame", (1, 0, Codec.PCMU)),
        ("frame", (0, 0, Codec.H264)),
        ("frame", (0, 3600, Codec.H264)),
        ("frame", (0, 7200, Codec.H264)),
        ("stop", "camera unplugged"),
    ]
    assert first.calls == expected
    assert second.calls == expected
    assert hub.tracks() == ()
    assert hub.frames == 4


def test_sink_joining_mid_run_starts_now_and_gets_frames_from_the_next_keyframe() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    push_video(hub, range(3))
    late = RecordingSink()
    hub.add_sink(late)
    assert late.calls == [("start", TRACKS)]
    hub.frame(1, audio(5), AUDIO)
    push_video(hub, range(3, 11))
    hub.frame(1, audio(6), AUDIO)
    hub.remove_sink(late)
    push_video(hub, range(11, 13))
    assert late.calls == [
        ("start", TRACKS),
        ("frame", (0, 10 * 3600, Codec.H264)),
        ("frame", (1, 6 * 160, Codec.PCMU)),
        ("stop", None),
    ]


def test_a_failing_sink_is_detached_and_the_others_carry_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = LiveHub("cam1")
    bad, good = FailingSink(), RecordingSink()
    hub.add_sink(bad)
    hub.add_sink(good)
    hub.start(TRACKS)
    with caplog.at_level(logging.ERROR, logger="app.engine.live"):
        push_video(hub, range(3))
    assert [c for c in bad.calls if c[0] == "frame"] == [("frame", (0, 0, Codec.H264))]
    assert len([c for c in good.calls if c[0] == "frame"]) == 3
    (record,) = caplog.records
    assert "live hub cam1" in record.getMessage() and "detached" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    with pytest.raises(ConflictError, match="is not a sink"):
        hub.remove_sink(bad)


async def test_subscriber_starts_at_the_next_video_keyframe() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    push_video(hub, range(4))
    subscription = hub.subscribe()
    hub.frame(1, audio(0), AUDIO)
    push_video(hub, range(4, 12))
    hub.frame(1, audio(1), AUDIO)
    track, unit = await anext(subscription)
    assert (track, unit.keyframe, unit.media_ts) == (0, True, 10 * 3600)
    assert queued(subscription) == [(0, 11 * 3600), (1, 160)]
    assert subscription.dropped_frames == 0
    assert hub.dropped_frames == 0


async def test_slow_subscriber_is_cleared_and_resumes_at_the_next_keyframe() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    slow = hub.subscribe(max_queue=5)
    fast = hub.subscribe(max_queue=100)
    push_video(hub, range(5))  # 0 (key) … 4 fill the slow queue
    assert len(slow._queue) == 5
    push_video(hub, range(5, 15))  # 5 overflows: 0…4 cleared, 5…9 lost, 10 (key) resumes
    assert queued(slow) == [(0, n * 3600) for n in range(10, 15)]
    assert slow.dropped_frames == 10
    assert queued(fast) == [(0, n * 3600) for n in range(15)]
    assert fast.dropped_frames == 0
    assert hub.dropped_frames == 10


async def test_overflow_on_a_keyframe_resumes_at_that_keyframe() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    subscription = hub.subscribe(max_queue=GOP)
    push_video(hub, range(GOP + 1))  # frame 10, a keyframe, finds the queue full
    assert queued(subscription) == [(0, GOP * 3600)]
    assert subscription.dropped_frames == GOP
    push_video(hub, range(GOP + 1, 2 * GOP))
    assert queued(subscription) == [(0, n * 3600) for n in range(GOP + 1, 2 * GOP)]
    assert hub.dropped_frames == GOP


async def test_losses_add_up_over_subscribers_and_the_queue_stays_bounded() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    subscriptions = [hub.subscribe(max_queue=size) for size in (3, 7, 256)]
    for n in range(2_000):
        hub.frame(0, video(n), VIDEO)
        hub.frame(1, audio(n), AUDIO)
        assert all(len(s._queue) <= s._max_queue for s in subscriptions)
    assert hub.dropped_frames == sum(s.dropped_frames for s in subscriptions)
    assert all(s.dropped_frames > 0 for s in subscriptions)
    for s in subscriptions:
        # Every frame offered was delivered (still queued) or counted lost, none twice.
        assert len(s._queue) + s.dropped_frames == 4_000
        # Nobody consumed, so whatever is queued was queued from a keyframe on.
        assert not s._queue or (s._queue[0][0] == 0 and s._queue[0][1].keyframe)
    assert len(subscriptions[2]._queue) > 0


async def test_consumer_waiting_on_an_empty_queue_wakes_for_each_frame() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    subscription = hub.subscribe()
    received: list[int] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for _, unit in subscription:
            received.append(unit.media_ts)
            if len(received) == 3:
                three.set()

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer now waits on the empty queue
    for n in range(3):
        push_video(hub, range(n, n + 1))
        await asyncio.sleep(0)
    await three.wait()
    hub.stop(None)
    await consumer
    assert received == [0, 3600, 7200]


async def test_stop_ends_subscriptions_after_their_queued_frames() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    subscription = hub.subscribe()
    push_video(hub, range(3))
    hub.stop(None)
    assert [unit.media_ts async for _, unit in subscription] == [0, 3600, 7200]
    assert subscription.closed
    assert hub.subscribers == 0
    # A subscription made between runs waits for the next run's first keyframe.
    waiting = hub.subscribe()
    hub.start((VIDEO,))
    push_video(hub, range(GOP - 1, GOP + 1))
    hub.stop("bye")
    assert [unit.media_ts async for _, unit in waiting] == [GOP * 3600]


async def test_close_unsubscribes_and_finishes_the_iterator() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    async with hub.subscribe() as subscription:
        push_video(hub, range(2))
        assert (await anext(subscription))[1].media_ts == 0
    assert hub.subscribers == 0
    push_video(hub, range(2, 4))
    assert [u async for u in subscription] == []
    other = hub.subscribe()
    await other.aclose()
    assert other.closed and hub.subscribers == 0


async def test_forgotten_subscription_is_released() -> None:
    hub = LiveHub()
    hub.subscribe()
    gc.collect()
    assert hub.subscribers == 0


def test_tracks_follow_parameter_changes() -> None:
    hub = LiveHub()
    hub.start(TRACKS)
    bigger = CodecParams(Codec.H264, 90_000, width=1280, height=720, parameter_sets=(b"\x67\x01",))
    hub.frame(0, video(0), bigger)
    assert hub.tracks() == (bigger, AUDIO)


async def test_audio_only_run_starts_anywhere() -> None:
    hub = LiveHub()
    hub.start((AUDIO,))
    subscription = hub.subscribe(max_queue=2)
    for k in range(5):
        hub.frame(0, audio(k), AUDIO)
    # 0 and 1 queued; 2 overflows and, being a starting point itself, stays; 3 fits; 4 overflows.
    assert queued(subscription) == [(0, 4 * 160)]
    assert subscription.dropped_frames == 4


def test_misuse_is_refused() -> None:
    hub = LiveHub("cam9")
    with pytest.raises(ConflictError, match="frame outside a run"):
        hub.frame(0, video(0), VIDEO)
    hub.start(TRACKS)
    with pytest.raises(ConflictError, match="track 2 is not one of the run's 2 tracks"):
        hub.frame(2, video(0), VIDEO)
    with pytest.raises(ConfigError, match="queue of 0 frames"):
        hub.subscribe(max_queue=0)
    sink = RecordingSink()
    hub.add_sink(sink)
    with pytest.raises(ConflictError, match="already a sink of live hub 'cam9'"):
        hub.add_sink(sink)


def test_sinks_are_told_apart_by_identity_and_need_not_be_hashable() -> None:
    @dataclasses.dataclass
    class ValueSink:  # eq=True makes instances unhashable and equal to each other
        calls: list[str] = dataclasses.field(default_factory=list)

        def start(self, tracks: Sequence[CodecParams]) -> None:
            self.calls.append("start")

        def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
            self.calls.append("frame")

        def stop(self, reason: str | None) -> None:
            self.calls.append("stop")

    hub = LiveHub()
    first, second = ValueSink(), ValueSink()
    hub.add_sink(first)
    hub.add_sink(second)
    hub.start(TRACKS)
    hub.remove_sink(second)
    push_video(hub, range(1))
    hub.stop(None)
    assert first.calls == ["start", "frame", "stop"]
    assert second.calls == ["start", "stop"]
