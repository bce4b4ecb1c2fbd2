"""HTTP for the REST client: Digest without a 401 per request, Basic only over HTTPS, size limits,
and refusals (HTTP status + ResponseStatus) raised as the errors of errors.py.

One `RestTransport` per device. The first protected request is answered 401 with a challenge;
the transport answers it (RFC 7616 via app.protocols.rtsp.auth) and keeps the nonce in a small
pool of Digest sessions. A session is used by one request at a time and increments `nc` on each
use, so concurrent requests never send a nonce count lower than one the device has already seen
(the engine refuses that as a replay). When the device sends a new challenge (`stale=true`, or a
nonce it forgot), the request answers it once more. Basic is sent only when the connection is
HTTPS and the device offers no Digest (AU-03); credentials are never logged nor put in messages.
"""

from __future__ import annotations

import base64
import dataclasses
import ssl

import aiohttp
from yarl import URL

from app.protocols.rtsp.auth import DigestChallenge, digest_authorization, select_challenge
from app.remote.rest.errors import (
    ResponseStatus,
    RestAuthError,
    RestError,
    RestLimitError,
    RestProtocolError,
)
from app.remote.rest.errors import refusal as refusal_error
from app.remote.rest.xml import MAX_XML_RESPONSE_BYTES, Element, parse, response_status

#: Idle Digest sessions kept per device (one per request that ran at the same time).
MAX_IDLE_DIGEST_SESSIONS = 8
#: Largest error body read to find a ResponseStatus in it.
MAX_ERROR_BODY_BYTES = 64 * 1024
#: Read size of response bodies; the size limit is checked after every chunk.
READ_CHUNK_BYTES = 64 * 1024
XML_CONTENT_TYPE = 'application/xml; charset="UTF-8"'


@dataclasses.dataclass(frozen=True)
class Credentials:
    """User name and password of one device account; the password never appears in a repr."""

    user: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass
class _DigestSession:
    challenge: DigestChallenge
    nc: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class RestTransport:
    """Sends requests to the device at `base_url` (scheme://host:port, no path)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        credentials: Credentials | None,
        *,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._session = session
        self.base_url = base_url
        self.secure = base_url.startswith("https:")
        self._credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._idle: list[_DigestSession] = []
        self._basic = False
        #: Round trips made (401 challenges included), for tests and diagnostics.
        self.round_trips = 0

    async def xml(self, method: str, path: str, body: bytes | None = None) -> Element:
        """The answer document of `method path`; a refusal or failing ResponseStatus raises."""
        resource = f"{method} {path}"
        answer = await self.send(method, path, body, max_bytes=MAX_XML_RESPONSE_BYTES)
        root = parse(answer.body, resource) if answer.body.strip() else None
        status = response_status(root) if root is not None else None
        if answer.status >= 300 or (status is not None and not status.ok):
            raise refusal_error(resource, answer.status, status)
        if root is None:
            raise RestProtocolError(f"{resource}: HTTP {answer.status} without an XML body")
        return root

    async def binary(self, path: str, *, max_bytes: int) -> Answer:
        """A GET of binary content (a JPEG picture); refusals raise as for XML resources."""
        resource = f"GET {path}"
        answer = await self.send("GET", path, None, max_bytes=max_bytes)
        if answer.status >= 300:
            raise refusal_error(resource, answer.status, self._status_in(answer, resource))
        return answer

    def _status_in(self, answer: Answer, resource: str) -> ResponseStatus | None:
        if "xml" not in answer.content_type or len(answer.body) > MAX_ERROR_BODY_BYTES:
            return None
        try:
            return response_status(parse(answer.body, resource))
        except RestProtocolError:
            return None

    async def send(
        self, method: str, path: str, body: bytes | None = None, *, max_bytes: int
    ) -> Answer:
        """One request, answering the device's challenge as needed; 401 raises RestAuthError."""
        resource = f"{method} {path}"
        creds = self._credentials
        digest = self._idle.pop() if self._idle else None
        for attempt in range(2):
            headers = {"Content-Type": XML_CONTENT_TYPE} if body is not None else {}
            if creds is not None:
                if digest is not None:
                    headers["Authorization"] = self._digest(digest, method, path, creds)
                elif self._basic:
                    headers["Authorization"] = _basic(creds)
            answer, challenges = await self._send(method, path, body, headers, max_bytes)
            if answer.status != 401 or creds is None or attempt == 1:
                break
            challenge = select_challenge(challenges)
            if challenge is not None:
                digest = _DigestSession(challenge)
            elif self.secure and any(c.lower().startswith("basic") for c in challenges):
                digest, self._basic = None, True
            else:
                offered = ", ".join(c.split(" ", 1)[0] for c in challenges) or "nothing"
                why = f"device offers {offered}; Basic is refused unless the connection is HTTPS"
                raise RestAuthError(resource, 401, None, why)
        if answer.status == 401:
            user = creds.user if creds is not None else None
            why = f"credentials of {user!r} refused" if user else "credentials required"
            raise RestAuthError(resource, 401, self._status_in(answer, resource), why)
        if digest is not None and len(self._idle) < MAX_IDLE_DIGEST_SESSIONS:
            self._idle.append(digest)
        return answer

    def _digest(self, digest: _DigestSession, method: str, path: str, creds: Credentials) -> str:
        digest.nc += 1
        return digest_authorization(
            digest.challenge, method, path, creds.user, creds.password, nc=digest.nc
        )

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        max_bytes: int,
    ) -> tuple[Answer, list[str]]:
        resource = f"{method} {path}"
        self.round_trips += 1
        # encoded=True: the request line must carry exactly the path the Digest response signs.
        url = URL(self.base_url + path, encoded=True)
        try:
            async with self._session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                ssl=self._ssl,
                allow_redirects=False,
            ) as resp:
                length = resp.content_length
                if length is not None and length > max_bytes:
                    raise RestLimitError(
                        f"{resource}: answer of {length} bytes exceeds {max_bytes}"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise RestLimitError(f"{resource}: answer exceeds {max_bytes} bytes")
                    chunks.append(chunk)
                answer = Answer(resp.status, resp.headers.get("Content-Type", ""), b"".join(chunks))
                return answer, resp.headers.getall("WWW-Authenticate", [])
        except TimeoutError:
            raise RestError(
                f"{resource}: no answer from {self.base_url} within {self._timeout.total} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise RestError(f"{resource}: {self.base_url} unreachable ({exc})") from None


def _basic(creds: Credentials) -> str:
    token = base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode("ascii")
    return f"Basic {token}"
