"""Composition root of the engine: owns every resource and tears it down in reverse order.

`Engine` is an async context manager: store → event bus → users → RTSP server → one source +
LiveHub + Recorder per configured source → job controller (receivers and recording jobs from the
store) → HTTP server (/status, the ONVIF services, the REST API; the same app over HTTPS too
when `https_port` is set) → retention sweeper.
`run_engine` runs it on one asyncio loop in the calling thread (headless) until SIGINT/SIGTERM
or a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from app import __version__
from app.core.config import EngineConfig, RtspSource, SimcamSource, Source
from app.core.errors import ConfigError
from app.core.files import write_atomic
from app.core.gc_tuning import freeze_startup_objects
from app.core.time import Clock, SystemClock, format_iso
from app.engine.events import EventBus
from app.engine.export.keys import default_signer
from app.engine.ingest import Receiver
from app.engine.jobs import IngestOptions, JobController
from app.engine.live import LiveHub
from app.engine.onvif.device import DeviceInfo, DeviceService
from app.engine.onvif.discovery import WsDiscovery
from app.engine.onvif.events import EventsService
from app.engine.onvif.export import EXPORT_FORMAT, RecordingExportService
from app.engine.onvif.receiver import ReceiverService
from app.engine.onvif.recording import RecordingService
from app.engine.onvif.replay import ReplayService, ReplaySettings
from app.engine.onvif.search import SearchService
from app.engine.onvif.security import Authenticator
from app.engine.onvif.server import OnvifServer, OnvifService
from app.engine.recorder import DEFAULT_TRACKS, Recorder
from app.engine.replay import ReplayMount
from app.engine.rest import RestApi
from app.engine.rest.tls import HttpsIdentity, https_identity
from app.engine.rtsp import LiveResource, RtspServer
from app.engine.search import SearchSessions
from app.engine.simcam import SimulatedCamera, encode_loop
from app.engine.storage import RecordingConfig, Store, StoreOptions
from app.engine.users import UserDirectory
from app.protocols.onvif.discovery import MULTICAST_ADDRESS, Endpoint
from app.protocols.rtsp.auth import DigestAuthenticator
from app.protocols.soap.xml import MAX_XML_BYTES

log = logging.getLogger(__name__)

REALM = "Custos"
LIVE_PREFIX = "live/"


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """Where the engine keeps its data and listens; ports 0 pick free ports."""

    data_dir: Path
    config: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    listen: str = "127.0.0.1"
    rtsp_port: int = 8554
    http_port: int = 8080
    ready_file: Path | None = None
    #: Back-off and timeouts of the receivers recording jobs use.
    ingest: IngestOptions = dataclasses.field(default_factory=IngestOptions)
    #: The same HTTP app (ONVIF, REST, /status) over TLS on this port; None = no HTTPS listener.
    https_port: int | None = None
    #: PEM certificate (chain, leaf first) and its unencrypted key for HTTPS; when neither is
    #: given a self-signed pair is generated once in the data dir and reused.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Answer WS-Discovery Probes from the start (SetDiscoveryMode changes it at run time).
    #: Off by default: a forensic workstation should not advertise itself unasked.
    discoverable: bool = False
    #: WS-Discovery UDP port (3702 on the network; tests use 0). On a loopback `listen` the
    #: responder answers unicast Probes there and does not join the multicast group.
    discovery_port: int = MULTICAST_ADDRESS[1]

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("a TLS certificate needs its key and a key its certificate")
        if self.https_port is None and self.tls_cert is not None:
            raise ConfigError(f"TLS certificate {self.tls_cert} given but no HTTPS port")
        if self.https_port is not None and self.https_port == self.http_port != 0:
            raise ConfigError(f"HTTP and HTTPS cannot share port {self.http_port}")


@dataclasses.dataclass
class SourceRuntime:
    """One running source with the hub and recorder it feeds."""

    config: Source
    hub: LiveHub
    recorder: Recorder
    stop: Callable[[], Awaitable[None]]
    receiver: Receiver | None = None
    camera: SimulatedCamera | None = None

    def status(self) -> dict[str, Any]:
        """JSON-able state for /status (never the source URI: it may hold credentials)."""
        out: dict[str, Any] = {
            "recording": self.config.recording,
            "type": self.config.type,
            "live_subscribers": self.hub.subscribers,
            "frames": self.hub.frames,
            "live_dropped_frames": self.hub.dropped_frames,
        }
        if self.receiver is not None:
            st = self.receiver.status
            out["state"] = st.state.value
            out["reason"] = st.reason
            out["since"] = format_iso(st.since_ns)
        else:
            out["state"] = "streaming" if self.camera is not None else "stopped"
        return out


class Engine:
    """The recorder engine; construct, then `async with engine:` starts everything."""

    def __init__(self, settings: EngineSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.sources: list[SourceRuntime] = []
        self.store: Store | None = None
        self.rtsp: RtspServer | None = None
        self.users: UserDirectory | None = None
        self.events = EventBus(clock=self.clock)
        self.jobs: JobController | None = None
        self.onvif: OnvifServer | None = None
        self.rest: RestApi | None = None
        self.http_auth: Authenticator | None = None
        self.replay_settings: ReplaySettings | None = None
        self.http_port = 0
        #: Bound HTTPS port and the certificate it presents (None while HTTPS is off).
        self.https_port: int | None = None
        self.tls: HttpsIdentity | None = None
        self.discovery: WsDiscovery | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Engine:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        s = self.settings
        cfg = s.config
        if s.https_port is not None:
            # Before anything starts: a bad certificate fails the start at once, naming the file.
            self.tls = await asyncio.to_thread(
                https_identity,
                s.data_dir,
                s.tls_cert,
                s.tls_key,
                addresses=_certificate_addresses(s.listen),
            )
        options = StoreOptions(disk_budget_bytes=cfg.retention.disk_budget_bytes)
        self.store = await self._stack.enter_async_context(
            Store(s.data_dir, clock=self.clock, options=options)
        )
        self._stack.callback(self.events.close)
        self.users = await asyncio.to_thread(UserDirectory.open, s.data_dir)
        auth = DigestAuthenticator(REALM, self.users.password_of, clock=self.clock)
        self.rtsp = RtspServer(
            authenticator=auth, clock=self.clock, session_timeout_s=cfg.rtsp_session_timeout_s
        )
        await self.rtsp.start(s.listen, s.rtsp_port)
        self._stack.push_async_callback(self.rtsp.close)
        # Sources are wired now (their live mounts exist) but begin only once everything else
        # is up: the recording then starts when the engine is ready, not a startup earlier.
        begins = [await self._prepare_source(source) for source in cfg.sources]
        # Configured sources own the default tracks of their recordings; jobs may not write them.
        reserved = {source.recording: set(DEFAULT_TRACKS.values()) for source in cfg.sources}
        self.jobs = await self._stack.enter_async_context(
            JobController(self.store, self.events, reserved=reserved, ingest=s.ingest)
        )
        # HTTP last: the ONVIF services it serves need the store, jobs and events above.
        await self._start_http()
        if s.discoverable:
            assert self.discovery is not None
            await self.discovery.set_discoverable(True)  # after HTTP: Hello carries its XAddrs
        sweeper = asyncio.create_task(self._retention_loop(), name="retention")
        self._stack.push_async_callback(_cancel_and_wait, sweeper)
        for begin in begins:
            await begin()
        # …and stop first on the way out, so the recording ends when the engine is told to stop
        # (the earlier stops stay for a start that fails half way; a second stop is a no-op).
        for runtime in self.sources:
            self._stack.push_async_callback(runtime.stop)
        if s.ready_file is not None:
            await asyncio.to_thread(_write_json_atomic, s.ready_file, self.ready_info())
        log.info("engine ready: %s", json.dumps(self.ready_info()))

    async def _start_http(self) -> None:
        app = web.Application(client_max_size=MAX_XML_BYTES)
        app.router.add_get("/status", self._http_status)
        self.onvif = await self._onvif_server()
        self.onvif.add_routes(app)
        self.rest = self._rest_api()
        self.rest.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        self.http_port = await _start_site(runner, self.settings.listen, self.settings.http_port)
        if self.tls is not None:
            assert self.settings.https_port is not None
            self.https_port = await _start_site(
                runner, self.settings.listen, self.settings.https_port, self.tls
            )

    async def _prepare_source(self, source: Source) -> Callable[[], Awaitable[None]]:
        """Create the source's recording, recorder and live mount; return what starts it."""
        assert self.store is not None and self.rtsp is not None
        existing = {r.token for r in await self.store.recordings()}
        if source.recording not in existing:
            await self.store.create_recording(
                RecordingConfig(name=source.name or source.recording, content="Custos recording"),
                token=source.recording,
            )
        hub = LiveHub(source.recording)
        recorder = Recorder(self.store, source.recording)
        await recorder.open()
        self._stack.push_async_callback(recorder.close)
        hub.add_sink(recorder)
        self.rtsp.mount(LIVE_PREFIX + source.recording, LiveResource(hub, name=source.name))
        if isinstance(source, SimcamSource):
            camera = SimulatedCamera(
                hub,
                size=source.size,
                fps=source.fps,
                audio=source.audio,
                loop_seconds=source.loop_seconds,
                clock=self.clock,
            )
            runtime = SourceRuntime(source, hub, recorder, camera.stop, camera=camera)
            begin = camera.start
        else:
            assert isinstance(source, RtspSource)
            receiver = Receiver(
                source.uri, hub, transport=source.transport, clock=self.clock, name=source.recording
            )
            runtime = SourceRuntime(source, hub, recorder, receiver.stop, receiver=receiver)

            async def begin() -> None:
                receiver.start()

        # Sources stop before their recorder closes (the stack unwinds in reverse); stopping a
        # source that never began is a no-op.
        self._stack.push_async_callback(runtime.stop)
        self.sources.append(runtime)
        return begin

    async def _retention_loop(self) -> None:
        assert self.store is not None and self.jobs is not None
        interval = self.settings.config.retention.sweep_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = await self.store.sweep()
            except Exception:
                log.exception("retention sweep failed; trying again in %.0f s", interval)
                continue
            for seg in deleted:
                log.info("retention deleted %s", seg)
            self.jobs.track_data_deleted(deleted)

    async def _onvif_server(self) -> OnvifServer:
        """The Profile G endpoint: every ONVIF service over the engine's store, jobs and events."""
        assert self.store is not None and self.jobs is not None and self.users is not None
        assert self.rtsp is not None
        sessions = SearchSessions(self.store, clock=self.clock)
        self._stack.push_async_callback(sessions.close)
        self.replay_settings = await ReplaySettings.load(self.settings.data_dir)
        settings = self.replay_settings
        # rtsp://…/replay/<recording>: GetReplayUri hands these out; new recordings resolve on
        # demand, the session timeout follows SetReplayConfiguration.
        replay = ReplayMount(
            self.store, self.clock, session_timeout_s=lambda: settings.current.session_timeout_s
        )
        await replay.attach(self.rtsp)
        events = EventsService(self.events, self.clock)
        self._stack.callback(events.close)
        data_dir = self.settings.data_dir
        exports = RecordingExportService(
            self.store, data_dir, self.clock, lambda: default_signer(data_dir)
        )
        self._stack.push_async_callback(exports.close)
        services: list[OnvifService] = [
            events,
            RecordingService(self.jobs, export_formats=(EXPORT_FORMAT,)),
            exports,
            SearchService(self.store, sessions, clock=self.clock),
            ReplayService(self.store, self.replay_settings, rtsp_port=self.rtsp.port),
            ReceiverService(self.jobs),
        ]
        data_dir = self.settings.data_dir
        info = DeviceInfo.for_host(data_dir)
        self.discovery = self._ws_discovery(info, lambda: device.scopes())
        self._stack.push_async_callback(self.discovery.close)
        device = DeviceService(
            self.users,
            self.clock,
            services,
            info=info,
            discovery=self.discovery,
            tls=self.tls is not None,
        )
        # One authenticator for SOAP and REST: nonces and nonce counts are shared.
        self.http_auth = Authenticator(self.users, self.clock, REALM)
        return OnvifServer(self.http_auth, [device, *services])

    def _ws_discovery(self, info: DeviceInfo, scopes: Callable[[], list[str]]) -> WsDiscovery:
        """The WS-Discovery responder: announces the device service's XAddrs and scopes."""
        # A stable endpoint reference: the same device after a restart (WS-Discovery §2.6).
        address = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "custos:" + info.serial_number))

        def endpoint() -> Endpoint:
            urls = self.ready_info()
            xaddrs = [urls["onvif_url"]]
            if "https_url" in urls:
                xaddrs.append(urls["https_url"] + "onvif/device_service")
            return Endpoint(address, tuple(scopes()), tuple(xaddrs))

        listen = self.settings.listen
        loopback = ipaddress.ip_address(_client_host(listen)).is_loopback
        return WsDiscovery(
            endpoint,
            bind=(listen if loopback else "0.0.0.0", self.settings.discovery_port),
            multicast=not loopback,
        )

    def _rest_api(self) -> RestApi:
        """IEC 62676-2-2 /PSIA (alias /ISAPI) beside ONVIF, with RTSP aliases for its IDs."""
        assert self.store is not None and self.jobs is not None and self.users is not None
        assert self.rtsp is not None and self.replay_settings is not None
        assert self.http_auth is not None
        api = RestApi(
            self.store,
            self.users,
            self.jobs,
            self.http_auth,
            self.clock,
            rtsp=self.rtsp,
            data_dir=self.settings.data_dir,
            live_path=lambda token: LIVE_PREFIX + token,
        )
        settings = self.replay_settings
        api.attach_rtsp(session_timeout_s=lambda: settings.current.session_timeout_s)
        return api

    def ready_info(self) -> dict[str, Any]:
        """Service URLs for the ready file and the log."""
        assert self.rtsp is not None
        host = _client_host(self.settings.listen)
        rtsp_base = f"rtsp://{_url_host(host)}:{self.rtsp.port}/"
        http_base = f"http://{_url_host(host)}:{self.http_port}/"
        info: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "data_dir": str(self.settings.data_dir),
            "rtsp_url": rtsp_base,
            "http_url": http_base,
            "status_url": http_base + "status",
            "onvif_url": http_base + "onvif/device_service",
            "live": {
                s.config.recording: rtsp_base + LIVE_PREFIX + s.config.recording
                for s in self.sources
            },
        }
        if self.tls is not None:
            info["https_url"] = f"https://{_url_host(host)}:{self.https_port}/"
            # Clients of a self-signed certificate pin it by this value (AU-04).
            info["https_certificate_sha256"] = self.tls.fingerprint
        return info

    async def _http_status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "version": __version__,
                "now": format_iso(self.clock.wall_ns()),
                "sources": [s.status() for s in self.sources],
                "recording_jobs": self.jobs.status() if self.jobs is not None else {},
            }
        )


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _start_site(
    runner: web.AppRunner, listen: str, port: int, tls: HttpsIdentity | None = None
) -> int:
    """Start one listener of `runner`'s app; the bound port, or a ConfigError naming it."""
    context = tls.context if tls is not None else None
    site = web.TCPSite(runner, listen, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        scheme = "HTTPS" if tls is not None else "HTTP"
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen for {scheme} on {listen}:{port}: {reason}") from None
    server = site._server  # the bound socket; TCPSite.port is missing from older aiohttp 3.x
    assert isinstance(server, asyncio.Server)
    port_bound: int = server.sockets[0].getsockname()[1]
    return port_bound


def _certificate_addresses(listen: str) -> tuple[str, ...]:
    """The listen address, if it is one specific IP, for a generated certificate's names."""
    try:
        address = ipaddress.ip_address(listen)
    except ValueError:
        return ()
    # A scoped IPv6 address (fe80::1%eth0) cannot be a certificate name; loopback still is.
    scoped = isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None
    return () if address.is_unspecified or scoped else (str(address),)


def _client_host(listen: str) -> str:
    """The address a local client should use for a listen address (wildcards → loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen, listen)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(doc, indent=1).encode("utf-8"))


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop_event)` on a new loop in this thread; SIGINT/SIGTERM set the event."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(runner())


async def _wait(stop: asyncio.Event, duration_s: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration_s)


def run_engine(settings: EngineSettings, *, duration_s: float | None = None) -> None:
    """`custos engine`: run until signalled or `duration_s` elapsed, then shut down cleanly."""

    async def main(stop: asyncio.Event) -> None:
        async with Engine(settings):
            log.debug("%d startup objects frozen", freeze_startup_objects())
            await _wait(stop, duration_s)
        log.info("engine stopped")

    run_until_signalled(main)


def run_simcam_server(
    source: SimcamSource,
    *,
    listen: str,
    port: int,
    streams: int = 1,
    duration_s: float | None = None,
    ready_file: Path | None = None,
) -> None:
    """`custos simcam`: serve the simulated camera at /live (or /live1…/liveN) without auth."""

    async def main(stop: asyncio.Event) -> None:
        clock = SystemClock()
        async with contextlib.AsyncExitStack() as stack:
            server = await stack.enter_async_context(RtspServer(clock=clock))
            await server.start(listen, port)
            loop = None
            if source.loop_seconds is not None:
                loop = await asyncio.to_thread(
                    encode_loop,
                    size=source.size,
                    fps=source.fps,
                    seconds=source.loop_seconds,
                    capture_ns=clock.wall_ns(),
                )
            urls = []
            host = _url_host(_client_host(listen))
            for i in range(streams):
                path = "live" if streams == 1 else f"live{i + 1}"
                hub = LiveHub(path)
                if loop is not None:
                    camera = SimulatedCamera.from_loop(hub, loop, audio=source.audio, clock=clock)
                else:
                    camera = SimulatedCamera(
                        hub, size=source.size, fps=source.fps, audio=source.audio, clock=clock
                    )
                server.mount(path, LiveResource(hub, name=f"Custos simulated camera {i + 1}"))
                await camera.start()
                stack.push_async_callback(camera.stop)
                urls.append(f"rtsp://{host}:{server.port}/{path}")
            if ready_file is not None:
                await asyncio.to_thread(
                    _write_json_atomic, ready_file, {"urls": urls, "pid": os.getpid()}
                )
            log.info("simulated camera serving %s", " ".join(urls))
            await _wait(stop, duration_s)

    run_until_signalled(main)
