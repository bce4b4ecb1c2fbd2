"""Incremental RTSP stream parser: bytes from a TCP connection in, messages and `$` frames out.

Feed bytes with `feed`, then take events with `next_event` until it returns None. Requests,
responses and interleaved frames come out in stream order. Lines may end in CRLF, LF or CR
(RFC 2326 §4.1 asks receivers to accept all three); folded header lines are joined.

A message that breaks a limit or the grammar raises RtspParseError once the parser has skipped
to the end of that message (`recoverable=True`, the error carries the message's CSeq when it
was seen), so a server can answer it and keep the connection. When the end cannot be found
within MAX_DISCARD_BYTES, or the body length is unknown, framing is lost: the error has
`recoverable=False` and every later call raises it again.
"""

from __future__ import annotations

import enum
import re

from app.protocols.rtsp.message import (
    INTERLEAVED_MAGIC,
    RTSP_VERSION,
    Headers,
    InterleavedFrame,
    RtspMessage,
    RtspParseError,
    RtspRequest,
    RtspResponse,
    parse_cseq_or_none,
    redact_url,
)

#: Longest start line or header line (an RTSP URL with a long query still fits).
MAX_LINE_BYTES = 8 * 1024
#: Largest header block (start line and all header lines with their terminators).
MAX_HEADER_BYTES = 16 * 1024
#: Most header fields in one message.
MAX_HEADERS = 64
#: Largest message body (SDP, GET_PARAMETER/SET_PARAMETER text).
MAX_BODY_BYTES = 64 * 1024
#: How many bytes of a rejected message are skipped to find the next one before giving up.
MAX_DISCARD_BYTES = 256 * 1024
#: Request methods are tokens; keep them short so a garbage line is rejected early.
MAX_METHOD_CHARS = 32

_LINE_END = re.compile(rb"[\r\n]")
# Control characters other than HT have no place in RTSP text (and NUL would truncate C peers).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"[A-Z]+/\d+\.\d+")
_STATUS_LINE = re.compile(r"(RTSP/\d+\.\d+) (\d{3})(?: (.*))?")
_COMPACT_AT = 64 * 1024


class _State(enum.Enum):
    IDLE = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    DISCARD = enum.auto()
    SKIP_BODY = enum.auto()
    FAILED = enum.auto()


