"""The ONVIF search XPath dialect and topic expressions: XP-06 examples, errors, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.onvif.xpath import (
    MAX_EXPRESSION_CHARS,
    TOPIC_CONCRETE,
    TOPIC_CONCRETE_SET,
    TOPIC_SIMPLE,
    Node,
    XPathError,
    compile_filter,
    compile_topic_filter,
)

TNS1 = "http://www.onvif.org/ver10/topics"


def leaf(name: str, text: str) -> Node:
    return Node(name, text)


INFO = Node(
    "RecordingInformation",
    children=(
        leaf("RecordingToken", "REC_1"),
        Node(
            "Source",
            children=(
                leaf("SourceId", "urn:uuid:1234"),
                leaf("Name", "Camera23 Entrance"),
                leaf("Location", "Basement"),
            ),
        ),
        Node(
            "Track",
            children=(
                leaf("TrackType", "Video"),
                leaf("DataTo", "2024-05-02T10:00:00.000Z"),
                leaf("Bitrate", "900"),
            ),
        ),
        Node("Track", children=(leaf("TrackType", "Metadata"),)),
    ),
)
MESSAGE = Node(
    "Message",
    children=(
        Node("Data", children=(Node("SimpleItem", attrs={"Name": "IsMotion", "Value": "true"}),)),
    ),
)
METADATA = Node(
    "MetadataStream",
    children=(
        Node(
            "Object",
            children=(
                Node(
                    "Appearance",
                    children=(
                        Node(
                            "Shape",
                            children=(
                                Node("BoundingBox", attrs={"right": "0.7", "bottom": "0.4"}),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ),
)


@pytest.mark.parametrize(
    ("expression", "document", "expected"),
    [
        ('boolean(//Track[TrackType = "Video"])', INFO, True),
        ('boolean(//Track[TrackType = "Audio"])', INFO, False),
        ('boolean(//Track[TrackType = "Metadata"])', INFO, True),
        (
            'boolean(//Track[TrackType = "Video"]) and boolean(//Track[TrackType = "Audio"])',
            INFO,
            False,
        ),
        (
            'boolean(//Track[TrackType = "Video"]) and boolean(//Track[TrackType = "Metadata"])',
            INFO,
            True,
        ),
        (
            'boolean(//Source[Location = “Basement”]) and boolean(//Track[TrackType = "Video"])',
            INFO,
            True,
        ),
        ('not(boolean(//Track[TrackType = "Audio"]))', INFO, True),
        (
            'boolean(//Source[Name = "Camera23"]) or boolean(//Source[SourceId = "urn:uuid:1234"])',
            INFO,
            True,
        ),
        ('boolean(//Track[DataTo >= "2024-05-01T00:00:00Z"])', INFO, True),
        ('boolean(//Track[DataTo < "2024-05-02T09:00:00+00:00"])', INFO, False),
        ('contains(//Source/Name, "Entrance")', INFO, True),
        ('contains(/Source/Name, "Entrance")', INFO, True),
        ('contains(//Source/Name, "Exit")', INFO, False),
        ('boolean(//SimpleItem[@Name = "IsMotion" and @Value = "true"])', MESSAGE, True),
        ("boolean(//tt:SimpleItem[@Name='IsMotion' and not(@Value='true')])", MESSAGE, False),
        (
            'boolean(//Object/Appearance/Shape/BoundingBox[@right > "0.5"]) and '
            'boolean(//Object/Appearance/Shape/BoundingBox[@bottom > "0.5"])',
            METADATA,
            False,
        ),
        ('boolean(//Object/Appearance/Shape/BoundingBox[@right > "0.5"])', METADATA, True),
        ('boolean(//Track[Bitrate > "1000"])', INFO, False),  # numeric, not lexical
        ('boolean(//Track[Bitrate > "100"])', INFO, True),
        ('boolean(//.[RecordingToken = "REC_1"])', INFO, True),
        ('boolean(//tt:Track[ tt:TrackType != "Video" ])', INFO, True),
        ("(boolean(//Track) or boolean(//Nope)) and boolean(//Source)", INFO, True),
    ],
)
def test_dialect_examples(expression: str, document: Node, expected: bool) -> None:
    assert compile_filter(expression).matches(document) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("//Track", "expected"),
        ("boolean(//Track[TrackType ~ 'x'])", "unexpected character '~'"),
        ("boolean(//Track[TrackType = Video])", "quoted string"),
        ("boolean(//Track) and", "expected"),
        ("boolean(//Track) boolean(//Track)", "'and', 'or' or the end"),
        ("not(" * 40 + "boolean(//a)" + ")" * 40, "deeper than"),
        ("boolean(//" + "/".join(["a"] * 20) + ")", "steps"),
        ("boolean(//a[" + "x='1' or " * 300 + "x='2'])", "tokens"),
        ("x" * (MAX_EXPRESSION_CHARS + 1), "exceeds"),
    ],
)
def test_errors_name_the_problem(expression: str, message: str) -> None:
    with pytest.raises(XPathError, match=message):
        compile_filter(expression)


_ATOMS = st.sampled_from(
    [
        "boolean(",
        "contains(",
        "not(",
        "(",
        ")",
        "[",
        "]",
        "//",
        "/",
        "@",
        "=",
        "!=",
        "<",
        ">=",
        "and",
        "or",
        "Track",
        "tt:Name",
        '"v"',
        "'w'",
        "“x”",
        ",",
        ".",
        "*",
        " ",
        "0.5",
        "\x00",
    ]
)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), st.lists(_ATOMS, max_size=30).map("".join)))
def test_fuzz_raises_only_xpath_error(text: str) -> None:
    try:
        flt = compile_filter(text)
    except XPathError:
        return
    assert isinstance(flt.matches(INFO), bool)
    assert isinstance(flt.matches(MESSAGE), bool)


def test_topic_expressions() -> None:
    ns = {"tns1": TNS1, "x": "urn:other"}
    sub = compile_topic_filter("  tns1:RecordingHistory//. ", TOPIC_CONCRETE_SET, ns)
    assert sub.matches(TNS1, ("RecordingHistory", "Track", "State"))
    assert sub.matches(TNS1, ("RecordingHistory",))
    assert not sub.matches(TNS1, ("RecordingConfig", "JobState"))
    assert not sub.matches("urn:other", ("RecordingHistory", "Track", "State"))
    alt = compile_topic_filter(
        "tns1:RecordingHistory/Track/State | ns1:RecordingConfig//.",
        TOPIC_CONCRETE_SET,
        {"tns1": TNS1, "ns1": TNS1},
    )
    assert alt.matches(TNS1, ("RecordingHistory", "Track", "State"))
    assert not alt.matches(TNS1, ("RecordingHistory", "Recording", "State"))
    assert alt.matches(TNS1, ("RecordingConfig", "JobState"))
    exact = compile_topic_filter("tns1:RecordingHistory/Recording/State", TOPIC_CONCRETE, ns)
    assert exact.matches(TNS1, ("RecordingHistory", "Recording", "State"))
    assert not exact.matches(TNS1, ("RecordingHistory", "Recording"))
    default = compile_topic_filter("RecordingHistory//.", TOPIC_CONCRETE_SET, {"": TNS1})
    assert default.matches(TNS1, ("RecordingHistory", "Track", "State"))
    assert compile_topic_filter("tns1:RecordingHistory", TOPIC_SIMPLE, ns).matches(
        TNS1, ("RecordingHistory",)
    )


@pytest.mark.parametrize(
    ("text", "dialect", "message"),
    [
        ("tns1:A", "urn:bad", "unsupported topic expression dialect"),
        ("zz:A", TOPIC_CONCRETE_SET, "undeclared namespace prefix 'zz'"),
        ("tns1:A|tns1:B", TOPIC_CONCRETE, "only allowed in the ConcreteSet"),
        ("tns1:A//.", TOPIC_CONCRETE, "only allowed in the ConcreteSet"),
        ("tns1:A/B", TOPIC_SIMPLE, "root topic only"),
        ("tns1:A//B", TOPIC_CONCRETE_SET, "bad topic step"),
        ("", TOPIC_CONCRETE_SET, "bad topic path"),
    ],
)
def test_topic_expression_errors(text: str, dialect: str, message: str) -> None:
    with pytest.raises(XPathError, match=message):
        compile_topic_filter(text, dialect, {"tns1": TNS1})


@settings(max_examples=200)
@given(st.text(max_size=60), st.sampled_from([TOPIC_CONCRETE_SET, TOPIC_CONCRETE, TOPIC_SIMPLE]))
def test_topic_fuzz_raises_only_xpath_error(text: str, dialect: str) -> None:
    try:
        flt = compile_topic_filter(text, dialect, {"tns1": TNS1})
    except XPathError:
        return
    assert isinstance(flt.matches(TNS1, ("RecordingHistory",)), bool)
