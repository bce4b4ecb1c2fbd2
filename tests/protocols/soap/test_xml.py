"""Hardened XML parsing: the limits hold exactly at their edges, and the per-thread parser is
reused safely (after malformed input, and from several threads)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.soap.xml import MAX_XML_DEPTH, MAX_XML_ELEMENTS, XmlError, parse_xml


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"x" + b"</a>" * depth


def test_depth_limit_edges() -> None:
    root = parse_xml(nested(MAX_XML_DEPTH))
    assert len(list(root.iter())) == MAX_XML_DEPTH
    with pytest.raises(XmlError, match=f"nested deeper than {MAX_XML_DEPTH}"):
        parse_xml(nested(MAX_XML_DEPTH + 1))
    # Wide and shallow: many elements, depth 2, accepted.
    wide = b"<r>" + b"<i/>" * (MAX_XML_DEPTH * 4) + b"</r>"
    assert len(parse_xml(wide)) == MAX_XML_DEPTH * 4


def test_element_count_limit() -> None:
    too_many = b"<r>" + b"<i/>" * MAX_XML_ELEMENTS + b"</r>"
    with pytest.raises(XmlError, match=f"more than {MAX_XML_ELEMENTS} elements"):
        parse_xml(too_many)


def test_doctype_and_malformed_input_are_refused_and_the_parser_recovers() -> None:
    with pytest.raises(XmlError, match="DOCTYPE"):
        parse_xml(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')
    with pytest.raises(XmlError, match="malformed XML"):
        parse_xml(b"<a><b></a>")
    # The same (per-thread) parser then reads a good document, comments dropped.
    root = parse_xml(b"<a><!-- c --><b>1</b></a>")
    assert [child.tag for child in root] == ["b"]


def test_each_thread_parses_with_its_own_parser() -> None:
    results: dict[int, list[str]] = {}

    def work(n: int) -> None:
        results[n] = [
            parse_xml(f"<t{n}><v>{i}</v></t{n}>".encode())[0].text or "" for i in range(50)
        ]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [str(i) for i in range(50)] for n in range(4)}


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_garbage_is_an_xml_error_or_a_tree(data: bytes) -> None:
    try:
        root = parse_xml(b"<r>" + data + b"</r>")
    except XmlError:
        return
    assert root.tag == "r"
