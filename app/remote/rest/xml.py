"""Tolerant XML for the REST client: hardened parsing, lookups by local name, request documents.

Devices of the PSIA family disagree on namespaces (urn:psialliance-org, Hikvision ver10/ver20,
isapi.org, none at all; HR-15), so every lookup here matches local names only and never looks
at what it does not know (HR-14: unknown elements and `Extensions`). Parsing is the SOAP layer's
hardened parser (no DTDs or entities, bounded bytes, depth and element count).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias
from xml.sax.saxutils import escape

from lxml import etree

from app.protocols.soap.xml import MAX_XML_BYTES, XmlError, parse_xml
from app.remote.rest.errors import ResponseStatus, RestLimitError, RestProtocolError

NS_PSIA = "urn:psialliance-org"
NS_XLINK = "http://www.w3.org/1999/xlink"
#: Largest XML answer read (the parser's own bound; a 200-match search page is ~150 KB).
MAX_XML_RESPONSE_BYTES = MAX_XML_BYTES
#: Longest text read from one leaf (names, IDs, times and URIs are far shorter).
MAX_LEAF_CHARS = 4096
#: Longest text kept from a device's statusString/subStatusCode (it ends up in dialogs).
MAX_STATUS_CHARS = 256

Element: TypeAlias = etree._Element
#: The content of a request document: (leaf, text) or (element, nested fields), in order.
Fields: TypeAlias = "list[tuple[str, str | Fields]]"


def parse(data: bytes, resource: str) -> Element:
    """The root element of an answer to `resource`; RestProtocolError when it is not
    well-formed, safe XML within the limits."""
    if len(data) > MAX_XML_RESPONSE_BYTES:
        raise RestLimitError(
            f"{resource}: answer of {len(data)} bytes exceeds {MAX_XML_RESPONSE_BYTES}"
        )
    try:
        return parse_xml(data)
    except XmlError as exc:
        raise RestProtocolError(f"{resource}: unusable XML answer: {exc.message}") from None


def local(el: Element) -> str:
    tag = el.tag
    return str(etree.QName(tag).localname) if isinstance(tag, str) else ""


def children(el: Element, name: str) -> Iterator[Element]:
    """Direct children called `name` in any namespace."""
    return (c for c in el if isinstance(c.tag, str) and local(c) == name)


def find(el: Element, path: str) -> Element | None:
    """The first element along a `/`-separated path of local names, or None."""
    node: Element | None = el
    for name in path.split("/"):
        if node is None:
            return None
        node = next(children(node, name), None)
    return node


def findtext(el: Element, path: str, default: str = "") -> str:
    """Stripped text at `path` (local names), `default` when absent; a leaf longer than
    MAX_LEAF_CHARS is refused rather than carried into the app."""
    node = find(el, path)
    if node is None:
        return default
    text = (node.text or "").strip()
    if len(text) > MAX_LEAF_CHARS:
        raise RestLimitError(f"<{local(node)}> holds {len(text)} characters (> {MAX_LEAF_CHARS})")
    return text


def findint(el: Element, path: str, default: int | None = None) -> int | None:
    """An integer leaf; `default` when absent or not a number (tolerant input, HR-15)."""
    value = findtext(el, path)
    try:
        return int(value)
    except ValueError:
        return default


def findbool(el: Element, path: str, default: bool = False) -> bool:
    """HR-16 says true/false; TI-era devices send 1/0, so both are read."""
    value = findtext(el, path).lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    return default


def items(root: Element, list_name: str, item_name: str, resource: str) -> list[Element]:
    """Members of a list document, or the root itself when a device sent a lone item (HR-15)."""
    if local(root) == item_name:
        return [root]
    if local(root) != list_name:
        raise RestProtocolError(f"{resource}: answered <{local(root)}>, expected <{list_name}>")
    return list(children(root, item_name))


def expect_root(root: Element, name: str, resource: str) -> Element:
    if local(root) != name:
        raise RestProtocolError(f"{resource}: answered <{local(root)}>, expected <{name}>")
    return root


def response_status(root: Element) -> ResponseStatus | None:
    """The fields of a ResponseStatus document, or None when `root` is something else."""
    if local(root) != "ResponseStatus":
        return None
    code = findint(root, "statusCode", -1)
    return ResponseStatus(
        request_url=findtext(root, "requestURL")[:MAX_STATUS_CHARS],
        status_code=code if code is not None else -1,
        status_string=findtext(root, "statusString")[:MAX_STATUS_CHARS],
        sub_status_code=findtext(root, "subStatusCode")[:MAX_STATUS_CHARS],
    )


def document(root: str, fields: Fields) -> bytes:
    """A PSIA request document with root `root` in urn:psialliance-org around `fields`."""

    def render(entries: Fields) -> str:
        out = []
        for name, value in entries:
            inner = escape(value) if isinstance(value, str) else render(value)
            out.append(f"<{name}>{inner}</{name}>")
        return "".join(out)

    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{root} version="1.0" xmlns="{NS_PSIA}">'
        f"{render(fields)}</{root}>"
    ).encode()
