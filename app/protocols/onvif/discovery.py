"""WS-Discovery 2005/04 messages (ONVIF Core §7): parse Probe, build ProbeMatches, Hello, Bye.

Sans-IO: bytes in, bytes out. Datagrams come from anyone on the LAN, so parsing goes through the
hardened XML parser with a size limit, and anything that is not a well-formed Probe is None
(ignored, never answered).
"""

from __future__ import annotations

import dataclasses
import uuid

from lxml import etree

from app.protocols.soap.xml import XmlError, parse_xml

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_DN = "http://www.onvif.org/ver10/network/wsdl"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"

#: Largest datagram parsed (a Probe is a few hundred bytes; UDP allows 64 KiB).
MAX_DATAGRAM_BYTES = 16 * 1024
#: Most types / scopes read from one Probe.
MAX_PROBE_ITEMS = 32
MULTICAST_ADDRESS = ("239.255.255.250", 3702)
DISCOVERY_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
#: Default scope matching rule (RFC 3986 path-segment prefix).
MATCH_RFC3986 = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986"
#: The types an ONVIF device answers for.
DEVICE_TYPES = (("dn", NS_DN, "NetworkVideoTransmitter"), ("tds", NS_TDS, "Device"))

_ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/"


@dataclasses.dataclass(frozen=True)
class Probe:
    """A parsed Probe: its MessageID, the types as (namespace, local) and the scopes asked for."""

    message_id: str
    types: tuple[tuple[str, str], ...]
    scopes: tuple[str, ...]
    match_by: str


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """What this device announces: its stable address (urn:uuid:...), scopes, XAddrs."""

    address: str
    scopes: tuple[str, ...]
    xaddrs: tuple[str, ...]
    metadata_version: int = 1


def parse_probe(data: bytes) -> Probe | None:
    """The Probe in a datagram, or None for anything else (other messages, garbage, hostile XML)."""
    if len(data) > MAX_DATAGRAM_BYTES:
        return None
    try:
        root = parse_xml(data)
    except XmlError:
        return None
    if root.tag != f"{{{NS_SOAP12}}}Envelope":
        return None
    header = root.find(f"{{{NS_SOAP12}}}Header")
    probe = root.find(f"{{{NS_SOAP12}}}Body/{{{NS_WSD}}}Probe")
    if probe is None:
        return None
    message_id = ""
    if header is not None:
        message_id = (header.findtext(f"{{{NS_WSA}}}MessageID") or "").strip()
    types: list[tuple[str, str]] = []
    for element in probe.findall(f"{{{NS_WSD}}}Types"):
        for qname in (element.text or "").split()[:MAX_PROBE_ITEMS]:
            prefix, _, local = qname.rpartition(":")
            namespace = element.nsmap.get(prefix or None)
            if namespace is None:
                return None  # an unresolvable QName: not a Probe we can match
            types.append((namespace, local))
    scopes_el = probe.find(f"{{{NS_WSD}}}Scopes")
    scopes: tuple[str, ...] = ()
    match_by = MATCH_RFC3986
    if scopes_el is not None:
        scopes = tuple((scopes_el.text or "").split()[:MAX_PROBE_ITEMS])
        match_by = (scopes_el.get("MatchBy") or MATCH_RFC3986).strip()
    return Probe(message_id[:256], tuple(types[:MAX_PROBE_ITEMS]), scopes, match_by)


def matches(probe: Probe, scopes: tuple[str, ...]) -> bool:
    """WS-Discovery §5.1: every probed type is one of ours and every probed scope matches."""
    ours = {(ns, local) for _, ns, local in DEVICE_TYPES}
    if any(t not in ours for t in probe.types):
        return False
    if probe.match_by not in (MATCH_RFC3986, _ACTION + "strcmp0"):
        return False  # unsupported rules (ldap, uuid) match nothing
    for wanted in probe.scopes:
        if probe.match_by == MATCH_RFC3986:
            if not any(_rfc3986_match(wanted, scope) for scope in scopes):
                return False
        elif wanted not in scopes:
            return False
    return True


