"""The engine as an ONVIF Profile G device: SOAP endpoint, security and the services."""
