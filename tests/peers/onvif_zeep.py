"""An independent ONVIF client for interop tests: zeep built straight from ../shared's WSDLs.

Nothing here comes from app/: the WSDLs are the unmodified files in the shared reference folder
beside the checkout, loaded with zeep's own Client, HTTP Digest from requests. Tests drive the
engine with it the way a third-party Profile G client does, and `validated_service` checks every
answer (faults included) against the official schemas, as the Device Test Tool does (PF-03).
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import zeep
import zeep.exceptions
import zeep.plugins
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
_XS = "{http://www.w3.org/2001/XMLSchema}"
_SOAP12 = "{http://www.w3.org/2003/05/soap-envelope}"

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


def service(
    name: str,
    address: str,
    user: str | None,
    password: str | None,
    *,
    plugins: list[Any] | None = None,
) -> Any:
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
        plugins=plugins or [],
    )
    return client.create_service(binding, address)  # type: ignore[no-untyped-call]


class ValidatedService:
    """A zeep proxy whose every answer — result or fault — is checked against the schemas.

    `svc.GetRecordings()` works as on the plain proxy; a schema-invalid answer raises
    AssertionError naming the operation and the first violation. `last_received` is the last
    response envelope (lxml element), e.g. for byte-level assertions.
    """

    def __init__(self, name: str, address: str, user: str | None, password: str | None) -> None:
        self.name = name
        self._history = zeep.plugins.HistoryPlugin()  # type: ignore[no-untyped-call]
        self.proxy = service(name, address, user, password, plugins=[self._history])

    @property
    def last_received(self) -> etree._Element | None:
        received = self._history.last_received
        return None if received is None else received["envelope"]

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        method = getattr(self.proxy, operation)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = method(*args, **kwargs)
            except zeep.exceptions.Fault:
                self._validate(operation)
                raise
            self._validate(operation)
            return result

        return call

    def _validate(self, operation: str) -> None:
        envelope = self.last_received
        assert envelope is not None, f"{operation}: no response envelope was recorded"
        assert_valid_body(self.name, envelope, operation=operation)


def validated_service(name: str, address: str, user: str | None, password: str | None) -> Any:
    """`service(...)` that validates every response against the official XSDs (sync)."""
    return ValidatedService(name, address, user, password)


def schema_validator() -> Any:
    """One xmlschema XSD 1.1 validator for every service's messages, built once per process.

    libxml2 (lxml.etree.XMLSchema) refuses onvif.xsd: its `xs:any` extension points after optional
    elements break XSD 1.0's Unique Particle Attribution rule ("content model is not determinist").
    XSD 1.1 relaxed that rule (a declared element wins over a wildcard), which is how the ONVIF
    schemas read, so the pure-Python `xmlschema` package in 1.1 mode builds them without error.
    The schemas embedded in the shared WSDLs are loaded together (about 2.5 s), every import
    pointed at the shared files; nothing is fetched from the network.
    """
    global _validator
    with _validator_lock:
        if _validator is None:
            _validator = _build_validator()
        return _validator


def _build_validator() -> Any:
    import xmlschema

    sources: list[Any] = []
    for wsdl_file in dict.fromkeys(wsdl for wsdl, _ in BINDINGS.values()):
        path = SHARED_WSDL / "ver10" / wsdl_file
        root = etree.parse(str(path)).getroot()
        embedded = root.find(f"{{http://schemas.xmlsoap.org/wsdl/}}types/{_XS}schema")
        assert embedded is not None, f"{path} has no embedded schema"
        # QName attribute values (type="trc:Capabilities") may use prefixes of the WSDL root.
        nsmap = {**root.nsmap, **embedded.nsmap}
        schema = etree.Element(embedded.tag, attrib=dict(embedded.attrib), nsmap=nsmap)
        schema.extend(copy.deepcopy(child) for child in embedded)
        for imp in schema.iter(f"{_XS}import"):
            location = imp.get("schemaLocation")
            if location:
                imp.set("schemaLocation", _local_uri(location, path))
        sources.append(etree.tostring(schema, encoding="unicode"))
    with warnings.catch_warnings():
        # xmlschema notes type-table differences of same-named local elements (an XSD 1.1 nit).
        warnings.simplefilter("ignore")
        return xmlschema.XMLSchema11(
            sources,
            allow="local",
            uri_mapper=_map_uri,
            base_url=(SHARED_WSDL / "ver10").as_uri() + "/",
        )


def _map_uri(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return (_EXT / (_URLS.get(url) or Path(parsed.path).name)).as_uri()
    return url


def _local_uri(location: str, relative_to: Path) -> str:
    if urlparse(location).scheme in ("http", "https"):
        return _map_uri(location)
    return (relative_to.parent / location).resolve().as_uri()


def assert_valid_body(
    name: str, envelope: bytes | etree._Element, *, operation: str | None = None
) -> None:
    """Validate the Body payload of a SOAP 1.2 response (or Fault) against the official XSDs.

    `name` is the service the request went to; the payload must be in that service's namespace,
    a WS-Notification element (event service), or a SOAP 1.2 Fault.
    """
    root = etree.fromstring(envelope) if isinstance(envelope, bytes) else envelope
    label = operation or name
    assert root.tag == f"{_SOAP12}Envelope", f"{label}: answer is not a SOAP 1.2 envelope"
    body = root.find(f"{_SOAP12}Body")
    assert body is not None and len(body) == 1, f"{label}: Body must hold exactly one element"
    payload = body[0]
    namespace = etree.QName(payload).namespace
    binding = BINDINGS[name][1]
    allowed = {etree.QName(binding).namespace, "http://docs.oasis-open.org/wsn/b-2", _SOAP12[1:-1]}
    assert namespace in allowed, f"{label}: payload {payload.tag} is in the wrong namespace"
    validator = schema_validator()
    # A standalone copy keeps the declarations its tags use; QName *text* (fault subcodes,
    # topics) needs every declaration in scope, hence the explicit namespace map.
    namespaces = {prefix or "": uri for prefix, uri in payload.nsmap.items()}
    errors = validator.iter_errors(copy.deepcopy(payload), namespaces=namespaces)
    error = next(iter(errors), None)
    if error is not None:
        raise AssertionError(f"{label} answer is not schema-valid: {error.reason} at {error.path}")


_validator: Any = None
_validator_lock = threading.Lock()


def httpx_digest(user: str, password: str) -> httpx.DigestAuth:
    return httpx.DigestAuth(user, password)
