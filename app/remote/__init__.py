"""Clients of recorders and cameras: how the desktop app reaches the engine and remote NVRs."""
