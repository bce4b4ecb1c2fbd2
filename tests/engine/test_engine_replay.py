"""The running engine serves what GetReplayUri hands out: PyAV plays it with Digest (RP-, PB-)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import av

from app.formats.stamp import read_stamp
from tests.engine.media_checks import decode_stamps, stored_frames
from tests.engine.onvif.test_engine_interop_support import device_url, password, running_engine
from tests.peers.onvif_zeep import validated_service


def _with_credentials(uri: str, user: str, secret: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{parts.netloc}"))


def _decode_stamps(uri: str, limit: int) -> list[int]:
    """Capture times (µs) of the first `limit` pictures PyAV decodes from an RTSP URI."""
    out: list[int] = []
    with av.open(uri, options={"rtsp_transport": "tcp", "stimeout": "10000000"}) as container:
        for frame in container.decode(video=0):
            stamp = read_stamp(frame.to_ndarray(format="gray"))
            assert stamp is not None
            out.append(stamp.capture_us)
            if len(out) >= limit:
                break
    return out


async def test_get_replay_uri_plays_recorded_frames_with_their_wall_clock(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine:
        replay_url = device_url(engine).replace("device_service", "replay_service")
        svc = validated_service("replay", replay_url, "viewer", password("viewer"))
        uri = await asyncio.to_thread(
            svc.GetReplayUri,
            StreamSetup={"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            RecordingToken="SimCam",
        )
        assert uri.startswith("rtsp://127.0.0.1:") and uri.endswith("/replay/SimCam")
        stamps = await asyncio.to_thread(
            _decode_stamps, _with_credentials(uri, "viewer", password("viewer")), 20
        )
    # The engine's camera serves a pre-encoded loop, so the stamps are the loop's; what matters
    # is that replay sends exactly the stored pictures, from the start of the footage, in order.
    stored = [s.capture_us for s in decode_stamps(stored_frames(tmp_path, "SimCam")) if s]
    assert stamps == stored[: len(stamps)]
