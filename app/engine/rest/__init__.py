"""IEC 62676-2-2 (PSIA service model) HTTP/REST device API beside ONVIF: /PSIA/… on aiohttp."""

from __future__ import annotations

from app.engine.rest.api import MAX_BODY_BYTES, RestApi
from app.engine.rest.registry import Access, Method, Node, RestRequest, RestResponse
from app.engine.rest.status import Status, StatusCode

__all__ = [
    "MAX_BODY_BYTES",
    "Access",
    "Method",
    "Node",
    "RestApi",
    "RestRequest",
    "RestResponse",
    "Status",
    "StatusCode",
]
