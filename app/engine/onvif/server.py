"""The ONVIF SOAP 1.2 endpoint on aiohttp: parse, authenticate, dispatch by body element, answer.

Services are plain classes whose methods are marked with `@operation(name, access)`; each handler
gets the request context and zeep's deserialized request and returns the keyword arguments of the
response (zeep serializes them against the official WSDL, so element names and order are the
schema's). Errors become SOAP faults only here (ARCHITECTURE habit 6): a handler raises SoapFault
for a specific ONVIF subcode, or a CustosError that the service's `faults` table (or the generic
table below) translates.

    server = OnvifServer(authenticator, [DeviceService(...), RecordingService(...), ...])
    server.add_routes(app)      # POST /onvif/<anything>
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from lxml import etree
from zeep.xsd.context import XmlParserContext
from zeep.xsd.elements.attribute import Attribute
from zeep.xsd.types.simple import AnySimpleType

from app.core.errors import (
    ConfigError,
    ConflictError,
    CustosError,
    LimitError,
    NotFoundError,
    PermissionError_,
)
from app.engine.onvif.security import (
    AccessClass,
    Authenticator,
    Caller,
    Unauthenticated,
    authorize,
)
from app.protocols.onvif.wsdl import Catalog, OperationInfo, ServiceSpec, catalog
from app.protocols.soap.envelope import CONTENT_TYPE, Envelope, parse_envelope
from app.protocols.soap.fault import SoapFault, fault_envelope
from app.protocols.soap.writer import NotCompiled, ResponseWriter, compile_writer
from app.protocols.soap.xml import MAX_XML_BYTES

log = logging.getLogger(__name__)

#: Media types accepted for SOAP requests (PF-02: text/xml is tolerated).
ACCEPTED_CONTENT_TYPES = frozenset({"application/soap+xml", "text/xml", "application/xml"})
#: URL prefix of every service endpoint (GEN-02: any service answers on any of them).
ONVIF_PATH_PREFIX = "/onvif/"
#: Most (operation, base URL) answers kept for cacheable operations.
MAX_CACHED_ANSWERS = 256
#: Most distinct request bodies whose parse is kept (repeated polls skip lxml and zeep)…
MAX_REMEMBERED_REQUESTS = 256
#: …and the largest body remembered (polls are small; a big body is parsed every time).
MAX_REMEMBERED_REQUEST_BYTES = 4096

Handler = Callable[["RequestContext", Any], Awaitable[Mapping[str, Any] | None]]
_F = TypeVar("_F", bound=Callable[..., Awaitable[Mapping[str, Any] | None]])

#: Generic translation of domain errors (a service's `faults` table is consulted first).
GENERIC_FAULTS: tuple[tuple[type[CustosError], str, tuple[str, ...]], ...] = (
    (SoapFault, "", ()),  # passed through unchanged
    (PermissionError_, "Sender", ("NotAuthorized",)),
    (NotFoundError, "Sender", ("InvalidArgVal",)),
    (ConfigError, "Sender", ("InvalidArgVal",)),
    (LimitError, "Receiver", ("Action",)),
    (ConflictError, "Receiver", ("Action",)),
)


#: Set while a request is parsed: unparsable simple values raise instead of becoming None.
_STRICT_VALUES: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "onvif_strict_values", default=False
)


def _install_strict_value_parsing() -> None:
    """Make zeep's simple-value parsing raise while `_STRICT_VALUES` is set (GEN-04).

    zeep (strict=False) logs a traceback and returns None for an xs:int 'x', an xs:dateTime
    'yesterday' or an xs:duration 'banana', so a handler could not tell a bad value from an
    absent one and would act on it. Requests must get Sender/InvalidArgs instead. Outside a
    request parse (responses, clients in the same process) zeep behaves as shipped.
    """
    if getattr(AnySimpleType.parse_xmlelement, "__onvif_strict__", False):
        return
    element_parse = AnySimpleType.parse_xmlelement
    attribute_parse = Attribute.parse

    def parse_xmlelement(self: Any, xmlelement: Any, *args: Any, **kwargs: Any) -> Any:
        if _STRICT_VALUES.get() and xmlelement.text is not None:
            return self.pythonvalue(xmlelement.text)
        return element_parse(self, xmlelement, *args, **kwargs)

    def parse(self: Any, value: Any) -> Any:
        if _STRICT_VALUES.get():
            return self.type.pythonvalue(value)
        return attribute_parse(self, value)  # type: ignore[no-untyped-call]

    parse_xmlelement.__onvif_strict__ = True  # type: ignore[attr-defined]
    AnySimpleType.parse_xmlelement = parse_xmlelement  # type: ignore[method-assign]
    Attribute.parse = parse  # type: ignore[method-assign]


_install_strict_value_parsing()


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """What a handler may know about the request besides its body."""

    caller: Caller
    #: scheme://host[:port] as the client addressed us: XAddrs must use it (6.4).
    base_url: str
    operation: OperationInfo
    envelope: Envelope
    #: The HTTP request path (e.g. a PullPoint's /onvif/events/subscription/<id>).
    path: str = "/"


@dataclasses.dataclass(frozen=True)
class _Marked:
    name: str
    access: AccessClass
    cacheable: bool = False


def operation(name: str, access: AccessClass, *, cacheable: bool = False) -> Callable[[_F], _F]:
    """Mark a service method as the handler of WSDL operation `name` with its access class.

    `cacheable=True` declares that the answer never changes while the process runs (apart from
    the base URL the client used, e.g. in XAddrs): the serialized response is then kept per
    base URL and sent again without calling the handler. Authentication and access checks still
    run on every request. Only for answers like GetServiceCapabilities or GetDeviceInformation.

    A handler may also return the very mapping object it returned before to say "the same
    answer" (e.g. GetRecordings while the store has not changed): the bytes written for it last
    time are sent again. Such a mapping, and everything in it, must never be mutated.
    """

    def mark(fn: _F) -> _F:
        fn.__onvif_operation__ = _Marked(name, access, cacheable)  # type: ignore[attr-defined]
        return fn

    return mark


class OnvifService:
    """Base of the services: `service` names the WSDL (wsdl.SERVICES), `faults` maps errors.

    `faults` entries are (error class, SOAP code, ONVIF subcodes), searched in order before the
    generic table, e.g. `(NoRecordingError, "Sender", ("InvalidArgVal", "NoRecording"))`.
    """

    service: str = ""
    faults: tuple[tuple[type[CustosError], str, tuple[str, ...]], ...] = ()
    #: Prefixes declared on the response Envelope, for QNames that live in text content
    #: (e.g. 'tns1' in a wsnt:Topic): zeep only declares the namespaces of elements it writes.
    response_nsmap: Mapping[str, str] = {}

    def handlers(self) -> dict[str, tuple[Handler, AccessClass]]:
        """Operation name → (bound handler, access class) from the @operation marks."""
        return {name: (handler, mark.access) for name, (handler, mark) in self._marked().items()}

    def cacheable(self) -> frozenset[str]:
        """Names of the operations whose handlers declared a constant answer."""
        return frozenset(name for name, (_, mark) in self._marked().items() if mark.cacheable)

    def _marked(self) -> dict[str, tuple[Handler, _Marked]]:
        found: dict[str, tuple[Handler, _Marked]] = {}
        for _, member in inspect.getmembers(self, inspect.ismethod):
            mark = getattr(member, "__onvif_operation__", None)
            if isinstance(mark, _Marked):
                found[mark.name] = (member, mark)
        return found

    def fault_for(self, exc: CustosError) -> SoapFault:
        """The SOAP fault answering a domain error raised by one of this service's handlers."""
        for cls, code, subcodes in (*self.faults, *GENERIC_FAULTS):
            if isinstance(exc, cls):
                if isinstance(exc, SoapFault):
                    return exc
                return SoapFault(code, subcodes, exc.message)
        return SoapFault.receiver("Action", reason=exc.message)


