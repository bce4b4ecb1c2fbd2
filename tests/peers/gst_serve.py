"""The main loop of the GStreamer RTSP peers: serve until the test that started them goes away.

Runs under the system Python with only python3-gi (gst_rtsp_server.py, gst_onvif_server.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, NoReturn

import gi

gi.require_version("GLib", "2.0")
from gi.repository import GLib  # noqa: E402


def serve(server: Any, info: dict[str, object], port: int) -> bool:
    """Attach `server` on 127.0.0.1:`port`, print {"port": bound port, **info} as one JSON line,
    and run until stdin reaches end of file or SIGTERM/SIGINT arrives; False if it cannot
    listen (said on stderr)."""
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        name = os.path.basename(sys.argv[0])
        print(f"{name}: cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return False

    def quit_loop(*_args: object) -> bool:
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_loop)

    def on_stdin(channel: Any, condition: Any) -> bool:
        # Any input is ignored; end of file (the parent went away) or a hangup stops the peer.
        if condition & (GLib.IO_HUP | GLib.IO_ERR) or not os.read(channel.unix_get_fd(), 4096):
            loop.quit()
            return False
        return True

    stdin = GLib.IOChannel.unix_new(sys.stdin.fileno())
    GLib.io_add_watch(
        stdin, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin
    )
    print(json.dumps({"port": server.get_bound_port(), **info}), flush=True)
    loop.run()
    return True


def leave() -> NoReturn:
    """Exit 0 without Python's finalization: it tears down GObject wrappers while GStreamer's
    streaming threads still run, which segfaults now and then (measured: ~1 exit in 25)."""
    sys.stdout.flush()
    os._exit(0)
