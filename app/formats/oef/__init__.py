"""ONVIF export file format: the file-level `meta` box, signing instances and the verifier."""
