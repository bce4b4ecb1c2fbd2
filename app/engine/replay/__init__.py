"""ONVIF replay (Profile G playback) over the RTSP server core: forward, reverse, 0xABAC, pacing."""

from __future__ import annotations

from app.engine.replay.extension import (
    FLAG_C,
    FLAG_D,
    FLAG_E,
    FLAG_T,
    REPLAY_EXTENSION_ID,
    UnitMarks,
    extension_hook,
    replay_extension,
)
from app.engine.replay.mount import ReplayMount
from app.engine.replay.plan import Extent, PlayPlan, plan_play
from app.engine.replay.resource import ONVIF_REPLAY, ReplayProducer, ReplayResource

__all__ = [
    "FLAG_C",
    "FLAG_D",
    "FLAG_E",
    "FLAG_T",
    "ONVIF_REPLAY",
    "REPLAY_EXTENSION_ID",
    "Extent",
    "PlayPlan",
    "ReplayMount",
    "ReplayProducer",
    "ReplayResource",
    "UnitMarks",
    "extension_hook",
    "plan_play",
    "replay_extension",
]
