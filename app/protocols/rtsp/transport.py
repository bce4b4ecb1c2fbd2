"""The RTSP Transport header (RFC 2326 §12.39): a list of alternatives, each one transport-spec.

    Transport: RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001

Port and channel parameters given as one number mean the pair (n, n+1), as RTP/RTCP use them.
Unknown parameters are kept in `extra` so a spec re-serializes with them.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from app.protocols.rtsp.message import RtspParseError

#: Most alternatives accepted in one Transport header.
MAX_TRANSPORT_SPECS = 16
#: Most parameters in one transport-spec.
MAX_TRANSPORT_PARAMS = 32
#: Longest Transport header value accepted.
MAX_TRANSPORT_CHARS = 4096

_PROTOCOL = re.compile(r"([A-Za-z0-9]+)/([A-Za-z0-9]+)(?:/([A-Za-z]+))?")
_PAIR = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
_SSRC = re.compile(r"[0-9A-Fa-f]{1,8}")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_\-]+")


class LowerTransport(enum.StrEnum):
    UDP = "UDP"
    TCP = "TCP"


@dataclasses.dataclass(frozen=True, slots=True)
class TransportSpec:
    """One transport alternative; `None` means the parameter was absent."""

    protocol: str = "RTP"
    profile: str = "AVP"
    lower: LowerTransport = LowerTransport.UDP
    #: True for "unicast", False for "multicast", None when the client said neither.
    unicast: bool | None = True
    destination: str | None = None
    source: str | None = None
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    port: tuple[int, int] | None = None
    ttl: int | None = None
    ssrc: int | None = None
    #: Upper-case mode names (PLAY, RECORD); empty when absent.
    mode: tuple[str, ...] = ()
    extra: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_rtp_avp(self) -> bool:
        return self.protocol.upper() == "RTP" and self.profile.upper() == "AVP"

    def to_header(self) -> str:
        """This alternative as one transport-spec (no list separator)."""
        parts = [f"{self.protocol}/{self.profile}"]
        if self.lower is LowerTransport.TCP:
            parts[0] += "/TCP"
        if self.unicast is not None:
            parts.append("unicast" if self.unicast else "multicast")
        if self.destination is not None:
            parts.append(f"destination={self.destination}")
        if self.source is not None:
            parts.append(f"source={self.source}")
        for name, pair in (
            ("interleaved", self.interleaved),
            ("client_port", self.client_port),
            ("server_port", self.server_port),
            ("port", self.port),
        ):
            if pair is not None:
                parts.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ttl is not None:
            parts.append(f"ttl={self.ttl}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode:
            parts.append(f'mode="{",".join(self.mode)}"')
        for name, value in self.extra:
            parts.append(name if value is None else f"{name}={value}")
        return ";".join(parts)


def format_transport(specs: list[TransportSpec]) -> str:
    return ",".join(spec.to_header() for spec in specs)


def parse_transport(value: str) -> list[TransportSpec]:
    """Parse a Transport header value into its alternatives, in the client's order."""
    if len(value) > MAX_TRANSPORT_CHARS:
        raise RtspParseError(f"Transport header of {len(value)} characters is too long")
    specs = [_parse_spec(item) for item in _split_outside_quotes(value, ",") if item.strip()]
    if not specs:
        raise RtspParseError(f"empty Transport header {value!r}")
    if len(specs) > MAX_TRANSPORT_SPECS:
        raise RtspParseError(f"{len(specs)} transport alternatives exceed {MAX_TRANSPORT_SPECS}")
    return specs


def _parse_spec(text: str) -> TransportSpec:
    items = [p.strip() for p in _split_outside_quotes(text, ";")]
    if len(items) > MAX_TRANSPORT_PARAMS + 1:
        raise RtspParseError(f"transport-spec with {len(items)} parameters is too long")
    match = _PROTOCOL.fullmatch(items[0])
    if match is None:
        raise RtspParseError(f"invalid transport protocol {items[0]!r}")
    protocol, profile, lower_text = match.groups()
    lower_upper = (lower_text or "UDP").upper()
    if lower_upper not in ("UDP", "TCP"):
        raise RtspParseError(f"unknown lower transport {lower_text!r}")
    spec = TransportSpec(
        protocol=protocol.upper(),
        profile=profile.upper(),
        lower=LowerTransport(lower_upper),
        unicast=None,
    )
    pairs: dict[str, tuple[int, int]] = {}
    extra: list[tuple[str, str | None]] = []
    for item in items[1:]:
        if not item:
            continue
        name, sep, raw = item.partition("=")
        name = name.strip()
        key = name.lower()
        val = raw.strip()
        if not _PARAM_NAME.fullmatch(name):
            raise RtspParseError(f"invalid transport parameter {item!r}")
        if key in ("unicast", "multicast"):
            spec = dataclasses.replace(spec, unicast=key == "unicast")
        elif key in ("interleaved", "client_port", "server_port", "port"):
            pairs[key] = _parse_pair(name, val, 255 if key == "interleaved" else 65535)
        elif key == "destination":
            spec = dataclasses.replace(spec, destination=val if sep else None)
        elif key == "source":
            spec = dataclasses.replace(spec, source=val if sep else None)
        elif key == "ttl":
            if not val.isdigit() or not val.isascii() or int(val) > 255:
                raise RtspParseError(f"invalid ttl {val!r}")
            spec = dataclasses.replace(spec, ttl=int(val))
        elif key == "ssrc":
            if not _SSRC.fullmatch(val):
                raise RtspParseError(f"invalid ssrc {val!r}")
            spec = dataclasses.replace(spec, ssrc=int(val, 16))
        elif key == "mode":
            modes = tuple(m.strip().upper() for m in val.strip('"').split(","))
            if not all(_PARAM_NAME.fullmatch(m) for m in modes):
                raise RtspParseError(f"invalid transport mode {val!r}")
            spec = dataclasses.replace(spec, mode=modes)
        else:
            extra.append((name, val if sep else None))
    return dataclasses.replace(
        spec,
        interleaved=pairs.get("interleaved"),
        client_port=pairs.get("client_port"),
        server_port=pairs.get("server_port"),
        port=pairs.get("port"),
        extra=tuple(extra),
    )


def _parse_pair(name: str, text: str, limit: int) -> tuple[int, int]:
    match = _PAIR.fullmatch(text)
    if match is None:
        raise RtspParseError(f"invalid {name} value {text!r}")
    first = int(match.group(1))
    second = int(match.group(2)) if match.group(2) is not None else first + 1
    if first > limit or second > limit:
        raise RtspParseError(f"{name} value {text!r} is out of range 0..{limit}")
    return first, second


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
