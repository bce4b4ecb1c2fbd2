"""The one PSIA resource registry: path lookup, methods, access levels, index/indexr/description.

Services and resources are `Node`s in one tree; everything generic is derived from it (HR-02..04,
HR-09, AU-06): a service answers GET with its index, `index`/`indexr`/`description` exist under
every service, `description` under every resource, `capabilities` where a handler is given, an
unknown path is 404 and a method the node lacks is 405 with `Allow`.

    root = Node.service("PSIA")
    system = root.add(Node.service("System"))
    system.add(Node.resource("time", get=Method(handler, Access.VIEWER, "Device time", ...)))
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping

from lxml import etree

from app.engine.rest.status import (
    OK,
    Status,
    bad_xml_content,
    bad_xml_format,
    not_found,
    response_status_document,
)
from app.engine.rest.xml import (
    CONTENT_TYPE,
    XLINK_NS,
    BodyContentError,
    BodyFormatError,
    Doc,
    child,
    new_root,
    parse_body,
    serialize,
    text_child,
)
from app.engine.users import UserLevel

#: Standard child resources of every service (HR-03).
STD_SERVICE_CHILDREN = ("index", "indexr", "description")
#: The dynamic list-member segment in descriptions and DESIGN.md.
ITEM = "<ID>"
METHODS = ("GET", "PUT", "POST", "DELETE")


class Access(enum.IntEnum):
    """HR-22/AU-06: the three REST access levels, ordered by power."""

    VIEWER = 1
    OPERATOR = 2
    ADMINISTRATOR = 3


#: AU-08: the same users as ONVIF; ONVIF's "User" level is the REST viewer.
ACCESS_OF_LEVEL: dict[UserLevel, Access] = {
    UserLevel.USER: Access.VIEWER,
    UserLevel.OPERATOR: Access.OPERATOR,
    UserLevel.ADMINISTRATOR: Access.ADMINISTRATOR,
}


@dataclasses.dataclass(frozen=True)
class RestRequest:
    """One authenticated request as a handler sees it."""

    method: str
    #: The path as the client spelt it (the ResponseStatus requestURL).
    url: str
    #: Values of the <ID> segments on the way, outermost first.
    ids: tuple[str, ...]
    query: Mapping[str, str]
    body: bytes
    user: str
    access: Access
    #: Host name or address the client used (RTSP URLs must use it too).
    host: str
    secure: bool = False

    def doc(self, *roots: str) -> Doc:
        """The body parsed as one of `roots`; ResponseStatus 5/6 errors otherwise."""
        try:
            return parse_body(self.body, roots)
        except BodyFormatError as exc:
            raise bad_xml_format(exc.message) from None
        except BodyContentError as exc:
            raise bad_xml_content(exc.message) from None


@dataclasses.dataclass(frozen=True)
class RestResponse:
    body: bytes
    content_type: str = CONTENT_TYPE
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def xml_response(root: etree._Element, status: int = 200) -> RestResponse:
    return RestResponse(serialize(root), status=status)


def status_response(request: RestRequest, status: Status = OK) -> RestResponse:
    """A ResponseStatus answer to `request` (writes answer with this, HR-06..08)."""
    return RestResponse(response_status_document(request.url, status), status=status.http_status)


Handler = Callable[[RestRequest], Awaitable[RestResponse]]


@dataclasses.dataclass(frozen=True)
class Method:
    """One supported method of a node, with what `description` says about it."""

    handler: Handler
    access: Access
    function: str
    _: dataclasses.KW_ONLY
    inbound: str = "none"
    result: str = "ResponseStatus"
    query: tuple[str, ...] = ()
    notes: str = ""


class Node:
    """A service (container) or resource of the tree; `item` is its <ID> member, if a list."""

    def __init__(
        self,
        name: str,
        kind: str,
        methods: Mapping[str, Method] | None = None,
        *,
        capabilities: Handler | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.kind = kind
        self.methods = dict(methods or {})
        self.capabilities = capabilities
        self.description = description
        self.children: dict[str, Node] = {}
        self.item: Node | None = None
        #: Path below the root with the <ID> placeholder, e.g. "Security/AAA/users/<ID>".
        self.path = ""

    @classmethod
    def service(cls, name: str, description: str = "") -> Node:
        return cls(name, "service", description=description)

    @classmethod
    def resource(
        cls,
        name: str,
        *,
        get: Method | None = None,
        put: Method | None = None,
        post: Method | None = None,
        delete: Method | None = None,
        capabilities: Handler | None = None,
        description: str = "",
    ) -> Node:
        given = {"GET": get, "PUT": put, "POST": post, "DELETE": delete}
        methods = {k: v for k, v in given.items() if v is not None}
        return cls(name, "resource", methods, capabilities=capabilities, description=description)

    def add(self, node: Node) -> Node:
        key = node.name.lower()
        if key in self.children or key in STD_SERVICE_CHILDREN or key == "capabilities":
            raise ValueError(f"{self.path or '/'} already has a child {node.name!r}")
        node._set_path(f"{self.path}/{node.name}" if self.path else node.name)
        self.children[key] = node
        return node

    def add_item(self, node: Node) -> Node:
        """Make `node` the member resource addressed by any ID below this list."""
        node._set_path(f"{self.path}/{ITEM}" if self.path else ITEM)
        self.item = node
        return node

    def _set_path(self, path: str) -> None:
        self.path = path
        for sub in self.children.values():
            sub._set_path(f"{path}/{sub.name}")
        if self.item is not None:
            self.item._set_path(f"{path}/{ITEM}")

    def allowed(self) -> tuple[str, ...]:
        found = set(self.methods)
        if self.kind == "service":
            found.add("GET")
        return tuple(m for m in METHODS if m in found)


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A request path looked up: the node, the <ID> values, and which standard document."""

    node: Node
    ids: tuple[str, ...]
    #: "index", "indexr", "description", "capabilities" or None for the node itself.
    standard: str | None


