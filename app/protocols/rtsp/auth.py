"""HTTP Digest authentication for RTSP (RFC 2617 MD5, RFC 7616 SHA-256), server and client side.

Server: `DigestAuthenticator` issues challenges and checks Authorization headers. Its nonce is
`base64url(timestamp || HMAC-SHA256(secret, realm || timestamp))`, so checking it needs no table;
a nonce older than the lifetime is answered with `stale=true` (the client retries silently).
Being stateless, a nonce may be replayed within its lifetime (nc is not tracked); keep the
lifetime short. Responses with and without `qop=auth` are accepted, because GStreamer's RTSP
client still sends RFC 2069 responses. Challenges list SHA-256 first (RFC 7616 §3.7: the server's
preference order); FFmpeg uses the last Digest challenge it sees, so MD5 stays last.

Client: `select_challenge` picks the strongest challenge a server offered and
`digest_authorization` computes the Authorization header value.

Passwords and hashes never appear in exception messages.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable

from app.core.errors import AuthError
from app.core.time import NS_PER_SECOND, Clock, SystemClock
from app.protocols.rtsp.message import RtspParseError

#: Longest WWW-Authenticate / Authorization value parsed.
MAX_AUTH_HEADER_CHARS = 4096
#: Most auth-params in one header.
MAX_AUTH_PARAMS = 32
#: How long a nonce stays fresh; older nonces get a `stale=true` challenge.
DEFAULT_NONCE_LIFETIME_S = 120
#: Size of the random server secret the nonce MAC is keyed with.
NONCE_SECRET_BYTES = 32

#: Digest algorithm names → hashlib names.
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
_NONCE = struct.Struct("!q")
_NONCE_MAC_BYTES = 16
_PREFERENCE = ("SHA-256", "MD5")

#: `username -> password | None`; None means "no such user".
CredentialLookup = Callable[[str], str | None]


class DigestError(AuthError):
    """Missing, malformed or wrong credentials; `stale` asks the client to retry, new nonce."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


