"""bench/ingest: how many 720p 2 Mbit/s RTSP streams one engine records without loss, at what cost.

A separate `custos simcam --loop` process serves N streams over loopback; a `custos engine`
process records them all. For each N of the ladder the script prints frame loss (from media
timestamp continuity of the stored video), the engine's CPU per stream and its resident memory;
the largest N with < 0.1 % loss is then soaked (default 10 minutes) with RSS sampled throughout.
Reference measured in the same run: FFmpeg receiving one of the same streams (`-c copy -f null`),
so "CPU per stream" is printed as a ratio to FFmpeg's.

    .venv/bin/python -m bench.ingest [--ladder 8,16,32,48] [--step-seconds 40] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.engine.storage import StoreReader

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
FRAME_TICKS = 90_000 // 25
LOSS_LIMIT = 0.001


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def wait_file(
    path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args!r} did not become ready")
        time.sleep(0.1)
    doc: dict[str, object] = json.loads(path.read_text())
    return doc


def start_simcam(work: Path, streams: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    ready = work / "simcam.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--log-level",
            "warning",
            "simcam",
            "--rtsp-port",
            "0",
            "--size",
            "1280x720",
            "--loop",
            "4",
            "--no-audio",
            "--streams",
            str(streams),
            "--ready-file",
            str(ready),
        ],
    )
    urls = wait_file(ready, proc)["urls"]
    assert isinstance(urls, list)
    return proc, [str(u) for u in urls]


def loss_of(data: Path) -> tuple[int, int]:
    """(frames stored, frames missing) over all video tracks, from media_ts continuity."""
    stored = missing = 0
    with StoreReader.open(data) as reader:
        for rec in reader.recordings():
            after = None
            prev: tuple[int, int] | None = None
            while True:
                page = reader.frames(rec.token, "VIDEO001", 0, 1 << 62, after=after, limit=5000)
                if not page:
                    break
                for ref in page:
                    stored += 1
                    if prev is not None and prev[0] == ref.run_id:
                        missing += max(0, round((ref.media_ts - prev[1]) / FRAME_TICKS) - 1)
                    prev = (ref.run_id, ref.media_ts)
                after = page[-1]
    return stored, missing


@dataclasses.dataclass
class Result:
    streams: int
    cpu_per_stream_pct: float
    rss_mb_first: float
    rss_mb_max: float
    rss_mb_last: float
    frames: int
    missing: int

    @property
    def loss(self) -> float:
        return self.missing / max(1, self.frames + self.missing)


def run_engine(work: Path, urls: list[str], seconds: float, sample_every: float) -> Result:
    data = work / f"data-{len(urls)}"
    config = work / f"engine-{len(urls)}.json"
    sources = [{"type": "rtsp", "recording": f"cam{i:03d}", "uri": u} for i, u in enumerate(urls)]
    config.write_text(json.dumps({"sources": sources}))
    ready = work / f"engine-{len(urls)}.ready"
    env = {**os.environ, "CUSTOS_ADMIN_PASSWORD": "bench"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--log-level",
            "warning",
            "engine",
            "--data",
            str(data),
            "--config",
            str(config),
            "--rtsp-port",
            "0",
            "--http-port",
            "0",
            "--ready-file",
            str(ready),
        ],
        env=env,
    )
    wait_file(ready, proc)
    time.sleep(3.0)  # let every receiver connect and reach its first keyframe
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    samples: list[float] = []
    while time.monotonic() - t0 < seconds:
        time.sleep(sample_every)
        samples.append(rss_mb(proc.pid))
    cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
    proc.terminate()
    proc.wait(timeout=60)
    stored, missing = loss_of(data)
    shutil.rmtree(data, ignore_errors=True)
    return Result(
        streams=len(urls),
        cpu_per_stream_pct=100 * cpu / len(urls),
        rss_mb_first=samples[0],
        rss_mb_max=max(samples),
        rss_mb_last=samples[-1],
        frames=stored,
        missing=missing,
    )


def ffmpeg_reference(url: str, seconds: float) -> float:
    """Share of one core FFmpeg needs to receive one stream (stream copy, no decode)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-t",
            str(seconds),
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ],
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used / (time.monotonic() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="8,16,32,40", help="stream counts to try")
    parser.add_argument("--step-seconds", type=float, default=40)
    parser.add_argument("--soak-seconds", type=float, default=600)
    args = parser.parse_args()
    ladder = [int(n) for n in args.ladder.split(",")]
    work = Path(tempfile.mkdtemp(prefix="custos-bench-ingest-"))
    simcam, urls = start_simcam(work, max(ladder))
    try:
        ref_cpu = ffmpeg_reference(urls[0], 20)
        print(f"reference: ffmpeg -c copy receives one stream at {100 * ref_cpu:.2f} % of a core")
        best = None
        for n in ladder:
            r = run_engine(work, urls[:n], args.step_seconds, 2.0)
            ratio = r.cpu_per_stream_pct / (100 * ref_cpu) if ref_cpu else float("nan")
            print(
                f"N={n:3d}: loss {100 * r.loss:.3f} % ({r.missing}/{r.frames + r.missing}), "
                f"CPU {r.cpu_per_stream_pct:.2f} % of a core per stream ({ratio:.2f}x ffmpeg), "
                f"RSS max {r.rss_mb_max:.0f} MB"
            )
            if r.loss >= LOSS_LIMIT:
                break
            best = n
        print(f"largest N with < {100 * LOSS_LIMIT} % frame loss: {best}")
        if best and args.soak_seconds > 0:
            r = run_engine(work, urls[:best], args.soak_seconds, 10.0)
            print(
                f"soak N={best} for {args.soak_seconds:.0f} s: loss {100 * r.loss:.3f} %, "
                f"CPU {r.cpu_per_stream_pct:.2f} % of a core per stream, "
                f"RSS first/max/last {r.rss_mb_first:.0f}/{r.rss_mb_max:.0f}/{r.rss_mb_last:.0f} MB"
            )
    finally:
        simcam.terminate()
        simcam.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
