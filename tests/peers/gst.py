"""Start and stop the gst-rtsp-server peer (gst_rtsp_server.py) from tests; the pytest fixture.

Use it from a conftest.py:

    from tests.peers.gst import gst_rtsp_peer  # noqa: F401  (the fixture)

    @pytest.mark.interop
    async def test_x(gst_rtsp_peer: str) -> None:
        url = f"{gst_rtsp_peer}/h264"

A missing Debian Python, python3-gi or GStreamer plugin makes the fixture FAIL (never skip) with
the command that installs them. Tests that kill and restart the peer use GstRtspPeer directly.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
#: The Debian interpreter that has python3-gi; CUSTOS_SYSTEM_PYTHON overrides it.
SYSTEM_PYTHON = os.environ.get("CUSTOS_SYSTEM_PYTHON", "/usr/bin/python3")
#: Credentials of the peer's /protected mount in the shared fixture.
PEER_USER = "custos"
PEER_PASSWORD = "peer-secret-7f3a"
#: Seconds to wait for the peer to report its port (GStreamer's first start scans plugins).
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
INSTALL_HINT = (
    "install the interop peers with `bash packaging/setup.sh --dev` (Debian packages python3-gi,"
    " gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-libav)"
)
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in {elements!r} if Gst.ElementFactory.find(e) is None];"
    "print(' '.join(missing))"
)
REQUIRED_ELEMENTS = (
    "videotestsrc",
    "audiotestsrc",
    "x264enc",
    "x265enc",
    "jpegenc",
    "rtph264pay",
    "rtph265pay",
    "rtpjpegpay",
    "mulawenc",
    "rtppcmupay",
)


class PeerUnavailable(Exception):
    """The peer cannot run on this machine; the message says what to install."""


def check_peer_runtime() -> None:
    """Raise PeerUnavailable naming what is missing (interpreter, GI typelibs, plugins)."""
    if not Path(SYSTEM_PYTHON).exists():
        raise PeerUnavailable(f"{SYSTEM_PYTHON} (Debian python3) is missing; {INSTALL_HINT}")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", _PROBE.format(elements=REQUIRED_ELEMENTS)],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerUnavailable(f"GStreamer RTSP bindings are missing ({last}); {INSTALL_HINT}")
    if probe.stdout.strip():
        raise PeerUnavailable(f"GStreamer elements missing: {probe.stdout.strip()}; {INSTALL_HINT}")


def require_peer_runtime() -> None:
    """check_peer_runtime for a test: a missing peer fails it (never skips) with the hint."""
    try:
        check_peer_runtime()
    except PeerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


class GstRtspPeer:
    """One gst-rtsp-server process on 127.0.0.1; `start` again after `kill` reuses the port."""

    def __init__(self, *, auth: tuple[str, str] | None = None, auth_method: str = "digest") -> None:
        self.auth = auth
        self.auth_method = auth_method
        self.port = 0
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        #: Exit status of the last process (None while running or before the first start).
        self.returncode: int | None = None

    @property
    def base_url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}"

    def url(self, mount: str, *, credentials: tuple[str, str] | None = None) -> str:
        if credentials is None:
            return f"{self.base_url}{mount}"
        user, password = credentials
        return f"rtsp://{user}:{password}@127.0.0.1:{self.port}{mount}"

    def start(self) -> int:
        """Start the process (on the previous port after a kill) and wait until it listens."""
        if self._process is not None:
            raise RuntimeError("peer already running")
        argv = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port)]
        if self.auth is not None:
            argv += ["--auth", f"{self.auth[0]}:{self.auth[1]}", "--auth-method", self.auth_method]
        # Kept open for the life of the process (closed in _reap), so no context manager.
        log_dir = os.environ.get("CUSTOS_PEER_LOG_DIR")
        if log_dir:
            name = f"gst-peer-{os.getpid()}-{time.monotonic_ns()}.log"
            self._stderr = open(Path(log_dir) / name, "w+b")  # noqa: SIM115
        else:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        line = self._read_line(STARTUP_TIMEOUT_S)
        try:
            self.info = json.loads(line)
            self.port = int(self.info["port"])
        except (ValueError, KeyError, TypeError):
            detail = self._stderr_tail()
            self.stop()
            raise RuntimeError(f"gst peer did not report its port: {line!r}; {detail}") from None
        return self.port

    def _read_line(self, timeout: float) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    break
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
        return buffer.split(b"\n", 1)[0]

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL: the peer vanishes without closing anything, like a camera losing power."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._reap()

    def died(self) -> str | None:
        """Why the peer is gone although nobody stopped it (exit status, stderr), else None."""
        if self._process is None or self._process.poll() is None:
            return None
        return f"exit status {self._process.returncode}; stderr: {self._stderr_tail()}"

    def stop(self) -> None:
        """Close stdin (the peer exits), SIGKILL if it does not within STOP_TIMEOUT_S."""
        if self._process is None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reap()

    def terminate(self) -> None:
        """SIGTERM: the peer shuts down cleanly."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._reap()

    def _reap(self) -> None:
        assert self._process is not None
        self.returncode = self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._process = None
        self._stderr = None

    def __enter__(self) -> GstRtspPeer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def started_peer(**kwargs: Any) -> GstRtspPeer:
    """A running peer, or pytest.fail with the install hint when it cannot run here."""
    require_peer_runtime()
    peer = GstRtspPeer(**kwargs)
    peer.start()
    return peer


@pytest.fixture(scope="session")
def gst_rtsp_peer() -> Iterator[str]:
    """Base URL (rtsp://127.0.0.1:PORT) of a shared peer; /protected takes PEER_USER/PASSWORD."""
    peer = started_peer(auth=(PEER_USER, PEER_PASSWORD))
    try:
        yield peer.base_url
        death = peer.died()
        if death is not None:
            pytest.fail(f"the gst peer died during the tests: {death}", pytrace=False)
    finally:
        peer.stop()
