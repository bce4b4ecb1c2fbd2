"""HTTP for the REST client: Digest without a 401 per request, Basic only over HTTPS, size limits,
and refusals (HTTP status + ResponseStatus) raised as the errors of errors.py.

One `RestTransport` per device. The first protected request is answered 401 with a challenge;
the transport answers it and keeps the nonce in a pool of Digest sessions (app/remote/http.py:
one session per request in flight, so concurrent requests never send a nonce count lower than
one the device has already seen, which the engine refuses as a replay). When the device sends a
new challenge (`stale=true`, or a nonce it forgot), the request answers it once more. Basic is
sent only when the connection is HTTPS and the device offers no Digest (AU-03); credentials are
never logged nor put in messages.
"""

from __future__ import annotations

import base64
import dataclasses
import ssl

import aiohttp
from yarl import URL

from app.remote.http import Credentials, DigestPool, read_bounded
from app.remote.rest.errors import (
    ResponseStatus,
    RestAuthError,
    RestError,
    RestLimitError,
    RestProtocolError,
)
from app.remote.rest.errors import refusal as refusal_error
from app.remote.rest.xml import MAX_XML_RESPONSE_BYTES, Element, parse, response_status

#: Largest error body read to find a ResponseStatus in it.
MAX_ERROR_BODY_BYTES = 64 * 1024
XML_CONTENT_TYPE = 'application/xml; charset="UTF-8"'


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
        self._digests = DigestPool()
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
        digest = self._digests.take()
        for attempt in range(2):
            headers = {"Content-Type": XML_CONTENT_TYPE} if body is not None else {}
            if creds is not None:
                if digest is not None:
                    headers["Authorization"] = digest.authorization(method, path, creds)
                elif self._basic:
                    headers["Authorization"] = _basic(creds)
            answer, challenges = await self._send(method, path, body, headers, max_bytes)
            if answer.status != 401 or creds is None or attempt == 1:
                break
            fresh = DigestPool.answer(challenges)
            if fresh is not None:
                digest = fresh
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
        self._digests.give(digest)
        return answer

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
                data = await read_bounded(
                    resp, max_bytes, lambda why: RestLimitError(f"{resource}: {why}")
                )
                answer = Answer(resp.status, resp.headers.get("Content-Type", ""), data)
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