@dataclasses.dataclass(slots=True)
class _Parsed:
    """A request body's envelope and, once its handler's route parsed it, zeep's value."""

    envelope: Envelope
    value: Any = None
    has_value: bool = False


class _RememberedRequests:
    """Parses of recent request bodies, so a repeated poll is not parsed again.

    GUIs and VMSs poll with byte-identical requests (GetRecordingSummary, GetRecordings, the same
    FindEvents); with HTTP Digest the body carries no credentials, so it repeats exactly. A body
    maps to its parse: the same bytes always parse the same, and authentication still runs per
    request on the envelope (a replayed WS-Security nonce is still refused). Only successful
    parses are kept; the envelope and value are shared, so handlers never mutate them.
    """

    def __init__(self) -> None:
        self._parsed: collections.OrderedDict[bytes, _Parsed] = collections.OrderedDict()

    def envelope(self, body: bytes) -> _Parsed:
        """The body's parse (SoapFault if it is not a usable envelope)."""
        parsed = self._parsed.get(body)
        if parsed is not None:
            self._parsed.move_to_end(body)
            return parsed
        parsed = _Parsed(parse_envelope(body))
        if len(body) <= MAX_REMEMBERED_REQUEST_BYTES:
            self._parsed[body] = parsed
            if len(self._parsed) > MAX_REMEMBERED_REQUESTS:
                self._parsed.popitem(last=False)
        return parsed


