"""The incremental RTSP parser: real transcripts, any chunking, limits, errors and recovery."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.rtsp import parser as parser_module
from app.protocols.rtsp.message import (
    InterleavedFrame,
    RtspMessage,
    RtspParseError,
    RtspRequest,
    RtspResponse,
)
from app.protocols.rtsp.parser import (
    MAX_BODY_BYTES,
    MAX_DISCARD_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    RtspParser,
)
from tests.protocols.rtsp.transcripts import SDP_AXIS, TRANSCRIPTS


def parse_all(chunks: list[bytes]) -> list[RtspMessage]:
    parser = RtspParser()
    events: list[RtspMessage] = []
    for chunk in chunks:
        parser.feed(chunk)
        while (event := parser.next_event()) is not None:
            events.append(event)
    assert parser.buffered == 0
    return events


def summary(event: RtspMessage) -> tuple[str, object, object]:
    if isinstance(event, RtspRequest):
        return ("req", event.method, event.uri)
    if isinstance(event, RtspResponse):
        return ("resp", event.status, event.reason)
    return ("frame", event.channel, len(event.data))


def errors_of(data: bytes) -> tuple[list[RtspMessage], list[RtspParseError]]:
    """Parse, collecting recoverable errors; stops at the first unrecoverable one."""
    parser = RtspParser()
    parser.feed(data)
    events: list[RtspMessage] = []
    errors: list[RtspParseError] = []
    while True:
        try:
            event = parser.next_event()
        except RtspParseError as exc:
            errors.append(exc)
            if not exc.recoverable:
                return events, errors
            continue
        if event is None:
            return events, errors
        events.append(event)


@pytest.mark.parametrize(("name", "data", "expected"), TRANSCRIPTS, ids=[t[0] for t in TRANSCRIPTS])
def test_transcripts_parse_whole_and_byte_by_byte(
    name: str, data: bytes, expected: list[tuple[str, object, object]]
) -> None:
    whole = parse_all([data])
    assert [summary(e) for e in whole] == expected
    bytewise = parse_all([data[i : i + 1] for i in range(len(data))])
    assert bytewise == whole


@settings(max_examples=200)
@given(data=st.data())
def test_any_chunking_gives_the_same_events(data: st.DataObject) -> None:
    _, raw, _ = data.draw(st.sampled_from(TRANSCRIPTS))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert parse_all(chunks) == parse_all([raw])


def test_request_fields_and_body() -> None:
    events = parse_all([TRANSCRIPTS[2][1]])
    setup, set_parameter = events[1], events[2]
    assert isinstance(setup, RtspRequest) and isinstance(set_parameter, RtspRequest)
    assert setup.cseq == 4
    assert setup.headers.get("transport") == "RTP/AVP;unicast;client_port=54086-54087"
    assert set_parameter.body == b"barparam: "
    assert set_parameter.headers.get("Content-Type") == "text/parameters"


def test_folded_header_and_lower_case_cseq_name() -> None:
    events = parse_all([TRANSCRIPTS[3][1]])
    setup = events[1]
    assert isinstance(setup, RtspRequest)
    assert setup.cseq == 2  # written "Cseq" in the ONVIF text
    assert setup.headers.get("Transport") == 'RTP/AVP;unicast;client_port=8002-8003; mode="PLAY"'


def test_response_with_sdp_body_and_repeated_headers() -> None:
    events = parse_all([TRANSCRIPTS[5][1]])
    challenge, describe = events[0], events[1]
    assert isinstance(challenge, RtspResponse) and isinstance(describe, RtspResponse)
    assert len(challenge.headers.get_all("WWW-Authenticate")) == 2
    assert describe.body == SDP_AXIS
    frame = events[4]
    assert frame == InterleavedFrame(0, bytes.fromhex("806004d20034a49c11223344"))


def test_blank_lines_between_messages_are_skipped() -> None:
    data = (
        b"\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n\r\n\nOPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n"
    )
    assert [e.cseq for e in parse_all([data]) if isinstance(e, RtspRequest)] == [1, 2]


def test_cr_at_end_of_buffer_waits_for_the_next_byte() -> None:
    parser = RtspParser()
    parser.feed(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r")
    assert parser.next_event() is None
    parser.feed(b"\n")
    event = parser.next_event()
    assert isinstance(event, RtspRequest) and event.cseq == 1


def test_interleaved_frames_of_every_size() -> None:
    sizes = [0, 1, 1500, 65535]
    data = b"".join(b"$" + bytes([n % 256]) + n.to_bytes(2, "big") + b"x" * n for n in sizes)
    events = parse_all([data[i : i + 1000] for i in range(0, len(data), 1000)])
    assert [(e.channel, len(e.data)) for e in events if isinstance(e, InterleavedFrame)] == [
        (n % 256, n) for n in sizes
    ]


def test_long_header_line_is_413_and_the_next_request_still_parses() -> None:
    bad = b"OPTIONS * RTSP/1.0\r\nCSeq: 7\r\nX-Long: " + b"a" * (MAX_LINE_BYTES + 10) + b"\r\n\r\n"
    good = b"OPTIONS * RTSP/1.0\r\nCSeq: 8\r\n\r\n"
    events, errors = errors_of(bad + good)
    assert [(e.status, e.cseq, e.recoverable) for e in errors] == [(413, 7, True)]
    assert [e.cseq for e in events if isinstance(e, RtspRequest)] == [8]


def test_long_request_line_is_414() -> None:
    bad = b"DESCRIBE rtsp://h/" + b"p" * MAX_LINE_BYTES + b" RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    events, errors = errors_of(bad + b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n")
    assert [(e.status, e.cseq) for e in errors] == [(414, 3)]
    assert len(events) == 1


def test_too_many_headers_is_413_with_a_late_cseq() -> None:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    bad = b"OPTIONS * RTSP/1.0\r\n" + lines + b"CSeq: 9\r\n\r\n"
    events, errors = errors_of(bad + b"OPTIONS * RTSP/1.0\r\nCSeq: 10\r\n\r\n")
    assert [(e.status, e.cseq, e.recoverable) for e in errors] == [(413, 9, True)]
    assert [e.cseq for e in events if isinstance(e, RtspRequest)] == [10]


def test_header_block_over_the_byte_limit_is_413() -> None:
    line = b"X-Fill: " + b"f" * 1000 + b"\r\n"
    count = MAX_HEADER_BYTES // len(line) + 1
    assert count < MAX_HEADERS
    bad = b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n" + line * count + b"\r\n"
    _, errors = errors_of(bad)
    assert [(e.status, e.cseq) for e in errors] == [(413, 2)]


def test_body_over_the_limit_is_skipped() -> None:
    size = MAX_BODY_BYTES + 1
    bad = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: %d\r\n\r\n" % size
    good = b"OPTIONS * RTSP/1.0\r\nCSeq: 6\r\n\r\n"
    events, errors = errors_of(bad + b"b" * size + good)
    assert [(e.status, e.cseq, e.recoverable) for e in errors] == [(413, 5, True)]
    assert [e.cseq for e in events if isinstance(e, RtspRequest)] == [6]


def test_body_too_large_to_skip_loses_framing_for_good() -> None:
    bad = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: %d\r\n\r\n" % (
        MAX_DISCARD_BYTES + 1
    )
    parser = RtspParser()
    parser.feed(bad)
    for _ in range(2):
        with pytest.raises(RtspParseError) as info:
            parser.next_event()
        assert (info.value.status, info.value.cseq, info.value.recoverable) == (413, 5, False)


@pytest.mark.parametrize(
    ("data", "status", "recoverable"),
    [
        (b"PLAY rtsp://h/a RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505, True),
        (b"GET / HTTP/1.1\r\nHost: h\r\nCSeq: 1\r\n\r\n", 505, True),
        (b"PLAY rtsp://h/a\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"PL\x01AY rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"PLAY rtsp://h/a RTSP/1.0\r\nno colon here\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"PLAY rtsp://h/a RTSP/1.0\r\n folded first\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"PLAY rtsp://h/a RTSP/1.0\r\nX: \xff\xfe\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"RTSP/1.0 abc OK\r\nCSeq: 1\r\n\r\n", 400, True),
        (b"RTSP/2.0 200 OK\r\nCSeq: 1\r\n\r\n", 505, True),
        (b"SETUP * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -4\r\n\r\n", 400, False),
        (
            b"SETUP * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            False,
        ),
    ],
)
def test_malformed_messages(data: bytes, status: int, recoverable: bool) -> None:
    events, errors = errors_of(data + b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n")
    assert [(e.status, e.recoverable) for e in errors] == [(status, recoverable)]
    assert errors[0].cseq == 1
    assert len(events) == (1 if recoverable else 0)


def test_endless_garbage_is_unrecoverable_and_bounded_in_memory() -> None:
    parser = RtspParser()
    chunk = b"\x00garbage without a line end " * 1000
    fed = 0
    with pytest.raises(RtspParseError) as info:
        while True:
            parser.feed(chunk)
            fed += len(chunk)
            assert parser.buffered <= MAX_LINE_BYTES + len(chunk)
            assert parser.next_event() is None
    assert not info.value.recoverable
    assert MAX_DISCARD_BYTES < fed <= MAX_DISCARD_BYTES + 2 * len(chunk) + MAX_LINE_BYTES


def test_limits_are_named_module_constants() -> None:
    assert parser_module.MAX_HEADER_BYTES == 16 * 1024
    assert parser_module.MAX_HEADERS == 64
    assert parser_module.MAX_BODY_BYTES == 64 * 1024
