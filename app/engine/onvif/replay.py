"""The ONVIF Replay Control service (trp, replay spec §1): replay URIs and the replay configuration.

GetReplayUri names the engine's RTSP replay server for a recording, on the host the client used
to reach us (NAT and multi-homed hosts). The replay configuration (SessionTimeout) is kept in
a small JSON file in the data directory; `ReplaySettings` is shared with the replay RTSP server,
which reads `settings.current` for every new session.

    settings = await ReplaySettings.load(data_dir)
    replay = ReplayService(store, settings, rtsp_port=8554)
    server = OnvifServer(authenticator, [..., replay, ...])
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from app.core.errors import ConfigError, NotFoundError
from app.core.files import write_atomic
from app.engine.onvif.convert import duration_seconds, required
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.storage import Store
from app.protocols.soap.fault import SoapFault

log = logging.getLogger(__name__)

#: RTSP session timeout bounds in seconds (trp:Capabilities SessionTimeoutRange, RP-03). A
#: timeout below 10 s would make clients send keep-alives faster than replay pacing needs.
SESSION_TIMEOUT_MIN_S = 10
SESSION_TIMEOUT_MAX_S = 3600
#: SessionTimeout until a client sets one: the RTSP default (RFC 2326 §12.37).
DEFAULT_SESSION_TIMEOUT = "PT60S"
#: The configuration file inside the data directory.
CONFIG_FILE = "replay.json"
#: Largest configuration file read back (it holds one short string).
MAX_CONFIG_BYTES = 4096
#: Longest tt:ReferenceToken (GEN-09); a longer one cannot name a recording.
MAX_TOKEN_CHARS = 64
#: StreamSetup values replay serves (RP-05): unicast over UDP, RTSP-interleaved, HTTP tunnel;
#: TCP is the deprecated name of RTP over RTSP/TCP.
STREAM_TYPES = frozenset({"RTP-Unicast"})
TRANSPORT_PROTOCOLS = frozenset({"UDP", "TCP", "RTSP", "HTTP"})


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayConfig:
    """tt:ReplayConfiguration: SessionTimeout exactly as the client sent it (GEN-12)."""

    session_timeout: str = DEFAULT_SESSION_TIMEOUT

    @property
    def session_timeout_s(self) -> float:
        """The timeout new RTSP replay sessions advertise (RP-10)."""
        return _timeout_seconds(self.session_timeout)


def _timeout_seconds(text: str) -> float:
    seconds = duration_seconds(text, "SessionTimeout")
    if not SESSION_TIMEOUT_MIN_S <= seconds <= SESSION_TIMEOUT_MAX_S:
        raise ConfigError(
            f"SessionTimeout {text[:40]!r} is outside {SESSION_TIMEOUT_MIN_S}..."
            f"{SESSION_TIMEOUT_MAX_S} s"
        )
    return seconds


class ReplaySettings:
    """The persisted replay configuration; writes are atomic (temp file + rename, GEN-14)."""

    def __init__(self, path: Path, current: ReplayConfig) -> None:
        self.path = path
        self.current = current
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, data_dir: Path) -> ReplaySettings:
        """The settings of `data_dir`; defaults when nothing was ever set.

        A file that is not ours to read (corrupt, foreign, out of range) is a ConfigError
        naming it: silently resetting an examiner's configuration would hide the problem.
        """
        path = data_dir / CONFIG_FILE
        return cls(path, await asyncio.to_thread(_read_config, path))

    async def set(self, config: ReplayConfig) -> None:
        """Validate, persist, then publish `config` (nothing changes if any step fails)."""
        _timeout_seconds(config.session_timeout)  # ConfigError when out of range
        async with self._lock:
            await asyncio.to_thread(_write_config, self.path, config)
            self.current = config
        log.info("replay SessionTimeout set to %s", config.session_timeout)


def _read_config(path: Path) -> ReplayConfig:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return ReplayConfig()
    try:
        if len(data) > MAX_CONFIG_BYTES:
            raise ValueError(f"larger than {MAX_CONFIG_BYTES} bytes")
        raw = json.loads(data)
        timeout = raw["SessionTimeout"] if isinstance(raw, dict) else None
        if not isinstance(timeout, str):
            raise ValueError("no SessionTimeout string")
        _timeout_seconds(timeout)
        config = ReplayConfig(timeout)
    except (ValueError, ConfigError, SoapFault) as exc:
        reason = exc.message if isinstance(exc, ConfigError | SoapFault) else str(exc)
        raise ConfigError(f"replay configuration {path} is unusable: {reason}") from None
    return config


def _write_config(path: Path, config: ReplayConfig) -> None:
    write_atomic(path, json.dumps({"SessionTimeout": config.session_timeout}).encode())


class ReplayService(OnvifService):
    """trp: capabilities, GetReplayUri and the replay configuration (RP-01..RP-10)."""

    service = "replay"
    faults = (
        (NotFoundError, "Sender", ("InvalidArgVal", "NoRecording")),
        (ConfigError, "Sender", ("InvalidArgVal", "ConfigModify")),
    )

    def __init__(
        self,
        store: Store,
        settings: ReplaySettings,
        *,
        rtsp_port: int,
        path_prefix: str = "/replay/",
    ) -> None:
        self._store = store
        self.settings = settings
        self.rtsp_port = rtsp_port
        self.path_prefix = "/" + path_prefix.strip("/") + "/"

    def capabilities(self) -> dict[str, Any]:
        """trp:Capabilities (RP-03), also the Capabilities of the device's GetServices entry.

        RTSPWebSocketUri stays absent: replay over WebSocket is not offered.
        """
        return {
            "ReversePlayback": True,
            "SessionTimeoutRange": [SESSION_TIMEOUT_MIN_S, SESSION_TIMEOUT_MAX_S],
            "RTP_RTSP_TCP": True,
        }

    def uri(self, host: str, recording: str) -> str:
        """rtsp://host:port/<prefix>/<token>: the token is one percent-encoded path segment."""
        if ":" in host:  # an IPv6 literal
            host = f"[{host}]"
        return f"rtsp://{host}:{self.rtsp_port}{self.path_prefix}{quote(recording, safe='')}"

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RP-02."""
        return {"Capabilities": self.capabilities()}

    @operation("GetReplayUri", AccessClass.READ_MEDIA)
    async def get_replay_uri(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RP-05/06: unicast only; unknown recording → InvalidArgVal/NoRecording."""
        _check_stream_setup(req.StreamSetup)
        token = str(required(req.RecordingToken, "RecordingToken"))
        if len(token) > MAX_TOKEN_CHARS:
            raise NotFoundError(f"RecordingToken of {len(token)} characters names no recording")
        await self._store.recording(token)
        host = urlsplit(ctx.base_url).hostname
        if not host:
            raise SoapFault.sender("InvalidArgVal", reason="the request's Host header is unusable")
        return {"Uri": self.uri(host, token)}

    @operation("GetReplayConfiguration", AccessClass.READ_MEDIA)
    async def get_replay_configuration(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RP-08: SessionTimeout read back verbatim."""
        return {"Configuration": {"SessionTimeout": self.settings.current.session_timeout}}

    @operation("SetReplayConfiguration", AccessClass.ACTUATE)
    async def set_replay_configuration(self, ctx: RequestContext, req: Any) -> None:
        """RP-09: out of SessionTimeoutRange → InvalidArgVal/ConfigModify, nothing changed."""
        config = req.Configuration
        timeout = None if config is None else config.SessionTimeout
        if not isinstance(timeout, str):
            raise SoapFault.sender(
                "InvalidArgs", reason="Configuration/SessionTimeout is mandatory"
            )
        await self.settings.set(ReplayConfig(timeout))


def _check_stream_setup(setup: Any) -> None:
    """RP-06: a StreamSetup this server cannot serve is InvalidArgVal/InvalidStreamSetup."""
    if setup is None or setup.Transport is None:
        raise SoapFault.sender("InvalidArgs", reason="StreamSetup with Stream and Transport")
    stream, protocol = str(setup.Stream), str(setup.Transport.Protocol)
    if stream not in STREAM_TYPES:
        raise SoapFault.sender(
            "InvalidArgVal",
            "InvalidStreamSetup",
            reason=f"replay stream type {stream[:40]!r} is not supported; use RTP-Unicast",
        )
    if protocol not in TRANSPORT_PROTOCOLS:
        raise SoapFault.sender(
            "InvalidArgVal",
            "InvalidStreamSetup",
            reason=f"transport protocol {protocol[:40]!r} is not one of UDP, TCP, RTSP, HTTP",
        )
