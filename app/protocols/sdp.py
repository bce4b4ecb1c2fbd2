"""SDP session descriptions (RFC 8866, formerly 4566): parse, serialize, resolve control URLs.

Parsing is lenient the way real cameras need: CRLF or LF, unknown line types and stray lines
are skipped, optional lines may be missing. Structure errors (bad m= or o= line) and limits
raise SdpError.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from app.core.errors import ProtocolError

#: Largest SDP body accepted (a DESCRIBE answer of a multi-track camera is a few KiB).
MAX_SDP_BYTES = 64 * 1024
#: Most m= sections in one description.
MAX_MEDIA = 32
#: Most a= lines in one section (session or media).
MAX_ATTRIBUTES = 256
#: Longest single line.
MAX_LINE_BYTES = 8 * 1024

Attribute = tuple[str, str | None]


class SdpError(ProtocolError):
    """The session description is malformed or over a limit."""


class Rtpmap(NamedTuple):
    """An a=rtpmap value: encoding name as written, clock rate, channel count (default 1)."""

    encoding: str
    clock_rate: int
    channels: int


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """The o= line."""

    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    net_type: str = "IN"
    address_type: str = "IP4"
    address: str = "0.0.0.0"

    def to_text(self) -> str:
        return " ".join(
            (
                self.username,
                self.session_id,
                self.session_version,
                self.net_type,
                self.address_type,
                self.address,
            )
        )


@dataclasses.dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section: media type, port, transport protocol, formats and its lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    attributes: tuple[Attribute, ...] = ()
    #: The c= value of this section, e.g. "IN IP4 0.0.0.0", if it has one.
    connection: str | None = None
    #: b= values ("AS:2000") in order.
    bandwidths: tuple[str, ...] = ()
    #: The /<count> of the m= port, if written.
    port_count: int | None = None
    title: str | None = None

    def attribute(self, name: str) -> str | None:
        """Value of the first a=<name> (names compare case-insensitively); None if absent."""
        lowered = name.lower()
        for key, value in self.attributes:
            if key.lower() == lowered:
                return value if value is not None else ""
        return None

    def attribute_values(self, name: str) -> list[str]:
        """Values of every a=<name> line, in order (flags give "")."""
        lowered = name.lower()
        return [v or "" for k, v in self.attributes if k.lower() == lowered]

    @property
    def control(self) -> str | None:
        """The a=control value (absolute URL, relative URL or "*"), if any."""
        return self.attribute("control")

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload types; SdpError if a format is not a number 0..127."""
        return [_payload_type(fmt) for fmt in self.formats]

    def rtpmap(self, payload_type: int) -> Rtpmap | None:
        """The a=rtpmap of `payload_type`; None if it has none."""
        for value in self._values_for(payload_type, "rtpmap"):
            encoding, _, rest = value.strip().partition("/")
            rate_text, _, channels_text = rest.partition("/")
            try:
                rate = int(rate_text)
                channels = int(channels_text) if channels_text.strip() else 1
            except ValueError:
                raise SdpError(f"malformed a=rtpmap:{payload_type} {value!r}") from None
            if not encoding or rate <= 0 or channels <= 0:
                raise SdpError(f"malformed a=rtpmap:{payload_type} {value!r}")
            return Rtpmap(encoding.strip(), rate, channels)
        return None

    def fmtp(self, payload_type: int) -> dict[str, str]:
        """The a=fmtp parameters of `payload_type`, keys lower-cased (MIME parameters are
        case-insensitive), values as written; {} if it has none."""
        params: dict[str, str] = {}
        for value in self._values_for(payload_type, "fmtp"):
            for item in value.split(";"):
                key, _, val = item.strip().partition("=")
                if key.strip():
                    params[key.strip().lower()] = val.strip()
        return params

    def _values_for(self, payload_type: int, name: str) -> list[str]:
        found = []
        for value in self.attribute_values(name):
            pt_text, _, rest = value.strip().partition(" ")
            if pt_text == str(payload_type):
                found.append(rest)
        return found

    def to_lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        lines = [f"m={self.media} {port} {' '.join((self.proto, *self.formats))}"]
        if self.title is not None:
            lines.append(f"i={self.title}")
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.extend(f"b={b}" for b in self.bandwidths)
        lines.extend(_attribute_line(a) for a in self.attributes)
        return lines