class RtspParser:
    """Parses one direction of an RTSP connection; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._state = _State.IDLE
        self._start: str | None = None
        self._fields: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body_length = 0
        self._error: RtspParseError | None = None
        self._discarded = 0
        self._mid_line = False
        self._skip = 0
        self._cseq: int | None = None
        self._content_length: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> RtspMessage | None:
        """The next complete message or frame, None when more bytes are needed."""
        while True:
            state = self._state
            if state is _State.FAILED:
                assert self._error is not None
                raise self._error
            if state is _State.IDLE:
                if not self._skip_blank_lines():
                    return None
                if self._buf[self._pos] == INTERLEAVED_MAGIC:
                    return self._read_frame()
                self._state = _State.HEADERS
            elif state is _State.HEADERS:
                if not self._read_header_lines():
                    return None
            elif state is _State.BODY:
                return self._read_body()
            elif state is _State.DISCARD:
                if not self._discard_lines():
                    return None
            else:  # SKIP_BODY
                if not self._skip_body():
                    return None
                error = self._error
                assert error is not None
                self._reset()
                raise error

    # ------------------------------------------------------------------ framing
    def _skip_blank_lines(self) -> bool:
        # Stray CR/LF between messages is common (clients terminate bodies with CRLF).
        buf, pos, end = self._buf, self._pos, len(self._buf)
        while pos < end and buf[pos] in (0x0D, 0x0A):
            pos += 1
        self._consume_to(pos)
        return self._pos < len(self._buf)

    def _read_frame(self) -> InterleavedFrame | None:
        if self.buffered < 4:
            return None
        p = self._pos
        channel = self._buf[p + 1]
        length = self._buf[p + 2] << 8 | self._buf[p + 3]
        if self.buffered < 4 + length:
            return None
        data = bytes(self._buf[p + 4 : p + 4 + length])
        self._consume_to(p + 4 + length)
        return InterleavedFrame(channel=channel, data=data)

    def _take_line(self) -> tuple[bytes, int] | None:
        """The next line without its terminator and the bytes it occupied, or None."""
        match = _LINE_END.search(self._buf, self._pos)
        if match is None:
            return None
        end = match.start()
        width = 1
        if self._buf[end] == 0x0D:
            if end + 1 >= len(self._buf):
                return None  # CR at the end of the data: CRLF or bare CR, decide on more bytes
            if self._buf[end + 1] == 0x0A:
                width = 2
        line = bytes(self._buf[self._pos : end])
        used = end + width - self._pos
        self._consume_to(end + width)
        return line, used

    def _read_header_lines(self) -> bool:
        while True:
            taken = self._take_line()
            if taken is None:
                if self.buffered > MAX_LINE_BYTES:
                    what = "start line" if self._start is None else "header line"
                    status = 414 if self._start is None else 413
                    self._fail(f"{what} longer than {MAX_LINE_BYTES} bytes", status)
                    return True
                if self._header_bytes + self.buffered > MAX_HEADER_BYTES:
                    self._fail(f"header block larger than {MAX_HEADER_BYTES} bytes", 413)
                    return True
                return False
            line, used = taken
            self._header_bytes += used
            if len(line) > MAX_LINE_BYTES:
                status = 414 if self._start is None else 413
                self._fail(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}", status)
                return True
            if self._header_bytes > MAX_HEADER_BYTES:
                self._fail(f"header block larger than {MAX_HEADER_BYTES} bytes", 413)
                return True
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(f"{_what(self._start)} of {len(line)} bytes is not UTF-8", 400)
                return True
            if _CONTROL.search(text):
                self._fail(f"control character in {_what(self._start, text)}", 400)
                return True
            if self._start is None:
                self._start = text
                continue
            if not text:
                self._end_of_headers()
                return True
            if not self._add_field(text):
                return True

    def _add_field(self, text: str) -> bool:
        if text[0] in " \t":
            if not self._fields:
                self._fail("continuation line before any header line", 400)
                return False
            name, value = self._fields[-1]
            self._fields[-1] = (name, f"{value} {text.strip()}".strip())
            return True
        name, sep, value = text.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.fullmatch(name):
            self._fail(f"malformed {_what(self._start, text)}", 400)
            return False
        if len(self._fields) >= MAX_HEADERS:
            self._fail(f"more than {MAX_HEADERS} header fields", 413)
            return False
        self._fields.append((name, value.strip()))
        return True

    def _end_of_headers(self) -> None:
        headers = Headers(self._fields)
        self._cseq = parse_cseq_or_none(headers.get("CSeq"))
        lengths = {v.strip() for v in headers.get_all("Content-Length")}
        if len(lengths) > 1:
            self._fail_hard(f"conflicting Content-Length values {sorted(lengths)}", 400)
            return
        length = 0
        if lengths:
            text = lengths.pop()
            if not text.isdigit() or not text.isascii() or len(text) > 12:
                self._fail_hard(f"invalid Content-Length {text[:20]!r}", 400)
                return
            length = int(text)
        if length > MAX_BODY_BYTES:
            error = RtspParseError(
                f"body of {length} bytes exceeds {MAX_BODY_BYTES}", status=413, cseq=self._cseq
            )
            if length > MAX_DISCARD_BYTES:
                self._fail_hard(error.message, 413)
                return
            error.recoverable = True
            self._error = error
            self._skip = length
            self._state = _State.SKIP_BODY
            return
        self._body_length = length
        self._state = _State.BODY

    def _read_body(self) -> RtspMessage | None:
        if self.buffered < self._body_length:
            return None
        body = bytes(self._buf[self._pos : self._pos + self._body_length])
        self._consume_to(self._pos + self._body_length)
        start = self._start or ""
        headers = Headers(self._fields)
        cseq = self._cseq
        self._reset()
        try:
            return _build_message(start, headers, body)
        except RtspParseError as exc:
            # The message is complete, so the next one is still framed correctly.
            exc.cseq = cseq
            exc.recoverable = True
            raise

    # ------------------------------------------------------------------ error recovery
    def _fail(self, message: str, status: int) -> None:
        """Reject the current message: skip to its end, then raise (see module docstring)."""
        self._error = RtspParseError(message, status=status)
        self._state = _State.DISCARD
        self._discarded = 0
        self._mid_line = False
        for name, value in self._fields:
            self._note_field(name, value)

    def _fail_hard(self, message: str, status: int) -> None:
        self._error = RtspParseError(message, status=status, cseq=self._cseq, recoverable=False)
        self._state = _State.FAILED

    def _note_field(self, name: str, value: str) -> None:
        key = name.strip().lower()
        if key == "cseq" and self._cseq is None:
            self._cseq = parse_cseq_or_none(value)
        elif key == "content-length":
            self._content_length = value.strip()

    def _discard_lines(self) -> bool:
        while True:
            taken = self._take_line()
            if taken is None:
                # Drop a partial long line without buffering it, keep a possible trailing CR.
                keep = 1 if self.buffered and self._buf[-1] == 0x0D else 0
                dropped = max(0, self.buffered - max(keep, MAX_LINE_BYTES))
                if dropped:
                    self._consume_to(self._pos + dropped)
                    self._discarded += dropped
                    self._mid_line = True
                # Over budget the state is now FAILED (go on and raise), else wait for bytes.
                return not self._check_discard_budget()
            line, used = taken
            self._discarded += used
            if not self._check_discard_budget():
                return True
            if not line and not self._mid_line:
                self._finish_discard()
                return True
            if line and not self._mid_line and line[0] not in b" \t":
                name, sep, value = line.decode("latin-1").partition(":")
                if sep:
                    self._note_field(name, value)
            self._mid_line = False

    def _check_discard_budget(self) -> bool:
        if self._discarded <= MAX_DISCARD_BYTES:
            return True
        assert self._error is not None
        self._fail_hard(
            f"{self._error.message}; no message end within {MAX_DISCARD_BYTES} bytes",
            self._error.status,
        )
        return False

    def _finish_discard(self) -> None:
        assert self._error is not None
        self._error.cseq = self._cseq
        length = self._content_length
        if length is not None:
            if not length.isdigit() or not length.isascii() or len(length) > 12:
                self._fail_hard(f"{self._error.message}; invalid Content-Length", 400)
                return
            if int(length) > MAX_DISCARD_BYTES:
                self._fail_hard(f"{self._error.message}; body too large to skip", 413)
                return
            self._skip = int(length)
        self._error.recoverable = True
        self._state = _State.SKIP_BODY

    def _skip_body(self) -> bool:
        step = min(self._skip, self.buffered)
        self._consume_to(self._pos + step)
        self._skip -= step
        return self._skip == 0

    # ------------------------------------------------------------------ helpers
    def _reset(self) -> None:
        self._state = _State.IDLE
        self._start = None
        self._fields = []
        self._header_bytes = 0
        self._body_length = 0
        self._error = None
        self._skip = 0
        self._cseq = None
        self._content_length = None

    def _consume_to(self, pos: int) -> None:
        self._pos = pos
        if self._pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT:
            del self._buf[: self._pos]
            self._pos = 0


def _what(start: str | None, text: str = "") -> str:
    """Names the offending line without quoting it: header values may hold credentials."""
    if start is None:
        return "start line"
    name = text.partition(":")[0].strip()
    return f"header {name!r}" if _TOKEN.fullmatch(name) and len(name) <= 40 else "header line"


def _build_message(start: str, headers: Headers, body: bytes) -> RtspMessage:
    if start.startswith("RTSP/"):
        return _build_response(start, headers, body)
    parts = start.split()
    if len(parts) != 3:
        raise RtspParseError(f"malformed request line {redact_url(start[:80])!r}")
    method, uri, version = parts
    if version != RTSP_VERSION:
        if _VERSION.fullmatch(version):
            raise RtspParseError(f"unsupported protocol version {version!r}", status=505)
        raise RtspParseError(f"malformed request line {redact_url(start[:80])!r}")
    if len(method) > MAX_METHOD_CHARS or not _TOKEN.fullmatch(method):
        raise RtspParseError(f"invalid method {method[:40]!r}")
    return RtspRequest(method=method, uri=uri, headers=headers, body=body, version=version)


def _build_response(start: str, headers: Headers, body: bytes) -> RtspResponse:
    match = _STATUS_LINE.fullmatch(start.rstrip())
    if match is None:
        raise RtspParseError(f"malformed status line {start[:80]!r}")
    version, status, reason = match.groups()
    if version != RTSP_VERSION:
        raise RtspParseError(f"unsupported protocol version {version!r}", status=505)
    return RtspResponse(
        status=int(status), reason=reason or "", headers=headers, body=body, version=version
    )
