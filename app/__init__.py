"""Custos: forensic video playback and an ONVIF Profile G recorder engine."""

__version__ = "0.1.0"
