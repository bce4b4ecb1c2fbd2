"""Test helpers: read a recorded track back and decode the simulated camera's stamps from it."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import av
from av.video.codeccontext import VideoCodecContext

from app.core.errors import CustosError
from app.engine.storage import StoredFrame, StoreReader
from app.formats.h26x import length_prefixed_to_annexb
from app.formats.stamp import Stamp, read_stamp

ALL_TIME = (0, 1 << 62)


def stored_frames(data_dir: Path, recording: str, track: str = "VIDEO001") -> list[StoredFrame]:
    """Every stored frame of a track, oldest first, with its bytes."""
    out: list[StoredFrame] = []
    with StoreReader.open(data_dir) as reader:
        while True:
            page = reader.frames_with_data(
                recording, track, *ALL_TIME, after=out[-1].ref if out else None
            )
            if not page:
                return out
            out.extend(page)


def decode_stamps(frames: list[StoredFrame], codec: str = "h264") -> list[Stamp | None]:
    """Decode stored H.264/H.265 access units in order; the stamp of each (None if unreadable).

    Decoding starts at the first keyframe of every run, as a player would; frames are decoded
    one by one so that the i-th result belongs to the i-th stored frame (no B-frames).
    """
    ctx = cast(VideoCodecContext, av.CodecContext.create(codec, "r"))
    stamps: list[Stamp | None] = []
    for frame in frames:
        packet = av.Packet(length_prefixed_to_annexb(frame.data))
        pictures = ctx.decode(packet)
        if len(pictures) != 1:
            stamps.append(None)
            continue
        luma = pictures[0].to_ndarray(format="gray")
        try:
            stamps.append(read_stamp(luma))
        except CustosError:
            stamps.append(None)
    return stamps
