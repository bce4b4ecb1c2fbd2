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
    read. The first caller reads in its own task (a quick read then costs no loop turn); the
    others wait for its result. A failed read is not kept: each of its waiters gets the error,
    the next caller reads again. If the reading caller is cancelled, its waiters read anew.
    """

    def __init__(self, read: Callable[[], Awaitable[_T]]) -> None:
        self._read = read
        self._value: tuple[int, _T] | None = None
        self._pending: tuple[int, asyncio.Future[_T]] | None = None

    async def get(self, revision: int) -> _T:
        """The value as of `revision` or newer."""
        while True:
            if self._value is not None and self._value[0] >= revision:
                return self._value[1]
            pending = self._pending
            if pending is None or pending[0] < revision:
                return await self._read_for(revision)
            try:
                return await asyncio.shield(pending[1])
            except asyncio.CancelledError:
                if not pending[1].cancelled():
                    raise  # this caller was cancelled, not the read
                # The reading caller was cancelled: look again (and read, if nobody does).

    async def _read_for(self, revision: int) -> _T:
        shared: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._pending = (revision, shared)
        try:
            value = await self._read()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                shared.cancel()
            else:
                shared.set_exception(exc)
                shared.exception()  # retrieved: an error with no waiter is not "lost"
            raise
        finally:
            if self._pending is not None and self._pending[1] is shared:
                self._pending = None
        if self._value is None or self._value[0] < revision:
            self._value = (revision, value)
        shared.set_result(value)
        return value
