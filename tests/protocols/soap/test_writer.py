"""The compiled response writers write zeep's bytes exactly, and refuse what they cannot.

Corpus: every response value the engine's ONVIF tests produced (writer_corpus.json, rebuilt by
writer_corpus_capture.py), written with zeep and with the compiled writer. Property: values
generated from each compiled schema (every response element of the official WSDLs) give the
same bytes from both, or NotCompiled (the server then uses zeep).
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from zeep.xsd.types import builtins as xsd
from zeep.xsd.types.collection import ListType

from app.protocols.onvif.wsdl import OperationInfo, catalog
from app.protocols.soap.writer import (
    MAX_COMPILED_DEPTH,
    NotCompiled,
    ResponseWriter,
    _Node,
    compile_writer,
)

CORPUS = Path(__file__).with_name("writer_corpus.json")
NS_TT = "http://www.onvif.org/ver10/schema"
#: Response elements whose schema is not plain (a choice or a repeated sequence somewhere).
NOT_PLAIN = {
    "GetRecordingJobsResponse",
    "CreateRecordingJobResponse",
    "GetRecordingJobConfigurationResponse",
    "SetRecordingJobConfigurationResponse",
    "GetZeroConfigurationResponse",
}
#: Generated values nest optional parts only this deep (required parts always go in).
OPTIONAL_DEPTH = 4


@functools.cache
def responses() -> dict[str, OperationInfo]:
    """'{ns}LocalName' of every response element → its operation."""
    found: dict[str, OperationInfo] = {}
    for info in catalog().by_element.values():
        output: Any = info.operation.output
        if output is not None:
            found.setdefault(output.body.qname.text, info)
    return found


@functools.cache
def writer_of(element: str) -> ResponseWriter | None:
    output: Any = responses()[element].operation.output
    return compile_writer(output.body)


def zeep_nsmap(info: OperationInfo) -> dict[str | None, str]:
    """The Envelope prefixes zeep declares (as OnvifServer passes them to the writer)."""
    output: Any = info.operation.output
    return {"soap-env": output.nsmap["soap-env"], **output.wsdl.types._prefix_map_custom}


def with_zeep(info: OperationInfo, nsmap: Mapping[str | None, str], values: Any) -> bytes:
    """The reference: zeep's envelope, re-rooted with the extra prefixes the service declares."""
    output: Any = info.operation.output
    root = output.serialize(**values).content
    extra = {k: v for k, v in nsmap.items() if root.nsmap.get(k) != v}
    if extra:
        copy = etree.Element(root.tag, attrib=dict(root.attrib), nsmap={**root.nsmap, **extra})
        copy.extend(list(root))
        root = copy
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def with_writer(writer: ResponseWriter, nsmap: Mapping[str | None, str], values: Any) -> bytes:
    root = writer.envelope(nsmap, values)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def decode(value: Any) -> Any:
    """The inverse of writer_corpus_capture.encode."""
    if not isinstance(value, dict):
        return value
    ((tag, inner),) = value.items()
    if tag == "b":
        return bool(inner)
    if tag == "f":
        return float(inner)
    if tag == "d":
        return {k: decode(v) for k, v in inner.items()}
    if tag == "l":
        return [decode(v) for v in inner]
    assert tag == "x", f"unknown corpus tag {tag!r}"
    return etree.fromstring(inner)


def corpus() -> list[Any]:
    entries = json.loads(CORPUS.read_text(encoding="utf-8"))
    return [
        pytest.param(entry, id=f"{element.split('/')[-2]}-{element.split('}')[1]}-{i}")
        for element, kept in sorted(entries.items())
        for i, entry in enumerate(kept)
    ]


# ---------------------------------------------------------------------- corpus


@pytest.mark.parametrize("entry", corpus())
def test_engine_responses_are_byte_identical_to_zeep(entry: dict[str, Any]) -> None:
    info = responses()[entry["element"]]
    writer = writer_of(entry["element"])
    assert writer is not None, f"{info.name}: the engine's answers come from a compiled writer"
    nsmap = {k or None: v for k, v in entry["nsmap"].items()}
    expected = with_zeep(info, nsmap, decode(entry["values"]))
    # Every engine answer in the corpus is plain: none may fall back to zeep.
    assert with_writer(writer, nsmap, decode(entry["values"])) == expected


