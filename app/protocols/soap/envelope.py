"""SOAP 1.2 envelopes: split a request into header blocks and the body payload; build replies."""

from __future__ import annotations

import dataclasses

from lxml import etree

from app.protocols.soap.fault import SoapFault
from app.protocols.soap.xml import XmlError, parse_xml

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_WSA_2004 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"

#: Header namespaces this server understands (PF-14): mustUnderstand on these is fine.
UNDERSTOOD_HEADER_NAMESPACES = frozenset({NS_WSSE, NS_WSA, NS_WSA_2004})

CONTENT_TYPE = "application/soap+xml; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A parsed SOAP 1.2 request: the whole document, its header blocks and the body payload."""

    root: etree._Element
    headers: tuple[etree._Element, ...]
    payload: etree._Element

    @property
    def operation(self) -> str:
        """'{namespace}LocalName' of the body payload: what dispatch keys on (GEN-02)."""
        return str(self.payload.tag)

    def header(self, namespace: str, local: str) -> etree._Element | None:
        for block in self.headers:
            if block.tag == f"{{{namespace}}}{local}":
                return block
        return None


def parse_envelope(data: bytes) -> Envelope:
    """Parse a request; SoapFault (WellFormed, VersionMismatch, MustUnderstand) if unusable."""
    root = _parse(data)
    if root.tag == f"{{{NS_SOAP11}}}Envelope":
        raise SoapFault.version_mismatch("SOAP 1.1 envelopes are not supported; use SOAP 1.2")
    if root.tag != f"{{{NS_SOAP12}}}Envelope":
        raise SoapFault.sender(
            "WellFormed", reason=f"root element {root.tag} is not a SOAP Envelope"
        )
    header = root.find(f"{{{NS_SOAP12}}}Header")
    body = root.find(f"{{{NS_SOAP12}}}Body")
    if body is None:
        raise SoapFault.sender("WellFormed", reason="SOAP envelope without a Body")
    blocks = tuple(header) if header is not None else ()
    for block in blocks:
        must = block.get(f"{{{NS_SOAP12}}}mustUnderstand", "false").strip()
        namespace = etree.QName(block).namespace or ""
        if must in ("1", "true") and namespace not in UNDERSTOOD_HEADER_NAMESPACES:
            raise SoapFault.must_understand(str(block.tag))
    payload = [child for child in body if isinstance(child.tag, str)]
    if len(payload) != 1:
        raise SoapFault.sender(
            "WellFormed", reason=f"SOAP Body must hold exactly one element, found {len(payload)}"
        )
    return Envelope(root, blocks, payload[0])


def _parse(data: bytes) -> etree._Element:
    try:
        return parse_xml(data)
    except XmlError as exc:
        raise SoapFault.sender("WellFormed", reason=exc.message) from None


def body_element(envelope: etree._Element) -> etree._Element:
    """The first child of Body of a serialized envelope (for clients and tests)."""
    body = envelope.find(f"{{{NS_SOAP12}}}Body")
    if body is None or len(body) == 0:
        raise SoapFault.sender("WellFormed", reason="SOAP envelope without a Body payload")
    return body[0]
