"""bench/replay: ONVIF replay on loopback — seek latency, reverse throughput, concurrent sessions.

An hour of 720p H.264 at 25 fps (a 4 s encoded loop written with fake wall clocks, so the store
fills in seconds) is served by an in-process RtspServer + ReplayMount. A raw TCP-interleaved
client measures:

1. DESCRIBE → first key-frame packet (0xABAC C flag) for PLAYs at random clock positions of the
   hour (target ≤ 50 ms median). Reference in the same run: reading the same key frame straight
   from the store (keyframe_at_or_before + read_frame), the part no server can avoid.
2. Reverse replay with Rate-Control: no of the last minutes of the hour, as fast as the client
   reads: footage seconds per wall second (target ≥ 10× real time).
3. N concurrent 1× sessions (Rate-Control: yes): each frame's arrival against its due time
   (first arrival + NTP offset); a frame is late when it arrives LATE_MS after its due time.

    .venv/bin/python -m bench.replay [--minutes 60] [--bitrate 500000] [--seeks 30]
        [--reverse-minutes 5] [--sessions 20] [--session-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from app.core.media import AccessUnit, TimeSource
from app.core.time import NS_PER_SECOND, ntp64_to_unix_ns
from app.engine.replay import FLAG_C, FLAG_T, ReplayMount
from app.engine.rtsp import RtspServer
from app.engine.simcam.camera import encode_loop
from app.engine.storage import RecordingConfig, Store
from app.protocols.rtsp.range import format_clock

#: Wall clock of the first frame: 2026-03-01T08:00:00Z.
START_NS = 1_772_352_000 * NS_PER_SECOND
FPS = 25
FRAME_NS = NS_PER_SECOND // FPS
SIZE = (1280, 720)
LOOP_SECONDS = 4
RECORDING, TRACK = "Bench", "VIDEO001"
#: Bytes the writer may hold before the bench waits for the store to catch up.
WRITE_BACKLOG_BYTES = 16 << 20
LATE_MS = 100


# ---------------------------------------------------------------------- footage
async def fill_store(store: Store, minutes: int, bitrate: int) -> int:
    """Write `minutes` of 720p video; returns the number of frames."""
    loop = await asyncio.to_thread(
        encode_loop,
        size=SIZE,
        fps=FPS,
        bitrate=bitrate,
        seconds=LOOP_SECONDS,
        capture_ns=START_NS,
    )
    await store.create_recording(RecordingConfig(name="bench"), token=RECORDING)
    writer = await store.open_writer(RECORDING, TRACK)
    count = minutes * 60 * FPS
    for n in range(count):
        frame = loop.frames[n % len(loop.frames)]
        wall = START_NS + n * FRAME_NS
        unit = AccessUnit(frame.data, n * 3600, wall, frame.keyframe, TimeSource.LOCAL_CAPTURE)
        writer.append(unit, loop.video)
        if writer.buffered_bytes > WRITE_BACKLOG_BYTES:
            await store.flush()
    await writer.close()
    await store.flush()
    return count


# ---------------------------------------------------------------------- raw client
class Client:
    """Just enough RTSP over one TCP connection: requests, responses, interleaved frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.cseq = 0

    @classmethod
    async def connect(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, url: str, *headers: str) -> dict[str, str]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", *headers, "", ""]
        self.writer.write("\r\n".join(lines).encode())
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"$"):
                # An interleaved frame before the response: skip it and its tail.
                raise RuntimeError("interleaved data before a response")
            text = head.decode()
            fields = {}
            for line in text.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            length = int(fields.get("content-length", "0"))
            if length:
                await self.reader.readexactly(length)
            if not text.startswith("RTSP/1.0 200"):
                raise RuntimeError(f"{method}: {text.splitlines()[0]}")
            return fields

    async def frame(self) -> tuple[int, bytes]:
        """The next interleaved frame (responses in between are not expected)."""
        head = await self.reader.readexactly(4)
        if head[0] != 0x24:
            raise RuntimeError(f"expected an interleaved frame, got {head!r}")
        return head[1], await self.reader.readexactly(struct.unpack("!H", head[2:])[0])

    async def setup_play(self, url: str, *play_headers: str) -> str:
        await self.request("DESCRIBE", url, "Accept: application/sdp")
        setup = await self.request(
            "SETUP", f"{url}/trackID=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
        )
        session = setup["session"].split(";")[0]
        await self.request("PLAY", url, f"Session: {session}", *play_headers)
        return session

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def replay_fields(packet: bytes) -> tuple[int, int] | None:
    """(wall ns, flag byte) of an RTP packet's 0xABAC extension, None without one."""
    if not packet[0] & 0x10:
        return None
    offset = 12 + 4 * (packet[0] & 0x0F)
    if packet[offset : offset + 2] != b"\xab\xac":
        return None
    ntp, flags = struct.unpack_from("!QB", packet, offset + 4)
    return ntp64_to_unix_ns(ntp), flags


