"""SOAP 1.2 on the wire, sans-IO: hardened XML parsing, envelopes, faults, WS-Security tokens."""
