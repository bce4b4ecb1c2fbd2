"""WS-Security UsernameToken (PasswordDigest) checking with replay protection (GEN-10, PF-13).

Digest = Base64(SHA-1(nonce bytes ‖ Created ‖ password)), the nonce base64-decoded first. A token
is accepted only with both Nonce and Created, Created within `skew` of the device clock, and a
nonce not seen within the window (the cache holds nonces exactly as long as they could be valid).
PasswordText is refused: ONVIF clients send digests, and text passwords would cross the network.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import secrets

from lxml import etree

from app.core.errors import AuthError
from app.core.time import NS_PER_SECOND, Clock, parse_iso
from app.protocols.soap.envelope import NS_WSSE, NS_WSU

PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
#: Accepted difference between a token's Created and the device clock, both ways.
DEFAULT_SKEW_S = 300
#: Most nonces remembered; beyond it the oldest are forgotten (they are expired by then
#: unless an attacker floods, in which case the flood's own nonces are what is forgotten).
MAX_REMEMBERED_NONCES = 100_000
#: Longest Username / Nonce / Created / Password text accepted.
MAX_FIELD_CHARS = 256


class UsernameTokenError(AuthError):
    """A UsernameToken is missing parts, malformed, stale, replayed or wrong."""


@dataclasses.dataclass(frozen=True)
class UsernameToken:
    username: str
    password: str
    password_type: str
    nonce: bytes
    created: str


def find_username_token(security: etree._Element) -> UsernameToken:
    """The UsernameToken inside a wsse:Security header block (UsernameTokenError if unusable)."""
    token = security.find(f"{{{NS_WSSE}}}UsernameToken")
    if token is None:
        raise UsernameTokenError("wsse:Security header without a UsernameToken")
    username = _text(token, f"{{{NS_WSSE}}}Username")
    password_el = token.find(f"{{{NS_WSSE}}}Password")
    nonce_el = token.find(f"{{{NS_WSSE}}}Nonce")
    created = _text(token, f"{{{NS_WSU}}}Created") or _text(token, f"{{{NS_WSSE}}}Created")
    if password_el is not None and password_el.get("Type", PASSWORD_DIGEST) != PASSWORD_DIGEST:
        raise UsernameTokenError("only PasswordDigest UsernameTokens are accepted")
    if not username or password_el is None or nonce_el is None or not created:
        raise UsernameTokenError("UsernameToken needs Username, Password, Nonce and Created")
    password = (password_el.text or "").strip()
    if len(password) > MAX_FIELD_CHARS:
        raise UsernameTokenError("UsernameToken password field is too long")
    try:
        nonce = base64.b64decode((nonce_el.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise UsernameTokenError("UsernameToken Nonce is not base64") from None
    if not nonce:
        raise UsernameTokenError("UsernameToken Nonce is empty")
    ptype = password_el.get("Type", PASSWORD_DIGEST)
    return UsernameToken(username, password, ptype, nonce, created)


def _text(parent: etree._Element, tag: str) -> str:
    text = (parent.findtext(tag) or "").strip()
    if len(text) > MAX_FIELD_CHARS:
        raise UsernameTokenError(f"UsernameToken field {etree.QName(tag).localname} is too long")
    return text


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA-1(nonce ‖ created ‖ password)): the client side of PasswordDigest."""
    raw = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()
    return base64.b64encode(raw).decode("ascii")


class UsernameTokenVerifier:
    """Checks UsernameTokens against the user directory, with a skew window and a nonce cache."""

    def __init__(self, clock: Clock, *, skew_s: float = DEFAULT_SKEW_S) -> None:
        self._clock = clock
        self._skew_ns = int(skew_s * NS_PER_SECOND)
        #: nonce → wall ns when it stops mattering (Created + skew), oldest first.
        self._seen: collections.OrderedDict[bytes, int] = collections.OrderedDict()

    def verify(self, token: UsernameToken, password: str | None) -> str:
        """The authenticated user name; UsernameTokenError for anything not acceptable."""
        if token.password_type != PASSWORD_DIGEST:
            raise UsernameTokenError("only PasswordDigest UsernameTokens are accepted")
        try:
            created_ns = parse_iso(token.created)
        except ValueError:
            raise UsernameTokenError(
                f"UsernameToken Created {token.created!r} is not a time"
            ) from None
        now = self._clock.wall_ns()
        if abs(now - created_ns) > self._skew_ns:
            raise UsernameTokenError("UsernameToken Created is outside the accepted clock skew")
        expected = password_digest(
            token.nonce, token.created, password if password is not None else secrets.token_hex(16)
        )
        if password is None or not hmac.compare_digest(expected, token.password):
            raise UsernameTokenError(f"wrong credentials for user {token.username!r}")
        self._forget_expired(now)
        if token.nonce in self._seen:
            raise UsernameTokenError("UsernameToken nonce was used before (replay)")
        self._seen[token.nonce] = created_ns + self._skew_ns
        while len(self._seen) > MAX_REMEMBERED_NONCES:
            self._seen.popitem(last=False)
        return token.username

    def _forget_expired(self, now: int) -> None:
        # Insertion order is close to expiry order; stop at the first live entry.
        while self._seen:
            nonce, expires = next(iter(self._seen.items()))
            if expires >= now:
                break
            del self._seen[nonce]
