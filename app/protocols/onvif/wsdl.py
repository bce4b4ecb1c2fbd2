"""The official ONVIF WSDLs, loaded offline with zeep, and the operation table built from them.

Both sides use this: the engine's SOAP server deserializes requests and serializes responses with
the bindings' operations (zeep as codec, research notes §5), and the client builds its proxies from
the same documents. Loading all services takes a few hundred milliseconds, so `catalog()` loads
once per process and is shared (zeep's operation objects are read-only after loading).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import isodate
import zeep
import zeep.transports
import zeep.wsdl
from zeep.wsdl.definitions import Operation
from zeep.xsd.types import builtins as xsd_builtins

WSDL_DIR = Path(__file__).with_name("wsdl")
_EXTERNAL = WSDL_DIR / "external"

#: URLs the ONVIF files import, mapped to the local copies in wsdl/external.
_URL_MAP = {
    "https://www.w3.org/2005/05/xmlmime": "xmlmime",
    "http://www.w3.org/2005/05/xmlmime": "xmlmime",
    "https://www.w3.org/2003/05/soap-envelope": "soap-envelope.xsd",
    "http://www.w3.org/2003/05/soap-envelope": "soap-envelope.xsd",
    "https://www.w3.org/2004/08/xop/include": "include",
    "http://www.w3.org/2004/08/xop/include": "include",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://www.w3.org/2005/08/addressing/ws-addr.xsd": "ws-addr.xsd",
}

# Service namespaces (spec 0.3).
NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_RECORDING = "http://www.onvif.org/ver10/recording/wsdl"
NS_SEARCH = "http://www.onvif.org/ver10/search/wsdl"
NS_REPLAY = "http://www.onvif.org/ver10/replay/wsdl"
NS_RECEIVER = "http://www.onvif.org/ver10/receiver/wsdl"
NS_SCHEMA = "http://www.onvif.org/ver10/schema"
NS_ERROR = "http://www.onvif.org/ver10/error"
NS_TOPICS = "http://www.onvif.org/ver10/topics"
NS_WSNT = "http://docs.oasis-open.org/wsn/b-2"
NS_WSTOP = "http://docs.oasis-open.org/wsn/t-1"
NS_WSA = "http://www.w3.org/2005/08/addressing"


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """One ONVIF service: its short name, WSDL file, namespace and suggested HTTP path."""

    name: str
    wsdl: str
    namespace: str
    path: str


#: The services the engine serves and the client speaks. Event bindings: see EVENT_BINDINGS.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("device", "ver10/device/wsdl/devicemgmt.wsdl", NS_DEVICE, "/onvif/device_service"),
    ServiceSpec("events", "ver10/events/wsdl/event.wsdl", NS_EVENTS, "/onvif/event_service"),
    ServiceSpec("recording", "ver10/recording.wsdl", NS_RECORDING, "/onvif/recording_service"),
    ServiceSpec("search", "ver10/search.wsdl", NS_SEARCH, "/onvif/search_service"),
    ServiceSpec("replay", "ver10/replay.wsdl", NS_REPLAY, "/onvif/replay_service"),
    ServiceSpec("receiver", "ver10/receiver.wsdl", NS_RECEIVER, "/onvif/receiver_service"),
)
SERVICE_BY_NAME = {s.name: s for s in SERVICES}

#: event.wsdl defines several bindings; these are the ones a PullPoint device serves.
EVENT_BINDINGS = (
    "EventBinding",
    "PullPointSubscriptionBinding",
    "SubscriptionManagerBinding",
    "NotificationProducerBinding",
)


class OfflineTransport(zeep.transports.Transport):
    """A zeep transport that reads every schema from the package and never touches the network."""

    def load(self, url: str) -> bytes:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https"):
            # Relative imports inside OASIS schemas resolve against their URL: use the basename.
            name = _URL_MAP.get(url) or Path(parsed.path).name
            path = _EXTERNAL / name
            if not path.is_file():
                raise OSError(f"offline ONVIF schemas: no local copy of {url}")
            return path.read_bytes()
        result: bytes = super().load(url)  # type: ignore[no-untyped-call]
        return result


@dataclasses.dataclass(frozen=True)
class OperationInfo:
    """One operation: the service it belongs to, its name and zeep's operation object."""

    service: ServiceSpec
    name: str
    binding: str
    operation: Operation

    @property
    def action(self) -> str:
        """The SOAP action (`<service namespace>/<Operation>`), as clients put in Content-Type."""
        return f"{self.service.namespace}/{self.name}"


