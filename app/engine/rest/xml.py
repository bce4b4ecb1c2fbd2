"""PSIA XML: urn:psialliance-org documents out, tolerant local-name reading in (HR-13..15).

Input goes through the hardened SOAP parser (no DTDs, bounded size/depth/count). Readers match
local names only, so `urn:psialliance-org`, the Hikvision/ISAPI namespaces and no namespace all
read the same; unknown elements (and `Extensions`) are simply never looked at.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from app.core.errors import ProtocolError
from app.protocols.soap.xml import XmlError, parse_xml

PSIA_NS = "urn:psialliance-org"
XLINK_NS = "http://www.w3.org/1999/xlink"
CONTENT_TYPE = 'application/xml; charset="UTF-8"'
#: HR-15: namespaces a request root may carry ("" = none).
ACCEPTED_NAMESPACES = frozenset(
    {
        "",
        PSIA_NS,
        "http://www.psialliance.org/",
        "http://www.hikvision.com/ver10/XMLSchema",
        "http://www.hikvision.com/ver20/XMLSchema",
        "http://www.isapi.org/ver20/XMLSchema",
        "http://www.std-cgi.com/ver10/XMLSchema",
        "http://www.std-cgi.com/ver20/XMLSchema",
    }
)
#: Longest text value read from a leaf (names, times, IDs are all far shorter).
MAX_LEAF_CHARS = 4096


class BodyFormatError(ProtocolError):
    """The body is not well-formed, acceptable XML (statusCode 5)."""


class BodyContentError(ProtocolError):
    """Well-formed XML with the wrong root, namespace or values (statusCode 6)."""


def new_root(name: str, *, xlink: bool = False) -> etree._Element:
    """A document root `<name version="1.0" xmlns="urn:psialliance-org">`."""
    nsmap: dict[str | None, str] = {None: PSIA_NS}
    if xlink:
        nsmap["xlink"] = XLINK_NS
    root = etree.Element(f"{{{PSIA_NS}}}{name}", nsmap=nsmap)
    root.set("version", "1.0")
    return root


def child(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{PSIA_NS}}}{name}")


def text_child(parent: etree._Element, name: str, value: str | int | bool) -> etree._Element:
    """A leaf; booleans are `true`/`false` (HR-16)."""
    element = child(parent, name)
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
    return element


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def local_name(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


class Doc:
    """Read access by local name to one element of a request document."""

    def __init__(self, element: etree._Element) -> None:
        self.element = element

    @property
    def name(self) -> str:
        return local_name(self.element)

    def children(self, name: str) -> Iterator[Doc]:
        for element in self.element:
            if isinstance(element.tag, str) and local_name(element) == name:
                yield Doc(element)

    def child(self, *names: str) -> Doc | None:
        """The first child named any of `names` (spelling variants), or None."""
        for element in self.element:
            if isinstance(element.tag, str) and local_name(element) in names:
                return Doc(element)
        return None

    def text(self, *names: str) -> str | None:
        """Stripped text of the first child named any of `names`; None if absent."""
        found = self.child(*names)
        return None if found is None else found.value()

    def value(self) -> str:
        text = (self.element.text or "").strip()
        if len(text) > MAX_LEAF_CHARS:
            raise BodyContentError(f"<{self.name}> holds {len(text)} characters")
        return text

    def boolean(self, *names: str) -> bool | None:
        text = self.text(*names)
        if text is None:
            return None
        lowered = text.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BodyContentError(f"<{names[0]}> must be true or false, not {text[:40]!r}")

    def integer(self, *names: str) -> int | None:
        text = self.text(*names)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise BodyContentError(f"<{names[0]}> must be an integer, not {text[:40]!r}") from None


def parse_body(data: bytes, roots: tuple[str, ...]) -> Doc:
    """The request document, whose root must be one of `roots` (local name) in an accepted
    namespace; BodyFormatError (malformed) or BodyContentError (wrong root/namespace)."""
    if not data.strip():
        raise BodyFormatError(f"an XML body is required (expected <{roots[0]}>)")
    try:
        root = parse_xml(data)
    except XmlError as exc:
        raise BodyFormatError(exc.message) from None
    qname = etree.QName(root)
    if qname.localname not in roots:
        raise BodyContentError(f"expected <{'> or <'.join(roots)}>, got <{qname.localname[:60]}>")
    namespace = qname.namespace or ""
    if namespace not in ACCEPTED_NAMESPACES and not namespace.startswith("urn:psialliance-org"):
        raise BodyContentError(f"unexpected XML namespace {namespace[:100]!r}")
    return Doc(root)
