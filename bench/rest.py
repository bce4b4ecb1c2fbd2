"""bench/rest: requests/s and latency of the engine's IEC 62676-2-2 REST API, with Digest.

A server subprocess runs the real Engine (simulated camera recording, every service on its HTTP
server, as bench/soap's engine mix); this process runs N closed-loop clients, each with the
app's own RestTransport (Digest answered once, then nc incremented: no 401 per request, as real
clients). Resources: `GET /PSIA/System/deviceInfo`, and `POST /PSIA/ContentMgmt/search` with a
fresh searchID each time over the last hour of footage (a GUI opening a timeline; every request
queries the store, none is served from the searchID cache), 40 results per page. Prints
requests/s, p50/p99, the server's CPU seconds and requests/s per server core, and the floor: the
same clients against a bare aiohttp handler answering a fixed body, in the same run.

    .venv/bin/python -m bench.rest [--clients 1,10,50] [--seconds 60] [--resource both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from app.core.time import NS_PER_SECOND, format_iso
from app.remote.http import Credentials
from app.remote.rest.transport import RestTransport
from app.remote.rest.xml import document
from bench.common import (
    ClientLoop,
    Result,
    bare_app,
    closed_loop,
    print_ratio,
    print_result,
    serve_app,
    server_process,
    wait_for_stdin_eof,
)

USER, PASSWORD = "admin", "bench-pw"
DEVICE_INFO = "/PSIA/System/deviceInfo"
SEARCH = "/PSIA/ContentMgmt/search"
#: Seconds of footage the engine records before the clients start (matches for the searches).
ENGINE_WARMUP_S = 3.0
#: Results per search page, as the PSIA-era web UI asks (§3.1).
PAGE_SIZE = 40
#: The bare handler's fixed answer: a DeviceInfo of about the engine's size.
BARE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><DeviceInfo version="1.0" xmlns="urn:psialliance-org">'
    + b"<deviceName>Custos</deviceName>" * 10
    + b"</DeviceInfo>"
)
MAX_ANSWER_BYTES = 1024 * 1024
MATCHES = re.compile(rb"numOfMatches>(\d+)<")


# ------------------------------------------------------------------ server process


def serve_engine() -> None:
    """The real Engine (simulated camera) on 127.0.0.1:0; print the HTTP port; stop on EOF."""
    from app.core.config import EngineConfig, SimcamSource
    from app.engine.runtime import Engine, EngineSettings

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-rest-engine-") as data:
            os.environ["CUSTOS_ADMIN_PASSWORD"] = PASSWORD
            settings = EngineSettings(
                data_dir=Path(data),
                config=EngineConfig(sources=(SimcamSource(size=(1024, 576), loop_seconds=2),)),
                rtsp_port=0,
                http_port=0,
            )
            async with Engine(settings) as engine:
                # Nothing to wait on but recorded wall time: the searches need footage.
                await asyncio.sleep(ENGINE_WARMUP_S)
                print(engine.http_port, flush=True)
                await wait_for_stdin_eof()

    asyncio.run(run())


def serve_bare() -> None:
    asyncio.run(serve_app(bare_app(BARE_BODY, "application/xml", ["/PSIA/{tail:.*}"])))


# ------------------------------------------------------------------ clients


def search_body() -> bytes:
    now = time.time_ns()
    return document(
        "CMSearchDescription",
        [
            ("searchID", str(uuid.uuid4()).upper()),
            ("trackList", [("trackID", "101")]),
            (
                "timeSpanList",
                [
                    (
                        "timeSpan",
                        [
                            ("startTime", format_iso(now - 3600 * NS_PER_SECOND, digits=0)),
                            ("endTime", format_iso(now + 60 * NS_PER_SECOND, digits=0)),
                        ],
                    )
                ],
            ),
            ("maxResults", str(PAGE_SIZE)),
            ("searchResultPostion", "0"),
        ],
    )


def client_loop(port: int, resource: str, *, auth: bool, page_sizes: list[int]) -> ClientLoop:
    """A client; a search's first answer adds its numOfMatches to `page_sizes`."""
    base = f"http://127.0.0.1:{port}"
    method, path = ("GET", DEVICE_INFO) if resource == "deviceInfo" else ("POST", SEARCH)

    async def loop(deadline: float, latencies: list[float], errors: list[int]) -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            creds = Credentials(USER, PASSWORD) if auth else None
            transport = RestTransport(session, base, creds, timeout_s=30.0)
            # Unmeasured: the Digest challenge round trip is not the steady state.
            first = await transport.send(
                method,
                path,
                search_body() if method == "POST" else None,
                max_bytes=MAX_ANSWER_BYTES,
            )
            found = MATCHES.search(first.body)
            if found:
                page_sizes.append(int(found.group(1)))
            while time.perf_counter() < deadline:
                body = search_body() if method == "POST" else None
                started = time.perf_counter()
                answer = await transport.send(method, path, body, max_bytes=MAX_ANSWER_BYTES)
                latencies.append(time.perf_counter() - started)
                if answer.status != 200:
                    errors.append(answer.status)

    return loop


def measure(clients: int, seconds: float, resource: str, *, bare: bool) -> Result:
    args = ["--serve", "bare" if bare else "engine"]
    page_sizes: list[int] = []
    with server_process("bench.rest", args) as server:
        loop = client_loop(server.port, resource, auth=not bare, page_sizes=page_sizes)
        result = closed_loop(server, clients, seconds, loop)
    if page_sizes:
        print(f"  (search answers held {min(page_sizes)}…{max(page_sizes)} matches per page)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,50", help="one count or several, e.g. 1,10,50")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run")
    parser.add_argument("--resource", choices=("deviceInfo", "search", "both"), default="both")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare aiohttp run")
    parser.add_argument("--serve", choices=("engine", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "engine":
        serve_engine()
        return
    if args.serve == "bare":
        serve_bare()
        return
    resources = ("deviceInfo", "search") if args.resource == "both" else (args.resource,)
    for clients in (int(n) for n in args.clients.split(",")):
        print(f"{clients} closed-loop clients, {args.seconds:g} s per run:")
        floor = None
        if not args.no_floor:
            floor = measure(clients, min(args.seconds, 10.0), "deviceInfo", bare=True)
            print_result("bare aiohttp (floor)", floor)
        for resource in resources:
            result = measure(clients, args.seconds, resource, bare=False)
            name = "GET deviceInfo" if resource == "deviceInfo" else "POST search (40/page)"
            print_result(name, result)
            print_ratio(name, result, floor)


if __name__ == "__main__":
    main()
