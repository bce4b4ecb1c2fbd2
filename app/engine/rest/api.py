"""The IEC 62676-2-2 / PSIA REST endpoint on aiohttp: /PSIA/… (and the /ISAPI alias).

    api = RestApi(store, users, jobs, authenticator, clock, rtsp=rtsp_server, data_dir=data_dir)
    api.add_routes(app)          # every method under /PSIA and /ISAPI, prefix case-insensitive
    api.attach_rtsp(live_path=lambda token: "live/" + token)   # RTSP track/channel aliases

Order per request: body size (413) → authentication (401 + challenges) → path (404) → method
(405 + Allow) → access level (403 lowPrivilege) → handler. Refusals happen before any handler
runs, so they change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from app.core.errors import CustosError
from app.core.time import Clock
from app.engine.jobs import JobController
from app.engine.onvif.device import CachedInterfaces, DeviceInfo, InterfaceFacts
from app.engine.onvif.security import Authenticator
from app.engine.rest import playback
from app.engine.rest.auth import RestAuth
from app.engine.rest.contentmgmt import ContentMgmt
from app.engine.rest.context import RestContext, RestSettings
from app.engine.rest.registry import (
    Node,
    Resolved,
    RestRequest,
    RestResponse,
    description_document,
    index_document,
    required_access,
    resolve,
    xml_response,
)
from app.engine.rest.security import Security
from app.engine.rest.status import (
    RestError,
    Status,
    StatusCode,
    from_domain_error,
    low_privilege,
    method_not_allowed,
    response_status_document,
    too_large,
)
from app.engine.rest.streaming import Streaming
from app.engine.rest.system import System
from app.engine.rest.xml import CONTENT_TYPE
from app.engine.rtsp import RtspServer
from app.engine.storage import Store
from app.engine.users import UserDirectory

log = logging.getLogger(__name__)

#: Largest request body accepted on any REST resource (spec §5.4: ~64 KiB).
MAX_BODY_BYTES = 64 * 1024
#: Root segments served; PSIA is canonical, ISAPI an alias answered in the same schema.
ROOTS = ("PSIA", "ISAPI")
_ROOT_PATTERN = "{root:(?:[Pp][Ss][Ii][Aa]|[Ii][Ss][Aa][Pp][Ii])}"
_BODY_METHODS = frozenset({"PUT", "POST", "GET"})
DEVICE_ERROR = Status(StatusCode.DEVICE_ERROR, "deviceError")


class RestApi:
    """The REST device API over the engine's store, users, jobs and RTSP server."""

    def __init__(
        self,
        store: Store,
        users: UserDirectory,
        jobs: JobController,
        authenticator: Authenticator,
        clock: Clock,
        *,
        rtsp: RtspServer,
        data_dir: Path | None = None,
        info: DeviceInfo | None = None,
        interfaces: Callable[[], Sequence[InterfaceFacts]] | None = None,
        live_path: Callable[[str], str] = lambda token: f"live/{token}",
    ) -> None:
        self.rtsp = rtsp
        self._live_path = live_path
        self.ctx = RestContext(
            store=store,
            users=users,
            jobs=jobs,
            clock=clock,
            settings=RestSettings.load(data_dir),
            info=info or (DeviceInfo.for_host(data_dir) if data_dir else DeviceInfo()),
            rtsp_port=lambda: rtsp.port,
            interfaces=interfaces or CachedInterfaces(),
            has_live=self._has_live,
            data_dir=data_dir,
            started_mono_ns=clock.monotonic_ns(),
        )
        self.auth = RestAuth(authenticator, users)
        self.root = Node.service("PSIA", "IEC 62676-2-2 HTTP and REST interoperability")
        self.root.path = ""
        self.root.add(System(self.ctx).node())
        self.root.add(Security(self.ctx).node())
        self.streaming = Streaming(self.ctx)
        self.root.add(self.streaming.node())
        self.root.add(ContentMgmt(self.ctx).node())

    def _has_live(self, token: str) -> bool:
        path = self._live_path(token).strip("/")
        found = self.rtsp.find_mount(path)
        return found is not None and found[0] == path

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/" + _ROOT_PATTERN, self.handle)
        app.router.add_route("*", "/" + _ROOT_PATTERN + "/{tail:.*}", self.handle)

    def attach_rtsp(self, *, session_timeout_s: Callable[[], float] | None = None) -> None:
        """Serve rtsp://…/PSIA/Streaming/tracks/<id>?starttime=… and …/channels/<id>."""
        playback.attach_rtsp(
            self.rtsp,
            self.ctx.store,
            self.ctx.clock,
            live_path=self._live_path,
            session_timeout_s=session_timeout_s,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        url = request.path
        try:
            answer = await self._answer(request)
        except RestError as exc:
            if exc.status.http_status >= 500:
                log.warning("%s %s -> %s", request.method, url[:200], exc.message)
            answer = RestResponse(
                response_status_document(url, exc.status),
                status=exc.status.http_status,
                headers=exc.headers,
            )
        except Exception:
            # A bug must still answer in the protocol's terms (statusCode 3), never crash.
            log.exception("%s %s failed", request.method, url[:200])
            answer = RestResponse(response_status_document(url, DEVICE_ERROR), status=500)
        response = web.Response(body=answer.body, status=answer.status)
        response.headers["Content-Type"] = answer.content_type
        for name, value in answer.headers:
            response.headers.add(name, value)
        return response

    async def _answer(self, request: web.Request) -> RestResponse:
        secure = request.secure
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise too_large(f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
        method = request.method.upper()
        caller = self.auth.caller(method, request.headers.get("Authorization"), secure=secure)
        segments = [s for s in request.match_info.get("tail", "").split("/") if s]
        resolved = resolve(self.root, segments)
        access = required_access(resolved, method)
        if access is None:
            allowed = _allowed(resolved)
            raise method_not_allowed(f"{method} is not supported on {request.path}", allowed)
        if caller.access < access:
            raise low_privilege(
                f"user {caller.user!r} ({caller.access.name.lower()}) may not {method} "
                f"{request.path} (needs {access.name.lower()})"
            )
        body = await _read_body(request) if method in _BODY_METHODS else b""
        rest = RestRequest(
            method=method,
            url=request.path,
            ids=resolved.ids,
            query=dict(request.query),
            body=body,
            user=caller.user,
            access=caller.access,
            host=request.url.host or "127.0.0.1",
            secure=secure,
        )
        root_prefix = "/" + request.match_info["root"]
        try:
            return await self._dispatch(resolved, rest, root_prefix)
        except RestError:
            raise
        except CustosError as exc:
            raise from_domain_error(exc) from None

    async def _dispatch(self, resolved: Resolved, rest: RestRequest, prefix: str) -> RestResponse:
        node, standard = resolved.node, resolved.standard
        if standard in ("index", "indexr") or (standard is None and node.kind == "service"):
            # A service's only method is GET (required_access refused the others): its index.
            return xml_response(index_document(node, prefix, recursive=standard == "indexr"))
        if standard == "description":
            return xml_response(description_document(node, None))
        if standard == "capabilities":
            assert node.capabilities is not None
            return await node.capabilities(rest)
        return await node.methods[rest.method].handler(rest)


def _allowed(resolved: Resolved) -> tuple[str, ...]:
    if resolved.standard is not None:
        return ("GET",)
    return resolved.node.allowed()


async def _read_body(request: web.Request) -> bytes:
    """The body, refused with 413 once it passes MAX_BODY_BYTES (chunked bodies included)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(f"request body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)


__all__ = ["CONTENT_TYPE", "MAX_BODY_BYTES", "ROOTS", "RestApi"]
