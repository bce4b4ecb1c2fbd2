"""Fixtures of the ingest tests: the shared gst-rtsp-server peer."""

from __future__ import annotations

from tests.peers.gst import gst_rtsp_peer

__all__ = ["gst_rtsp_peer"]