def test_corpus_covers_the_engine_services() -> None:
    entries = json.loads(CORPUS.read_text(encoding="utf-8"))
    namespaces = collections.Counter(e.split("}")[0][1:] for e in entries)
    for service in ("device", "recording", "search", "replay", "receiver", "events"):
        assert any(f"/{service}/wsdl" in ns for ns in namespaces), service
    assert sum(len(v) for v in entries.values()) >= 200
    # A search page with its xs:any event messages is in it (the hot answer of a search GUI).
    pages = entries["{http://www.onvif.org/ver10/search/wsdl}GetEventSearchResultsResponse"]
    assert any('"x"' in json.dumps(p) for p in pages)


# ---------------------------------------------------------------------- refusals


def test_schemas_with_a_choice_or_repeated_sequence_are_not_compiled() -> None:
    refused = {e.split("}")[1] for e in responses() if writer_of(e) is None}
    assert refused == NOT_PLAIN
    assert compile_writer(None) is None  # a message without a body element


def recording_summary() -> tuple[OperationInfo, ResponseWriter]:
    element = "{http://www.onvif.org/ver10/search/wsdl}GetRecordingSummaryResponse"
    writer = writer_of(element)
    assert writer is not None
    return responses()[element], writer


SUMMARY = {
    "DataFrom": "2024-05-01T10:00:00Z",
    "DataUntil": "2024-05-01T11:00:00.5Z",
    "NumberRecordings": 3,
}


def test_summary_layout() -> None:
    info, writer = recording_summary()
    body = with_writer(writer, zeep_nsmap(info), {"Summary": SUMMARY})
    assert body == with_zeep(info, zeep_nsmap(info), {"Summary": SUMMARY})
    # zeep's layout, kept: a prefix per element, declared where it is first used.
    tt = 'xmlns:ns{}="http://www.onvif.org/ver10/schema"'
    assert body.decode().endswith(
        "<soap-env:Body><ns0:GetRecordingSummaryResponse "
        'xmlns:ns0="http://www.onvif.org/ver10/search/wsdl"><ns0:Summary>'
        f"<ns1:DataFrom {tt.format(1)}>2024-05-01T10:00:00Z</ns1:DataFrom>"
        f"<ns2:DataUntil {tt.format(2)}>2024-05-01T11:00:00.5Z</ns2:DataUntil>"
        f"<ns3:NumberRecordings {tt.format(3)}>3</ns3:NumberRecordings></ns0:Summary>"
        "</ns0:GetRecordingSummaryResponse></soap-env:Body></soap-env:Envelope>"
    )
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<soap-env:Envelope ")


@pytest.mark.parametrize(
    ("summary", "why"),
    [
        ({**SUMMARY, "NumberRecordings": None}, "required NumberRecordings is None"),
        ({**SUMMARY, "Unknown": 1}, "not a dict of its schema's names"),
        (collections.OrderedDict(SUMMARY), "not a dict of its schema's names"),
        ({**SUMMARY, "DataFrom": b"bytes"}, "value of type bytes"),
        ({**SUMMARY, "DataFrom": "bad \x00 text"}, "Summary"),
    ],
)
def test_unusual_values_raise_not_compiled(summary: Any, why: str) -> None:
    info, writer = recording_summary()
    with pytest.raises(NotCompiled, match=why):
        with_writer(writer, zeep_nsmap(info), {"Summary": summary})


def test_list_bounds_are_zeeps() -> None:
    element = "{http://www.onvif.org/ver10/device/wsdl}GetUsersResponse"
    info, writer = responses()[element], writer_of(element)
    assert writer is not None
    users = [{"Username": f"u{i}", "UserLevel": "User"} for i in range(2)]
    body = with_writer(writer, zeep_nsmap(info), {"User": users})
    assert body == with_zeep(info, zeep_nsmap(info), {"User": users})
    assert body.count(b'schema">User</ns') == 2 and body.count(b"<ns0:User>") == 2
    # GetRecordings' RecordingItem is minOccurs=0: an empty list writes nothing, like zeep.
    element = "{http://www.onvif.org/ver10/recording/wsdl}GetRecordingsResponse"
    info, writer = responses()[element], writer_of(element)
    assert writer is not None
    empty = with_writer(writer, zeep_nsmap(info), {"RecordingItem": []})
    assert empty == with_zeep(info, zeep_nsmap(info), {"RecordingItem": []})
    assert empty.endswith(
        b'<ns0:GetRecordingsResponse xmlns:ns0="http://www.onvif.org/ver10/recording/wsdl"/>'
        b"</soap-env:Body></soap-env:Envelope>"
    )


