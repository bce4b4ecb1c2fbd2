"""The simulated camera: a stamped H.264 test pattern with a PCMU tone, live or as a cheap loop."""

from __future__ import annotations

from app.engine.simcam.camera import (
    DEFAULT_BITRATE,
    DEFAULT_FPS,
    DEFAULT_SIZE,
    GOP_SECONDS,
    EncodedLoop,
    SimulatedCamera,
    encode_loop,
    parse_size,
)

__all__ = [
    "DEFAULT_BITRATE",
    "DEFAULT_FPS",
    "DEFAULT_SIZE",
    "GOP_SECONDS",
    "EncodedLoop",
    "SimulatedCamera",
    "encode_loop",
    "parse_size",
]
