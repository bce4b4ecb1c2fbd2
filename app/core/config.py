"""Engine configuration: validated, typed, with defaults and units; loaded from a JSON file.

A config file is optional. Without one the engine records the built-in simulated camera:

    {
      "sources": [
        {"type": "simcam", "recording": "SimCam", "name": "Simulated camera",
         "size": "1280x720", "fps": 25, "audio": true, "loop_seconds": null},
        {"type": "rtsp", "recording": "Gate", "name": "Gate camera",
         "uri": "rtsp://user:pass@192.0.2.10/stream1", "transport": "tcp"}
      ],
      "retention": {"disk_budget_bytes": 0, "sweep_interval_s": 30},
      "rtsp_session_timeout_s": 60
    }
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Literal

from app.core.errors import ConfigError

#: Largest config file read; a config is a few KiB, anything larger is a mistake.
MAX_CONFIG_BYTES = 1 << 20
MAX_SOURCES = 256
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SIZE_RE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' → (1280, 720); both even, 64…8192 px."""
    m = _SIZE_RE.match(text.strip().lower())
    if not m:
        raise ConfigError(f"picture size must look like 1280x720; got {text!r}")
    width, height = int(m.group(1)), int(m.group(2))
    if not (64 <= width <= 8192 and 64 <= height <= 8192) or width % 2 or height % 2:
        raise ConfigError(f"size {text!r}: width and height must be even and within 64…8192")
    return width, height


@dataclasses.dataclass(frozen=True)
class SimcamSource:
    """The built-in simulated camera, encoded in-process."""

    recording: str = "SimCam"
    name: str = "Simulated camera"
    size: tuple[int, int] = (1280, 720)
    fps: int = 25
    audio: bool = True
    #: Serve a pre-encoded loop of this many seconds (cheap), or encode live when None.
    loop_seconds: float | None = None
    type: Literal["simcam"] = "simcam"


@dataclasses.dataclass(frozen=True)
class RtspSource:
    """A camera pulled over RTSP; credentials may be embedded in the URI (never logged)."""

    recording: str
    uri: str
    name: str = ""
    transport: Literal["tcp", "udp"] = "tcp"
    type: Literal["rtsp"] = "rtsp"


Source = SimcamSource | RtspSource


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    """Disk budget across all recordings (0 = no budget) and how often retention runs."""

    disk_budget_bytes: int = 0
    sweep_interval_s: float = 30.0


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Everything `custos engine` needs besides the data directory and listen addresses."""

    sources: tuple[Source, ...] = (SimcamSource(),)
    retention: RetentionConfig = RetentionConfig()
    rtsp_session_timeout_s: int = 60

    @classmethod
    def load(cls, path: Path) -> EngineConfig:
        """Read and validate a JSON config file; every problem is a ConfigError naming the field."""
        try:
            size = path.stat().st_size
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{path}: config file of {size} bytes exceeds {MAX_CONFIG_BYTES}")
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> EngineConfig:
        if not isinstance(raw, dict):
            raise ConfigError("config: the top level must be a JSON object")
        _reject_unknown(raw, {"sources", "retention", "rtsp_session_timeout_s"}, "config")
        sources_raw = raw.get("sources", [{"type": "simcam"}])
        if not isinstance(sources_raw, list) or len(sources_raw) > MAX_SOURCES:
            raise ConfigError(f"config.sources must be a list of at most {MAX_SOURCES} sources")
        sources = tuple(_source(i, s) for i, s in enumerate(sources_raw))
        tokens = [s.recording for s in sources]
        if len(set(tokens)) != len(tokens):
            raise ConfigError(f"config.sources: recording tokens must be unique, got {tokens}")
        retention = _retention(raw.get("retention", {}))
        timeout = raw.get("rtsp_session_timeout_s", 60)
        if not isinstance(timeout, int) or not 5 <= timeout <= 3600:
            raise ConfigError("config.rtsp_session_timeout_s must be an integer in 5…3600")
        return cls(sources=sources, retention=retention, rtsp_session_timeout_s=timeout)


def _reject_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")


def _token(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _TOKEN_RE.match(value):
        raise ConfigError(
            f"{where}: a token is 1…64 characters of A-Z a-z 0-9 _ . -, got {value!r}"
        )
    return value


def _source(index: int, raw: Any) -> Source:
    where = f"config.sources[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    kind = raw.get("type")
    if kind == "simcam":
        _reject_unknown(
            raw, {"type", "recording", "name", "size", "fps", "audio", "loop_seconds"}, where
        )
        fps = raw.get("fps", 25)
        if not isinstance(fps, int) or not 1 <= fps <= 60:
            raise ConfigError(f"{where}.fps must be an integer in 1…60")
        loop = raw.get("loop_seconds")
        if loop is not None and (not isinstance(loop, int | float) or not 2 <= loop <= 600):
            raise ConfigError(f"{where}.loop_seconds must be null or 2…600")
        audio = raw.get("audio", True)
        if not isinstance(audio, bool):
            raise ConfigError(f"{where}.audio must be true or false")
        return SimcamSource(
            recording=_token(raw.get("recording", "SimCam"), f"{where}.recording"),
            name=str(raw.get("name", "Simulated camera"))[:64],
            size=parse_size(str(raw.get("size", "1280x720"))),
            fps=fps,
            audio=audio,
            loop_seconds=float(loop) if loop is not None else None,
        )
    if kind == "rtsp":
        _reject_unknown(raw, {"type", "recording", "name", "uri", "transport"}, where)
        uri = raw.get("uri")
        if not isinstance(uri, str) or not uri.lower().startswith(("rtsp://", "rtsps://")):
            raise ConfigError(f"{where}.uri must be an rtsp:// URI")
        transport = raw.get("transport", "tcp")
        if transport not in ("tcp", "udp"):
            raise ConfigError(f"{where}.transport must be 'tcp' or 'udp'")
        return RtspSource(
            recording=_token(raw.get("recording"), f"{where}.recording"),
            uri=uri,
            name=str(raw.get("name", ""))[:64],
            transport=transport,
        )
    raise ConfigError(f"{where}.type must be 'simcam' or 'rtsp', got {kind!r}")


def _retention(raw: Any) -> RetentionConfig:
    if not isinstance(raw, dict):
        raise ConfigError("config.retention must be an object")
    _reject_unknown(raw, {"disk_budget_bytes", "sweep_interval_s"}, "config.retention")
    budget = raw.get("disk_budget_bytes", 0)
    interval = raw.get("sweep_interval_s", 30.0)
    if not isinstance(budget, int) or budget < 0:
        raise ConfigError("config.retention.disk_budget_bytes must be a non-negative integer")
    if not isinstance(interval, int | float) or not 0.1 <= interval <= 3600:
        raise ConfigError("config.retention.sweep_interval_s must be in 0.1…3600")
    return RetentionConfig(disk_budget_bytes=budget, sweep_interval_s=float(interval))