def _rfc3986_match(wanted: str, scope: str) -> bool:
    """Case-insensitive scheme/authority, then a segment-wise path prefix."""
    w_head, w_path = _split(wanted)
    s_head, s_path = _split(scope)
    if w_head.lower() != s_head.lower():
        return False
    return s_path[: len(w_path)] == w_path


def _split(uri: str) -> tuple[str, list[str]]:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "", [s for s in uri.split("/") if s]
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority}", [s for s in path.split("/") if s]


def probe_matches(probe: Probe, endpoint: Endpoint) -> bytes:
    """The ProbeMatches answer to `probe` (sent unicast to the prober)."""
    envelope, body = _envelope("ProbeMatches", relates_to=probe.message_id, to=ANONYMOUS)
    matches_el = etree.SubElement(body, f"{{{NS_WSD}}}ProbeMatches")
    _describe(etree.SubElement(matches_el, f"{{{NS_WSD}}}ProbeMatch"), endpoint)
    return _serialize(envelope)


def hello(endpoint: Endpoint) -> bytes:
    envelope, body = _envelope("Hello", to=DISCOVERY_TO)
    _describe(etree.SubElement(body, f"{{{NS_WSD}}}Hello"), endpoint)
    return _serialize(envelope)


def bye(endpoint: Endpoint) -> bytes:
    envelope, body = _envelope("Bye", to=DISCOVERY_TO)
    bye_el = etree.SubElement(body, f"{{{NS_WSD}}}Bye")
    reference = etree.SubElement(bye_el, f"{{{NS_WSA}}}EndpointReference")
    etree.SubElement(reference, f"{{{NS_WSA}}}Address").text = endpoint.address
    return _serialize(envelope)


def probe(scopes: tuple[str, ...] = (), *, message_id: str | None = None) -> bytes:
    """A Probe for ONVIF devices (tests and the client side)."""
    envelope, body = _envelope("Probe", to=DISCOVERY_TO, message_id=message_id)
    probe_el = etree.SubElement(body, f"{{{NS_WSD}}}Probe")
    etree.SubElement(probe_el, f"{{{NS_WSD}}}Types").text = "dn:NetworkVideoTransmitter"
    if scopes:
        etree.SubElement(probe_el, f"{{{NS_WSD}}}Scopes").text = " ".join(scopes)
    return _serialize(envelope)


def _envelope(
    action: str, *, to: str, relates_to: str | None = None, message_id: str | None = None
) -> tuple[etree._Element, etree._Element]:
    nsmap = {"s": NS_SOAP12, "a": NS_WSA, "d": NS_WSD, "dn": NS_DN, "tds": NS_TDS}
    envelope = etree.Element(f"{{{NS_SOAP12}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(envelope, f"{{{NS_SOAP12}}}Header")
    etree.SubElement(header, f"{{{NS_WSA}}}MessageID").text = message_id or uuid.uuid4().urn
    if relates_to:
        etree.SubElement(header, f"{{{NS_WSA}}}RelatesTo").text = relates_to
    etree.SubElement(header, f"{{{NS_WSA}}}To").text = to
    etree.SubElement(header, f"{{{NS_WSA}}}Action").text = _ACTION + action
    return envelope, etree.SubElement(envelope, f"{{{NS_SOAP12}}}Body")


def _describe(parent: etree._Element, endpoint: Endpoint) -> None:
    reference = etree.SubElement(parent, f"{{{NS_WSA}}}EndpointReference")
    etree.SubElement(reference, f"{{{NS_WSA}}}Address").text = endpoint.address
    types = " ".join(f"{prefix}:{local}" for prefix, _, local in DEVICE_TYPES)
    etree.SubElement(parent, f"{{{NS_WSD}}}Types").text = types
    etree.SubElement(parent, f"{{{NS_WSD}}}Scopes").text = " ".join(endpoint.scopes)
    etree.SubElement(parent, f"{{{NS_WSD}}}XAddrs").text = " ".join(endpoint.xaddrs)
    etree.SubElement(parent, f"{{{NS_WSD}}}MetadataVersion").text = str(endpoint.metadata_version)


def _serialize(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))