def test_depth_limit_is_a_named_constant() -> None:
    assert MAX_COMPILED_DEPTH >= 12  # ONVIF responses nest about 12 deep


# ---------------------------------------------------------------------- property

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FF),
    max_size=8,
)
_TIMES = st.sampled_from(["2024-01-02T03:04:05Z", "1970-01-01T00:00:00.001Z", "PT5S", "x"])


def simple_values(node: _Node) -> st.SearchStrategy[Any]:
    """Values for a simple type: mostly what the engine sends, sometimes anything."""
    xsd_type = getattr(node.xmlvalue, "__self__", None)
    if isinstance(xsd_type, ListType):
        usual: st.SearchStrategy[Any] = st.lists(_TEXT.filter(str.strip), max_size=3)
    elif isinstance(xsd_type, xsd.Boolean):
        usual = st.booleans()
    elif isinstance(xsd_type, xsd.Integer):
        usual = st.integers(-(2**40), 2**40)
    elif isinstance(xsd_type, xsd.Float | xsd.Double | xsd.Decimal):
        usual = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(0, 99)
    elif isinstance(xsd_type, xsd.DateTime | xsd.Duration):
        usual = _TIMES
    else:
        usual = _TEXT
    return usual | st.sampled_from([0, True, "", 1.5])


def any_elements() -> st.SearchStrategy[Any]:
    def element(text: str) -> Any:
        item = etree.Element(f"{{{NS_TT}}}SimpleItem", {"Name": "A", "Value": text})
        return item

    return st.builds(element, _TEXT)


def values_for(node: _Node, depth: int = 0) -> st.SearchStrategy[Any]:
    """A dict of a complex node's children, attributes and text, as a handler would return."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for attr in node.attrs:
        attr_node = _Node(attr.name, "", True, False, 0, 1, xmlvalue=attr.xmlvalue)
        attr_node.accepts = attr.accepts
        (required if attr.required else optional)[attr.name] = simple_values(attr_node)
    if node.text is not None:
        text_node = _Node(node.text[0], "", False, False, 1, 1, xmlvalue=node.text[1])
        required[node.text[0]] = simple_values(text_node)
    for child in node.children:
        if child.optional and depth >= OPTIONAL_DEPTH:
            continue
        if child.is_any:
            one = any_elements()
        elif child.xmlvalue is not None:
            one = simple_values(child)
        else:
            one = st.deferred(_nested(child, depth + 1))
        if child.multiple:
            high = 2 if child.max_occurs is None else min(child.max_occurs, 2)
            many = st.lists(one, min_size=min(child.min_occurs, high), max_size=high)
            one = many | one if child.min_occurs <= 1 else many
        (optional if child.optional else required)[child.name] = one
    return st.fixed_dictionaries(required, optional=optional)


def _nested(node: _Node, depth: int) -> Callable[[], st.SearchStrategy[Any]]:
    return lambda: values_for(node, depth)


@functools.cache
def plain_responses() -> list[tuple[str, st.SearchStrategy[Any]]]:
    found = []
    for element in sorted(responses()):
        writer = writer_of(element)
        if writer is not None:
            found.append((element, values_for(writer._body)))
    return found


@settings(max_examples=300)
@given(data=st.data())
def test_generated_values_are_byte_identical_or_not_compiled(data: st.DataObject) -> None:
    element, strategy = data.draw(st.sampled_from(plain_responses()), label="response")
    info, writer = responses()[element], writer_of(element)
    assert writer is not None
    values = data.draw(strategy, label="values")
    nsmap = zeep_nsmap(info)
    try:
        written = with_writer(writer, nsmap, values)
    except NotCompiled:
        return  # the server serializes this one with zeep (test_server_writer checks that)
    assert written == with_zeep(info, nsmap, values)
