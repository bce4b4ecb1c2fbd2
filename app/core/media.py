"""Media value types shared by ingest, storage, the RTSP server, export and the player.

An `AccessUnit` is one frame (video) or one codec frame/packet (audio, metadata) with its two
times: the media timestamp in the track's clock rate, and the UTC wall clock in ns together with
where that wall clock came from. Payload layout per codec (the store keeps exactly these bytes):

- H.264 / H.265: NAL units, each prefixed by its 4-byte big-endian length (as in MP4 samples).
  Keyframes carry their parameter sets (SPS/PPS, or VPS/SPS/PPS) in front, so any stored
  keyframe decodes on its own.
- JPEG: one complete JFIF/JPEG image (SOI … EOI).
- AAC: one raw AAC access unit (no ADTS header); the AudioSpecificConfig is in CodecParams.
- PCMU / PCMA: the G.711 bytes, one byte per sample.
- ONVIF metadata: the XML bytes of one tt:MetadataStream document.
"""

from __future__ import annotations

import dataclasses
import enum


class TrackKind(enum.StrEnum):
    """ONVIF TrackType values, spelt as on the wire."""

    VIDEO = "Video"
    AUDIO = "Audio"
    METADATA = "Metadata"


class Codec(enum.StrEnum):
    """Encodings Custos records and replays; values are the RTP encoding names."""

    H264 = "H264"
    H265 = "H265"
    JPEG = "JPEG"
    AAC = "MPEG4-GENERIC"
    PCMU = "PCMU"
    PCMA = "PCMA"
    METADATA = "VND.ONVIF.METADATA"

    @property
    def kind(self) -> TrackKind:
        if self in (Codec.H264, Codec.H265, Codec.JPEG):
            return TrackKind.VIDEO
        if self in (Codec.AAC, Codec.PCMU, Codec.PCMA):
            return TrackKind.AUDIO
        return TrackKind.METADATA


class TimeSource(enum.StrEnum):
    """Where a frame's wall-clock time came from; examiners ask, so every frame records it."""

    #: The camera's own clock, mapped from RTP time through its RTCP sender reports.
    CAMERA_NTP = "camera-ntp"
    #: The ONVIF replay header extension 0xABAC of a recorder we replay from.
    ONVIF_EXTENSION = "onvif-ext"
    #: The moment the recorder received the frame (no SR yet, or the camera sends none).
    RECEIVE_TIME = "receive"
    #: The capture clock of a source inside this process (the simulated camera).
    LOCAL_CAPTURE = "local"


@dataclasses.dataclass(frozen=True, slots=True)
class CodecParams:
    """Everything needed to decode or re-packetize one track; the store records each change."""

    codec: Codec
    clock_rate: int
    #: Video: coded picture size in pixels (0 while unknown).
    width: int = 0
    height: int = 0
    #: Audio: samples per second and channel count (0 while unknown).
    sample_rate: int = 0
    channels: int = 0
    #: H.264: (SPS, PPS); H.265: (VPS, SPS, PPS); raw NAL units without start codes or lengths.
    parameter_sets: tuple[bytes, ...] = ()
    #: AAC: the AudioSpecificConfig bytes (RFC 3640 'config' fmtp, decoded from hex).
    audio_config: bytes = b""

    @property
    def kind(self) -> TrackKind:
        return self.codec.kind


@dataclasses.dataclass(frozen=True, slots=True)
class AccessUnit:
    """One frame of one track, with both of its times (see module docstring for `data`)."""

    data: bytes
    #: Media timestamp in units of the track's clock rate, unwrapped (monotonic within a run).
    media_ts: int
    #: UTC wall clock of the frame, ns since the Unix epoch.
    wall_ns: int
    keyframe: bool
    time_source: TimeSource
