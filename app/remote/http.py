"""HTTP pieces every device client shares: credentials, a pool of Digest sessions, bounded reads.

Digest (RFC 7616) numbers every request made with one nonce (`nc`), and a device may refuse
an `nc` lower than one it has seen as a replay. Requests in flight at the same time can
reach the device in any order, so each one takes its own Digest session from the pool (its
own nonce and counter) and gives it back when answered; sequential requests reuse one
session and need no second round trip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import aiohttp

from app.protocols.rtsp.auth import DigestChallenge, digest_authorization, select_challenge

#: Idle Digest sessions kept per device (about the concurrency a client uses).
MAX_IDLE_DIGEST_SESSIONS = 16
#: Read size of response bodies; the size limit is checked after every chunk.
READ_CHUNK_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Credentials:
    """User name and password of one device account; the password never appears in a repr."""

    user: str
    password: str = dataclasses.field(repr=False)


@dataclasses.dataclass
class DigestSession:
    """One server nonce and the count of requests made with it."""

    challenge: DigestChallenge
    nc: int = 0

    def authorization(self, method: str, uri: str, creds: Credentials) -> str:
        """The Authorization header of the next request with this nonce."""
        self.nc += 1
        return digest_authorization(
            self.challenge, method, uri, creds.user, creds.password, nc=self.nc
        )


class DigestPool:
    """Idle Digest sessions of one device: `take` one per request, `give` it back when done."""

    def __init__(self, max_idle: int = MAX_IDLE_DIGEST_SESSIONS) -> None:
        self._idle: list[DigestSession] = []
        self._max_idle = max_idle

    def take(self) -> DigestSession | None:
        """An idle session, or None: the request goes without Authorization and is challenged."""
        return self._idle.pop() if self._idle else None

    def give(self, session: DigestSession | None) -> None:
        if session is not None and len(self._idle) < self._max_idle:
            self._idle.append(session)

    @staticmethod
    def answer(challenges: list[str]) -> DigestSession | None:
        """A fresh session for the strongest Digest challenge of a 401, or None if none."""
        challenge = select_challenge(challenges)
        return DigestSession(challenge) if challenge is not None else None


async def read_bounded(
    resp: aiohttp.ClientResponse, max_bytes: int, too_large: Callable[[str], Exception]
) -> bytes:
    """The whole body of `resp`, or `too_large(reason)` raised once it passes `max_bytes`.

    Reads in chunks to the end: `StreamReader.read(n)` returns only what has arrived so far.
    """
    length = resp.content_length
    if length is not None and length > max_bytes:
        raise too_large(f"answer of {length} bytes exceeds {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"answer exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
