"""The control connection's receive path: framing across chunks, limits, any bytes → PeerError."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import PeerError
from app.engine.ingest.connection import MAX_RESPONSE_HEAD_BYTES, IngestConnection
from app.engine.ingest.url import parse_source_url

RESPONSE = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc"


class FakeTransport:
    def __init__(self) -> None:
        self.closed = False
        self.written = b""

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: bytes) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def connect() -> tuple[IngestConnection, FakeTransport, list[tuple[int, bytes]]]:
    frames: list[tuple[int, bytes]] = []
    source = parse_source_url("rtsp://user:pw@127.0.0.1:1/x")
    conn = IngestConnection(source, timeout=1, on_interleaved=lambda c, d: frames.append((c, d)))
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport, frames


async def test_messages_split_across_chunks_are_reassembled() -> None:
    conn, transport, frames = connect()
    waiter = asyncio.get_running_loop().create_future()
    conn.active_requests[1] = waiter
    stream = b"$\x01\x00\x04abcd" + RESPONSE + b"$\x00\x00\x02xy"
    for i in range(len(stream)):
        conn.data_received(stream[i : i + 1])
    assert (waiter.result().status, waiter.result().data) == (200, b"abc")
    assert frames == [(1, b"abcd"), (0, b"xy")]
    assert not transport.closed and not conn.closed.done()
    conn.data_received(RESPONSE)  # a second answer to the same request is ignored
    assert not conn.closed.done()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"SIP/2.0 200 OK\r\n\r\n", "malformed RTSP data from the camera"),
        (b"RTSP/1.0 abc OK\r\n\r\n", "ValueError"),
        (b"RTSP/1.0 200 OK\r\nX: \xff\xfe\r\n\r\n", "UnicodeDecodeError"),
        (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999\r\n\r\n" + b"x" * 70_000, "size"),
        (b"RTSP/1.0 200 OK\r\nX: " + b"y" * MAX_RESPONSE_HEAD_BYTES, "response head"),
    ],
)
async def test_malformed_data_closes_with_a_peer_error(data: bytes, message: str) -> None:
    conn, transport, _ = connect()
    conn.data_received(data)
    assert transport.closed
    error = conn.closed.exception()
    assert isinstance(error, PeerError) and message in error.message


async def test_pending_requests_fail_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    conn, _, _ = connect()
    waiter: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    conn.active_requests[1] = waiter
    with caplog.at_level(logging.DEBUG):
        conn.data_received(b"\x00garbage that is not RTSP at all")
        conn.connection_lost(None)
    assert isinstance(waiter.exception(), PeerError)
    assert "Traceback" not in caplog.text


@settings(max_examples=1000)
@given(st.lists(st.binary(max_size=300), max_size=8), st.binary(max_size=40))
async def test_any_bytes_are_framed_or_refused_with_peer_error(
    chunks: list[bytes], prefix: bytes
) -> None:
    conn, transport, frames = connect()
    for chunk in [prefix + RESPONSE[:10], *chunks]:
        conn.data_received(chunk)
    if conn.closed.done():
        assert transport.closed and isinstance(conn.closed.exception(), PeerError)
    assert all(0 <= channel <= 255 and len(data) <= 0xFFFF for channel, data in frames)
