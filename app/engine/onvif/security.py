"""Who is calling and may they: HTTP Digest, WS-UsernameToken and ONVIF access classes (GEN-10/11).

Order of checks (GEN-10): an Authorization header is validated first (401 + fresh challenge when
it fails), then a wsse:Security UsernameToken (HTTP 400, Sender/NotAuthorized when it fails). A
request with neither is anonymous. The access class of the operation then decides: anonymous on
a protected operation → 401 with a challenge; an authenticated user whose level lacks the class
→ Sender/NotAuthorized.
"""

from __future__ import annotations

import collections
import dataclasses
import enum

from app.core.time import Clock
from app.engine.users import UserDirectory, UserLevel
from app.protocols.rtsp.auth import (
    DigestAuthenticator,
    DigestError,
    parse_authorization,
)
from app.protocols.rtsp.message import RtspParseError
from app.protocols.soap.envelope import NS_WSSE, Envelope
from app.protocols.soap.fault import SoapFault
from app.protocols.soap.wsse import UsernameTokenError, UsernameTokenVerifier, find_username_token

#: Digest (nonce, nc) pairs remembered to refuse replayed Authorization headers.
MAX_TRACKED_NONCES = 10_000
#: Nonce lifetime for HTTP Digest (PF-12: at least 5 minutes).
DIGEST_NONCE_LIFETIME_S = 300


class AccessClass(enum.Enum):
    """ONVIF Core access classes of operations."""

    PRE_AUTH = "PRE_AUTH"
    READ_SYSTEM = "READ_SYSTEM"
    READ_SYSTEM_SENSITIVE = "READ_SYSTEM_SENSITIVE"
    READ_SYSTEM_SECRET = "READ_SYSTEM_SECRET"
    WRITE_SYSTEM = "WRITE_SYSTEM"
    UNRECOVERABLE = "UNRECOVERABLE"
    READ_MEDIA = "READ_MEDIA"
    ACTUATE = "ACTUATE"


_A = AccessClass
#: Core's default access policy per user level; anonymous callers get PRE_AUTH only.
POLICY: dict[UserLevel | None, frozenset[AccessClass]] = {
    UserLevel.ADMINISTRATOR: frozenset(AccessClass),
    UserLevel.OPERATOR: frozenset(
        {_A.PRE_AUTH, _A.READ_SYSTEM, _A.READ_SYSTEM_SENSITIVE, _A.READ_MEDIA, _A.ACTUATE}
    ),
    UserLevel.USER: frozenset({_A.PRE_AUTH, _A.READ_SYSTEM, _A.READ_MEDIA}),
    None: frozenset({_A.PRE_AUTH}),
}


@dataclasses.dataclass(frozen=True)
class Caller:
    """The authenticated caller (user None = anonymous) and how they proved it."""

    user: str | None
    level: UserLevel | None
    method: str  # 'digest', 'wsse' or 'anonymous'


class Unauthenticated(Exception):
    """Answer HTTP 401 with a Digest challenge (`stale` when only the nonce had expired)."""

    def __init__(self, reason: str, *, stale: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


class _DistinctTicks:
    """`clock` whose monotonic reading never repeats: Digest nonces are a MAC of it.

    Two challenges with the same nonce would let the first client's nc=1 make the second
    client's nc=1 look like a replay (a frozen FakeClock, or two 401s in one clock tick). The
    readings drift ahead by at most one nanosecond per challenge.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = -1

    def wall_ns(self) -> int:
        return self._clock.wall_ns()

    def monotonic_ns(self) -> int:
        self._last = max(self._clock.monotonic_ns(), self._last + 1)
        return self._last


class Authenticator:
    """Authenticates SOAP requests against the engine's user directory."""

    def __init__(self, users: UserDirectory, clock: Clock, realm: str) -> None:
        self._users = users
        self.digest = DigestAuthenticator(
            realm,
            users.password_of,
            clock=_DistinctTicks(clock),
            nonce_lifetime_s=DIGEST_NONCE_LIFETIME_S,
            # One MD5 challenge (PF-12): SHA-256 only if advertised via HashingAlgorithms, and
            # requests-based clients mis-parse several Digest challenges joined in one header.
            algorithms=("MD5",),
        )
        self._wsse = UsernameTokenVerifier(clock)
        #: nonce → highest nc accepted; an nc not above it is a replay.
        self._nc_seen: collections.OrderedDict[str, int] = collections.OrderedDict()

    def caller(self, method: str, authorization: str | None, envelope: Envelope) -> Caller:
        """Who sent this request; raises Unauthenticated or SoapFault(NotAuthorized)."""
        if authorization is not None:
            return self.authenticate_http(method, authorization)
        security = envelope.header(NS_WSSE, "Security")
        if security is not None:
            try:
                token = find_username_token(security)
                name = self._wsse.verify(token, self._users.password_of(token.username))
            except UsernameTokenError as exc:
                raise SoapFault.sender("NotAuthorized", reason=exc.message) from None
            return Caller(name, self._users.get(name).level, "wsse")
        return Caller(None, None, "anonymous")

    def authenticate_http(self, method: str, authorization: str) -> Caller:
        """The caller an HTTP Authorization header proves (Digest MD5 qop=auth, nc replay
        checked); shared by SOAP and REST. Raises Unauthenticated."""
        if not authorization.lstrip().lower().startswith("digest "):
            raise Unauthenticated("only HTTP Digest authentication is accepted")
        try:
            creds = parse_authorization(authorization)
            name = self.digest.verify(method, creds)
        except DigestError as exc:
            raise Unauthenticated(exc.message, stale=exc.stale) from None
        except RtspParseError as exc:
            raise Unauthenticated(f"malformed Authorization header: {exc.message}") from None
        if creds.qop is None or creds.nc is None:
            # RFC 2069 responses cannot be protected against replay; ONVIF requires qop=auth.
            raise Unauthenticated("HTTP Digest without qop=auth is not accepted")
        self._check_nc(creds.nonce, creds.nc)
        return Caller(name, self._users.get(name).level, "digest")

    def _check_nc(self, nonce: str, nc_text: str) -> None:
        try:
            nc = int(nc_text, 16)
        except ValueError:
            raise Unauthenticated(f"malformed Digest nc {nc_text[:16]!r}") from None
        last = self._nc_seen.get(nonce, 0)
        if nc <= last:
            raise Unauthenticated("replayed HTTP Digest credentials (nonce count not increasing)")
        self._nc_seen[nonce] = nc
        self._nc_seen.move_to_end(nonce)
        while len(self._nc_seen) > MAX_TRACKED_NONCES:
            self._nc_seen.popitem(last=False)

    def challenges(self, *, stale: bool = False) -> list[str]:
        return self.digest.challenges(stale=stale)


def authorize(caller: Caller, access: AccessClass, operation: str) -> None:
    """Raise Unauthenticated (anonymous) or SoapFault NotAuthorized unless `caller` may call."""
    if access in POLICY[caller.level]:
        return
    if caller.user is None:
        raise Unauthenticated(f"{operation} needs authentication")
    raise SoapFault.sender(
        "NotAuthorized",
        reason=f"user {caller.user!r} ({caller.level}) may not call {operation}",
    )