def resolve(root: Node, segments: list[str]) -> Resolved:
    """Walk `segments` (below /PSIA) from `root`; names match case-insensitively (HR-01)."""
    node = root
    ids: list[str] = []
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        key = segment.lower()
        found = node.children.get(key)
        if found is not None:
            node = found
            continue
        if last and key == "description":
            return Resolved(node, tuple(ids), "description")
        if last and node.kind == "service" and key in ("index", "indexr"):
            return Resolved(node, tuple(ids), key)
        if last and key == "capabilities" and node.capabilities is not None:
            return Resolved(node, tuple(ids), "capabilities")
        if node.item is not None:
            ids.append(segment)
            node = node.item
            continue
        raise not_found(f"no resource {segment[:80]!r} under /{node.path or ''}")
    return Resolved(node, tuple(ids), None)


def _href(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if path else prefix


def _resource_entry(parent: etree._Element, href: str, name: str, kind: str) -> etree._Element:
    entry = child(parent, "Resource")
    entry.set(f"{{{XLINK_NS}}}type", "simple")
    entry.set(f"{{{XLINK_NS}}}href", href)
    text_child(entry, "name", name)
    text_child(entry, "version", "1.0")
    text_child(entry, "type", kind)
    return entry


def index_document(node: Node, prefix: str, *, recursive: bool) -> etree._Element:
    """ResourceList of a service's direct children (HR-03); `recursive` nests services."""
    root = new_root("ResourceList", xlink=True)
    _fill_index(root, node, prefix, recursive)
    return root


def _fill_index(into: etree._Element, node: Node, prefix: str, recursive: bool) -> None:
    base = _href(prefix, node.path)
    for std in STD_SERVICE_CHILDREN:
        _resource_entry(into, f"{base}/{std}", std, "resource")
    for sub in node.children.values():
        entry = _resource_entry(into, _href(prefix, sub.path), sub.name, sub.kind)
        if recursive and sub.kind == "service":
            _fill_index(child(entry, "ResourceList"), sub, prefix, recursive)


def _method_block(parent: etree._Element, verb: str, method: Method) -> None:
    block = child(parent, verb.lower())
    params = child(block, "QueryStringParameterList")
    for name in method.query:
        text_child(params, "QueryStringParameter", name)
    text_child(block, "inboundData", method.inbound)
    text_child(block, "function", method.function)
    text_child(block, "returnResult", method.result)
    if method.notes:
        text_child(block, "notes", method.notes)
    text_child(block, "accessLevel", method.access.name.capitalize())


def description_document(node: Node, standard: str | None) -> etree._Element:
    """ResourceDescription of a node (standard=None) or of one of its standard documents."""
    root = new_root("ResourceDescription")
    if standard is None:
        text_child(root, "name", node.name)
        text_child(root, "version", "1.0")
        text_child(root, "type", node.kind)
        if node.description:
            text_child(root, "description", node.description)
        if node.kind == "service":
            _method_block(root, "GET", _STD_METHODS["index"])
        for verb in METHODS:
            if verb in node.methods:
                _method_block(root, verb, node.methods[verb])
        return root
    text_child(root, "name", standard)
    text_child(root, "version", "1.0")
    text_child(root, "type", "resource")
    _method_block(root, "GET", _STD_METHODS[standard])
    return root


async def _never(request: RestRequest) -> RestResponse:
    raise AssertionError("standard documents are generated by the registry")  # pragma: no cover


_STD_METHODS = {
    "index": Method(
        _never, Access.VIEWER, "List the direct child resources", result="ResourceList"
    ),
    "indexr": Method(
        _never, Access.VIEWER, "List the child resources recursively", result="ResourceList"
    ),
    "description": Method(
        _never, Access.VIEWER, "Describe the resource", result="ResourceDescription"
    ),
    "capabilities": Method(
        _never, Access.VIEWER, "The resource with its value constraints", result="same as GET"
    ),
}


def walk(root: Node) -> list[Node]:
    """Every node, depth first (item members included): the access table in DESIGN.md/tests."""
    out = [root]
    for sub in root.children.values():
        out.extend(walk(sub))
    if root.item is not None:
        out.extend(walk(root.item))
    return out


def required_access(resolved: Resolved, method: str) -> Access | None:
    """The level `method` needs on `resolved`, or None when the node does not support it."""
    if resolved.standard is not None or (resolved.node.kind == "service" and method == "GET"):
        return Access.VIEWER if method == "GET" else None
    found = resolved.node.methods.get(method)
    return None if found is None else found.access
