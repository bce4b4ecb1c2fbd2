"""The ONVIF client: how the desktop app reaches the embedded engine and every remote recorder."""