@dataclasses.dataclass(slots=True)
class _LastAnswer:
    """The values a route's compiled writer wrote last, kept alive, and the bytes it wrote."""

    values: object = None
    body: bytes = b""


@dataclasses.dataclass(frozen=True)
class _Route:
    info: OperationInfo
    service: OnvifService
    handler: Handler
    access: AccessClass
    cacheable: bool = False
    #: zeep's serialization compiled for this response (None: zeep serializes every answer).
    writer: ResponseWriter | None = None
    #: Namespace declarations of the response Envelope (zeep's, plus response_nsmap).
    nsmap: Mapping[str | None, str] = dataclasses.field(default_factory=dict)
    last: _LastAnswer = dataclasses.field(default_factory=_LastAnswer)


class OnvifServer:
    """Routes SOAP requests to the registered services; one instance per engine."""

    def __init__(
        self,
        authenticator: Authenticator,
        services: Iterable[OnvifService],
        *,
        wsdl: Catalog | None = None,
        compiled_writers: bool = True,
    ) -> None:
        """`compiled_writers=False` serializes every answer with zeep (the reference)."""
        self.catalog = wsdl or catalog()
        self.authenticator = authenticator
        self.services = list(services)
        self._routes: dict[str, _Route] = {}
        self.served: set[str] = set()
        for service in self.services:
            self.served.add(service.service)
            constant = service.cacheable()
            for name, (handler, access) in service.handlers().items():
                try:
                    info = self.catalog.operation(service.service, name)
                except KeyError:
                    raise ValueError(f"{service.service} WSDL has no operation {name}") from None
                element: str = info.operation.input.body.qname.text  # type: ignore[union-attr]
                writer = _writer(info) if compiled_writers else None
                nsmap = _zeep_envelope_nsmap(info)
                nsmap.update(service.response_nsmap)
                self._routes[element] = _Route(
                    info, service, handler, access, name in constant, writer, nsmap
                )
        #: (request element, base URL) → serialized answer of a cacheable operation.
        self._cached: dict[tuple[str, str], bytes] = {}
        self._remembered = _RememberedRequests()
        #: Counters for /status and the benchmark.
        self.requests = 0
        self.faults = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(ONVIF_PATH_PREFIX + "{tail:.*}", self.handle)

    def spec(self, name: str) -> ServiceSpec:
        return self.catalog.operation(name, "GetServiceCapabilities").service

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: every outcome is a SOAP answer or an HTTP status, never a crash."""
        started = time.perf_counter()
        self.requests += 1
        media_type = request.content_type.lower()
        if media_type not in ACCEPTED_CONTENT_TYPES:
            return web.Response(status=415, text=f"unsupported media type {media_type!r}\n")
        if request.content_length is not None and request.content_length > MAX_XML_BYTES:
            return await _too_large(request)
        body = await _read_body(request)
        if body is None:  # chunked bodies have no Content-Length to check first
            return await _too_large(request)
        name = "?"
        try:
            parsed = self._remembered.envelope(body)
            envelope = parsed.envelope
            route = self._routes.get(envelope.operation)
            info = route.info if route else self.catalog.by_element.get(envelope.operation)
            name = info.name if info else envelope.operation
            caller = self.authenticator.caller(
                request.method, request.headers.get("Authorization"), envelope
            )
            access = route.access if route else AccessClass.READ_MEDIA
            authorize(caller, access, name)
            if route is None:
                raise _unrouted(envelope.operation, info, self.served)
            result = await self._answer(route, caller, parsed, request)
        except Unauthenticated as exc:
            self.faults += 1
            log.info("ONVIF %s refused (401): %s", name, exc.reason)
            response = web.Response(status=401, text="authentication required\n")
            for challenge in self.authenticator.challenges(stale=exc.stale):
                response.headers.add("WWW-Authenticate", challenge)
            return response
        except SoapFault as fault:
            self.faults += 1
            log.info("ONVIF %s fault: %s", name, fault)
            return _soap_response(fault_envelope(fault), fault.http_status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("ONVIF %s by %s in %.2f ms", name, caller.user, _ms(started))
        return _soap_response(result, 200)

    async def _answer(
        self, route: _Route, caller: Caller, parsed: _Parsed, request: web.Request
    ) -> bytes:
        """The serialized answer: from the cache for cacheable operations, else from _call."""
        if not route.cacheable:
            return await self._call(route, caller, parsed, request)
        key = (parsed.envelope.operation, _base_url(request))
        cached = self._cached.get(key)
        if cached is None:
            cached = await self._call(route, caller, parsed, request)
            # Bounded by the Host values clients use; a client inventing Hosts gets no cache.
            if len(self._cached) < MAX_CACHED_ANSWERS:
                self._cached[key] = cached
        return cached

    async def _call(
        self, route: _Route, caller: Caller, parsed: _Parsed, request: web.Request
    ) -> bytes:
        op: Any = route.info.operation
        envelope = parsed.envelope
        if not parsed.has_value:
            parsed.value = _request_value(route, envelope)
            parsed.has_value = True
        value = parsed.value
        ctx = RequestContext(caller, _base_url(request), route.info, envelope, request.path)
        try:
            result = await route.handler(ctx, value)
        except CustosError as exc:
            raise route.service.fault_for(exc) from None
        except Exception:
            log.exception("ONVIF %s failed", route.info.name)
            raise SoapFault.receiver(
                "Action", reason=f"{route.info.name} failed inside the device"
            ) from None
        values = result or {}
        if route.writer is not None:
            last = route.last
            if values is last.values:
                return last.body  # the handler's "same answer" (see `operation`)
            try:
                root = route.writer.envelope(route.nsmap, values)
            except NotCompiled:
                pass  # an unusual value: zeep decides how it looks, or that it is invalid
            else:
                body = bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
                last.values, last.body = values, body
                return body
        try:
            message = op.output.serialize(**values)
        except Exception:
            # A handler returned something the schema does not allow: our bug, not the client's.
            log.exception("ONVIF %s response does not fit the schema", route.info.name)
            raise SoapFault.receiver(
                "Action", reason=f"{route.info.name} produced an invalid response"
            ) from None
        content = message.content
        if route.service.response_nsmap:
            content = _with_prefixes(content, route.service.response_nsmap)
        return bytes(etree.tostring(content, xml_declaration=True, encoding="utf-8"))


def _request_value(route: _Route, envelope: Envelope) -> Any:
    """zeep's value of the request element (InvalidArgs fault for anything it refuses)."""
    op: Any = route.info.operation
    context = XmlParserContext(settings=op.input.wsdl.settings)  # type: ignore[no-untyped-call]
    strict = _STRICT_VALUES.set(True)
    try:
        # The wrapper element's value, never unwrapped: handlers always get `req.<Child>`.
        return op.input.body.parse(envelope.payload, op.input.wsdl.types, context=context)
    except Exception as exc:  # noqa: BLE001 - zeep raises many types for bad input
        reason = f"bad {route.info.name} request: {exc}"
        raise SoapFault.sender("InvalidArgs", reason=reason) from None
    finally:
        _STRICT_VALUES.reset(strict)


