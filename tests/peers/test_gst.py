"""The gst-rtsp-server peer: clear failure when it cannot run, clean exit, same-port restart."""

from __future__ import annotations

import socket
import sys

import pytest

from tests.peers import gst
from tests.peers.gst import GstRtspPeer, PeerUnavailable, check_peer_runtime, started_peer


def test_missing_interpreter_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gst, "SYSTEM_PYTHON", "/nonexistent/python3")
    with pytest.raises(PeerUnavailable, match=r"packaging/setup\.sh --dev") as info:
        check_peer_runtime()
    assert "/nonexistent/python3" in str(info.value)


def test_missing_gi_bindings_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's own interpreter has no python3-gi: exactly the situation to report.
    monkeypatch.setattr(gst, "SYSTEM_PYTHON", sys.executable)
    with pytest.raises(PeerUnavailable, match=r"No module named 'gi'.*gir1\.2-gst-rtsp-server"):
        check_peer_runtime()


def _describe(port: int, mount: str) -> bytes:
    """One DESCRIBE over a plain socket: the head and the SDP body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"DESCRIBE rtsp://127.0.0.1:{port}{mount} RTSP/1.0\r\nCSeq: 1\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += sock.recv(65536)
        return head + b"\r\n\r\n" + body


@pytest.mark.interop
def test_peer_serves_its_mounts_and_restarts_on_the_same_port() -> None:
    peer = started_peer(auth=("user", "pw"))
    try:
        port = peer.port
        assert peer.info["mounts"] == ["/h264", "/h265", "/mjpeg", "/protected"]
        h264 = _describe(port, "/h264")
        assert b"RTSP/1.0 200 OK" in h264 and b"H264/90000" in h264
        audio = "MPEG4-GENERIC" if peer.info["audio"] == "AAC" else "PCMU"
        assert f"{audio}/".encode() in h264
        assert b"RTSP/1.0 401" in _describe(port, "/protected")
        peer.kill()
        assert peer.returncode == -9
        peer.start()
        assert peer.port == port
        assert b"JPEG/90000" in _describe(port, "/mjpeg")
        peer.terminate()
        assert peer.returncode == 0
        peer.start()
    finally:
        peer.stop()
    assert peer.returncode == 0  # closing stdin ends it cleanly too


def test_peer_object_without_process_is_inert() -> None:
    peer = GstRtspPeer()
    peer.stop()
    peer.kill()
    assert peer.returncode is None and peer.base_url == "rtsp://127.0.0.1:0"
