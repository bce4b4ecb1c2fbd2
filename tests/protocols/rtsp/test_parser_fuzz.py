"""Property tests of the RTSP parser with random and mutated input.

Whatever bytes arrive, the parser raises only RtspParseError, stays bounded, and a failed
parser keeps failing; valid messages survive an encode → parse round trip.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.rtsp.message import (
    Headers,
    RtspParseError,
    RtspRequest,
    RtspResponse,
    encode_request,
    encode_response,
)
from app.protocols.rtsp.parser import MAX_DISCARD_BYTES, MAX_LINE_BYTES, RtspParser
from tests.protocols.rtsp.transcripts import TRANSCRIPTS

_SEEDS = [raw for _, raw, _ in TRANSCRIPTS]
_INTERESTING = [
    b"\r\n",
    b"\n",
    b"\r",
    b"$",
    b":",
    b" ",
    b"\r\n\r\n",
    b"Content-Length: 99\r\n",
    b"RTSP/1.0",
    b"\x00",
    b"\xff",
    b"$\x01\xff\xff",
    b"CSeq: 1\r\n",
    b"\t",
]


def drive(chunks: list[bytes]) -> None:
    """Feed the chunks; only RtspParseError may escape, and only consistently."""
    parser = RtspParser()
    failed: RtspParseError | None = None
    for chunk in chunks:
        parser.feed(chunk)
        for _ in range(10_000):
            try:
                event = parser.next_event()
            except RtspParseError as exc:
                assert 400 <= exc.status <= 599
                if exc.recoverable:
                    continue
                failed = exc
                break
            if event is None:
                break
        else:
            raise AssertionError("parser made no progress")
        if failed is not None:
            break
        # Bounded memory: a partial message never holds more than the limits allow.
        assert parser.buffered <= MAX_DISCARD_BYTES + 65_540 + sum(len(c) for c in chunks)
    if failed is not None:
        try:
            parser.next_event()
        except RtspParseError as again:
            assert again is failed
        else:
            raise AssertionError("a parser that lost framing recovered silently")


@settings(max_examples=10_000)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_raise_only_parse_errors(chunks: list[bytes]) -> None:
    drive(chunks)


@st.composite
def mutated(draw: st.DrawFn) -> list[bytes]:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 9))
        if action < 3 and data:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif action < 6:
            data[pos:pos] = draw(st.sampled_from(_INTERESTING))
        elif action < 8 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action < 9:
            data[pos:pos] = draw(st.binary(max_size=40))
        else:
            data[pos:pos] = b"X" * (MAX_LINE_BYTES + 1)  # one over the line limit
    cut = draw(st.integers(0, len(data)))
    return [bytes(data[:cut]), bytes(data[cut:])]


@settings(max_examples=10_000)
@given(mutated())
def test_mutated_transcripts_raise_only_parse_errors(chunks: list[bytes]) -> None:
    drive(chunks)


_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", min_size=1, max_size=16)
_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60
).map(str.strip)
_headers = st.lists(st.tuples(_token, _value), max_size=10)


@settings(max_examples=1_000)
@given(
    method=_token,
    uri=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:/.?=&%-", min_size=1),
    headers=_headers,
    body=st.binary(max_size=300),
)
def test_request_round_trip(
    method: str, uri: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    request = RtspRequest(method, uri, Headers([("CSeq", "1"), *headers]), body)
    parser = RtspParser()
    parser.feed(encode_request(request))
    parsed = parser.next_event()
    assert isinstance(parsed, RtspRequest)
    assert (parsed.method, parsed.uri, parsed.body) == (method, uri, body)
    sent = [(n, v) for n, v in request.headers if n.lower() != "content-length"]
    got = [(n, v) for n, v in parsed.headers if n.lower() != "content-length"]
    assert got == sent


@settings(max_examples=1_000)
@given(status=st.integers(100, 999), headers=_headers, body=st.binary(max_size=300))
def test_response_round_trip(status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    response = RtspResponse(status, "Some Reason", Headers(headers), body)
    parser = RtspParser()
    parser.feed(encode_response(response))
    parsed = parser.next_event()
    assert isinstance(parsed, RtspResponse)
    assert (parsed.status, parsed.reason, parsed.body) == (status, "Some Reason", body)
