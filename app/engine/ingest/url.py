"""Camera URLs: split rtsp://user:password@host:port/path into parts, and redact them for logs."""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

from app.core.errors import ConfigError

#: Longest camera URI accepted (ONVIF requires at least 128 octets; cameras rarely pass 300).
MAX_URI_LENGTH = 2048
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
REDACTED = "***"
#: Query parameters some cameras take credentials in (rtsp://cam/live?user=admin&password=...).
_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "pass", "token", "auth")
_QUERY_SECRET_RE = re.compile(r"([?&;](?:" + "|".join(_SECRET_QUERY_KEYS) + r")=)[^&;]*", re.I)


def _split_userinfo(uri: str) -> tuple[str, str | None, str]:
    """(scheme://, userinfo or None, host and the rest).

    The userinfo ends at the last "@" before the first "/" of the authority. That is also right
    for passwords people type with a raw "#", "?" or "@" in them, which urllib would misread as
    a fragment or query and then echo into logs.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "", None, uri
    authority_end = rest.find("/")
    authority = rest if authority_end < 0 else rest[:authority_end]
    userinfo, at, _ = authority.rpartition("@")
    if not at:
        return scheme + sep, None, rest
    return scheme + sep, userinfo, rest[len(userinfo) + 1 :]


@dataclasses.dataclass(frozen=True, slots=True)
class SourceUrl:
    """A camera URL split for connecting: `url` is what goes on the wire (no credentials)."""

    scheme: str
    host: str
    port: int
    url: str
    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        return redact_url(self.url)


def redact_url(uri: str) -> str:
    """The URI with any password (userinfo or a password-like query value) replaced by ***.

    Never raises: it is used in error paths for whatever text a user configured.
    """
    prefix, userinfo, rest = _split_userinfo(uri)
    if userinfo is not None:
        user, has_password, _ = userinfo.partition(":")
        prefix += f"{user}:{REDACTED}@" if has_password else f"{user}@"
    return prefix + _QUERY_SECRET_RE.sub(rf"\g<1>{REDACTED}", rest)


def parse_source_url(uri: str) -> SourceUrl:
    """Split a camera URI; ConfigError (naming the redacted URI) if it cannot be used."""
    shown = redact_url(uri[:MAX_URI_LENGTH])
    if len(uri) > MAX_URI_LENGTH:
        raise ConfigError(f"camera URI of {len(uri)} characters exceeds {MAX_URI_LENGTH}: {shown}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        raise ConfigError(f"camera URI contains spaces or control characters: {shown!r}")
    prefix, userinfo, rest = _split_userinfo(uri)
    try:
        parts = urllib.parse.urlsplit(prefix + rest)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"camera URI {shown} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"camera URI {shown}: scheme must be rtsp or rtsps, got {scheme!r}")
    if not host:
        raise ConfigError(f"camera URI {shown} has no host")
    user, has_password, password = (userinfo or "").partition(":")
    wire = urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))
    return SourceUrl(
        scheme=scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        url=wire,
        username=urllib.parse.unquote(user) or None,
        password=urllib.parse.unquote(password) if has_password else None,
    )


def strip_credentials(url: str) -> str:
    """A URL from a peer (Content-Base, control) with any userinfo removed before we send it."""
    prefix, userinfo, rest = _split_userinfo(url)
    return url if userinfo is None else prefix + rest
