"""Hardened XML parsing for untrusted SOAP bodies: no DTDs, no entities, bounded size and depth.

lxml with `resolve_entities=False` still builds entity declarations, so any document with a
DOCTYPE is refused outright (billion-laughs and external-entity attacks need one). Limits are
checked before parsing (bytes) and after (depth, element count) on a tree that is already bounded.
"""

from __future__ import annotations

import threading

from lxml import etree

from app.core.errors import ProtocolError

#: Largest SOAP message accepted (the HTTP layer refuses bigger bodies before reading them).
MAX_XML_BYTES = 1024 * 1024
#: Deepest element nesting accepted (ONVIF messages need about 12).
MAX_XML_DEPTH = 64
#: Most elements in one message (a 1000-result search response has about 30,000).
MAX_XML_ELEMENTS = 200_000


class XmlError(ProtocolError):
    """The bytes are not a well-formed, acceptable XML document (SOAP fault ter:WellFormed)."""


#: One parser per thread (lxml parsers are not thread-safe): a fresh one per document cost a
#: third of the parse of a typical 400-byte request.
_PARSERS = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def parse_xml(data: bytes) -> etree._Element:
    """The root element of `data`; XmlError for anything malformed, hostile or over a limit."""
    if len(data) > MAX_XML_BYTES:
        raise XmlError(f"XML document of {len(data)} bytes exceeds {MAX_XML_BYTES}")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError("XML documents with a DOCTYPE or entity declarations are refused")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"malformed XML: {exc.msg}") from None
    except ValueError as exc:  # e.g. a str with an encoding declaration
        raise XmlError(f"malformed XML: {exc}") from None
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise XmlError("XML documents with a DOCTYPE are refused")
    _check_shape(root)
    return root


def _check_shape(root: etree._Element) -> None:
    count = 0
    for element in root.iter():
        count += 1
        if count > MAX_XML_ELEMENTS:
            raise XmlError(f"XML document has more than {MAX_XML_ELEMENTS} elements")
        if not isinstance(element.tag, str):
            raise XmlError("XML entity references are refused")
    # Nesting never exceeds the element count: only bigger documents need the depth walk.
    if count <= MAX_XML_DEPTH:
        return
    # An explicit stack, no recursion on hostile input.
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_XML_DEPTH:
            raise XmlError(f"XML elements nested deeper than {MAX_XML_DEPTH}")
        stack.extend((child, depth + 1) for child in element)
