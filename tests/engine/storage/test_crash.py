"""Crash consistency: SIGKILL a recording process at random moments, reopen, check, measure loss."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.time import NS_PER_SECOND
from app.engine.storage import Store, StoreReader, check, integrity
from tests.engine.storage.crash_writer import RECORDING, crash_payload, parse, video_size

ROOT = Path(__file__).resolve().parents[3]
MAX_LOSS_NS = NS_PER_SECOND
#: Kill at a random moment of steady recording ("random"), while the process starts up or
#: recovers the previous crash ("startup"), or inside a write window (see crash_writer).
ROUNDS = ["random", "random", "startup", "commit", "random", "create", "random"]
#: What recovery must have found after a kill inside a window.
EXPECTED = {
    "commit": integrity.TRAILING_BYTES,
    "create": integrity.EMPTY_SEGMENT,
}


def _spawn(data_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.storage.crash_writer", str(data_dir), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill(proc: subprocess.Popen[bytes]) -> bytes:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    errors = proc.stderr.read()
    proc.stderr.close()
    return errors


def _await_line(proc: subprocess.Popen[bytes], expected: bytes) -> None:
    """Block until the child prints `expected` (other lines, like "ready", are skipped)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line == expected:
            return
    pytest.fail(f"writer exited early: {_kill(proc).decode(errors='replace')}")


async def _recover(data_dir: Path) -> list[str]:
    """Open (running recovery) and close, as the next engine start would."""
    async with Store(data_dir) as store:
        return [p.kind for p in store.recovery]


def _verify(data_dir: Path) -> dict[str, int]:
    """Every stored frame is byte-exact; returns each track's newest wall clock."""
    newest = {}
    with StoreReader.open(data_dir) as reader:
        for track in ("VIDEO001", "AUDIO001"):
            frames = reader.frames_with_data(RECORDING, track, 0, 2**62, limit=10_000)
            for frame in frames:
                seq, wall_ns = parse(frame.data)
                size = video_size(seq) if track == "VIDEO001" else 160
                assert frame.data == crash_payload(seq, wall_ns, size)
                assert frame.ref.wall_ns == wall_ns
            newest[track] = frames[-1].ref.wall_ns
    return newest


@pytest.mark.slow
def test_sigkill_loses_under_a_second_and_leaves_a_consistent_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(62676)
    for round_, mode in enumerate(ROUNDS):
        if mode in EXPECTED:
            proc = _spawn(data_dir, "--stall", mode)
            _await_line(proc, b"stalled\n")
        elif mode == "random":
            proc = _spawn(data_dir)
            _await_line(proc, b"ready\n")
            time.sleep(rng.uniform(0.05, 1.5))  # the random moment of the crash
        else:
            proc = _spawn(data_dir)
            time.sleep(rng.uniform(0.05, 0.3))
        killed_ns = time.time_ns()
        _kill(proc)

        found = asyncio.run(_recover(data_dir))
        if mode in EXPECTED:
            assert EXPECTED[mode] in found, f"round {round_} ({mode}): recovery found {found}"
        report = check(data_dir, deep=True)
        assert report.ok, report.to_text()
        newest = _verify(data_dir)
        if mode == "random":
            for track, wall_ns in newest.items():
                lost = killed_ns - wall_ns
                assert lost < MAX_LOSS_NS, f"round {round_}: {track} lost {lost / 1e9:.3f} s"

    with StoreReader.open(data_dir) as reader:
        media = {m.track: m for m in reader.track_media(RECORDING)}
    # Each process that got to record left one run; the gaps between them are recorded.
    for track in ("VIDEO001", "AUDIO001"):
        assert len(ROUNDS) - 1 <= len(media[track].slices) <= len(ROUNDS)
        assert len(media[track].gaps) == len(media[track].slices) - 1