@dataclasses.dataclass(frozen=True, slots=True)
class DigestChallenge:
    """One `WWW-Authenticate: Digest ...` challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False

    def to_header(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of an `Authorization: Digest ...` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parse_challenge(value: str) -> DigestChallenge:
    """Parse one WWW-Authenticate value; raises RtspParseError when it is not a Digest one."""
    params = _parse_digest_params(value)
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or nonce is None:
        raise RtspParseError("Digest challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def parse_authorization(value: str) -> DigestCredentials:
    """Parse an Authorization value; raises RtspParseError when it is not a usable Digest one."""
    params = _parse_digest_params(value)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
    if missing:
        raise RtspParseError(f"Digest Authorization lacks {', '.join(missing)}")
    if params.get("userhash", "false").lower() == "true":
        raise RtspParseError("Digest userhash is not supported")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"].lower(),
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=params.get("qop", "").lower() or None,
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
    )


def select_challenge(values: Iterable[str]) -> DigestChallenge | None:
    """The strongest Digest challenge among WWW-Authenticate values (others are ignored)."""
    best: DigestChallenge | None = None
    for value in values:
        try:
            challenge = parse_challenge(value)
        except RtspParseError:
            continue
        if challenge.algorithm not in _HASHES or (challenge.qop and "auth" not in challenge.qop):
            continue
        rank = _PREFERENCE.index(challenge.algorithm)
        if best is None or rank < _PREFERENCE.index(best.algorithm):
            best = challenge
    return best


def digest_response(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The `response` value (RFC 7616 §3.4.1; RFC 2069 form when qop is None)."""
    name = _HASHES.get(algorithm.upper())
    if name is None:
        raise ValueError(f"unsupported Digest algorithm {algorithm!r}")

    def h(text: str) -> str:
        return hashlib.new(name, text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def digest_authorization(
    challenge: DigestChallenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """An Authorization header value answering `challenge` (qop=auth when the server offers it)."""
    qop = "auth" if "auth" in challenge.qop else None
    nc_text = f"{nc:08x}" if qop else None
    if qop and cnonce is None:
        cnonce = secrets.token_hex(16)
    response = digest_response(
        challenge.algorithm,
        username,
        challenge.realm,
        password,
        method,
        uri,
        challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce or '')}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


class DigestAuthenticator:
    """Server side of Digest: stateless HMAC nonces, several algorithms, constant-time checks."""

    def __init__(
        self,
        realm: str,
        lookup: CredentialLookup,
        *,
        clock: Clock | None = None,
        secret: bytes | None = None,
        nonce_lifetime_s: float = DEFAULT_NONCE_LIFETIME_S,
        algorithms: tuple[str, ...] = _PREFERENCE,
    ) -> None:
        unknown = [a for a in algorithms if a not in _HASHES]
        if unknown or not algorithms:
            raise ValueError(f"unsupported Digest algorithms {unknown or list(algorithms)}")
        if '"' in realm or "\\" in realm:
            raise ValueError(f"realm must not contain quotes or backslashes: {realm!r}")
        self.realm = realm
        self.algorithms = algorithms
        self._lookup = lookup
        self._clock = clock or SystemClock()
        self._secret = secret if secret is not None else secrets.token_bytes(NONCE_SECRET_BYTES)
        self._lifetime_ns = int(nonce_lifetime_s * NS_PER_SECOND)

    def new_nonce(self) -> str:
        # Monotonic time: a wall-clock step (NTP sync of the recorder) must not expire every nonce.
        stamp = _NONCE.pack(self._clock.monotonic_ns())
        return base64.urlsafe_b64encode(stamp + self._mac(stamp)).decode("ascii")

    def challenges(self, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate values for a 401, one per algorithm in preference order."""
        nonce = self.new_nonce()
        return [
            DigestChallenge(self.realm, nonce, algorithm, ("auth",), stale=stale).to_header()
            for algorithm in self.algorithms
        ]

    def authenticate(self, method: str, authorization: str | None) -> str:
        """The authenticated user name; raises DigestError (stale=True for an old nonce)."""
        if authorization is None:
            raise DigestError("no Authorization header")
        try:
            creds = parse_authorization(authorization)
        except RtspParseError as exc:
            raise DigestError(f"malformed Authorization header: {exc.message}") from None
        return self.verify(method, creds)

    def verify(self, method: str, creds: DigestCredentials) -> str:
        """`authenticate` for a header the caller parsed already (it needs nonce and nc too)."""
        if creds.realm != self.realm:
            raise DigestError(f"wrong realm {creds.realm!r}")
        if creds.algorithm not in self.algorithms:
            raise DigestError(f"Digest algorithm {creds.algorithm!r} is not offered")
        if creds.qop not in (None, "auth") or (creds.qop and not (creds.nc and creds.cnonce)):
            raise DigestError(f"unsupported or incomplete qop {creds.qop!r}")
        self._check_nonce(creds.nonce)
        password = self._lookup(creds.username)
        # An unknown user costs the same hashing as a known one: no user-enumeration oracle.
        expected = digest_response(
            creds.algorithm,
            creds.username,
            self.realm,
            password if password is not None else secrets.token_hex(16),
            method,
            creds.uri,
            creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        matches = hmac.compare_digest(expected.encode("ascii"), creds.response.encode("utf-8"))
        if password is None or not matches:
            raise DigestError(f"wrong credentials for user {creds.username!r}")
        return creds.username

    def _mac(self, stamp: bytes) -> bytes:
        key = self.realm.encode("utf-8") + b"\0" + stamp
        return hmac.new(self._secret, key, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]

    def _check_nonce(self, nonce: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DigestError("nonce was not issued by this server") from None
        if len(raw) != _NONCE.size + _NONCE_MAC_BYTES:
            raise DigestError("nonce was not issued by this server")
        stamp, mac = raw[: _NONCE.size], raw[_NONCE.size :]
        if not hmac.compare_digest(mac, self._mac(stamp)):
            raise DigestError("nonce was not issued by this server")
        age = self._clock.monotonic_ns() - _NONCE.unpack(stamp)[0]
        # A nonce "from the future" comes from before a restart (monotonic clock reset).
        if age < 0 or age > self._lifetime_ns:
            raise DigestError("nonce expired", stale=True)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_digest_params(value: str) -> dict[str, str]:
    if len(value) > MAX_AUTH_HEADER_CHARS:
        raise RtspParseError(f"authentication header of {len(value)} characters is too long")
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() != "digest":
        raise RtspParseError(f"authentication scheme {scheme[:20]!r} is not Digest")
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    while pos < end:
        while pos < end and rest[pos] in " \t,":
            pos += 1
        if pos >= end:
            break
        eq = rest.find("=", pos)
        if eq < 0:
            raise RtspParseError(f"auth-param without '=' at character {pos}")
        name = rest[pos:eq].strip().lower()
        if not name or not name.replace("-", "").replace("*", "").isalnum():
            raise RtspParseError(f"invalid auth-param name at character {pos}")
        pos = eq + 1
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos < end and rest[pos] == '"':
            val, pos = _read_quoted(rest, pos + 1)
        else:
            stop = rest.find(",", pos)
            stop = end if stop < 0 else stop
            val, pos = rest[pos:stop].strip(), stop
        params[name] = val
        if len(params) > MAX_AUTH_PARAMS:
            raise RtspParseError(f"more than {MAX_AUTH_PARAMS} auth-params")
    return params


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    close = text.find('"', pos)
    if close >= 0 and text.find("\\", pos, close) < 0:
        return text[pos:close], close + 1  # the usual value, without escapes: no char loop
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise RtspParseError("unterminated quoted string in authentication header")
