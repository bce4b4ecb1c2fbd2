"""Camera URLs: splitting for the wire and redaction for logs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ConfigError
from app.engine.ingest.url import (
    MAX_URI_LENGTH,
    parse_source_url,
    redact_url,
    strip_credentials,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://admin:pw@cam:554/s", "rtsp://admin:***@cam:554/s"),
        ("rtsp://admin@cam/s", "rtsp://admin@cam/s"),
        ("rtsp://admin:@cam/s", "rtsp://admin:***@cam/s"),
        ("rtsp://a:p@ss@cam/s", "rtsp://a:***@cam/s"),
        ("rtsp://cam/s?user=a&password=xyz&x=1", "rtsp://cam/s?user=a&password=***&x=1"),
        ("rtsp://cam/s?PWD=xyz", "rtsp://cam/s?PWD=***"),
        ("rtsp://cam/s", "rtsp://cam/s"),
        ("rtsp://admin:pw@[::1/s", "rtsp://admin:***@[::1/s"),
        # Unencoded "#" and "?" in a password would make urllib see a fragment or a query.
        ("rtsp://admin:p#w?d@cam/s", "rtsp://admin:***@cam/s"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(uri: str, expected: str) -> None:
    assert redact_url(uri) == expected


def test_parse_source_url_decodes_credentials_and_keeps_them_off_the_wire() -> None:
    source = parse_source_url("rtsp://us%40er:p%3Ass%2F@Cam.example:8554/live/1?profile=2")
    assert (source.username, source.password) == ("us@er", "p:ss/")
    assert (source.scheme, source.host, source.port) == ("rtsp", "cam.example", 8554)
    assert source.url == "rtsp://Cam.example:8554/live/1?profile=2"
    assert "p:ss" not in repr(source) and "p%3Ass" not in repr(source)


@pytest.mark.parametrize(
    ("uri", "host", "port", "wire"),
    [
        ("rtsp://cam", "cam", 554, "rtsp://cam/"),
        ("RTSPS://cam/x", "cam", 322, "rtsps://cam/x"),
        ("rtsp://u:p@[::1]:8554/x", "::1", 8554, "rtsp://[::1]:8554/x"),
    ],
)
def test_parse_source_url_defaults(uri: str, host: str, port: int, wire: str) -> None:
    source = parse_source_url(uri)
    assert (source.host, source.port, source.url) == (host, port, wire)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("rtsp://u:pw@cam/" + "x" * MAX_URI_LENGTH, "exceeds 2048"),
        ("rtsp://u:pw@cam/a b", "spaces or control characters"),
        ("rtsp://u:pw@cam/a\nb", "spaces or control characters"),
        ("file:///etc/passwd", "scheme must be rtsp or rtsps"),
        ("rtsp://u:pw@:554/x", "has no host"),
        ("rtsp://u:pw@cam:99999/x", "is malformed"),
    ],
)
def test_parse_source_url_errors_show_no_password(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_source_url(uri)
    assert ":pw@" not in info.value.message


def test_strip_credentials() -> None:
    assert strip_credentials("rtsp://u:p@cam/x/") == "rtsp://cam/x/"
    assert strip_credentials("rtsp://cam/x") == "rtsp://cam/x"
    assert strip_credentials("trackID=1") == "trackID=1"


PASSWORDS = st.text(alphabet="QZXJqzxj#!?@:~", min_size=3, max_size=20)
HOSTS = st.text(alphabet="abcdefgh0123456789-", min_size=1, max_size=20)
PATHS = st.text(alphabet="abcdefgh0123456789/=_.-", max_size=30).map(lambda p: "/" + p)
USERS = st.text(alphabet="abcdefgh", max_size=8)


@settings(max_examples=300)
@given(user=USERS, password=PASSWORDS, host=HOSTS, path=PATHS)
def test_redacted_urls_never_contain_the_password(
    user: str, password: str, host: str, path: str
) -> None:
    uri = f"rtsp://{user}:{password}@{host}{path}"
    assert password not in redact_url(uri)
    assert password not in redact_url(f"rtsp://{host}{path}?password={password}&x=1")
    source = parse_source_url(uri)
    assert password not in source.url and password not in repr(source)
    assert (source.username, source.password) == (user or None, password)


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_config_error(text: str) -> None:
    redact_url(text)
    try:
        source = parse_source_url(text)
    except ConfigError:
        return
    assert source.port > 0 and source.host
