"""SourceTag → stream medium resolution of the recorder (tt:RecordingJobTrack bindings)."""

from __future__ import annotations

from app.core.media import Codec, CodecParams, TrackKind
from app.engine.recorder import (
    Binding,
    default_bindings,
    parse_source_tag,
    select_medium,
)

H264 = CodecParams(Codec.H264, 90_000)
PCMU = CodecParams(Codec.PCMU, 8000)
META = CodecParams(Codec.METADATA, 90_000)


def test_tags_name_a_kind_and_a_position() -> None:
    assert parse_source_tag("video") == (TrackKind.VIDEO, 0)
    assert parse_source_tag(" Audio2 ") == (TrackKind.AUDIO, 1)
    assert parse_source_tag("metadata1") == (TrackKind.METADATA, 0)
    for unknown in ("", "video0", "video100", "camera", "trackID=1"):
        assert parse_source_tag(unknown) is None


def test_select_medium_counts_within_the_kind() -> None:
    stream = [PCMU, H264, H264, META]
    assert select_medium("video", stream) == 1
    assert select_medium("video2", stream) == 2
    assert select_medium("video3", stream) is None
    assert select_medium("audio", stream) == 0
    assert select_medium("metadata", stream) == 3
    assert select_medium("metadata", [H264]) is None
    assert select_medium("nonsense", stream) is None


def test_default_bindings_use_the_default_tracks() -> None:
    assert default_bindings() == (
        Binding("video", "VIDEO001", TrackKind.VIDEO),
        Binding("audio", "AUDIO001", TrackKind.AUDIO),
        Binding("metadata", "META001", TrackKind.METADATA),
    )
    assert default_bindings([("VIDEO002", TrackKind.VIDEO)]) == (
        Binding("video", "VIDEO002", TrackKind.VIDEO),
    )
