"""The simulated camera: a stamped H.264 test pattern and a PCMU tone, pushed to a MediaSink live.

Timing model (all integer arithmetic, so nothing drifts):

- At the start of a run the camera samples the injected clock once: monotonic `t0` for pacing,
  wall `w0` (truncated to µs) for timestamps.
- Video frame n is captured at `w0 + n/fps`: its stamp says index n and that time in µs, its
  `wall_ns` is exactly the stamped µs × 1000, its `media_ts` is n × 90000 / fps, and it is
  delivered when the monotonic clock reaches `t0 + n/fps` (encoding runs one frame ahead in the
  camera's own thread, so delivery is on time even though libx264 takes a few ms).
- Audio unit k (20 ms of PCMU) starts at `w0 + k × 20 ms`, `media_ts` k × 160, delivered at
  `t0 + k × 20 ms`.

Loop mode (`loop_seconds`, or a shared `EncodedLoop` through `from_loop`): the loop is encoded
once, then served forever; `media_ts` and `wall_ns` keep running as above, but the pictures and
their stamps repeat: frame n shows the loop's frame n mod L, whose stamp holds that index and the
time the loop was encoded. The stamp then no longer equals `wall_ns`; that is the price of serving
dozens of streams on almost no CPU. Every loop pass starts with a keyframe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

from app.core import config
from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, CodecParams, TimeSource
from app.core.ports import MediaSink
from app.core.time import NS_PER_SECOND, NS_PER_US, Clock
from app.engine.simcam.audio import PCMU_PARAMS, UNIT_NS, UNIT_SAMPLES, tone_second
from app.engine.simcam.encoder import VIDEO_CLOCK_RATE, EncodedFrame, H264Encoder
from app.engine.simcam.pattern import PatternRenderer
from app.formats.stamp import INDEX_BITS, STAMP_WIDTH

logger = logging.getLogger(__name__)

#: Picture size limits: the stamp needs 1024 px of width; sizes are multiples of 8.
MIN_WIDTH = STAMP_WIDTH
MIN_HEIGHT = 64
MAX_WIDTH = 3840
MAX_HEIGHT = 2160
MAX_FPS = 60
MIN_BITRATE = 100_000
MAX_BITRATE = 50_000_000
GOP_SECONDS = 2
#: A loop is held in memory: 300 s at 2 Mbit/s is 75 MB.
MAX_LOOP_SECONDS = 300

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 25
DEFAULT_BITRATE = 2_000_000

_US_PER_SECOND = 1_000_000
_T = TypeVar("_T")
Sleep = Callable[[float], Awaitable[object]]


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720), checked against the camera's limits; ConfigError otherwise."""
    size = config.parse_size(text)
    _check_size(size)
    return size


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedLoop:
    """A pre-encoded stretch of the simulated camera, shareable by any number of cameras."""

    video: CodecParams
    fps: int
    bitrate: int
    #: Frame i carries stamp index i and capture time `capture_us` + i/fps.
    frames: tuple[EncodedFrame, ...]
    capture_us: int
    #: One second of PCMU units starting at `capture_us` (the tone repeats every second).
    audio: tuple[bytes, ...]

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps


def encode_loop(
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    fps: int = DEFAULT_FPS,
    bitrate: int = DEFAULT_BITRATE,
    seconds: float,
    capture_ns: int,
) -> EncodedLoop:
    """Encode `seconds` of the camera (a multiple of the 2 s GOP) captured from `capture_ns`.

    Blocking and CPU-bound (about 4 ms per 720p frame): run it in a worker thread.
    """
    count = _check_settings(size, fps, bitrate, seconds)
    assert count is not None
    source = _FrameSource(size, fps, bitrate)
    capture_us = capture_ns // NS_PER_US
    frames = [source.encode(i, _capture_us(capture_us, i, fps)) for i in range(count)]
    return source.make_loop(frames, capture_us)


