"""The REST client's XML readers: hostile bytes, named limits, namespace variants, error mapping."""

from __future__ import annotations

import calendar
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ErrorKind
from app.protocols.soap.xml import MAX_XML_DEPTH
from app.remote.rest import models as m
from app.remote.rest.client import with_credentials
from app.remote.rest.errors import (
    ResponseStatus,
    RestAuthError,
    RestBusyError,
    RestHttpError,
    RestLimitError,
    RestNotFoundError,
    RestNotSupportedError,
    RestPermissionError,
    RestProtocolError,
    RestRequestError,
    refusal,
)
from app.remote.rest.xml import (
    MAX_LEAF_CHARS,
    MAX_XML_RESPONSE_BYTES,
    document,
    findtext,
    parse,
    response_status,
)

NAMESPACES = (
    "",
    "urn:psialliance-org",
    "http://www.hikvision.com/ver10/XMLSchema",
    "http://www.hikvision.com/ver20/XMLSchema",
    "http://www.isapi.org/ver20/XMLSchema",
)
RESOURCE = "POST /PSIA/ContentMgmt/search"
#: 2000-01-01 … 2099-12-31 in seconds: the range the generated matches use.
FIRST_S, LAST_S = 946_684_800, 4_102_444_799


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_raise_a_protocol_error(data: bytes) -> None:
    try:
        root = parse(data, RESOURCE)
    except RestProtocolError as exc:
        assert str(exc).startswith(f"{RESOURCE}: ")
        return
    # Whatever parsed is readable by every reader without other exceptions.
    try:
        m.SearchPage.from_xml(root, RESOURCE)
    except RestProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from("<>/=\"' abcdeCMSearchResultmatchListsearchMatchItem&;!-?"),
        max_size=300,
    )
)
def test_markup_like_garbage_is_refused_cleanly(text: str) -> None:
    try:
        root = parse(text.encode(), RESOURCE)
        m.SearchPage.from_xml(root, RESOURCE)
    except RestProtocolError:
        pass


@st.composite
def pages(draw: st.DrawFn) -> tuple[str, str, list[tuple[int, int, str]], bytes]:
    """A CMSearchResult in some namespace, with unknown elements sprinkled in."""
    ns = draw(st.sampled_from(NAMESPACES))
    status = draw(st.sampled_from(["OK", "MORE", "NO MATCHES"]))
    junk = draw(st.sampled_from(["", "<vendorThing a='1'>x</vendorThing>", "<Extensions/>"]))
    spans = draw(
        st.lists(
            st.tuples(
                st.integers(FIRST_S, LAST_S),
                st.integers(0, 86_400),
                st.text(alphabet="0123456789", min_size=1, max_size=4),
            ),
            max_size=8,
        )
    )
    basic = draw(st.booleans())
    items = []
    for start, length, track in spans:
        times = [_time(start, basic), _time(start + length, basic)]
        items.append(
            f"<searchMatchItem>{junk}<trackID>{track}</trackID><timeSpan><startTime>{times[0]}"
            f"</startTime><endTime>{times[1]}</endTime></timeSpan><mediaSegmentDescriptor>"
            f"<playbackURI>rtsp://h/t?starttime={_time(start, True)}</playbackURI>"
            f"</mediaSegmentDescriptor></searchMatchItem>"
        )
    xmlns = f' xmlns="{ns}"' if ns else ""
    doc = (
        f'<?xml version="1.0" encoding="UTF-8"?><CMSearchResult version="1.0"{xmlns}>{junk}'
        f"<searchID>ID</searchID><responseStatusStrg>{status}</responseStatusStrg>"
        f"<totalMatches>{len(items)}</totalMatches><matchList>{''.join(items)}</matchList>"
        "</CMSearchResult>"
    )
    expected = [(s * 10**9, (s + n) * 10**9, track) for s, n, track in spans]
    return ns, status, expected, doc.encode()


def _time(seconds: int, basic: bool) -> str:
    fmt = "%Y%m%dT%H%M%SZ" if basic else "%Y-%m-%dT%H:%M:%SZ"
    return time.strftime(fmt, time.gmtime(seconds))