@dataclasses.dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP: session-level lines followed by the m= sections."""

    origin: Origin = dataclasses.field(default_factory=Origin)
    session_name: str = "-"
    media: tuple[MediaDescription, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    #: The session-level c= value, e.g. "IN IP4 0.0.0.0".
    connection: str | None = None
    #: The t= value; "0 0" is an unbounded session, what every RTSP server writes.
    timing: str = "0 0"
    version: int = 0
    info: str | None = None
    bandwidths: tuple[str, ...] = ()

    def attribute(self, name: str) -> str | None:
        """Value of the first session-level a=<name>; None if absent."""
        lowered = name.lower()
        for key, value in self.attributes:
            if key.lower() == lowered:
                return value if value is not None else ""
        return None

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    def media_control_url(self, index: int, base: str) -> str:
        """Absolute control URL of media section `index` (RFC 2326 C.1.1).

        `base` is the Content-Base (or Content-Location, or request URL) of the DESCRIBE answer.
        A relative media control is resolved against the session-level control when that is an
        absolute URL, else against `base`.
        """
        session_base = base
        if self.control is not None and _is_absolute(self.control):
            session_base = self.control
        return resolve_control(session_base, self.media[index].control)

    def to_text(self) -> str:
        """Serialize with CRLF line ends, in the order RFC 8866 §5 requires."""
        lines = [f"v={self.version}", f"o={self.origin.to_text()}", f"s={self.session_name}"]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.extend(f"b={b}" for b in self.bandwidths)
        lines.append(f"t={self.timing}")
        lines.extend(_attribute_line(a) for a in self.attributes)
        for media in self.media:
            lines.extend(media.to_lines())
        return "\r\n".join(lines) + "\r\n"

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")


def resolve_control(base: str, control: str | None) -> str:
    """Resolve an a=control value against a base URL.

    "*" or no control means the base itself; an absolute URL stands as is. A relative value is
    appended to the base with one "/" between them rather than resolved by RFC 3986: servers
    send base "rtsp://cam/stream" with control "trackID=1" and mean ".../stream/trackID=1",
    which is how FFmpeg, GStreamer and live555 read it.
    """
    if control is None or control.strip() in ("", "*"):
        return base
    control = control.strip()
    if _is_absolute(control):
        return control
    return base.rstrip("/") + "/" + control.lstrip("/")


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; SdpError on malformed structure or a limit."""
    text = _decode(data)
    session: dict[str, object] = {}
    session_attrs: list[Attribute] = []
    session_bw: list[str] = []
    media: list[MediaDescription] = []
    current: _MediaBuilder | None = None
    seen_version = False
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if len(line) > MAX_LINE_BYTES:
            raise SdpError(f"SDP line of {len(line)} characters exceeds {MAX_LINE_BYTES}")
        if len(line) < 2 or line[1] != "=":
            continue  # blank or stray line: skipped, as cameras produce them
        kind, value = line[0], line[2:]
        if kind == "v":
            if value.strip() != "0":
                raise SdpError(f"unsupported SDP version {value.strip()!r}")
            seen_version = True
        elif kind == "m":
            if current is not None:
                media.append(current.build())
            if len(media) >= MAX_MEDIA:
                raise SdpError(f"more than MAX_MEDIA={MAX_MEDIA} media sections")
            current = _MediaBuilder(value)
        elif current is not None:
            current.add(kind, value)
        elif kind == "a":
            _append_attribute(session_attrs, value, "session")
        elif kind == "b":
            session_bw.append(value.strip())
        elif kind in "osict":
            session.setdefault(kind, value.strip())
    if current is not None:
        media.append(current.build())
    if not seen_version:
        raise SdpError("not an SDP session description: no v= line")
    origin_text = session.get("o")
    return SessionDescription(
        version=0,
        origin=_parse_origin(origin_text) if isinstance(origin_text, str) else Origin(),
        session_name=str(session.get("s", "-")),
        info=str(session["i"]) if "i" in session else None,
        connection=str(session["c"]) if "c" in session else None,
        timing=str(session.get("t", "0 0")),
        bandwidths=tuple(session_bw),
        attributes=tuple(session_attrs),
        media=tuple(media),
    )


class _MediaBuilder:
    """Collects the lines of one m= section while parsing."""

    def __init__(self, value: str) -> None:
        fields = value.split()
        if len(fields) < 3:
            raise SdpError(f"malformed m= line {value!r}: needs media, port, proto")
        self.media = fields[0]
        port_text, _, count_text = fields[1].partition("/")
        try:
            self.port = int(port_text)
            self.port_count = int(count_text) if count_text else None
        except ValueError:
            raise SdpError(f"malformed port {fields[1]!r} in m= line {value!r}") from None
        if not 0 <= self.port <= 65535:
            raise SdpError(f"port {self.port} out of range in m= line {value!r}")
        self.proto = fields[2]
        self.formats = tuple(fields[3:])
        self.attributes: list[Attribute] = []
        self.bandwidths: list[str] = []
        self.connection: str | None = None
        self.title: str | None = None

    def add(self, kind: str, value: str) -> None:
        if kind == "a":
            _append_attribute(self.attributes, value, f"media {self.media!r}")
        elif kind == "c":
            self.connection = value.strip()
        elif kind == "b":
            self.bandwidths.append(value.strip())
        elif kind == "i":
            self.title = value

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            attributes=tuple(self.attributes),
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            port_count=self.port_count,
            title=self.title,
        )


def _append_attribute(attrs: list[Attribute], value: str, where: str) -> None:
    if len(attrs) >= MAX_ATTRIBUTES:
        raise SdpError(f"more than MAX_ATTRIBUTES={MAX_ATTRIBUTES} attributes in {where}")
    name, sep, rest = value.partition(":")
    attrs.append((name.strip(), rest if sep else None))


def _attribute_line(attr: Attribute) -> str:
    name, value = attr
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_origin(value: str) -> Origin:
    # Cameras drop trailing fields or put spaces in the user name; keep what can be read.
    fields = value.split()
    if len(fields) > 6:
        fields = [" ".join(fields[:-5]), *fields[-5:]]
    return Origin(*fields)


def _payload_type(fmt: str) -> int:
    if not (fmt.isascii() and fmt.isdigit()) or int(fmt) > 127:
        raise SdpError(f"format {fmt!r} is not an RTP payload type 0..127")
    return int(fmt)


def _is_absolute(url: str) -> bool:
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.isascii() and scheme.replace("+", "").isalnum()


def _decode(data: bytes | str) -> str:
    size = len(data)
    if size > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {size} bytes exceeds MAX_SDP_BYTES={MAX_SDP_BYTES}")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Some cameras write their session name in Latin-1; every byte decodes there.
        return data.decode("latin-1")
