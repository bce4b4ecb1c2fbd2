"""bench/soap: ONVIF SOAP requests per second and latency of the engine's endpoint, with Digest.

A separate server process runs OnvifServer (the real framework: hardened parse, Digest with nc
replay check, dispatch, zeep serialization against the official WSDLs) with a Device-like and a
Recording-Search-like read operation; this process runs N concurrent lean aiohttp clients, each
keeping its Digest nonce and incrementing nc (no 401 round trip per request, as real clients).
Prints requests/s, p50/p99 latency, and the server's CPU seconds, so requests/s per server core
is stated (target ≥ 1,000 req/s per core, p99 ≤ 20 ms). Reference in the same run: the same
clients against a bare aiohttp handler returning a fixed body (the HTTP floor).

    .venv/bin/python -m bench.soap [--clients 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from app.protocols.rtsp.auth import digest_authorization, select_challenge

CLK_TCK = os.sysconf("SC_CLK_TCK")
USER, PASSWORD = "admin", "bench-pw"
PATH = "/onvif/device_service"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TSE = "http://www.onvif.org/ver10/search/wsdl"
REQUESTS = [
    f'<tds:GetDeviceInformation xmlns:tds="{TDS}"/>',
    f'<tse:GetRecordingSummary xmlns:tse="{TSE}"/>',
]


def envelope(payload: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
        f"<s:Body>{payload}</s:Body></s:Envelope>"
    ).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ------------------------------------------------------------------ server process


def serve(bare: bool) -> None:
    """Run the endpoint on 127.0.0.1:0; print the port; stop when stdin closes."""
    from aiohttp import web

    from app.core.time import SystemClock, format_iso
    from app.engine.onvif.security import AccessClass, Authenticator
    from app.engine.onvif.server import OnvifServer, OnvifService, RequestContext, operation
    from app.engine.users import UserDirectory

    class Device(OnvifService):
        service = "device"

        @operation("GetDeviceInformation", AccessClass.READ_SYSTEM)
        async def info(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
            return {
                "Manufacturer": "Custos",
                "Model": "Engine",
                "FirmwareVersion": "0.1.0",
                "SerialNumber": "bench",
                "HardwareId": "x86_64",
            }

    class Search(OnvifService):
        service = "search"

        @operation("GetRecordingSummary", AccessClass.READ_MEDIA)
        async def summary(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
            now = SystemClock().wall_ns()
            return {
                "Summary": {
                    "DataFrom": format_iso(now - 86_400 * 10**9),
                    "DataUntil": format_iso(now),
                    "NumberRecordings": 10,
                }
            }

    async def main() -> None:
        app = web.Application()
        if bare:
            fixed = envelope("<x/>")

            async def handle(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=fixed, content_type="application/soap+xml")

            app.router.add_post("/onvif/{tail:.*}", handle)
        else:
            data = Path(tempfile.mkdtemp(prefix="bench-soap-"))
            users = UserDirectory.open(data, {"CUSTOS_ADMIN_PASSWORD": PASSWORD})
            auth = Authenticator(users, SystemClock(), "Custos")
            OnvifServer(auth, [Device(), Search()]).add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


# ------------------------------------------------------------------ client side


async def client(url: str, deadline: float, latencies: list[float], errors: list[int]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        async with session.post(url, data=envelope(REQUESTS[0]), headers=headers) as resp:
            await resp.read()
            challenge = select_challenge(resp.headers.getall("WWW-Authenticate", []))
        nc = 0
        i = 0
        while time.perf_counter() < deadline:
            nc += 1
            i += 1
            if challenge is not None:
                headers["Authorization"] = digest_authorization(
                    challenge, "POST", PATH, USER, PASSWORD, nc=nc
                )
            body = envelope(REQUESTS[i % len(REQUESTS)])
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors.append(resp.status)
            latencies.append(time.perf_counter() - started)


def run(clients: int, seconds: float, *, bare: bool) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.soap", "--serve"] + (["--bare"] if bare else [])
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}{PATH}"
        latencies: list[float] = []
        errors: list[int] = []

        async def all_clients() -> None:
            deadline = time.perf_counter() + seconds
            await asyncio.gather(
                *(client(url, deadline, latencies, errors) for _ in range(clients))
            )

        cpu0 = cpu_seconds(server.pid)
        started = time.perf_counter()
        asyncio.run(all_clients())
        wall = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu0
        server.stdin.close()
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "errors": len(errors),
        "rps": count / wall,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(count * 0.99) - 1] * 1000 if latencies else 0.0,
        "server_cpu_s": cpu,
        "rps_per_core": count / cpu if cpu else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.bare)
        return
    floor = run(args.clients, min(args.seconds, 10.0), bare=True)
    soap = run(args.clients, args.seconds, bare=False)
    for name, r in (("bare aiohttp (floor)", floor), ("ONVIF SOAP + Digest", soap)):
        print(
            f"{name:22} {r['requests']:8.0f} req  {r['errors']:4.0f} errors  "
            f"{r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
            f"server CPU {r['server_cpu_s']:6.1f} s  {r['rps_per_core']:7.0f} req/s per core"
        )
    print(
        f"SOAP cost vs floor: {floor['rps_per_core'] / max(soap['rps_per_core'], 1):.1f}x CPU/req"
    )


if __name__ == "__main__":
    main()
