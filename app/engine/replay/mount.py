"""Every recording of the store under rtsp://host:port/replay/<recording token>.

The server core resolves mounts by path, so `ReplayMount` keeps one `ReplayResource` mounted
per recording: `refresh` syncs the mounts with the store (call it after recordings are created
or deleted, e.g. from GetReplayUri through `ensure`). Each resource looks its recording up on
every request, so a recording deleted since the last refresh answers 404, like a token that was
never mounted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.core.errors import ConfigError
from app.core.time import Clock, SystemClock
from app.engine.replay.resource import ReplayResource
from app.engine.rtsp import RtspServer
from app.engine.storage import Store

logger = logging.getLogger(__name__)

#: The path prefix GetReplayUri hands out (app.engine.onvif.replay, path_prefix "/replay/").
REPLAY_PREFIX = "replay"


class ReplayMount:
    """Keeps replay/<token> mounted on an RtspServer for every recording of a store."""

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
        self.session_timeout_s = session_timeout_s
        self._server: RtspServer | None = None
        self._resources: dict[str, ReplayResource] = {}

    def path(self, token: str) -> str:
        return f"{self.prefix}/{token}"

    async def attach(self, server: RtspServer) -> None:
        """Serve on `server` from now on, mounting every current recording."""
        self._server = server
        await self.refresh()

    async def refresh(self) -> None:
        """Mount new recordings and unmount deleted ones."""
        tokens = {r.token for r in await self.store.recordings()}
        for token in list(self._resources):
            if token not in tokens:
                self._unmount(token)
        for token in tokens:
            self.ensure(token)

    def ensure(self, token: str) -> ReplayResource | None:
        """The resource of `token`, mounted now if it was not (None if the token cannot be a
        path segment; the recording itself is checked per request)."""
        found = self._resources.get(token)
        if found is not None:
            return found
        resource = ReplayResource(
            self.store, token, self.clock, session_timeout_s=self.session_timeout_s
        )
        if self._server is not None:
            try:
                self._server.mount(self.path(token), resource)
            except ConfigError:
                logger.warning("recording token %r cannot be an RTSP path; not served", token)
                return None
        self._resources[token] = resource
        return resource

    def _unmount(self, token: str) -> None:
        self._resources.pop(token, None)
        if self._server is not None:
            self._server.unmount(self.path(token))