@settings(max_examples=60, deadline=None)
@given(pages())
def test_search_pages_read_the_same_in_every_namespace_and_time_form(
    case: tuple[str, str, list[tuple[int, int, str]], bytes],
) -> None:
    _, status, expected, data = case
    page = m.SearchPage.from_xml(parse(data, RESOURCE), RESOURCE)
    assert (page.search_id, page.status, page.total) == ("ID", status, len(expected))
    got = [(x.start_ns, x.end_ns, x.track_id) for x in page.matches]
    assert got == expected
    for match in page.matches:
        assert match.playback_uri.startswith("rtsp://h/t?starttime=")


def test_named_limits_are_enforced_with_the_limit_in_the_message() -> None:
    with pytest.raises(RestLimitError, match=f"exceeds {MAX_XML_RESPONSE_BYTES}"):
        parse(b"<a>" + b" " * MAX_XML_RESPONSE_BYTES + b"</a>", RESOURCE)
    deep = b"<a>" * (MAX_XML_DEPTH + 1) + b"</a>" * (MAX_XML_DEPTH + 1)
    with pytest.raises(RestProtocolError, match=f"deeper than {MAX_XML_DEPTH}"):
        parse(deep, RESOURCE)
    leaf = parse(f"<a><b>{'x' * (MAX_LEAF_CHARS + 1)}</b></a>".encode(), RESOURCE)
    with pytest.raises(RestLimitError, match=f"<b> holds {MAX_LEAF_CHARS + 1} characters"):
        findtext(leaf, "b")
    many = "".join("<searchMatchItem/>" for _ in range(m.MAX_MATCHES_PER_PAGE + 1))
    doc = f"<CMSearchResult><responseStatusStrg>OK</responseStatusStrg><matchList>{many}"
    root = parse((doc + "</matchList></CMSearchResult>").encode(), RESOURCE)
    with pytest.raises(RestLimitError, match=f"> {m.MAX_MATCHES_PER_PAGE}"):
        m.SearchPage.from_xml(root, RESOURCE)
    resources = "".join(
        f'<Resource href="/PSIA/r{i}"><name>r</name></Resource>'
        for i in range(m.MAX_INDEX_NODES + 1)
    )
    index = parse(f"<ResourceList>{resources}</ResourceList>".encode(), RESOURCE)
    with pytest.raises(RestLimitError, match=f"more than {m.MAX_INDEX_NODES}"):
        m.Capabilities.from_indexr(index)


def test_bad_match_times_and_statuses_name_the_resource() -> None:
    bad_time = (
        b"<CMSearchResult><responseStatusStrg>OK</responseStatusStrg><matchList><searchMatchItem>"
        b"<timeSpan><startTime>yesterday</startTime></timeSpan></searchMatchItem></matchList>"
        b"</CMSearchResult>"
    )
    with pytest.raises(RestProtocolError, match=f"{RESOURCE}: a search match has a bad time"):
        m.SearchPage.from_xml(parse(bad_time, RESOURCE), RESOURCE)
    odd = b"<CMSearchResult><responseStatusStrg>MAYBE</responseStatusStrg></CMSearchResult>"
    with pytest.raises(RestProtocolError, match="responseStatusStrg 'MAYBE'"):
        m.SearchPage.from_xml(parse(odd, RESOURCE), RESOURCE)
    none = b"<CMSearchResult><responseStatusStrg>no matches</responseStatusStrg></CMSearchResult>"
    page = m.SearchPage.from_xml(parse(none, RESOURCE), RESOURCE)
    assert (page.status, page.matches) == (m.SEARCH_NONE, ())


def test_indexr_paths_compare_across_roots_case_and_absolute_hrefs() -> None:
    index = parse(
        b'<ResourceList xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<Resource xlink:href="/ISAPI/ContentMgmt"><ResourceList>'
        b'<Resource xlink:href="http://10.0.0.1/ISAPI/ContentMgmt/search/"/>'
        b"</ResourceList></Resource></ResourceList>",
        RESOURCE,
    )
    caps = m.Capabilities.from_indexr(index)
    assert caps.paths == frozenset({"/contentmgmt", "/contentmgmt/search"})
    assert caps.search and caps.content_mgmt and not caps.manual_record
    assert caps.has("/PSIA/contentMgmt/Search")


