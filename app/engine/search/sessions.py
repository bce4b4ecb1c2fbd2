"""Search sessions (RS-S1..S7): Find* creates one, Get*Results drains it, EndSearch ends it.

One `SearchSessions` per engine, on the engine's loop. Results come from the store's indexes
as they are asked for; a search range ends at the time of the Find call (RS-S7), so a
session never waits for future data and WaitTime only bounds the work of one response.
Expiry is checked on every access against the injected clock (no timer task to leak).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
from collections import deque

from app.core.time import NS_PER_SECOND, Clock
from app.engine.search.events import EventStream, compile_event_filter
from app.engine.search.info import resolve_scope
from app.engine.search.model import (
    EventFilter,
    FindEventResult,
    InvalidTokenError,
    RecordingInformation,
    SearchKind,
    SearchLimitError,
    SearchNotSupportedError,
    SearchResults,
    SearchScope,
    SearchState,
)
from app.engine.storage import Store

#: Concurrent sessions of all kinds (RS-S1 [ENGINE]). A session holds a cursor and at most one
#: page of results (RESPONSE_CAP), so 64 stay small; 16 (the spec's example) refused a control
#: room's worth of operators each paging a timeline at once (bench/soap --mix engine, 50 clients).
MAX_SESSIONS = 64
#: KeepAliveTime is honoured within these bounds (RS-S3 [ENGINE]).
KEEP_ALIVE_MIN_S = 10.0
KEEP_ALIVE_MAX_S = 300.0
#: WaitTime cap, the wait without WaitTime, and the margin kept below the keep-alive (RS-S6).
WAIT_MAX_S = 60.0
WAIT_DEFAULT_S = 5.0
WAIT_KEEP_ALIVE_MARGIN_S = 1.0
#: Most results in one response, whatever MaxResults says (§8 [ENGINE]).
RESPONSE_CAP = 1000
#: Results produced per step of a session's search.
STEP = 100

Result = RecordingInformation | FindEventResult


@dataclasses.dataclass(eq=False, slots=True)
class _Session:
    token: str
    kind: SearchKind
    keep_alive_ns: int
    expires_ns: int
    max_matches: int | None
    #: Results found but not yet delivered.
    buffer: deque[Result]
    stream: EventStream | None = None
    produced: int = 0
    exhausted: bool = False
    ended: bool = False
    start_ns: int = 0
    end_ns: int = 0
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    def room(self) -> int | None:
        return None if self.max_matches is None else self.max_matches - self.produced


class SearchSessions:
    """The search sessions of one engine over one store."""

    def __init__(self, store: Store, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._counter = itertools.count(1)

    # ------------------------------------------------------------------ creation

    async def find_recordings(
        self, scope: SearchScope, max_matches: int | None, keep_alive_s: float
    ) -> str:
        """RS-05: a session over the recordings in scope (all found at once)."""
        self._reserve()
        infos = await resolve_scope(self._store, scope)
        if max_matches is not None and max_matches >= 0:
            infos = infos[:max_matches]
        session = self._open(SearchKind.RECORDINGS, keep_alive_s, max_matches)
        session.buffer.extend(infos)
        session.produced = len(infos)
        session.exhausted = True
        return session.token

    async def find_events(
        self,
        start_ns: int,
        end_ns: int | None,
        scope: SearchScope,
        search_filter: EventFilter,
        include_start_state: bool,
        max_matches: int | None,
        keep_alive_s: float,
    ) -> str:
        """RS-07: a session over the history events of the recordings in scope.

        EndPoint None searches forward to the time of this call; EndPoint < StartPoint
        searches backward (RS-S7). Both bounds are inclusive.
        """
        self._reserve()
        spec = compile_event_filter(search_filter)
        infos = await resolve_scope(self._store, scope)
        end = self._clock.wall_ns() if end_ns is None else end_ns
        session = self._open(SearchKind.EVENTS, keep_alive_s, max_matches)
        session.start_ns, session.end_ns = start_ns, end
        session.stream = EventStream(
            self._store, infos, start_ns, end, spec=spec, include_start_state=include_start_state
        )
        return session.token

    async def find_ptz_position(self, *_args: object, **_kw: object) -> str:
        """RS-09: no metadata track reports CanContainPTZ, so not implemented."""
        raise SearchNotSupportedError(
            "FindPTZPosition is not supported: no track records PTZ positions",
            subcode="NotImplemented",
        )

    async def find_metadata(self, *_args: object, **_kw: object) -> str:
        """RS-11: MetadataSearch=false, so the operation is not supported."""
        raise SearchNotSupportedError(
            "FindMetadata is not supported (MetadataSearch=false)", subcode="ActionNotSupported"
        )

    def _reserve(self) -> None:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            raise SearchLimitError(
                f"{len(self._sessions)} search sessions are open, the limit is {MAX_SESSIONS}; "
                "end one with EndSearch or let it expire"
            )

    def _open(self, kind: SearchKind, keep_alive_s: float, max_matches: int | None) -> _Session:
        self._reserve()  # again: the scope was resolved in between
        keep = min(max(keep_alive_s, KEEP_ALIVE_MIN_S), KEEP_ALIVE_MAX_S)
        # Counter and random part: a token is never handed out twice, nor guessable.
        token = f"SearchToken-{next(self._counter):06d}-{secrets.token_hex(4)}"
        keep_ns = int(keep * NS_PER_SECOND)
        session = _Session(
            token=token,
            kind=kind,
            keep_alive_ns=keep_ns,
            expires_ns=self._clock.monotonic_ns() + keep_ns,
            max_matches=max_matches if max_matches is not None and max_matches >= 0 else None,
            buffer=deque(),
        )
        self._sessions[token] = session
        return session

    # ------------------------------------------------------------------ lookups

    def _expire(self) -> None:
        now = self._clock.monotonic_ns()
        for token in [t for t, s in self._sessions.items() if s.expires_ns <= now]:
            self._sessions.pop(token).ended = True

    def _lookup(self, token: str, kind: SearchKind | None) -> _Session:
        self._expire()
        session = self._sessions.get(token)
        if session is None or (kind is not None and session.kind is not kind):
            raise InvalidTokenError(
                f"no open {kind.value if kind else ''} search session {token[:64]!r}".replace(
                    "  ", " "
                )
            )
        return session

    def _touch(self, session: _Session) -> None:
        session.expires_ns = self._clock.monotonic_ns() + session.keep_alive_ns

    @property
    def open_sessions(self) -> int:
        self._expire()
        return len(self._sessions)

    # ------------------------------------------------------------------ results

    async def get_results(
        self,
        token: str,
        kind: SearchKind,
        *,
        min_results: int | None = None,
        max_results: int | None = None,
        wait_s: float | None = None,
    ) -> SearchResults:
        """RS-S6: up to MaxResults (≤ RESPONSE_CAP) new results, each delivered once.

        Returns once MinResults (or MaxResults, or with neither one) results are there, the
        search is complete or ended, or the wait is over. Completed ends the session.
        """
        session = self._lookup(token, kind)
        async with session.lock:
            if session.ended:
                raise InvalidTokenError(f"search session {token[:64]!r} has ended")
            cap = RESPONSE_CAP
            if max_results is not None and max_results > 0:
                cap = min(max_results, RESPONSE_CAP)
            wanted = [v for v in (min_results, max_results) if v is not None and v > 0]
            threshold = min([*wanted, cap]) if wanted else 1
            wait = WAIT_DEFAULT_S if wait_s is None else max(0.0, wait_s)
            keep_s = session.keep_alive_ns / NS_PER_SECOND
            wait = min(wait, WAIT_MAX_S, keep_s - WAIT_KEEP_ALIVE_MARGIN_S)
            deadline = self._clock.monotonic_ns() + int(wait * NS_PER_SECOND)
            while (
                len(session.buffer) < threshold
                and not session.exhausted
                and not session.ended
                and self._clock.monotonic_ns() < deadline
            ):
                await self._step(session)
            # One step more tells whether these are the last results (then Completed now).
            if len(session.buffer) <= cap and not session.exhausted and not session.ended:
                await self._step(session)
            count = min(cap, len(session.buffer))
            results = [session.buffer.popleft() for _ in range(count)]
            done = (session.exhausted or session.ended) and not session.buffer
            if done:
                session.ended = True
                self._sessions.pop(token, None)
            else:
                self._touch(session)
        state = SearchState.COMPLETED if done else SearchState.SEARCHING
        if kind is SearchKind.RECORDINGS:
            return SearchResults(
                state, tuple(r for r in results if isinstance(r, RecordingInformation))
            )
        return SearchResults(state, tuple(r for r in results if isinstance(r, FindEventResult)))

    async def _step(self, session: _Session) -> None:
        stream = session.stream
        room = session.room()
        if stream is None or (room is not None and room <= 0):
            session.exhausted = True
            return
        found = await stream.take(STEP if room is None else min(STEP, room))
        session.buffer.extend(found)
        session.produced += len(found)
        room = session.room()
        if stream.exhausted or (room is not None and room <= 0):
            session.exhausted = True

    async def get_search_state(self, token: str) -> SearchState:
        """RS-13 (deprecated): Searching while results remain; refreshes the keep-alive."""
        session = self._lookup(token, None)
        self._touch(session)
        if session.exhausted and not session.buffer:
            return SearchState.COMPLETED
        return SearchState.SEARCHING

    async def end_search(self, token: str) -> int:
        """RS-14: end the session now; returns the Endpoint (UTC ns).

        Events: the time the search had reached, StartPoint if it had not begun, the original
        EndPoint if every result was already found. Recordings: the current time.
        """
        session = self._lookup(token, None)
        session.ended = True
        self._sessions.pop(token, None)
        if session.kind is not SearchKind.EVENTS or session.stream is None:
            return self._clock.wall_ns()
        if session.exhausted:
            return session.end_ns
        reached = session.stream.reached_ns
        return session.start_ns if reached is None else reached

    async def close(self) -> None:
        """End every session (engine shutdown)."""
        for session in self._sessions.values():
            session.ended = True
        self._sessions.clear()
