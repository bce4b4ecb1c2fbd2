"""An independent ONVIF client for interop tests: zeep built straight from ../shared's WSDLs.

Nothing here comes from app/: the WSDLs are the unmodified files in the shared reference folder
beside the checkout, loaded with zeep's own Client, HTTP Digest from httpx (zeep's AsyncTransport
uses httpx) or requests. Tests drive the engine with it the way a third-party Profile G client does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import zeep
import zeep.transports
from lxml import etree

SHARED_WSDL = Path(__file__).resolve().parents[2].parent / "shared" / "onvif" / "wsdl"
_EXT = SHARED_WSDL / "external"
_URLS = {
    "https://www.w3.org/2005/05/xmlmime": "xmlmime",
    "https://www.w3.org/2003/05/soap-envelope": "soap-envelope.xsd",
    "https://www.w3.org/2004/08/xop/include": "include",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.w3.org/2005/08/addressing/ws-addr.xsd": "ws-addr.xsd",
}

#: (WSDL file under ver10, binding local name) per service.
BINDINGS = {
    "device": (
        "device/wsdl/devicemgmt.wsdl",
        "{http://www.onvif.org/ver10/device/wsdl}DeviceBinding",
    ),
    "recording": ("recording.wsdl", "{http://www.onvif.org/ver10/recording/wsdl}RecordingBinding"),
    "search": ("search.wsdl", "{http://www.onvif.org/ver10/search/wsdl}SearchBinding"),
    "replay": ("replay.wsdl", "{http://www.onvif.org/ver10/replay/wsdl}ReplayBinding"),
    "receiver": ("receiver.wsdl", "{http://www.onvif.org/ver10/receiver/wsdl}ReceiverBinding"),
    "events": ("events/wsdl/event.wsdl", "{http://www.onvif.org/ver10/events/wsdl}EventBinding"),
    "pullpoint": (
        "events/wsdl/event.wsdl",
        "{http://www.onvif.org/ver10/events/wsdl}PullPointSubscriptionBinding",
    ),
    "subscription": (
        "events/wsdl/event.wsdl",
        "{http://www.onvif.org/ver10/events/wsdl}SubscriptionManagerBinding",
    ),
}


class SharedTransport(zeep.transports.Transport):
    """Loads the shared schemas from disk; HTTP goes through a requests session with Digest."""

    def load(self, url: str) -> bytes:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https"):
            return (_EXT / (_URLS.get(url) or Path(parsed.path).name)).read_bytes()
        data: bytes = super().load(url)  # type: ignore[no-untyped-call]
        return data


def service(name: str, address: str, user: str | None, password: str | None) -> Any:
    """A zeep service proxy for `name` at `address` with HTTP Digest credentials (sync)."""
    import requests
    from requests.auth import HTTPDigestAuth

    session = requests.Session()
    if user is not None and password is not None:
        session.auth = HTTPDigestAuth(user, password)
    transport = SharedTransport(session=session, timeout=30, operation_timeout=30)  # type: ignore[no-untyped-call]
    wsdl_file, binding = BINDINGS[name]
    client = zeep.Client(  # type: ignore[no-untyped-call]
        str(SHARED_WSDL / "ver10" / wsdl_file),
        transport=transport,
        settings=zeep.Settings(strict=True, xml_huge_tree=False),
    )
    return client.create_service(binding, address)  # type: ignore[no-untyped-call]


def schema_validator(name: str) -> etree.XMLSchema:
    """An lxml XMLSchema for one service's messages: the schema embedded in its shared WSDL.

    Every import is pointed at a local file first (libxml2 imports a namespace only once, so the
    OASIS schemas are imported before onvif.xsd asks for them by URL).
    """
    wsdl_file, _ = BINDINGS[name]
    path = SHARED_WSDL / "ver10" / wsdl_file
    wsdl = etree.parse(str(path))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    embedded = wsdl.getroot().find(f"{{http://schemas.xmlsoap.org/wsdl/}}types/{xs}schema")
    assert embedded is not None, f"{path} has no embedded schema"
    # Attribute values such as type="trc:Capabilities" need the prefixes declared on the WSDL root.
    schema = etree.Element(embedded.tag, attrib=dict(embedded.attrib), nsmap=embedded.nsmap)
    schema.extend(copy.deepcopy(child) for child in embedded)
    for imp in schema.iter(f"{xs}import"):
        location = imp.get("schemaLocation")
        if location:
            imp.set("schemaLocation", _local_uri(location, path))
    first = [
        ("http://docs.oasis-open.org/wsn/b-2", "b-2.xsd"),
        ("http://docs.oasis-open.org/wsn/t-1", "t-1.xsd"),
        ("http://www.w3.org/2005/08/addressing", "ws-addr.xsd"),
    ]
    for index, (namespace, file) in enumerate(first):
        imp = etree.Element(f"{xs}import", namespace=namespace)
        imp.set("schemaLocation", (_EXT / file).as_uri())
        schema.insert(index, imp)
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_FileResolver())
    doc = etree.fromstring(etree.tostring(schema), parser, base_url=path.as_uri())
    return etree.XMLSchema(doc)


def _local_uri(location: str, relative_to: Path) -> str:
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        return (_EXT / (_URLS.get(location) or Path(parsed.path).name)).as_uri()
    return (relative_to.parent / location).resolve().as_uri()


class _FileResolver(etree.Resolver):  # type: ignore[misc]
    def resolve(self, url: str, pubid: str, context: Any) -> Any:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https"):
            local = _EXT / (_URLS.get(url) or Path(parsed.path).name)
            return self.resolve_filename(str(local), context)
        return None


def assert_valid_body(name: str, envelope: bytes) -> None:
    """Validate the Body payload of a SOAP response against service `name`'s schema."""
    root = etree.fromstring(envelope)
    body = root.find("{http://www.w3.org/2003/05/soap-envelope}Body")
    assert body is not None and len(body) == 1, envelope[:200]
    validator = _validators.get(name) or _validators.setdefault(name, schema_validator(name))
    if not validator.validate(body[0]):
        raise AssertionError(f"{name} response is not schema-valid: {validator.error_log}")


_validators: dict[str, etree.XMLSchema] = {}


def httpx_digest(user: str, password: str) -> httpx.DigestAuth:
    return httpx.DigestAuth(user, password)
