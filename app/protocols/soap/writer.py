"""Compiled response writers: zeep's serialization of a response element, without zeep per call.

zeep serializes a response by first building a tree of value objects from the keyword values
(signature processing, per element) and then rendering it; for a search page that is most of a
request's CPU. `compile_writer` walks zeep's schema objects for one response element once and
keeps, per element, what rendering needs: qualified name, minOccurs/maxOccurs, the simple
type's `xmlvalue`, attributes in schema order, and what zeep fills in for an absent keyword
(the schema's default, [] for repeated elements). `ResponseWriter.envelope` then creates the
same lxml elements in the same order with the same calls zeep makes, so the serialized bytes are
identical (tests/protocols/soap/test_writer.py compares the engine's answers and generated
values byte for byte). As zeep does, a scalar given for a simple-content type is its text, and
an xs:list type takes a Python list.

Only the plain shapes are compiled: complex types made of one or more sequences (each exactly
once) of elements, attributes, `xs:any` and `xs:anyAttribute`, and simple content. A schema with
a choice, a group, a repeated or nested sequence, or an abstract/xs:anyType element is not
compiled (`compile_writer` returns None). At run time a value outside the happy path (an unknown
keyword, a missing required element, None where zeep would write xsi:nil, a value object instead
of a dict, anything a type's xmlvalue or lxml refuses) raises `NotCompiled`, and the caller
serializes that response with zeep instead, so zeep stays the authority for every edge case and
every error message.

    writer = compile_writer(operation.output.body)        # once, None = always use zeep
    try:
        root = writer.envelope(nsmap, values)              # <soap-env:Envelope> element
    except NotCompiled:
        root = operation.output.serialize(**values).content
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree
from zeep.xsd.elements import Any as XsdAny
from zeep.xsd.elements import AnyAttribute, Attribute, Element
from zeep.xsd.elements.indicators import Sequence
from zeep.xsd.types.any import AnyType
from zeep.xsd.types.collection import ListType
from zeep.xsd.types.complex import ComplexType
from zeep.xsd.types.simple import AnySimpleType

from app.protocols.soap.envelope import NS_SOAP12

#: Deepest element nesting compiled (ONVIF responses need about 12; guards recursive types).
MAX_COMPILED_DEPTH = 24

_BODY = f"{{{NS_SOAP12}}}Body"
_ENVELOPE = f"{{{NS_SOAP12}}}Envelope"
#: Python types of values zeep renders through a simple type's xmlvalue unchanged.
_SIMPLE_VALUES: tuple[type, ...] = (str, bool, int, float)
#: The same for an xs:list type (zeep joins the items' xmlvalue with spaces).
_LIST_VALUES: tuple[type, ...] = (list,)


class NotCompiled(Exception):
    """This value is not one the compiled writer renders exactly like zeep: use zeep."""


class _Unsupported(Exception):
    """The schema has a construct the compiler does not handle (compile_writer → None)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Attr:
    name: str
    qname: str
    xmlvalue: Callable[[Any], str]
    required: bool
    accepts: tuple[type, ...] = _SIMPLE_VALUES
    #: What zeep renders when the keyword is absent (the schema's default, else None).
    default: Any = None


@dataclasses.dataclass(slots=True)
class _Node:
    """One element particle (or xs:any when `is_any`) of a sequence."""

    name: str
    qname: str
    optional: bool
    multiple: bool
    min_occurs: int
    max_occurs: int | None  # None = unbounded
    is_any: bool = False
    #: What zeep renders when the keyword is absent: [] for repeated, the schema's default.
    default: Any = None
    #: Simple type: the text of the element. None for complex types and xs:any.
    xmlvalue: Callable[[Any], str] | None = None
    #: Python types of the values `xmlvalue` is given (others: NotCompiled).
    accepts: tuple[type, ...] = _SIMPLE_VALUES
    #: Complex type parts.
    attrs: tuple[_Attr, ...] = ()
    any_attr: str | None = None
    children: tuple[_Node, ...] = ()
    names: frozenset[str] = frozenset()
    #: Simple content of a complex type: (keyword name, xmlvalue) of the element's text.
    text: tuple[str, Callable[[Any], str]] | None = None


class ResponseWriter:
    """Writes one response element's envelope exactly as zeep would (see module docstring)."""

    def __init__(self, body: _Node) -> None:
        self._body = body

    def envelope(self, nsmap: Mapping[str | None, str], values: Mapping[str, Any]) -> Any:
        """`<Envelope><Body><Response>…` with `nsmap` on the Envelope; raises NotCompiled."""
        root = etree.Element(_ENVELOPE, nsmap=dict(nsmap))
        body = etree.SubElement(root, _BODY)
        try:
            _render_item(self._body, body, values)
        except NotCompiled:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is zeep's to report
            # e.g. a control character lxml refuses, or a value a type's xmlvalue cannot
            # format: zeep then fails its own way and the server answers "invalid response".
            raise NotCompiled(f"{self._body.name}: {type(exc).__name__}: {exc}") from None
        return root


def compile_writer(body: Any) -> ResponseWriter | None:
    """The writer of zeep message body element `body`, or None if its schema is not plain."""
    if not isinstance(body, Element):
        return None
    try:
        return ResponseWriter(_compile_element(body, 0))
    except _Unsupported:
        return None


# ---------------------------------------------------------------------- compile


