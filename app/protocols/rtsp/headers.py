"""Codecs for the smaller RTSP header fields (RFC 2326 §12, ONVIF Streaming §6.4–6.5).

Session, CSeq, Scale, Speed, Rate-Control, Frames, Immediate, the feature tags of Require,
Proxy-Require, Supported and Unsupported, and RTP-Info. Transport and Range have their own
modules.

Parsers raise RtspParseError (status 400) naming the offending value; formatters emit the
canonical spelling (`yes`/`no`, `-1.0`, `intra/4000`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re

from app.protocols.rtsp.message import RtspParseError

#: Session ids: RFC 2326 asks for at least 8 characters; anything longer than this is abuse.
MAX_SESSION_ID_CHARS = 128
#: Default session timeout in seconds when the Session header has no timeout (RFC 2326 §12.37).
DEFAULT_SESSION_TIMEOUT_S = 60
#: Most feature tags in one Require/Proxy-Require/Unsupported header.
MAX_FEATURE_TAGS = 32
#: Most streams described by one RTP-Info header.
MAX_RTP_INFO_ENTRIES = 32
#: Longest header value these parsers look at.
MAX_VALUE_CHARS = 4096
#: Largest interval of `Frames: intra/<ms>` (one day of recording time).
MAX_FRAMES_INTERVAL_MS = 86_400_000

# RFC 2326 §3.4: session-id = 1*( ALPHA | DIGIT | safe ), safe = $ - _ . +
_SESSION_ID = re.compile(r"[A-Za-z0-9$\-_.+]+")
_FLOAT = re.compile(r"[+-]?(?:\d{1,9}(?:\.\d{0,9})?|\.\d{1,9})")
_FEATURE_TAG = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # visible ASCII except ','
_RTP_INFO_SPLIT = re.compile(r",\s*(?=url=)", re.IGNORECASE)
_RTP_INFO_PARAM = re.compile(r";\s*(seq|rtptime|ssrc)\s*=\s*([^;,\s]*)", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True)
class SessionHeader:
    """`Session: <id>[;timeout=<seconds>]`."""

    session_id: str
    timeout: int | None = None

    def to_header(self) -> str:
        if self.timeout is None:
            return self.session_id
        return f"{self.session_id};timeout={self.timeout}"


def parse_session(value: str) -> SessionHeader:
    _check_length(value, "Session")
    ident, _, params = value.partition(";")
    ident = ident.strip()
    if not _SESSION_ID.fullmatch(ident) or len(ident) > MAX_SESSION_ID_CHARS:
        raise RtspParseError(f"invalid session id {ident[:40]!r}")
    timeout = None
    for item in params.split(";"):
        name, sep, val = item.partition("=")
        if name.strip().lower() == "timeout" and sep:
            val = val.strip()
            if not val.isdigit() or not val.isascii() or len(val) > 9:
                raise RtspParseError(f"invalid session timeout {val[:20]!r}")
            timeout = int(val)
    return SessionHeader(ident, timeout)


def parse_cseq(value: str | None) -> int:
    """The CSeq of a request; absent or not a decimal number → 400."""
    if value is None:
        raise RtspParseError("request has no CSeq header")
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise RtspParseError(f"invalid CSeq {value[:20]!r}")
    return int(text)


def parse_scale(value: str) -> float:
    """`Scale: <float>`: playback speed and direction; negative means reverse."""
    return _parse_float(value, "Scale")


def parse_speed(value: str) -> float:
    """`Speed: <float>`: delivery speed; must be positive (RFC 2326 §12.35)."""
    speed = _parse_float(value, "Speed")
    if speed <= 0:
        raise RtspParseError(f"Speed must be positive, got {value.strip()!r}")
    return speed


def format_scale(value: float) -> str:
    """Shortest round-tripping decimal, always with a point (`1.0`, `-1.0`, `0.25`)."""
    if not math.isfinite(value):
        raise ValueError(f"scale must be finite, got {value}")
    return repr(float(value))


def parse_yes_no(value: str, header: str) -> bool:
    """Rate-Control and Immediate: `yes` or `no` (case-insensitive on input)."""
    text = value.strip().lower()
    if text == "yes":
        return True
    if text == "no":
        return False
    raise RtspParseError(f"{header} must be 'yes' or 'no', got {value.strip()[:20]!r}")


def parse_rate_control(value: str) -> bool:
    return parse_yes_no(value, "Rate-Control")


def parse_immediate(value: str) -> bool:
    return parse_yes_no(value, "Immediate")


def format_yes_no(value: bool) -> str:
    return "yes" if value else "no"


class FramesMode(enum.StrEnum):
    INTRA = "intra"
    PREDICTED = "predicted"
    ALL = "all"


@dataclasses.dataclass(frozen=True, slots=True)
class FramesHeader:
    """`Frames: intra[/<ms>] | predicted | all`; the interval is in recording time."""

    mode: FramesMode = FramesMode.ALL
    interval_ms: int | None = None

    def to_header(self) -> str:
        if self.interval_ms is None:
            return self.mode.value
        return f"{self.mode.value}/{self.interval_ms}"


def parse_frames(value: str) -> FramesHeader:
    text = value.strip()
    mode_text, slash, interval = text.partition("/")
    try:
        mode = FramesMode(mode_text.strip().lower())
    except ValueError:
        raise RtspParseError(f"invalid Frames value {text[:40]!r}") from None
    if not slash:
        return FramesHeader(mode)
    if mode is not FramesMode.INTRA:
        raise RtspParseError(f"Frames interval is only allowed with 'intra', got {text[:40]!r}")
    interval = interval.strip()
    if not interval.isdigit() or not interval.isascii() or len(interval) > 9:
        raise RtspParseError(f"invalid Frames interval {interval[:20]!r}")
    ms = int(interval)
    if ms > MAX_FRAMES_INTERVAL_MS:
        raise RtspParseError(f"Frames interval {ms} ms exceeds {MAX_FRAMES_INTERVAL_MS}")
    return FramesHeader(mode, ms)


def parse_feature_tags(value: str) -> tuple[str, ...]:
    """Require / Proxy-Require / Unsupported / Supported: comma-separated option tags."""
    _check_length(value, "feature tag")
    tags = tuple(t.strip() for t in value.split(",") if t.strip())
    if len(tags) > MAX_FEATURE_TAGS:
        raise RtspParseError(f"{len(tags)} feature tags exceed {MAX_FEATURE_TAGS}")
    for tag in tags:
        if not _FEATURE_TAG.fullmatch(tag):
            raise RtspParseError(f"invalid feature tag {tag[:40]!r}")
    return tags


def format_feature_tags(tags: tuple[str, ...] | list[str]) -> str:
    return ", ".join(tags)


@dataclasses.dataclass(frozen=True, slots=True)
class RtpInfo:
    """One stream of `RTP-Info: url=<url>[;seq=<n>][;rtptime=<ts>]` (RFC 2326 §12.33)."""

    url: str
    seq: int | None = None
    rtptime: int | None = None

    def to_header(self) -> str:
        text = f"url={self.url}"
        if self.seq is not None:
            text += f";seq={self.seq}"
        if self.rtptime is not None:
            text += f";rtptime={self.rtptime}"
        return text


def format_rtp_info(entries: list[RtpInfo]) -> str:
    return ",".join(entry.to_header() for entry in entries)


def parse_rtp_info(value: str) -> list[RtpInfo]:
    """Parse RTP-Info; URLs are split at `,url=` and `;seq=`/`;rtptime=` only, since URLs may
    themselves contain `,` and `;`."""
    _check_length(value, "RTP-Info")
    entries = []
    for item in _RTP_INFO_SPLIT.split(value.strip()):
        item = item.strip()
        if not item.lower().startswith("url="):
            raise RtspParseError(f"RTP-Info entry without url: {item[:60]!r}")
        first = _RTP_INFO_PARAM.search(item)
        url = item[4 : first.start() if first else len(item)].strip()
        if not url:
            raise RtspParseError(f"RTP-Info entry with empty url: {item[:60]!r}")
        numbers: dict[str, int] = {}
        for match in _RTP_INFO_PARAM.finditer(item):
            name, text = match.group(1).lower(), match.group(2)
            if not text.isdigit() or not text.isascii() or len(text) > 10:
                raise RtspParseError(f"invalid RTP-Info {name} {text[:20]!r}")
            numbers[name] = int(text)
        seq, rtptime = numbers.get("seq"), numbers.get("rtptime")
        if (seq is not None and seq > 0xFFFF) or (rtptime is not None and rtptime > 0xFFFF_FFFF):
            raise RtspParseError(f"RTP-Info values out of range in {item[:60]!r}")
        entries.append(RtpInfo(url, seq, rtptime))
        if len(entries) > MAX_RTP_INFO_ENTRIES:
            raise RtspParseError(f"more than {MAX_RTP_INFO_ENTRIES} RTP-Info entries")
    return entries


def _parse_float(value: str, header: str) -> float:
    text = value.strip()
    if not _FLOAT.fullmatch(text):
        raise RtspParseError(f"invalid {header} value {text[:20]!r}")
    return float(text)


def _check_length(value: str, what: str) -> None:
    if len(value) > MAX_VALUE_CHARS:
        raise RtspParseError(f"{what} header of {len(value)} characters is too long")