# ---------------------------------------------------------------------- measurements
async def seek_latency(store: Store, url: str, port: int, positions: list[int]) -> None:
    latencies, references = [], []
    for position in positions:
        t0 = time.perf_counter()
        key = await store.keyframe_at_or_before(RECORDING, TRACK, position)
        assert key is not None
        await store.read_frame(key)
        references.append(time.perf_counter() - t0)
        client = await Client.connect(port)
        t0 = time.perf_counter()
        await client.setup_play(url, f"Range: clock={format_clock(position)}-", "Rate-Control: no")
        while True:
            channel, data = await client.frame()
            fields = replay_fields(data) if channel == 0 else None
            if fields is not None and fields[1] & FLAG_C:
                break
        latencies.append(time.perf_counter() - t0)
        await client.close()
    median, reference = statistics.median(latencies), statistics.median(references)
    print(
        f"DESCRIBE → first key-frame packet: median {median * 1e3:.1f} ms, "
        f"p90 {sorted(latencies)[int(len(latencies) * 0.9)] * 1e3:.1f} ms over {len(positions)} "
        f"seeks (target ≤ 50 ms); store key-frame read {reference * 1e3:.2f} ms "
        f"(ratio {median / reference:.0f}×)"
    )


async def reverse_throughput(url: str, port: int, end_ns: int, minutes: float) -> None:
    start = end_ns - int(minutes * 60 * NS_PER_SECOND)
    client = await Client.connect(port)
    t0 = time.perf_counter()
    await client.setup_play(
        url,
        f"Range: clock={format_clock(end_ns)}-{format_clock(start)}",
        "Scale: -1.0",
        "Rate-Control: no",
    )
    frames, octets, earliest = 0, 0, end_ns
    while True:
        channel, data = await client.frame()
        octets += len(data)
        fields = replay_fields(data) if channel == 0 else None
        if fields is None:
            continue
        earliest = min(earliest, fields[0])
        if fields[1] & FLAG_T:
            break
        frames += 1
    elapsed = time.perf_counter() - t0
    await client.close()
    footage_s = (end_ns - earliest) / NS_PER_SECOND
    print(
        f"reverse, Rate-Control no: {footage_s:.0f} s of 720p footage in {elapsed:.2f} s = "
        f"{footage_s / elapsed:.1f}× real time (target ≥ 10×), "
        f"{octets * 8 / elapsed / 1e6:.0f} Mbit/s"
    )


async def one_session(url: str, port: int, position: int, seconds: float) -> list[float]:
    """Lateness (s) of every frame of one 1× session."""
    client = await Client.connect(port)
    await client.setup_play(url, f"Range: clock={format_clock(position)}-", "Rate-Control: yes")
    lateness: list[float] = []
    seen = -1
    first: tuple[float, int] | None = None
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        channel, data = await client.frame()
        fields = replay_fields(data) if channel == 0 else None
        if fields is None or fields[0] == seen:
            continue
        seen = fields[0]
        now = time.perf_counter()
        if first is None:
            first = (now, fields[0])
        due = first[0] + (fields[0] - first[1]) / NS_PER_SECOND
        lateness.append(now - due)
    await client.close()
    return lateness


async def concurrent_sessions(url: str, port: int, positions: list[int], seconds: float) -> None:
    results = await asyncio.gather(*(one_session(url, port, p, seconds) for p in positions))
    every = [value for result in results for value in result]
    late = sum(value > LATE_MS / 1e3 for value in every)
    print(
        f"{len(positions)} concurrent 1× sessions for {seconds:.0f} s: {len(every)} frames, "
        f"{late} later than {LATE_MS} ms (target 0), worst {max(every) * 1e3:.1f} ms, "
        f"median lateness {statistics.median(every) * 1e3:.1f} ms"
    )


def positions(rng: random.Random, count: int, frames: int, margin_s: float) -> Iterator[int]:
    last = frames - int(margin_s * FPS)
    for _ in range(count):
        yield START_NS + rng.randrange(0, max(1, last)) * FRAME_NS


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(4)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        store = Store(Path(tmp) / "data")
        await store.open()
        try:
            t0 = time.perf_counter()
            frames = await fill_store(store, args.minutes, args.bitrate)
            print(
                f"store: {args.minutes} min of 720p ({frames} frames) written in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            server = RtspServer()
            await ReplayMount(store).attach(server)
            async with server:
                await server.start("127.0.0.1", 0)
                url = server.url(f"replay/{RECORDING}")
                port = server.port
                await seek_latency(store, url, port, list(positions(rng, args.seeks, frames, 5)))
                end = START_NS + (frames - 1) * FRAME_NS
                await reverse_throughput(url, port, end, args.reverse_minutes)
                starts = list(positions(rng, args.sessions, frames, args.session_seconds + 5))
                await concurrent_sessions(url, port, starts, args.session_seconds)
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=500_000)
    parser.add_argument("--seeks", type=int, default=30)
    parser.add_argument("--reverse-minutes", type=float, default=5.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--session-seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