def _compile_element(element: Any, depth: int) -> _Node:
    if depth > MAX_COMPILED_DEPTH:
        raise _Unsupported(f"{element.qname} nested deeper than {MAX_COMPILED_DEPTH}")
    max_occurs = element.max_occurs
    node = _Node(
        name=element.name,
        qname=element.qname,
        optional=element.min_occurs == 0,
        multiple=element.accepts_multiple,
        min_occurs=element.min_occurs,
        max_occurs=None if max_occurs == "unbounded" else int(max_occurs),
        default=element.default_value,
    )
    xsd_type = element.type
    if isinstance(xsd_type, AnySimpleType):
        node.xmlvalue = xsd_type.xmlvalue
        node.accepts = _accepts(xsd_type)
        return node
    # zeep's ComplexType derives from AnyType: only a bare xs:anyType is refused here.
    if not isinstance(xsd_type, ComplexType) or type(xsd_type) is AnyType:
        raise _Unsupported(f"{element.qname} has type {type(xsd_type).__name__}")
    _compile_complex(node, xsd_type, depth)
    return node


def _compile_complex(node: _Node, xsd_type: ComplexType, depth: int) -> None:
    attrs: list[_Attr] = []
    for name, attribute in xsd_type.attributes:
        if isinstance(attribute, AnyAttribute):
            node.any_attr = name
        elif isinstance(attribute, Attribute) and isinstance(attribute.type, AnySimpleType):
            attrs.append(
                _Attr(
                    name,
                    attribute.qname,
                    attribute.type.xmlvalue,
                    attribute.required,
                    _accepts(attribute.type),
                    attribute.default_value,
                )
            )
        else:
            raise _Unsupported(f"attribute {name} of {xsd_type.name}")
    node.attrs = tuple(attrs)
    children: list[_Node] = []
    for name, particle in xsd_type.elements_nested:
        if isinstance(particle, Element):
            # Simple content (xs:simpleContent): zeep renders value[name] as the text.
            if len(xsd_type.elements_nested) != 1 or not isinstance(particle.type, AnySimpleType):
                raise _Unsupported(f"{xsd_type.name} mixes simple content and elements")
            node.text = (name, particle.type.xmlvalue)
        elif isinstance(particle, Sequence) and particle.min_occurs == particle.max_occurs == 1:
            children.extend(_compile_sequence(particle, depth))
        else:
            raise _Unsupported(f"{xsd_type.name} has a {type(particle).__name__}")
    node.children = tuple(children)
    node.names = frozenset(
        [c.name for c in children]
        + [a.name for a in attrs]
        + ([node.any_attr] if node.any_attr else [])
        + ([node.text[0]] if node.text else [])
    )


def _accepts(xsd_type: AnySimpleType) -> tuple[type, ...]:
    return _LIST_VALUES if isinstance(xsd_type, ListType) else _SIMPLE_VALUES


def _compile_sequence(sequence: Sequence, depth: int) -> list[_Node]:
    nodes = []
    for name, particle in sequence.elements_nested:
        if isinstance(particle, XsdAny):
            if particle.restrict is not None:
                raise _Unsupported(f"restricted xs:any {name}")
            max_occurs = particle.max_occurs
            nodes.append(
                _Node(
                    name=name,
                    qname="",
                    optional=particle.min_occurs == 0,
                    multiple=particle.accepts_multiple,
                    min_occurs=particle.min_occurs,
                    max_occurs=None if max_occurs == "unbounded" else int(max_occurs),
                    is_any=True,
                    default=particle.default_value,
                )
            )
        elif isinstance(particle, Element) and name:
            nodes.append(_compile_element(particle, depth + 1))
        else:
            raise _Unsupported(f"sequence particle {type(particle).__name__} {name}")
    return nodes


# ---------------------------------------------------------------------- render


def _render(node: _Node, parent: Any, value: Any) -> None:
    """An element particle's value: one item, or a list for maxOccurs > 1 (zeep's bounds)."""
    if node.multiple and isinstance(value, list):
        if len(value) < node.min_occurs or (
            node.max_occurs is not None and len(value) > node.max_occurs
        ):
            raise NotCompiled(f"{len(value)} {node.name} elements are out of bounds")
        for item in value:
            _render_item(node, parent, item)
    else:
        _render_item(node, parent, value)


def _render_item(node: _Node, parent: Any, value: Any) -> None:
    if value is None:
        if node.optional:
            return
        raise NotCompiled(f"required {node.name} is None")  # zeep writes an empty element
    if node.is_any:
        if not isinstance(value, etree._Element):
            raise NotCompiled(f"xs:any {node.name} is not an lxml element")
        parent.append(value)
        return
    if node.xmlvalue is not None:
        if not isinstance(value, node.accepts):
            raise NotCompiled(f"{node.name} value of type {type(value).__name__}")
        etree.SubElement(parent, node.qname).text = node.xmlvalue(value)
        return
    if node.text is not None and isinstance(value, _SIMPLE_VALUES):
        value = {node.text[0]: value}  # zeep builds the type from its one positional value
    if type(value) is not dict or not value.keys() <= node.names:
        raise NotCompiled(f"{node.name} value is not a dict of its schema's names")
    element = etree.SubElement(parent, node.qname)
    for attr in node.attrs:
        attr_value = value.get(attr.name, attr.default)
        if attr_value is None:
            if attr.required:
                raise NotCompiled(f"required attribute {attr.name} is missing")
            continue
        if not isinstance(attr_value, attr.accepts):
            raise NotCompiled(f"attribute {attr.name} value of type {type(attr_value).__name__}")
        element.set(attr.qname, attr.xmlvalue(attr_value))
    if node.any_attr is not None:
        extra = value.get(node.any_attr)
        if extra is not None:
            raise NotCompiled(f"{node.any_attr} attributes are left to zeep")
    if node.text is not None:
        text = value.get(node.text[0])
        if not isinstance(text, _SIMPLE_VALUES):
            raise NotCompiled(f"simple content of {node.name} of type {type(text).__name__}")
        element.text = node.text[1](text)
        return
    for child in node.children:
        _render(child, element, value.get(child.name, child.default))
