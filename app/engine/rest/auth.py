"""REST authentication: HTTP Digest always, Basic only over HTTPS (AU-01..03, AU-08).

The Digest check is the ONVIF endpoint's (`Authenticator.authenticate_http`: MD5, qop=auth,
nonce-count replay refusal) over the same users; Basic is offered and accepted only when the
connection is TLS, because it sends the password in the clear. `secure` must describe the socket
the request came in on (aiohttp's `request.secure`), never a proxy header such as
X-Forwarded-Proto that a plain-HTTP client can set itself.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac

from app.engine.onvif.security import Authenticator, Unauthenticated
from app.engine.rest.registry import ACCESS_OF_LEVEL, Access
from app.engine.rest.status import RestError, unauthorized
from app.engine.users import UserDirectory

#: Longest Authorization header looked at (a Digest header is about 300 characters).
MAX_AUTHORIZATION_CHARS = 4096


@dataclasses.dataclass(frozen=True)
class RestCaller:
    user: str
    access: Access


class RestAuth:
    """Turns an Authorization header into a RestCaller, or a 401 RestError with challenges."""

    def __init__(self, authenticator: Authenticator, users: UserDirectory) -> None:
        self._authenticator = authenticator
        self._users = users

    def challenges(self, *, secure: bool, stale: bool = False) -> tuple[tuple[str, str], ...]:
        """WWW-Authenticate headers; Basic only where it may be used (AU-03)."""
        values = list(self._authenticator.challenges(stale=stale))
        if secure:
            values.append(f'Basic realm="{self._authenticator.digest.realm}"')
        return tuple(("WWW-Authenticate", v) for v in values)

    def caller(self, method: str, authorization: str | None, *, secure: bool) -> RestCaller:
        if authorization is None:
            raise self._refuse("credentials are required", secure=secure)
        if len(authorization) > MAX_AUTHORIZATION_CHARS:
            raise self._refuse("Authorization header too long", secure=secure)
        scheme = authorization.lstrip().split(" ", 1)[0].lower()
        if scheme == "basic":
            if not secure:
                raise self._refuse("Basic authentication needs HTTPS", secure=secure)
            name = self._basic_user(authorization)
            if name is None:
                raise self._refuse("wrong user name or password", secure=secure)
        else:
            try:
                name = self._authenticator.authenticate_http(method, authorization).user
            except Unauthenticated as exc:
                raise self._refuse(exc.reason, secure=secure, stale=exc.stale) from None
            assert name is not None
        return RestCaller(name, ACCESS_OF_LEVEL[self._users.get(name).level])

    def _basic_user(self, authorization: str) -> str | None:
        try:
            raw = base64.b64decode(authorization.split(" ", 1)[1].strip(), validate=True)
            name, _, password = raw.decode("utf-8").partition(":")
        except (IndexError, binascii.Error, UnicodeDecodeError):
            return None
        known = self._users.password_of(name)
        if known is None:
            # Compare anyway: the time taken must not tell which user names exist.
            hmac.compare_digest(password.encode(), password.encode())
            return None
        return name if hmac.compare_digest(known.encode(), password.encode()) else None

    def _refuse(self, reason: str, *, secure: bool, stale: bool = False) -> RestError:
        error = unauthorized(reason)
        error.headers = self.challenges(secure=secure, stale=stale)
        return error
