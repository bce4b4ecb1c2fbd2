"""Every recording of the store under rtsp://host:port/replay/<recording token>, from one mount.

`ReplayMount` is mounted once at "replay" as a ResourceResolver: the server asks it, per request,
for the resource of the first path segment after the mount (the recording token). Resources of
the recordings the store knows are kept (`refresh` syncs them after recordings are created or
deleted; GetReplayUri may call `ensure`); any other token gets a throw-away resource, so a
recording created since the last refresh is served at once and unknown tokens hold no memory.
Each resource looks its recording up on every request: a deleted or unknown one answers 404.
"""

from __future__ import annotations

from collections.abc import Callable

from app.core.time import Clock, SystemClock
from app.engine.replay.resource import ReplayResource
from app.engine.rtsp import RtspServer
from app.engine.storage import Store

#: The path prefix GetReplayUri hands out (app.engine.onvif.replay, path_prefix "/replay/").
REPLAY_PREFIX = "replay"


class ReplayMount:
    """Serves replay/<token> on an RtspServer for every recording of a store."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        prefix: str = REPLAY_PREFIX,
        session_timeout_s: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.prefix = prefix.strip("/")
        #: The Replay Control SessionTimeout (RP-10) that new sessions get.
        self.session_timeout_s = session_timeout_s
        self._resources: dict[str, ReplayResource] = {}

    def path(self, token: str) -> str:
        return f"{self.prefix}/{token}"

    async def attach(self, server: RtspServer) -> None:
        """Serve on `server` from now on (one mount at the prefix)."""
        server.mount(self.prefix, self)
        await self.refresh()

    async def refresh(self) -> None:
        """Keep resources for the store's recordings only."""
        tokens = {r.token for r in await self.store.recordings()}
        for token in list(self._resources):
            if token not in tokens:
                del self._resources[token]
        for token in tokens:
            self.ensure(token)

    def ensure(self, token: str) -> ReplayResource:
        """The kept resource of `token` (created now if it was not kept)."""
        found = self._resources.get(token)
        if found is None:
            found = self._resources[token] = self._new(token)
        return found

    def resolve(self, path: str) -> tuple[str, ReplayResource] | None:
        """ResourceResolver: the first segment of `path` is the recording token."""
        token = path.split("/", 1)[0]
        if not token:
            return None
        return token, self._resources.get(token) or self._new(token)

    def _new(self, token: str) -> ReplayResource:
        return ReplayResource(
            self.store, token, self.clock, session_timeout_s=self.session_timeout_s
        )