def _writer(info: OperationInfo) -> ResponseWriter | None:
    """The compiled writer of a document/literal response without SOAP headers, if plain."""
    output: Any = info.operation.output
    if output is None or output.header.type.elements or getattr(output, "_is_body_wrapped", True):
        return None
    return compile_writer(output.body)


def _zeep_envelope_nsmap(info: OperationInfo) -> dict[str | None, str]:
    """The prefixes zeep declares on a response Envelope (DocumentMessage.serialize)."""
    output: Any = info.operation.output
    return {"soap-env": output.nsmap["soap-env"], **output.wsdl.types._prefix_map_custom}


def _with_prefixes(root: etree._Element, extra: Mapping[str, str]) -> etree._Element:
    """A copy of `root` whose start tag also declares `extra` (children are moved, not copied)."""
    nsmap: dict[str | None, str] = dict(root.nsmap)
    nsmap.update(extra)
    copy = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=nsmap)
    copy.extend(list(root))
    return copy


def _unrouted(element: str, info: OperationInfo | None, served: set[str]) -> SoapFault:
    """GEN-03: operations of advertised services → ActionNotSupported, others UnknownAction."""
    if info is not None and info.service.name in served:
        return SoapFault.receiver(
            "ActionNotSupported", reason=f"{info.name} is not supported by this device"
        )
    return SoapFault.sender("UnknownAction", reason=f"unknown operation {element}")


async def _read_body(request: web.Request) -> bytes | None:
    """The whole body, or None once it grows past MAX_XML_BYTES (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_XML_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _too_large(request: web.Request) -> web.StreamResponse:
    """413, then close: aiohttp would otherwise linger up to 10 s draining the unread body."""
    response = web.Response(
        status=413, text=f"SOAP requests are limited to {MAX_XML_BYTES} bytes\n"
    )
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def _soap_response(body: bytes, status: int) -> web.Response:
    response = web.Response(body=body, status=status)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
