"""ONVIF on the wire, sans-IO: the official WSDLs (package data), offline loading, dialects."""
