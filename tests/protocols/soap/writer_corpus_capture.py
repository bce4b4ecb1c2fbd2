"""pytest plugin that rebuilds writer_corpus.json from the responses the engine's tests produce.

Every (response element, Envelope nsmap, values) a compiled writer is asked for is recorded,
at most MAX_PER_ELEMENT distinct ones per element; values zeep would have to build from value
objects (not JSON-encodable here) are left out, test_writer covers that fallback directly:

    CAPTURE_OUT=tests/protocols/soap/writer_corpus.json PYTHONPATH=tests/protocols/soap \\
        .venv/bin/pytest tests/engine/onvif -p no:randomly -p writer_corpus_capture
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Mapping
from typing import Any

from lxml import etree

from app.protocols.soap import writer

#: Distinct value sets kept per response element (the corpus stays reviewable).
MAX_PER_ELEMENT = 12


class _Opaque(Exception):
    """A value the corpus cannot encode (e.g. a zeep value object)."""


def encode(value: Any) -> Any:
    """A JSON form of a response value that `decode` in test_writer turns back exactly."""
    if value is None or isinstance(value, str) or type(value) is int:
        return value
    if isinstance(value, bool):
        return {"b": value}
    if isinstance(value, float):
        return {"f": repr(value)}
    if type(value) is dict:
        return {"d": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"l": [encode(v) for v in value]}
    if isinstance(value, etree._Element):
        return {"x": etree.tostring(value).decode()}
    raise _Opaque(type(value).__name__)


_seen: dict[str, list[dict[str, Any]]] = {}
_keys: set[str] = set()
_envelope = writer.ResponseWriter.envelope


def _recording_envelope(
    self: writer.ResponseWriter, nsmap: Mapping[str | None, str], values: Mapping[str, Any]
) -> Any:
    element = str(self._body.qname)
    try:
        entry = {
            "element": element,
            "nsmap": {k or "": v for k, v in nsmap.items()},
            "values": encode(dict(values)),
        }
    except _Opaque:
        return _envelope(self, nsmap, values)
    key = json.dumps(entry, sort_keys=True)
    kept = _seen.setdefault(element, [])
    if key not in _keys and len(kept) < MAX_PER_ELEMENT:
        _keys.add(key)
        kept.append(entry)
    return _envelope(self, nsmap, values)


def _dump() -> None:
    with open(os.environ["CAPTURE_OUT"], "w", encoding="utf-8") as out:
        json.dump(_seen, out, sort_keys=True, indent=0)


writer.ResponseWriter.envelope = _recording_envelope  # type: ignore[method-assign]
atexit.register(_dump)