@pytest.mark.parametrize(
    ("http", "code", "sub", "error", "kind"),
    [
        (401, 4, "badAuthorization", RestAuthError, ErrorKind.UNAUTHENTICATED),
        (401, None, None, RestAuthError, ErrorKind.UNAUTHENTICATED),
        (403, 4, "lowPrivilege", RestPermissionError, ErrorKind.PERMISSION_DENIED),
        (403, 4, "notSupport", RestNotSupportedError, ErrorKind.UNIMPLEMENTED),
        (403, None, None, RestPermissionError, ErrorKind.PERMISSION_DENIED),
        (404, 4, "invalidID", RestNotFoundError, ErrorKind.NOT_FOUND),
        (404, None, None, RestNotFoundError, ErrorKind.NOT_FOUND),
        (405, 4, "methodNotAllowed", RestNotSupportedError, ErrorKind.UNIMPLEMENTED),
        (400, 5, "badXmlFormat", RestRequestError, ErrorKind.INVALID_ARGUMENT),
        (400, 6, "", RestRequestError, ErrorKind.INVALID_ARGUMENT),
        (413, 5, "messageTooLarge", RestRequestError, ErrorKind.INVALID_ARGUMENT),
        (503, 2, "deviceBusy", RestBusyError, ErrorKind.UNAVAILABLE),
        (200, 2, "", RestBusyError, ErrorKind.UNAVAILABLE),
        (500, 3, "deviceError", RestHttpError, ErrorKind.UNAVAILABLE),
    ],
)
def test_response_status_maps_to_errors(
    http: int,
    code: int | None,
    sub: str | None,
    error: type[RestHttpError],
    kind: ErrorKind,
) -> None:
    status = None if code is None else ResponseStatus("/PSIA/x", code, "S", sub or "")
    raised = refusal("PUT /PSIA/System/time", http, status)
    assert type(raised) is error and raised.kind is kind
    assert str(raised).startswith("PUT /PSIA/System/time: ") and f"HTTP {http}" in str(raised)
    if sub:
        assert f"subStatusCode {sub}" in str(raised)


def test_response_status_reader_and_request_documents() -> None:
    doc = parse(
        b'<ResponseStatus xmlns="http://www.isapi.org/ver20/XMLSchema"><requestURL>/a</requestURL>'
        b"<statusCode>0</statusCode><statusString>OK</statusString>"
        b"<subStatusCode>ok</subStatusCode></ResponseStatus>",
        RESOURCE,
    )
    assert response_status(doc) == ResponseStatus("/a", 0, "OK", "ok")
    assert response_status(doc) is not None and response_status(doc).ok  # type: ignore[union-attr]
    assert response_status(parse(b"<DeviceInfo/>", RESOURCE)) is None
    body = document(
        "CMSearchDescription", [("searchID", "a<&>b"), ("trackList", [("trackID", "1")])]
    )
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?><CMSearchDescription version="1.0" '
        b'xmlns="urn:psialliance-org"><searchID>a&lt;&amp;&gt;b</searchID>'
        b"<trackList><trackID>1</trackID></trackList></CMSearchDescription>"
    )


def test_times_and_credentials_in_uris() -> None:
    expected = calendar.timegm((2017, 3, 14, 10, 32, 1)) * 10**9
    assert m.parse_time("20170314T103201Z") == expected
    assert m.parse_time("2017-03-14T10:32:01Z") == expected
    assert m.parse_time("2017-03-14T12:32:01+02:00") == expected
    with pytest.raises(ValueError):
        m.parse_time("20170314103201")
    uri = with_credentials("rtsp://old:x@h:554/p?starttime=1", "us er", "p@ss:w/d")
    assert uri == "rtsp://us%20er:p%40ss%3Aw%2Fd@h:554/p?starttime=1"
