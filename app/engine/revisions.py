"""A value read once per revision of its source, however many callers ask at the same time.

The store's revision grows after every write (a flush cycle several times a second while a
camera records). Derived answers such as "every recording's information" are read once per
revision and shared; without coalescing, every request that arrives between a revision change
and the end of the re-read starts a read of its own (50 clients: 50 reads queued on the read
threads, each waiting for the others). Here the first caller of a new revision starts the read
and the others wait for that same read.

    cache = PerRevision(read_every_recording)       # an async callable, no arguments
    value = await cache.get(store.revision)          # revision seen *before* the read starts
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class PerRevision(Generic[_T]):
    """The value of `read()` for a revision: read once, shared by everyone asking for it.

    A read started at revision R is at least as new as R (the caller saw R before it started),
    so it answers every caller that saw R. A caller that saw a newer revision starts a new
    read. A failed read is not kept: each of its waiters gets the error, the next caller
    reads again. A caller cancelled while waiting does not cancel the read the others share.
    """

    def __init__(self, read: Callable[[], Awaitable[_T]]) -> None:
        self._read = read
        self._value: tuple[int, _T] | None = None
        self._pending: tuple[int, asyncio.Future[_T]] | None = None

    async def get(self, revision: int) -> _T:
        """The value as of `revision` or newer."""
        if self._value is not None and self._value[0] >= revision:
            return self._value[1]
        if self._pending is None or self._pending[0] < revision:
            future = asyncio.ensure_future(self._read())
            self._pending = (revision, future)
            future.add_done_callback(lambda done: self._settle(revision, done))
        return await asyncio.shield(self._pending[1])

    def _settle(self, revision: int, done: asyncio.Future[_T]) -> None:
        if self._pending is not None and self._pending[1] is done:
            self._pending = None
        if done.cancelled() or done.exception() is not None:
            return  # retrieved here, so an error nobody awaited is not reported as lost
        if self._value is None or self._value[0] < revision:
            self._value = (revision, done.result())