class Catalog:
    """All loaded services: documents, bindings and the request-element → operation table."""

    def __init__(self, documents: dict[str, zeep.wsdl.Document]) -> None:
        self.documents = documents
        #: '{namespace}OperationName' of the request element → operation.
        self.by_element: dict[str, OperationInfo] = {}
        #: (service name, operation name) → operation.
        self.by_name: dict[tuple[str, str], OperationInfo] = {}
        for spec in SERVICES:
            doc = documents[spec.name]
            for qname, binding in doc.bindings.items():
                local = str(qname).rpartition("}")[2]
                if spec.name == "events" and local not in EVENT_BINDINGS:
                    continue
                for op in binding._operations.values():
                    info = OperationInfo(spec, op.name, local, op)
                    element = op.input.body.qname.text if op.input.body is not None else None
                    if element is None:
                        continue
                    self.by_element.setdefault(element, info)
                    self.by_name.setdefault((spec.name, op.name), info)

    def operation(self, service: str, name: str) -> OperationInfo:
        """The operation `name` of `service` (KeyError for a name the WSDL does not have)."""
        return self.by_name[(service, name)]

    def type(self, qname: str) -> Any:
        """A schema type by '{namespace}Name', for building nested request/response values."""
        return self.documents["device"].types.get_type(qname)  # type: ignore[no-untyped-call]

    def element(self, qname: str) -> Any:
        return self.documents["device"].types.get_element(qname)


def settings() -> zeep.Settings:
    """zeep settings for both sides: tolerant reading (GEN-05/07), no huge trees, no DTDs."""
    return zeep.Settings(strict=False, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True)


def load_document(spec: ServiceSpec) -> zeep.wsdl.Document:
    """Parse one service's WSDL from the package (about 100 ms); xs:duration stays text."""
    transport = OfflineTransport()  # type: ignore[no-untyped-call]
    with _load_lock, _verbatim_durations():
        doc = zeep.wsdl.Document(str(WSDL_DIR / spec.wsdl), transport, settings=settings())  # type: ignore[arg-type]
    # Topic texts are QNames ("tns1:RecordingHistory/..."): the prefix must be declared on the
    # Envelope of every response that carries one (events, search results).
    doc.types.set_ns_prefix("tns1", NS_TOPICS)  # type: ignore[no-untyped-call]
    return doc


class _VerbatimDuration(xsd_builtins.Duration):
    """xs:duration as its text, both ways: read-backs must echo 'PT60M', never 'PT1H' (PF-07).

    Reading still validates the text (a bad duration is InvalidArgs); writing a str sends it
    unchanged, and timedelta/isodate values are formatted as zeep would.
    """

    def xmlvalue(self, value: Any) -> str:
        if isinstance(value, str):
            isodate.parse_duration(value)  # ValueError/ISO8601Error for text that is no duration
            return value
        text: str = isodate.duration_isoformat(value)
        return text

    def pythonvalue(self, value: Any, schema: Any = None) -> str:
        text = str(value).strip()
        isodate.parse_duration(text.replace("PT-", "-PT"))
        return text


@contextlib.contextmanager
def _verbatim_durations() -> Iterator[None]:
    """While our documents load, zeep's built-in xs:duration type is the verbatim one.

    zeep binds built-in types when a schema is loaded, so restoring the list afterwards keeps
    every other zeep schema in the process (e.g. third-party clients in tests) untouched.
    """
    types = xsd_builtins._types
    index = types.index(xsd_builtins.Duration)
    types[index] = _VerbatimDuration
    try:
        yield
    finally:
        types[index] = xsd_builtins.Duration


_lock = threading.Lock()
_load_lock = threading.RLock()


@functools.cache
def _load_catalog() -> Catalog:
    return Catalog({spec.name: load_document(spec) for spec in SERVICES})


def catalog() -> Catalog:
    """The process-wide catalog, loaded on first use (thread-safe)."""
    with _lock:
        return _load_catalog()
