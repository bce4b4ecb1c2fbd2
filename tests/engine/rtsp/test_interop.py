"""Third-party clients play a live mount: FFmpeg (through PyAV) over TCP and UDP, GStreamer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import AsyncIterator

import pytest

from app.engine.rtsp import LiveResource, RtspServer
from tests.engine.rtsp.helpers import CLIP_FPS, PCMU, Clip, ScriptedLiveSource, h264_clip, pcmu_unit

pytestmark = pytest.mark.interop

#: Frames each client must decode.
FRAMES = 40
GOP = 25


@contextlib.asynccontextmanager
async def live_server(clip: Clip) -> AsyncIterator[str]:
    """A live mount fed at four times real time; every subscription starts at a keyframe."""
    source = ScriptedLiveSource([clip.params, PCMU])
    server = RtspServer()
    server.mount("live", LiveResource(source))
    stop = asyncio.Event()

    async def feed() -> None:
        n, seen = 0, 0
        while not stop.is_set():
            await source.subscribed.wait()
            if source.subscriptions != seen:
                seen, n = source.subscriptions, -(-n // GOP) * GOP
            source.push(0, clip.unit(n))
            source.push(1, pcmu_unit(2 * n))
            source.push(1, pcmu_unit(2 * n + 1))
            n += 1
            await asyncio.sleep(1 / CLIP_FPS / 4)  # pacing, as a camera would

    async with server:
        await server.start("127.0.0.1", 0)
        feeder = asyncio.create_task(feed())
        try:
            yield server.url("live")
        finally:
            stop.set()
            source.stop()
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


def decode_with_pyav(url: str, transport: str) -> list[tuple[int, int, int, float]]:
    """(pts, width, height, mean luma) of the first FRAMES decoded video frames."""
    import av

    frames = []
    with av.open(url, options={"rtsp_transport": transport}, timeout=20) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].codec_context.name == "pcm_mulaw"
        for frame in container.decode(video=0):
            luma = frame.to_ndarray()[: frame.height]
            frames.append((frame.pts or 0, frame.width, frame.height, float(luma.mean())))
            if len(frames) == FRAMES:
                break
    return frames


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_pyav_plays_and_decodes_the_live_mount(transport: str) -> None:
    clip = h264_clip()
    async with live_server(clip) as url:
        frames = await asyncio.to_thread(decode_with_pyav, url, transport)
    assert len(frames) == FRAMES
    assert {(w, h) for _, w, h, _ in frames} == {(clip.params.width, clip.params.height)}
    # Consecutive frames, none lost: 90 kHz timestamps one frame apart (FFmpeg may leave the
    # first pts unset), and the luma of clip frame k is 7k mod 256; the feed starts at a
    # keyframe (k = 0 or 25 of the 50-frame loop).
    steps = [b[0] - a[0] for a, b in itertools.pairwise(frames[1:])]
    assert set(steps) == {90_000 // CLIP_FPS}
    lumas = [luma for *_, luma in frames]
    assert any(
        all(abs(luma - (k0 + i) % 50 * 7 % 256) < 3 for i, luma in enumerate(lumas))
        for k0 in (0, GOP)
    ), lumas


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="GStreamer not installed")
async def test_gstreamer_rtspsrc_plays_the_live_mount() -> None:
    async with live_server(h264_clip()) as url:
        process = await asyncio.create_subprocess_exec(
            "gst-launch-1.0",
            "-q",
            "rtspsrc",
            f"location={url}",
            "protocols=tcp",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            f"num-buffers={FRAMES}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(60):
                out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, (out, err)
