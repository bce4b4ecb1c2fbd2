"""SimulatedCamera: exact frame counts, stamps, timestamps and pacing, loop mode, lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_US, FakeClock, SystemClock
from app.engine.live import LiveHub
from app.engine.simcam import SimulatedCamera, encode_loop, parse_size
from app.formats.h26x import h264_nal_type, split_length_prefixed
from app.formats.stamp import Stamp
from tests.engine.simcam.support import NS, RecordingSink, VirtualTime, decode_stamps

SMALL = (1024, 64)
FRAME_NS = NS // 25
AUDIO_NS = 20_000_000


def _camera(
    sink: RecordingSink, clock: FakeClock, time_: VirtualTime, **kwargs: object
) -> SimulatedCamera:
    return SimulatedCamera(sink, clock=clock, sleep=time_.sleep, **kwargs)  # type: ignore[arg-type]


async def _run_until(camera: SimulatedCamera, time_: VirtualTime) -> None:
    async with camera:
        await time_.reached.wait()


def _nal_types(unit: AccessUnit) -> list[int]:
    return [h264_nal_type(n) for n in split_length_prefixed(unit.data)]


async def test_four_seconds_at_25_fps_are_exactly_100_stamped_frames() -> None:
    clock = FakeClock()
    w0 = clock.wall_ns()
    sink = RecordingSink(clock)
    vt = VirtualTime(clock, end_ns=4 * NS)
    await _run_until(_camera(sink, clock, vt, size=(1024, 576)), vt)

    assert sink.stops == [None]
    video_params, audio_params = sink.tracks
    assert (video_params.codec, video_params.clock_rate) == (Codec.H264, 90_000)
    assert (video_params.width, video_params.height) == (1024, 576)
    assert audio_params == CodecParams(Codec.PCMU, 8_000, sample_rate=8_000, channels=1)
    assert sink.params == {video_params, audio_params}

    video = sink.video
    assert len(video) == 100
    assert [n for n, u in enumerate(video) if u.keyframe] == [0, 50]
    assert [u.media_ts for u in video] == [n * 3600 for n in range(100)]
    assert [u.wall_ns for u in video] == [w0 + n * FRAME_NS for n in range(100)]
    assert {u.time_source for u in video} == {TimeSource.LOCAL_CAPTURE}
    # Delivered when the monotonic clock reaches t0 + n/fps, not a nanosecond off.
    assert sink.delivered_at[0] == [n * FRAME_NS for n in range(100)]

    stamps = decode_stamps(video)
    assert [s.index for s in stamps] == list(range(100))
    assert [s.capture_ns for s in stamps] == [u.wall_ns for u in video]

    # Stored layout: keyframes are SPS, PPS, IDR slice(s); the SPS/PPS are the track's.
    sps, pps = video_params.parameter_sets
    assert split_length_prefixed(video[50].data)[:2] == [sps, pps]
    assert _nal_types(video[0])[:3] == [7, 8, 5]
    assert set(_nal_types(video[1])) == {1}

    audio = sink.audio
    assert len(audio) == 200
    assert [u.media_ts for u in audio] == [k * 160 for k in range(200)]
    assert [u.wall_ns for u in audio] == [w0 + k * AUDIO_NS for k in range(200)]
    assert {len(u.data) for u in audio} == {160}
    assert all(u.keyframe for u in audio)
    assert sink.delivered_at[1] == [k * AUDIO_NS for k in range(200)]


async def test_720p_at_the_target_bitrate() -> None:
    clock = FakeClock(wall_ns=1_767_225_600 * NS + 123_456_789)
    sink = RecordingSink(clock)
    vt = VirtualTime(clock, end_ns=4 * NS)
    await _run_until(_camera(sink, clock, vt, size=(1280, 720), audio=False), vt)

    assert (sink.tracks[0].width, sink.tracks[0].height) == (1280, 720)
    assert len(sink.tracks) == 1 and sink.audio == []
    assert len(sink.video) == 100
    stamps = decode_stamps(sink.video)
    # The wall clock is kept to whole µs, so the stamp and wall_ns agree exactly.
    assert stamps[0] == Stamp(0, 1_767_225_600_123_456)
    assert [s.capture_ns for s in stamps] == [u.wall_ns for u in sink.video]
    bits_per_second = sum(len(u.data) for u in sink.video) * 8 / 4
    assert 1_500_000 < bits_per_second < 2_500_000


async def test_late_wakeups_do_not_drift_the_schedule() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock)
    # Every wake-up is 0…35 ms late; deadlines stay t0 + n/fps, so nothing accumulates.
    vt = VirtualTime(clock, end_ns=4 * NS, oversleep_ns=[35_000_000, 0, 7_000_000, 21_000_000])
    await _run_until(_camera(sink, clock, vt, size=SMALL, loop_seconds=2), vt)

    assert len(sink.video) == 100
    lateness = [at - n * FRAME_NS for n, at in enumerate(sink.delivered_at[0])]
    assert min(lateness) >= 0 and max(lateness) <= 35_000_000
    assert [u.media_ts for u in sink.video] == [n * 3600 for n in range(100)]


async def test_loop_repeats_pictures_while_time_runs_on() -> None:
    clock = FakeClock()
    loop_start_us = clock.wall_ns() // NS_PER_US
    sink = RecordingSink(clock)
    vt = VirtualTime(clock, end_ns=5 * NS)
    await _run_until(_camera(sink, clock, vt, size=SMALL, loop_seconds=2), vt)

    video = sink.video
    assert len(video) == 125
    assert [n for n, u in enumerate(video) if u.keyframe] == [0, 50, 100]
    assert [u.media_ts for u in video] == [n * 3600 for n in range(125)]
    w0 = video[0].wall_ns
    assert [u.wall_ns for u in video] == [w0 + n * FRAME_NS for n in range(125)]
    assert all(video[n].data is video[n + 50].data for n in range(75))
    # One decoder plays straight through the loop boundaries; the stamps repeat.
    stamps = decode_stamps(video)
    assert [s.index for s in stamps] == [n % 50 for n in range(125)]
    assert [s.capture_us for s in stamps] == [loop_start_us + n % 50 * 40_000 for n in range(125)]
    # Audio keeps its own clock, also unbroken.
    assert [u.media_ts for u in sink.audio] == [k * 160 for k in range(250)]
    assert sink.audio[0].data == sink.audio[50].data


async def test_shared_loop_serves_many_cameras_without_encoding() -> None:
    clock = FakeClock()
    loop = await asyncio.to_thread(
        encode_loop, size=SMALL, fps=25, seconds=2, capture_ns=clock.wall_ns()
    )
    assert loop.seconds == 2 and len(loop.frames) == 50
    threads_before = threading.active_count()
    # Each camera on its own virtual time, as if each had the machine to itself.
    clocks = [FakeClock(), FakeClock()]
    times = [VirtualTime(c, end_ns=3 * NS) for c in clocks]
    sinks = [RecordingSink(c) for c in clocks]
    cameras = [
        SimulatedCamera.from_loop(s, loop, clock=c, sleep=t.sleep)
        for s, c, t in zip(sinks, clocks, times, strict=True)
    ]
    async with cameras[0], cameras[1]:
        assert threading.active_count() == threads_before  # no encode thread for a shared loop
        await asyncio.gather(*(t.reached.wait() for t in times))
    for sink in sinks:
        assert sink.tracks[0] == loop.video
        assert len(sink.video) == 75
        assert all(u.data is loop.frames[n % 50].data for n, u in enumerate(sink.video))


async def test_camera_feeds_a_live_hub_subscriber() -> None:
    clock = FakeClock()
    hub = LiveHub("simcam")
    recorder = RecordingSink()
    hub.add_sink(recorder)
    vt = VirtualTime(clock, end_ns=3 * NS)
    camera = SimulatedCamera(hub, size=SMALL, loop_seconds=2, clock=clock, sleep=vt.sleep)
    async with camera:
        subscription = hub.subscribe(max_queue=1_000)
        assert hub.tracks() == camera.tracks()
        await vt.reached.wait()
    received = [(track, unit) async for track, unit in subscription]
    # Subscribed after frame 0 went out: the subscriber starts at the next keyframe, frame 50.
    assert received[0][0] == 0 and received[0][1].media_ts == 50 * 3600
    assert [u.media_ts for t, u in received if t == 0] == [n * 3600 for n in range(50, 75)]
    assert len(recorder.video) == 75 and recorder.stops == [None]
    assert hub.dropped_frames == 0


async def test_real_clock_pacing() -> None:
    clock = SystemClock()
    arrivals: list[int] = []
    ten = asyncio.Event()

    class Timing(RecordingSink):
        def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
            super().frame(track, unit, params)
            if track == 0:
                arrivals.append(time.monotonic_ns())
                if len(arrivals) == 10:
                    ten.set()

    sink = Timing()
    camera = SimulatedCamera(sink, size=SMALL, fps=50, loop_seconds=2, clock=clock)
    async with camera:
        await ten.wait()
    elapsed = arrivals[9] - arrivals[0]
    assert 9 * 20_000_000 * 0.9 < elapsed < 9 * 20_000_000 + 150_000_000
    assert sink.video[9].wall_ns - sink.video[0].wall_ns == 9 * 20_000_000


async def test_stop_during_loop_encoding_is_prompt_and_starts_nothing() -> None:
    encoding = asyncio.Event()

    class SignallingClock(FakeClock):
        def wall_ns(self) -> int:
            encoding.set()  # the camera asks for the loop's capture time, then encodes
            return super().wall_ns()

    sink = RecordingSink()
    camera = SimulatedCamera(sink, size=(1024, 576), loop_seconds=60, clock=SignallingClock())
    task = asyncio.create_task(camera.run())
    await encoding.wait()
    began = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - began < 1.0
    assert sink.tracks == () and sink.stops == []


async def test_failing_sink_ends_the_run_with_a_reason() -> None:
    class Broken(RecordingSink):
        def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
            if len(self.video) == 3:
                raise OSError("no space left")
            super().frame(track, unit, params)

    clock = FakeClock()
    sink = Broken()
    vt = VirtualTime(clock, end_ns=10 * NS)
    camera = SimulatedCamera(sink, size=SMALL, audio=False, clock=clock, sleep=vt.sleep)
    with pytest.raises(OSError, match="no space left"):
        await camera.run()
    assert sink.stops == ["simulated camera failed: no space left"]


async def test_start_reports_a_failing_sink_and_refuses_a_second_start() -> None:
    class Refusing(RecordingSink):
        def start(self, tracks: Sequence[CodecParams]) -> None:
            raise ConflictError("recorder busy")

    with pytest.raises(ConflictError, match="recorder busy"):
        await SimulatedCamera(Refusing(), size=SMALL, clock=FakeClock()).start()

    clock = FakeClock()
    vt = VirtualTime(clock, end_ns=NS)
    camera = SimulatedCamera(RecordingSink(), size=SMALL, clock=clock, sleep=vt.sleep)
    async with camera:
        with pytest.raises(ConflictError, match="already running"):
            await camera.start()
    await camera.stop()  # stopping twice is harmless


@pytest.mark.parametrize(
    ("text", "size"), [("1280x720", (1280, 720)), (" 1920X1080 ", (1920, 1080))]
)
def test_parse_size(text: str, size: tuple[int, int]) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1280", "must look like 1280x720; got '1280'"),
        ("1280x-720", "must look like"),
        ("800x600", r"800x600 is outside 1024x64 … 3840x2160 \(the frame stamp needs 1024"),
        ("1280x722", "multiples of 8"),
        ("7680x4320", "outside"),
    ],
)
def test_parse_size_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_size(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 0}, "frame rate 0 is outside 1 … 60"),
        ({"bitrate": 10}, "bitrate 10 bit/s"),
        ({"loop_seconds": 3}, "loop of 3 s is not a whole number of 2 s GOPs"),
        ({"loop_seconds": 2.5}, "not a whole number"),
        ({"loop_seconds": 0}, r"loop of 0 s is outside \(0, 300\]"),
        ({"loop_seconds": 302}, "outside"),
        ({"size": (1024, 60)}, "1024x60 is outside"),
    ],
)
def test_settings_are_checked_before_anything_runs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimulatedCamera(RecordingSink(), clock=FakeClock(), **kwargs)  # type: ignore[arg-type]