class SimulatedCamera:
    """A live source like an IP camera: H.264 video (+ PCMU audio) into a MediaSink, paced by Clock.

    Use as `async with SimulatedCamera(sink, clock=SystemClock()):` or `start()`/`stop()`, or
    await `run()` in a supervising task (it runs until cancelled). `sleep` is how the camera
    waits (seconds); tests pass one that advances a FakeClock instead.
    """

    def __init__(
        self,
        sink: MediaSink,
        *,
        size: tuple[int, int] = DEFAULT_SIZE,
        fps: int = DEFAULT_FPS,
        bitrate: int = DEFAULT_BITRATE,
        audio: bool = True,
        loop_seconds: float | None = None,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._loop_frames = _check_settings(size, fps, bitrate, loop_seconds)
        self._sink = sink
        self._size = size
        self._fps = fps
        self._bitrate = bitrate
        self._audio = audio
        self._clock = clock
        self._sleep = sleep
        self._shared: EncodedLoop | None = None
        self._tracks: tuple[CodecParams, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._jobs: set[concurrent.futures.Future[Any]] = set()
        self.video_frames = 0
        self.audio_units = 0

    @classmethod
    def from_loop(
        cls,
        sink: MediaSink,
        loop: EncodedLoop,
        *,
        audio: bool = True,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> SimulatedCamera:
        """A camera serving a loop encoded once by `encode_loop` (no encoder, no thread)."""
        camera = cls(
            sink,
            size=(loop.video.width, loop.video.height),
            fps=loop.fps,
            bitrate=loop.bitrate,
            audio=audio,
            loop_seconds=loop.seconds,
            clock=clock,
            sleep=sleep,
        )
        camera._shared = loop
        return camera

    def tracks(self) -> Sequence[CodecParams]:
        """Video (track 0) and, with audio, PCMU (track 1); empty until the first run started."""
        return self._tracks

    async def start(self) -> None:
        """Start a run in a task; returns once the sink got `start` (or raises what failed)."""
        if self._task is not None and not self._task.done():
            raise ConflictError("the simulated camera is already running")
        self._ready.clear()
        self._task = asyncio.create_task(self.run(), name="simcam")
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            failed, self._task = self._task, None
            failed.result()

    async def stop(self) -> None:
        """End the run: the sink gets `stop(None)`, the encode thread is joined."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """One run, until cancelled (an orderly stop) or until encoding or the sink fails."""
        started = False
        reason: str | None = None
        self.video_frames = self.audio_units = 0
        try:
            feed: EncodedLoop | _FrameSource
            if self._shared is not None:
                feed = self._shared
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="simcam-encode"
                )
                feed = await self._call(_FrameSource, self._size, self._fps, self._bitrate)
                if self._loop_frames is not None:
                    feed = await self._encode_loop(feed, self._loop_frames)
            video = feed.video
            self._tracks = (video, PCMU_PARAMS) if self._audio else (video,)
            logger.info(
                "simulated camera: %d×%d at %d fps, %d kbit/s, audio %s, %s",
                video.width,
                video.height,
                self._fps,
                self._bitrate // 1000,
                "PCMU" if self._audio else "off",
                f"loop of {feed.seconds:g} s" if isinstance(feed, EncodedLoop) else "live encoding",
            )
            self._sink.start(self._tracks)
            started = True
            self._ready.set()
            await self._serve(feed)
        except Exception as exc:
            reason = f"simulated camera failed: {exc}"
            logger.exception("simulated camera failed")
            raise
        finally:
            await self._shutdown_executor()
            if started:
                self._sink.stop(reason)

    async def _serve(self, feed: EncodedLoop | _FrameSource) -> None:
        fps, clock, sink = self._fps, self._clock, self._sink
        video = self._tracks[0]
        t0 = clock.monotonic_ns()
        w0_us = clock.wall_ns() // NS_PER_US
        if isinstance(feed, EncodedLoop):
            tone = feed.audio
            next_frame: Callable[[int], Awaitable[EncodedFrame]] = _loop_reader(feed)
        else:
            tone = tone_second(w0_us * NS_PER_US)
            next_frame = self._live_reader(feed, w0_us)
        n = k = 0
        while True:
            video_due = t0 + n * NS_PER_SECOND // fps
            audio_due = t0 + k * UNIT_NS
            if self._audio and audio_due < video_due:
                await self._sleep_until(audio_due)
                unit = AccessUnit(
                    data=tone[k % len(tone)],
                    media_ts=k * UNIT_SAMPLES,
                    wall_ns=w0_us * NS_PER_US + k * UNIT_NS,
                    keyframe=True,
                    time_source=TimeSource.LOCAL_CAPTURE,
                )
                sink.frame(1, unit, PCMU_PARAMS)
                k += 1
                self.audio_units = k
                continue
            frame = await next_frame(n)
            await self._sleep_until(video_due)
            unit = AccessUnit(
                data=frame.data,
                media_ts=n * VIDEO_CLOCK_RATE // fps,
                wall_ns=_capture_us(w0_us, n, fps) * NS_PER_US,
                keyframe=frame.keyframe,
                time_source=TimeSource.LOCAL_CAPTURE,
            )
            sink.frame(0, unit, video)
            n += 1
            self.video_frames = n

    def _live_reader(
        self, source: _FrameSource, w0_us: int
    ) -> Callable[[int], Awaitable[EncodedFrame]]:
        """Frames encoded live, one ahead: frame n+1 encodes while frame n waits for its time."""
        fps = self._fps
        ahead: dict[int, asyncio.Future[EncodedFrame]] = {}

        def submit(n: int) -> asyncio.Future[EncodedFrame]:
            return self._submit(source.encode, n, _capture_us(w0_us, n, fps))

        async def read(n: int) -> EncodedFrame:
            job = ahead.pop(n, None)
            if job is None:
                job = submit(n)
            ahead[n + 1] = submit(n + 1)
            return await job

        return read

    async def _encode_loop(self, source: _FrameSource, count: int) -> EncodedLoop:
        capture_us = self._clock.wall_ns() // NS_PER_US
        frames = []
        # One job per frame keeps stop() responsive while a long loop encodes.
        for i in range(count):
            frames.append(await self._call(source.encode, i, _capture_us(capture_us, i, self._fps)))
        return source.make_loop(frames, capture_us)

    async def _sleep_until(self, deadline_ns: int) -> None:
        # Re-check after waking: a timer may fire a little early, a fake clock may move less.
        while (delay := deadline_ns - self._clock.monotonic_ns()) > 0:
            await self._sleep(delay / NS_PER_SECOND)

    def _submit(self, fn: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        assert self._executor is not None
        job = self._executor.submit(fn, *args)
        self._jobs = {j for j in self._jobs if not j.done()}
        self._jobs.add(job)
        return asyncio.wrap_future(job)

    async def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        return await self._submit(fn, *args)

    async def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # Let the job in flight finish first, so joining the idle thread does not block the loop;
        # queued ones are cancelled. Its outcome is of no interest any more.
        running = [asyncio.wrap_future(j) for j in self._jobs if not j.done() and not j.cancel()]
        self._jobs.clear()
        if running:
            await asyncio.wait(running)
            for job in running:
                if not job.cancelled():
                    job.exception()
        executor.shutdown(wait=True)


class _FrameSource:
    """Renderer plus encoder; lives in, and is only touched from, the camera's encode thread."""

    def __init__(self, size: tuple[int, int], fps: int, bitrate: int) -> None:
        self._renderer = PatternRenderer(*size)
        self._encoder = H264Encoder(size[0], size[1], fps, bitrate)
        self._fps = fps
        self._bitrate = bitrate
        self.video = self._encoder.params

    def encode(self, index: int, capture_us: int) -> EncodedFrame:
        picture = self._renderer.render(index % (1 << INDEX_BITS), capture_us)
        return self._encoder.encode(picture, index)

    def make_loop(self, frames: list[EncodedFrame], capture_us: int) -> EncodedLoop:
        gop = GOP_SECONDS * self._fps
        misplaced = [i for i, f in enumerate(frames) if f.keyframe != (i % gop == 0)]
        if misplaced:
            raise RuntimeError(f"keyframes of the loop are off the {gop}-frame GOP at {misplaced}")
        return EncodedLoop(
            video=self.video,
            fps=self._fps,
            bitrate=self._bitrate,
            frames=tuple(frames),
            capture_us=capture_us,
            audio=tone_second(capture_us * NS_PER_US),
        )


def _loop_reader(loop: EncodedLoop) -> Callable[[int], Awaitable[EncodedFrame]]:
    frames = loop.frames

    async def read(n: int) -> EncodedFrame:
        return frames[n % len(frames)]

    return read


def _capture_us(start_us: int, index: int, fps: int) -> int:
    return start_us + index * _US_PER_SECOND // fps


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if not (MIN_WIDTH <= width <= MAX_WIDTH and MIN_HEIGHT <= height <= MAX_HEIGHT):
        raise ConfigError(
            f"picture size {width}x{height} is outside {MIN_WIDTH}x{MIN_HEIGHT} … "
            f"{MAX_WIDTH}x{MAX_HEIGHT} (the frame stamp needs {MIN_WIDTH} px of width)"
        )
    if width % 8 or height % 8:
        raise ConfigError(f"picture size {width}x{height}: width and height must be multiples of 8")


def _check_settings(
    size: tuple[int, int], fps: int, bitrate: int, loop_seconds: float | None
) -> int | None:
    """Validate the camera settings; returns the loop length in frames (None: live encoding)."""
    _check_size(size)
    if not 1 <= fps <= MAX_FPS:
        raise ConfigError(f"frame rate {fps} is outside 1 … {MAX_FPS} fps")
    if not MIN_BITRATE <= bitrate <= MAX_BITRATE:
        raise ConfigError(f"bitrate {bitrate} bit/s is outside {MIN_BITRATE} … {MAX_BITRATE}")
    if loop_seconds is None:
        return None
    if not 0 < loop_seconds <= MAX_LOOP_SECONDS:
        raise ConfigError(f"loop of {loop_seconds} s is outside (0, {MAX_LOOP_SECONDS}] s")
    frames = loop_seconds * fps
    gop = GOP_SECONDS * fps
    if not math.isclose(frames, round(frames)) or round(frames) % gop:
        raise ConfigError(
            f"loop of {loop_seconds} s is not a whole number of {GOP_SECONDS} s GOPs "
            f"(it must start every pass with a keyframe)"
        )
    return round(frames)
