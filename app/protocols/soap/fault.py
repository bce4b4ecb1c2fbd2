"""SOAP 1.2 faults with ONVIF subcodes (spec 0.4): the exception the edge raises and its XML.

`SoapFault.sender("InvalidArgVal", "NoRecording", reason=...)` is `env:Sender / ter:InvalidArgVal /
ter:NoRecording`. Subcodes are QNames in the ONVIF error namespace; the prefix `ter` is declared on
the Envelope so every value resolves. HTTP status: 400 for Sender faults, 500 for the others.
"""

from __future__ import annotations

from lxml import etree

from app.core.errors import CustosError, ErrorKind

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_ERROR = "http://www.onvif.org/ver10/error"
NS_XML = "http://www.w3.org/XML/1998/namespace"

#: Longest Reason text sent (messages name offending values; keep faults small).
MAX_REASON_CHARS = 512

_CODES = ("Sender", "Receiver", "VersionMismatch", "MustUnderstand", "DataEncodingUnknown")


class SoapFault(CustosError):
    """A fault to answer with: SOAP 1.2 code, ONVIF subcode chain and a human reason."""

    def __init__(self, code: str, subcodes: tuple[str, ...], reason: str) -> None:
        if code not in _CODES:
            raise ValueError(f"unknown SOAP 1.2 fault code {code!r}")
        kind = ErrorKind.INVALID_ARGUMENT if code == "Sender" else ErrorKind.INTERNAL
        super().__init__(reason, kind=kind)
        self.code = code
        self.subcodes = subcodes
        self.reason = reason[:MAX_REASON_CHARS]

    @classmethod
    def sender(cls, *subcodes: str, reason: str) -> SoapFault:
        return cls("Sender", subcodes, reason)

    @classmethod
    def receiver(cls, *subcodes: str, reason: str) -> SoapFault:
        return cls("Receiver", subcodes, reason)

    @classmethod
    def version_mismatch(cls, reason: str) -> SoapFault:
        return cls("VersionMismatch", (), reason)

    @classmethod
    def must_understand(cls, header: str) -> SoapFault:
        return cls("MustUnderstand", (), f"header {header} is not understood")

    @property
    def http_status(self) -> int:
        return 400 if self.code in ("Sender", "VersionMismatch", "MustUnderstand") else 500

    def __str__(self) -> str:
        chain = "/".join((f"env:{self.code}", *(f"ter:{s}" for s in self.subcodes)))
        return f"{chain}: {self.reason}"


def fault_envelope(fault: SoapFault) -> bytes:
    """The serialized SOAP 1.2 Fault envelope (UTF-8, with an XML declaration)."""
    env = etree.Element(f"{{{NS_SOAP12}}}Envelope", nsmap={"env": NS_SOAP12, "ter": NS_ERROR})
    body = etree.SubElement(env, f"{{{NS_SOAP12}}}Body")
    el = etree.SubElement(body, f"{{{NS_SOAP12}}}Fault")
    code = etree.SubElement(el, f"{{{NS_SOAP12}}}Code")
    etree.SubElement(code, f"{{{NS_SOAP12}}}Value").text = f"env:{fault.code}"
    parent = code
    for sub in fault.subcodes:
        parent = etree.SubElement(parent, f"{{{NS_SOAP12}}}Subcode")
        etree.SubElement(parent, f"{{{NS_SOAP12}}}Value").text = f"ter:{sub}"
    reason = etree.SubElement(el, f"{{{NS_SOAP12}}}Reason")
    text = etree.SubElement(reason, f"{{{NS_SOAP12}}}Text")
    text.set(f"{{{NS_XML}}}lang", "en")
    text.text = fault.reason
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def parse_fault(payload: etree._Element) -> SoapFault | None:
    """The fault in a Body payload element (client side), or None if it is not a Fault.

    Subcode QNames are resolved against the element's namespace map (PF-11): any prefix works.
    """
    if payload.tag != f"{{{NS_SOAP12}}}Fault":
        return None
    code_el = payload.find(f"{{{NS_SOAP12}}}Code")
    code = "Receiver"
    subcodes: list[str] = []
    if code_el is not None:
        code = _local_value(code_el) or code
        sub = code_el.find(f"{{{NS_SOAP12}}}Subcode")
        while sub is not None and len(subcodes) < 8:
            value = _local_value(sub)
            if value:
                subcodes.append(value)
            sub = sub.find(f"{{{NS_SOAP12}}}Subcode")
    text = payload.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or ""
    if code not in _CODES:
        code = "Receiver"
    return SoapFault(code, tuple(subcodes), text.strip() or "(no reason given)")


def _local_value(parent: etree._Element) -> str:
    value = (parent.findtext(f"{{{NS_SOAP12}}}Value") or "").strip()
    return value.rpartition(":")[2]
