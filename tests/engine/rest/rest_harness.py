"""A RestApi on loopback port 0 over a real store, users, jobs and RTSP server (REST tests)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from app.core.time import Clock, SystemClock
from app.engine.events import EventBus
from app.engine.jobs import JobController
from app.engine.onvif.device import DeviceInfo, InterfaceFacts
from app.engine.onvif.security import Authenticator
from app.engine.rest import RestApi
from app.engine.rest.tls import CERT_FILE, self_signed, server_context
from app.engine.rtsp import RtspServer
from app.engine.storage import Store
from app.engine.users import UserDirectory, UserLevel

REALM = "Custos"
ACCOUNTS = {
    "admin": ("admin-pw", UserLevel.ADMINISTRATOR),
    "operator": ("operator-pw", UserLevel.OPERATOR),
    "viewer": ("viewer-pw", UserLevel.USER),
}
INTERFACES = (InterfaceFacts("eth0", "02:00:00:00:00:01", 1500, True, (("192.0.2.10", 24),)),)
PSIA = "{urn:psialliance-org}"


@dataclasses.dataclass
class RestRig:
    url: str
    api: RestApi
    store: Store
    users: UserDirectory
    jobs: JobController
    rtsp: RtspServer
    data_dir: Path

    def client(self, user: str = "admin") -> httpx.AsyncClient:
        auth = httpx.DigestAuth(user, ACCOUNTS[user][0]) if user else None
        verify: ssl.SSLContext | bool = True
        if self.url.startswith("https"):
            # Pin the self-signed certificate, as AU-04 expects clients to.
            verify = ssl.create_default_context(cafile=str(self.data_dir / CERT_FILE))
        return httpx.AsyncClient(base_url=self.url, auth=auth, timeout=20, verify=verify)


@contextlib.asynccontextmanager
async def serve_rest(
    data_dir: Path,
    *,
    populate: Callable[[Store], Awaitable[None]] | None = None,
    clock: Clock | None = None,
    tls: bool = False,
) -> AsyncIterator[RestRig]:
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(Store(data_dir, clock=clock))
        if populate is not None:
            await populate(store)
        users = await asyncio.to_thread(
            UserDirectory.open, data_dir, {"CUSTOS_ADMIN_PASSWORD": ACCOUNTS["admin"][0]}
        )
        for name, (password, level) in ACCOUNTS.items():
            if name != "admin":
                users.create(name, password, level)
        events = EventBus(clock=clock)
        stack.callback(events.close)
        jobs = await stack.enter_async_context(JobController(store, events))
        rtsp = await stack.enter_async_context(RtspServer(clock=clock))
        await rtsp.start("127.0.0.1", 0)
        api = RestApi(
            store,
            users,
            jobs,
            Authenticator(users, clock, REALM),
            clock,
            rtsp=rtsp,
            data_dir=data_dir,
            info=DeviceInfo(serial_number="TESTSERIAL"),
            interfaces=lambda: INTERFACES,
        )
        api.attach_rtsp()
        app = web.Application()
        api.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        context = server_context(*self_signed(data_dir)) if tls else None
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        scheme = "https" if tls else "http"
        yield RestRig(
            f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", api, store, users, jobs, rtsp, data_dir
        )
