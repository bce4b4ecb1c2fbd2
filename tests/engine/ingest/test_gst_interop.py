"""Ingest from a server no one here wrote: gst-rtsp-server serving H.264, H.265 and MJPEG with
audio over TCP and UDP; frames decode with PyAV, flags and clocks are right; Digest auth;
the server killed and restarted."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from typing import Any

import av
import pytest

from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND, SystemClock
from app.engine.ingest import Receiver, ReceiverState
from app.formats.h26x import length_prefixed_to_annexb, split_length_prefixed
from app.protocols.rtp.timing import ticks_to_ns
from tests.engine.ingest.helpers import RecordingSink, Run, StateLog
from tests.peers.gst import PEER_PASSWORD, PEER_USER, started_peer

pytestmark = pytest.mark.interop

#: Media gathered per stream: a second of video after the first SR-mapped frame.
VIDEO_FRAMES_AFTER_SYNC = 25
AUDIO_FRAMES = 10
#: The peer's SRs come from the same machine's clock; frames are at most this far from it.
CLOCK_TOLERANCE_NS = 2 * NS_PER_SECOND
#: gst-rtsp-server samples each SR's NTP/RTP pair from two clocks; on a loaded machine the
#: pairs jitter by a few ms, so consecutive frames across an SR may differ by that much.
SR_JITTER_NS = 5 * NS_PER_SECOND // 1000
#: Generous waits: CI machines are small and shared with other test processes.
WAIT_S = 30.0
DECODERS = {Codec.H264: "h264", Codec.H265: "hevc", Codec.JPEG: "mjpeg"}


def _synced_enough(sink: RecordingSink) -> bool:
    if not sink.runs:
        return False
    video = sink.frames(0)
    synced = [u for u in video if u.time_source is TimeSource.CAMERA_NTP]
    return len(synced) >= VIDEO_FRAMES_AFTER_SYNC and len(sink.frames(1)) >= AUDIO_FRAMES


def _is_keyframe_by_content(codec: Codec, unit: AccessUnit) -> bool:
    if codec is Codec.JPEG:
        return True
    nals = split_length_prefixed(unit.data)
    if codec is Codec.H264:
        return any(n[0] & 0x1F == 5 for n in nals)
    return any(16 <= (n[0] >> 1) & 0x3F <= 21 for n in nals)


def _decode_video(params: CodecParams, units: list[AccessUnit]) -> list[Any]:
    ctx: Any = av.CodecContext.create(DECODERS[params.codec], "r")
    frames = []
    for unit in units:
        data = unit.data if params.codec is Codec.JPEG else length_prefixed_to_annexb(unit.data)
        frames.extend(ctx.decode(av.Packet(data)))
    frames.extend(ctx.decode(None))
    return frames


def _decode_audio(params: CodecParams, units: list[AccessUnit]) -> list[Any]:
    if params.codec is Codec.AAC:
        ctx: Any = av.CodecContext.create("aac", "r")
        ctx.extradata = params.audio_config
    else:
        ctx = av.CodecContext.create("pcm_mulaw", "r")
        ctx.sample_rate, ctx.layout = params.sample_rate, "mono"
    frames = []
    for unit in units:
        frames.extend(ctx.decode(av.Packet(unit.data)))
    return frames


def _check_clocks(run: Run, track: int, clock_rate: int) -> None:
    entries = [
        (u, r) for (t, u, _), r in zip(run.frames, run.received_ns, strict=True) if t == track
    ]
    sources = [u.time_source for u, _ in entries]
    first_sync = sources.index(TimeSource.CAMERA_NTP)
    # Before the first sender report frames carry their receive time; from it on, the camera's.
    assert set(sources[:first_sync]) <= {TimeSource.RECEIVE_TIME}
    assert set(sources[first_sync:]) == {TimeSource.CAMERA_NTP}
    synced = [unit for unit, _ in entries[first_sync:]]
    for unit, received in entries[first_sync:]:
        assert abs(unit.wall_ns - received) < CLOCK_TOLERANCE_NS
    # gst-rtsp-server's first SR of a fresh pipeline is a few hundred ms off (it is sent before
    # the pipeline latency is known) and the next SR corrects it; once settled, wall clocks
    # move with the media clock.
    settled = synced[len(synced) // 2 :]
    assert len(settled) >= 5
    for a, b in itertools.pairwise(settled):
        assert b.media_ts >= a.media_ts
        media_ns = ticks_to_ns(b.media_ts - a.media_ts, clock_rate)
        assert abs((b.wall_ns - a.wall_ns) - media_ns) < SR_JITTER_NS


def _check_run(sink: RecordingSink, codec: Codec) -> None:
    assert len(sink.runs) == 1 and sink.events == ["start", "stop"]
    run = sink.runs[0]
    assert run.stop_reason is None
    video_params, audio_params = run.tracks
    assert (video_params.codec, video_params.clock_rate) == (codec, 90_000)
    assert audio_params.codec in (Codec.AAC, Codec.PCMU)
    video = sink.frames(0)
    assert video[0].keyframe, "delivery starts at a keyframe"
    assert [u.keyframe for u in video] == [_is_keyframe_by_content(codec, u) for u in video]
    keys = [i for i, u in enumerate(video) if u.keyframe]
    assert all(b - a <= 50 for a, b in itertools.pairwise(keys)), keys
    if codec is Codec.H264:
        for unit in video:
            types = {n[0] & 0x1F for n in split_length_prefixed(unit.data)}
            assert not unit.keyframe or {7, 8} <= types, "keyframes carry SPS and PPS"
    # 25 fps at 90 kHz; a shared gst pipeline re-sends its first frame to a joining client
    # with the same timestamp, so a step of 0 is the peer's, not ingest's.
    steps = {b.media_ts - a.media_ts for a, b in itertools.pairwise(video)}
    assert steps and all(s >= 0 and s % 3600 in (0, 1, 3599) for s in steps), steps

    decoded = _decode_video(video_params, video)
    assert len(decoded) == len(video)
    assert {(f.width, f.height) for f in decoded} == {(320, 240)}
    assert (video_params.width, video_params.height) in ((320, 240), (0, 0))
    assert run.frames[-1][2].width in (320, 0)

    audio = sink.frames(1)
    decoded_audio = _decode_audio(audio_params, audio)
    assert len(decoded_audio) >= len(audio) - 1
    assert {f.sample_rate for f in decoded_audio} == {audio_params.sample_rate}
    _check_clocks(run, 0, 90_000)
    _check_clocks(run, 1, audio_params.clock_rate)


@pytest.mark.parametrize("codec", [Codec.H264, Codec.H265, Codec.JPEG])
async def test_ingest_decodes_over_tcp_and_udp(gst_rtsp_peer: str, codec: Codec) -> None:
    mount = {Codec.H264: "/h264", Codec.H265: "/h265", Codec.JPEG: "/mjpeg"}[codec]
    sinks = {"tcp": RecordingSink(), "udp": RecordingSink()}
    tcp = Receiver(f"{gst_rtsp_peer}{mount}", sinks["tcp"], transport="tcp", clock=SystemClock())
    udp = Receiver(f"{gst_rtsp_peer}{mount}", sinks["udp"], transport="udp", clock=SystemClock())
    async with tcp, udp:
        await asyncio.gather(
            *(s.wait(functools.partial(_synced_enough, s), WAIT_S) for s in sinks.values())
        )
        assert tcp.state is udp.state is ReceiverState.STREAMING
    for sink in sinks.values():
        _check_run(sink, codec)
    assert udp.stats.errors == tcp.stats.errors == 0


async def test_digest_auth_and_wrong_password(
    gst_rtsp_peer: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host = gst_rtsp_peer.removeprefix("rtsp://")
    good = RecordingSink()
    bad, states = RecordingSink(), StateLog()
    wrong = "not-the-" + PEER_PASSWORD
    right_url = f"rtsp://{PEER_USER}:{PEER_PASSWORD}@{host}/protected"
    wrong_url = f"rtsp://{PEER_USER}:{wrong}@{host}/protected"
    fast: dict[str, Any] = {"backoff_initial_s": 0.1, "backoff_cap_s": 0.2}
    async with (
        Receiver(right_url, good, clock=SystemClock()),
        Receiver(wrong_url, bad, clock=SystemClock(), on_state=states, **fast),
    ):
        await good.wait(lambda: len(good.frames(0)) >= 10, WAIT_S)
        failures = await states.wait_failures(2, WAIT_S)
    assert failures[0].reason == (
        "DESCRIBE answered 401 Unauthorized: the camera refused the user name or password"
    )
    assert ReceiverState.STREAMING not in states.states and bad.runs == []
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PEER_PASSWORD not in text and wrong not in text
    assert "Authorization: <redacted>" in text


async def test_server_killed_and_restarted_reconnects_within_the_backoff_cap() -> None:
    peer = started_peer()
    sink, states = RecordingSink(), StateLog()
    loop = asyncio.get_running_loop()
    try:
        receiver = Receiver(peer.url("/h264"), sink, clock=SystemClock(), on_state=states)
        async with receiver:
            await sink.wait(lambda: len(sink.frames(0)) >= 10, WAIT_S)
            peer.kill()
            killed_ns = time.time_ns()
            await states.wait_failures(1)
            await asyncio.sleep(2.0)  # the outage itself: the server stays away this long
            await asyncio.to_thread(peer.start)
            back = loop.time()
            await states.wait(lambda: states.states.count(ReceiverState.STREAMING) == 2, WAIT_S)
            reconnect_s = loop.time() - back
            restarted_ns = time.time_ns()
            await sink.wait(lambda: len(sink.runs) == 2 and len(sink.frames(0)) >= 10, WAIT_S)
    finally:
        peer.stop()
    assert reconnect_s <= 8.0 + 1.0, reconnect_s
    assert sink.events == ["start", "stop", "start", "stop"]
    first, second = sink.runs[0], sink.runs[1]
    assert first.stop_reason and first.stop_reason == states.failures()[0].reason
    assert [s.retry_in_s for s in states.failures()][:2] == [1.0, 2.0]
    # No frame is invented across the outage: run 1 ends before the kill, run 2 starts after.
    assert max(u.wall_ns for _, u, _ in first.frames) < killed_ns + NS_PER_SECOND // 2
    assert min(r for r in second.received_ns) >= restarted_ns - 2 * NS_PER_SECOND
    assert all(u.wall_ns > killed_ns + NS_PER_SECOND for _, u, _ in second.frames)
    assert second.frames[0][1].keyframe
    states_seen = states.states
    assert states_seen[:3] == [
        ReceiverState.CONNECTING,
        ReceiverState.STREAMING,
        ReceiverState.FAILED,
    ]
    assert states_seen[-1] is ReceiverState.STOPPED
