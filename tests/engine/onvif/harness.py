"""Serve ONVIF services on a loopback port for tests, with one user of each level."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from aiohttp import web

from app.core.time import Clock, SystemClock
from app.engine.onvif.security import Authenticator
from app.engine.onvif.server import OnvifServer, OnvifService
from app.engine.users import UserDirectory, UserLevel

REALM = "Custos"
#: name → (password, level) of the accounts every harness has.
ACCOUNTS = {
    "admin": ("admin-pw", UserLevel.ADMINISTRATOR),
    "operator": ("operator-pw", UserLevel.OPERATOR),
    "viewer": ("viewer-pw", UserLevel.USER),
}


@dataclasses.dataclass
class Served:
    """A running SOAP endpoint: `url` is http://127.0.0.1:<port>; service paths go after it."""

    url: str
    server: OnvifServer
    users: UserDirectory

    def address(self, service: str) -> str:
        return f"{self.url}/onvif/{service}_service"


@contextlib.asynccontextmanager
async def serve(
    services: Iterable[OnvifService],
    data_dir: Path,
    *,
    clock: Clock | None = None,
    users: UserDirectory | None = None,
) -> AsyncIterator[Served]:
    """Start an aiohttp app with `services` on 127.0.0.1:0; stops it on exit."""
    if users is None:
        users = await asyncio.to_thread(
            UserDirectory.open, data_dir, {"CUSTOS_ADMIN_PASSWORD": ACCOUNTS["admin"][0]}
        )
        for name, (password, level) in ACCOUNTS.items():
            if name != "admin":
                users.create(name, password, level)
    server = OnvifServer(Authenticator(users, clock or SystemClock(), REALM), services)
    app = web.Application(client_max_size=2 * 1024 * 1024)
    server.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", server, users)
    finally:
        await runner.cleanup()
