"""RTSP 1.0 messages (RFC 2326): requests, responses, interleaved frames, headers, serializers."""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Iterable, Iterator

from app.core.errors import ProtocolError

RTSP_VERSION = "RTSP/1.0"
#: Largest payload of one interleaved frame: the length field has 16 bits (RFC 2326 §10.12).
MAX_INTERLEAVED_BYTES = 0xFFFF
INTERLEAVED_MAGIC = 0x24  # '$'

REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Time-out",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    452: "Conference Not Found",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate Operation Not Allowed",
    460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport",
    462: "Destination Unreachable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    505: "RTSP Version not supported",
    551: "Option not supported",
}

_INTERLEAVED_HEADER = struct.Struct("!BBH")
_USERINFO = re.compile(r"((?:^|\s)[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_FORBIDDEN_IN_TEXT = ("\r", "\n", "\0")


class RtspParseError(ProtocolError):
    """Bytes or a header value that violate RTSP; `status` is the response a server should send.

    `cseq` is the CSeq of the offending request when it could be read, so the error response
    can echo it. `recoverable` tells whether the parser skipped the bad message and can go on
    with the next one (otherwise the connection has lost framing and must be closed).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        cseq: int | None = None,
        recoverable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.cseq = cseq
        self.recoverable = recoverable


class Headers:
    """An ordered multi-map of header fields with case-insensitive names (RFC 2326 §4.2)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field (a repeated name keeps every value, in order)."""
        _check_text(name, "header name")
        _check_text(value, f"value of header {name}")
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` by one field."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def get(self, name: str) -> str | None:
        """The first value of `name`, or None."""
        key = name.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def get_joined(self, name: str) -> str | None:
        """All values of a list-valued header joined with commas (RFC 2616 §4.2), or None."""
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers(self._items)


@dataclasses.dataclass(slots=True)
class RtspRequest:
    """One RTSP request; `uri` is the Request-URI exactly as sent (absolute URL or `*`)."""

    method: str
    uri: str
    headers: Headers = dataclasses.field(default_factory=Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def cseq(self) -> int | None:
        """The CSeq value, or None when absent or not a number."""
        return parse_cseq_or_none(self.headers.get("CSeq"))


@dataclasses.dataclass(slots=True)
class RtspResponse:
    """One RTSP response."""

    status: int
    reason: str = ""
    headers: Headers = dataclasses.field(default_factory=Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def cseq(self) -> int | None:
        return parse_cseq_or_none(self.headers.get("CSeq"))


@dataclasses.dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """One `$` frame of the RTSP connection: an RTP (even channel) or RTCP (odd) packet."""

    channel: int
    data: bytes


RtspMessage = RtspRequest | RtspResponse | InterleavedFrame


def parse_cseq_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        return None
    return int(text)


def redact_url(text: str) -> str:
    """`text` with every URL's user:password@ removed: safe to log (clients sometimes put
    credentials into the Request-URI)."""
    return _USERINFO.sub(r"\1", text)


def make_response(
    request: RtspRequest | None,
    status: int,
    *,
    reason: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    cseq: int | None = None,
) -> RtspResponse:
    """A response echoing the request's CSeq (or `cseq` when the request could not be parsed)."""
    out = Headers()
    echo = request.headers.get("CSeq") if request is not None else None
    if echo is not None and parse_cseq_or_none(echo) is not None:
        out.add("CSeq", echo.strip())
    elif cseq is not None:
        out.add("CSeq", str(cseq))
    for name, value in headers:
        out.add(name, value)
    return RtspResponse(
        status=status,
        reason=reason if reason is not None else REASONS.get(status, "Unknown"),
        headers=out,
        body=body,
    )


def encode_request(request: RtspRequest) -> bytes:
    """Serialize a request; Content-Length is computed from the body."""
    _check_token(request.method, "method")
    if not request.uri or any(c in request.uri for c in " \t\r\n\0"):
        raise ValueError(f"invalid Request-URI {request.uri!r}")
    start = f"{request.method} {request.uri} {request.version}"
    return _encode(start, request.headers, request.body)


def encode_response(response: RtspResponse) -> bytes:
    """Serialize a response; Content-Length is computed from the body."""
    if not 100 <= response.status <= 999:
        raise ValueError(f"status code {response.status} is not three digits")
    reason = response.reason or REASONS.get(response.status, "Unknown")
    _check_text(reason, "reason phrase")
    start = f"{response.version} {response.status} {reason}"
    return _encode(start, response.headers, response.body)


def encode_interleaved(channel: int, data: bytes) -> bytes:
    """Frame one packet for the RTSP connection: `$`, channel, 16-bit length, data."""
    if not 0 <= channel <= 255:
        raise ValueError(f"interleaved channel {channel} is outside 0..255")
    if len(data) > MAX_INTERLEAVED_BYTES:
        raise ValueError(f"interleaved packet of {len(data)} bytes exceeds {MAX_INTERLEAVED_BYTES}")
    return _INTERLEAVED_HEADER.pack(INTERLEAVED_MAGIC, channel, len(data)) + data


def _encode(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    for name, value in headers:
        if name.lower() != "content-length":
            lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _check_text(text: str, what: str) -> None:
    # A CR or LF inside a header would let a peer-supplied value inject whole header lines.
    if any(c in text for c in _FORBIDDEN_IN_TEXT):
        raise ValueError(f"{what} contains a line break or NUL: {text!r}")


def _check_token(text: str, what: str) -> None:
    if not text or not text.isascii() or any(c in text for c in " \t\r\n\0:"):
        raise ValueError(f"invalid {what} {text!r}")
