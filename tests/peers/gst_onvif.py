"""Run the GStreamer ONVIF replay client peer (gst_onvif_client.py) from async tests.

    frames = await play_onvif(url, clock_range="20260301T080000Z-20260301T080010Z", rate=-1)
    events = await play_onvif_events(url, clock_range=..., seek_after=5, seek_range="...")

Each `PeerFrame` is one decoded picture in output order: its NTP time (the 0xABAC extension,
as rtponvifparse turned it into the buffer PTS) as Unix ns, and the top rows of its luma plane
for the stamp reader. A missing interpreter or plugin fails the test with the install hint.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.core.time import NS_PER_SECOND, NTP_UNIX_OFFSET_S
from tests.peers.gst import SYSTEM_PYTHON, require_peer_runtime

SCRIPT = Path(__file__).with_name("gst_onvif_client.py")
#: The peer's own limit for one play, and ours on top for its start-up.
PLAY_TIMEOUT_S = 40.0
STARTUP_MARGIN_S = 20.0


@dataclasses.dataclass(frozen=True)
class PeerFrame:
    wall_ns: int
    rows: npt.NDArray[np.uint8]


#: Marker events the peer emits between frames (pause, resume, second seek).
MARKERS = frozenset({"paused", "resumed", "seeked"})


class PeerFailed(AssertionError):
    """The peer reported an error, timed out or died."""


async def play_onvif(
    url: str,
    *,
    clock_range: str,
    rate: float = 1.0,
    frames: str = "none",
    rate_control: bool = False,
) -> list[PeerFrame]:
    """Play `url` with rtspsrc onvif-mode=true to its end (EOS); the decoded frames in order."""
    events = await play_onvif_events(
        url, clock_range=clock_range, rate=rate, frames=frames, rate_control=rate_control
    )
    return [e for e in events if isinstance(e, PeerFrame)]


async def play_onvif_events(
    url: str,
    *,
    clock_range: str,
    rate: float = 1.0,
    frames: str = "none",
    rate_control: bool = False,
    pause_after: int = 0,
    pause_s: float = 1.0,
    seek_after: int = 0,
    seek_range: str = "",
) -> list[PeerFrame | str]:
    """As `play_onvif`, optionally pausing or seeking again after some frames; the frames with
    the marker events ("paused", "resumed", "seeked") where they happened."""
    require_peer_runtime()
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(SCRIPT),
        url,
        "--range",
        clock_range,
        "--rate",
        repr(rate),
        "--frames",
        frames,
        "--rate-control",
        "yes" if rate_control else "no",
        "--timeout",
        str(PLAY_TIMEOUT_S),
        "--pause-after",
        str(pause_after),
        "--pause-s",
        repr(pause_s),
        "--seek-after",
        str(seek_after),
        "--seek-range",
        seek_range,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PLAY_TIMEOUT_S + STARTUP_MARGIN_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return _parse(out, err, process.returncode)


def _parse(out: bytes, err: bytes, returncode: int | None) -> list[PeerFrame | str]:
    result: list[PeerFrame | str] = []
    ended = False
    for line in out.decode().splitlines():
        event = json.loads(line)
        if event["event"] == "frame":
            rows = np.frombuffer(base64.b64decode(event["rows"]), np.uint8)
            wall = event["ntp_ns"] - NTP_UNIX_OFFSET_S * NS_PER_SECOND
            result.append(PeerFrame(wall, rows.reshape(-1, event["width"])))
        elif event["event"] in MARKERS:
            result.append(event["event"])
        elif event["event"] == "eos":
            ended = True
        else:
            raise PeerFailed(f"GStreamer peer: {event}; stderr: {err.decode()[-1500:]}")
    if not ended or returncode != 0:
        raise PeerFailed(
            f"GStreamer peer exited {returncode} without EOS; stderr: {err.decode()[-1500:]}"
        )
    return result
