"""bench/soap: ONVIF SOAP requests per second and latency of the engine's endpoint, with Digest.

A separate server process runs OnvifServer (the real framework: hardened parse, Digest with nc
replay check, dispatch, zeep serialization against the official WSDLs) with a Device-like and a
Recording-Search-like read operation; this process runs N concurrent lean aiohttp clients, each
keeping its Digest nonce and incrementing nc (no 401 round trip per request, as real clients).
Prints requests/s, p50/p99 latency, and the server's CPU seconds, so requests/s per server core
is stated (target ≥ 1,000 req/s per core, p99 ≤ 20 ms). Reference in the same run: the same
clients against a bare aiohttp handler returning a fixed body (the HTTP floor).

`--mix engine` serves the real Engine instead (simulated camera recording, every ONVIF service)
and each client cycles through what a search GUI sends: GetRecordingSummary, GetRecordings,
FindEvents + GetEventSearchResults over the recorded footage. `--clients 1,10,50` runs each
concurrency in turn: with N closed-loop clients on a saturated server, latency is at least
N / throughput (Little's law), so p99 ≤ 20 ms at 50 clients needs ≥ 2,500 req/s from the server.

`--rate R` adds an open-loop run per client count: R requests/s in total, each client sending
every N/R seconds on its own schedule (staggered by 1/R). Latency is measured from the
scheduled send time, so a request held up behind a slow one counts its wait (no coordinated
omission); that is the latency a GUI sees at the target throughput, not at saturation.

    .venv/bin/python -m bench.soap [--clients 50] [--seconds 60] [--mix device|engine]
                                   [--rate 1000] [--no-floor] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import re
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
TRC = "http://www.onvif.org/ver10/recording/wsdl"
REQUESTS = [
    f'<tds:GetDeviceInformation xmlns:tds="{TDS}"/>',
    f'<tse:GetRecordingSummary xmlns:tse="{TSE}"/>',
]
#: The engine mix; a FindEvents answer's token is paged in the next request, as a GUI does.
ENGINE_REQUESTS = [
    f'<tse:GetRecordingSummary xmlns:tse="{TSE}"/>',
    f'<trc:GetRecordings xmlns:trc="{TRC}"/>',
    f'<tse:FindEvents xmlns:tse="{TSE}"><tse:StartPoint>2000-01-01T00:00:00Z</tse:StartPoint>'
    "<tse:Scope/><tse:SearchFilter/><tse:IncludeStartState>true</tse:IncludeStartState>"
    "<tse:KeepAliveTime>PT10S</tse:KeepAliveTime></tse:FindEvents>",
]
EVENT_RESULTS = (
    f'<tse:GetEventSearchResults xmlns:tse="{TSE}"><tse:SearchToken>{{token}}</tse:SearchToken>'
    "<tse:MaxResults>100</tse:MaxResults><tse:WaitTime>PT1S</tse:WaitTime>"
    "</tse:GetEventSearchResults>"
)
END_SEARCH = (
    f'<tse:EndSearch xmlns:tse="{TSE}"><tse:SearchToken>{{token}}</tse:SearchToken></tse:EndSearch>'
)
#: The answer's start tags carry namespace declarations, hence the [^>]* before '>'.
SEARCH_TOKEN = re.compile(rb"SearchToken[^>]*>([^<]+)<")
COMPLETED = re.compile(rb"SearchState[^>]*>Completed<")
#: Seconds of footage the engine mix records before the clients start.
ENGINE_WARMUP_S = 3.0
#: Open loop: seconds between starting the clients and the first scheduled send.
OPEN_LOOP_LEAD_S = 1.0
#: Seconds the engine's own CPU use (camera encoder, recorder) is sampled before the load.
IDLE_SAMPLE_S = 3.0


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


def serve_engine() -> None:
    """Run the real Engine (simulated camera) on 127.0.0.1:0; print the HTTP port; stop on EOF."""
    from app.core.config import EngineConfig, SimcamSource
    from app.core.gc_tuning import freeze_startup_objects
    from app.engine.runtime import Engine, EngineSettings

    async def run_engine() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-soap-engine-") as data:
            os.environ["CUSTOS_ADMIN_PASSWORD"] = PASSWORD
            source = SimcamSource(size=(1024, 576), loop_seconds=2)
            settings = EngineSettings(
                data_dir=Path(data),
                config=EngineConfig(sources=(source,)),
                rtsp_port=0,
                http_port=0,
            )
            async with Engine(settings) as engine:
                freeze_startup_objects()  # as `custos engine` does
                await asyncio.sleep(ENGINE_WARMUP_S)  # footage for the searches to find
                print(engine.http_port, flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(run_engine())


def serve(bare: bool) -> None:
    """Run the endpoint on 127.0.0.1:0; print the port; stop when stdin closes."""
    from aiohttp import web

    from app.core.time import SystemClock, format_iso
    from app.engine.onvif.security import AccessClass, Authenticator
    from app.engine.onvif.server import OnvifServer, OnvifService, RequestContext, operation
    from app.engine.users import UserDirectory

    class Device(OnvifService):
        service = "device"

        @operation("GetDeviceInformation", AccessClass.READ_SYSTEM, cacheable=True)
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

    async def main(data: Path) -> None:
        app = web.Application()
        if bare:
            fixed = envelope("<x/>")

            async def handle(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=fixed, content_type="application/soap+xml")

            app.router.add_post("/onvif/{tail:.*}", handle)
        else:
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

    with tempfile.TemporaryDirectory(prefix="bench-soap-") as data:  # the users file
        asyncio.run(main(Path(data)))


# ------------------------------------------------------------------ client side


async def client(
    url: str,
    deadline: float,
    latencies: list[float],
    errors: list[int],
    mix: str,
    schedule: tuple[float, float] | None = None,
    by_operation: dict[str, list[float]] | None = None,
) -> None:
    """One connection sending back to back, or on `schedule` = (first send, interval)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        async with session.post(url, data=envelope(REQUESTS[0]), headers=headers) as resp:
            await resp.read()
            challenge = select_challenge(resp.headers.getall("WWW-Authenticate", []))
        nc = 0
        i = 0
        pending: bytes | None = None  # a FindEvents token whose results come next
        unfinished: bytes | None = None  # a search still Searching after one page: EndSearch it
        requests = ENGINE_REQUESTS if mix == "engine" else REQUESTS
        sends = 0
        while time.perf_counter() < deadline:
            if schedule is None:
                due = time.perf_counter()
            else:
                due = schedule[0] + sends * schedule[1]
                if due >= deadline:
                    break
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
            sends += 1
            nc += 1
            if pending is not None:
                payload = EVENT_RESULTS.format(token=pending.decode())
                unfinished, pending = pending, None
            elif unfinished is not None:
                # A GUI that got its page ends the search rather than holding a session slot
                # until KeepAliveTime runs out (RS-14): the device's limit is for live searches.
                payload = END_SEARCH.format(token=unfinished.decode())
                unfinished = None
            else:
                i += 1
                payload = requests[i % len(requests)]
            if challenge is not None:
                headers["Authorization"] = digest_authorization(
                    challenge, "POST", PATH, USER, PASSWORD, nc=nc
                )
            async with session.post(url, data=envelope(payload), headers=headers) as resp:
                answer = await resp.read()
                if resp.status != 200:
                    errors.append(resp.status)
            latencies.append(time.perf_counter() - due)
            if by_operation is not None:
                operation = payload[1 : payload.index(" ")].split(":")[-1].rstrip("/")
                by_operation.setdefault(operation, []).append(latencies[-1])
            if resp.status == 200 and payload.startswith("<tse:FindEvents"):
                found = SEARCH_TOKEN.search(answer)
                pending = found.group(1) if found else None
            elif unfinished is not None and (resp.status != 200 or COMPLETED.search(answer)):
                unfinished = None  # Completed ended the session already


def run(
    clients: int,
    seconds: float,
    *,
    bare: bool,
    mix: str = "device",
    profile: str | None = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """One server process, `clients` clients for `seconds`: closed loop, or open at `rate`."""
    cmd = [sys.executable, "-m", "bench.soap", "--serve"] + (["--bare"] if bare else [])
    if mix == "engine" and not bare:
        cmd.append("--engine")
    if profile and not bare:
        cmd += ["--profile", profile]
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        # The engine mix's server also encodes and records the simulated camera: sample that
        # before the load so the serving CPU per request can be told apart from it.
        idle_per_s = 0.0
        if mix == "engine" and not bare:
            idle0 = cpu_seconds(server.pid)
            time.sleep(IDLE_SAMPLE_S)
            idle_per_s = (cpu_seconds(server.pid) - idle0) / IDLE_SAMPLE_S
        url = f"http://127.0.0.1:{port}{PATH}"
        latencies: list[float] = []
        errors: list[int] = []
        by_operation: dict[str, list[float]] = {}

        async def all_clients() -> None:
            # The first second sets up connections and Digest; open-loop sends start after it.
            start = time.perf_counter() + (OPEN_LOOP_LEAD_S if rate else 0.0)
            deadline = start + seconds
            await asyncio.gather(
                *(
                    client(url, deadline, latencies, errors, mix, plan, by_operation)
                    for plan in (_schedule(start, i, rate, clients) for i in range(clients))
                )
            )

        cpu0 = cpu_seconds(server.pid)
        started = time.perf_counter()
        asyncio.run(all_clients())
        elapsed = time.perf_counter() - started
        wall = elapsed - (OPEN_LOOP_LEAD_S if rate else 0.0)
        cpu = cpu_seconds(server.pid) - cpu0
        serving_cpu = cpu - idle_per_s * elapsed
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
        "error_statuses": dict(collections.Counter(errors)),
        "rps": count / wall,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(count * 0.99) - 1] * 1000 if latencies else 0.0,
        "server_cpu_s": cpu,
        "rps_per_core": count / cpu if cpu else 0.0,
        "idle_core_share": idle_per_s,
        "rps_per_serving_core": count / serving_cpu if serving_cpu > 0 else 0.0,
        "p99_ms_by_operation": {
            name: sorted(values)[int(len(values) * 0.99) - 1] * 1000
            for name, values in sorted(by_operation.items())
            if len(values) >= 100
        },
    }


def _schedule(start: float, i: int, rate: float | None, clients: int) -> tuple[float, float] | None:
    """Client i's (first send, interval) for `rate` req/s in total, or None (closed loop)."""
    if not rate:
        return None
    return start + i / rate, clients / rate


def _print(name: str, r: dict[str, Any]) -> None:
    print(
        f"  {name:30} {r['requests']:7.0f} req {r['errors']:4.0f} errors  "
        f"{r['rps']:6.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
        f"server CPU {r['server_cpu_s']:5.1f} s  {r['rps_per_core']:6.0f} req/s per core"
    )
    if r["idle_core_share"]:
        print(
            f"    engine without load (camera + recorder): {r['idle_core_share']:.0%} of a core; "
            f"the rest: {r['rps_per_serving_core']:.0f} req/s per core of serving CPU"
        )
    by_operation = r["p99_ms_by_operation"]
    if len(by_operation) > 1:
        print(
            "    p99 by operation: " + ", ".join(f"{n} {v:.1f} ms" for n, v in by_operation.items())
        )
    if r["errors"]:
        print(f"    failed requests by HTTP status: {r['error_statuses']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", default="50", help="one count or several, e.g. 1,10,50")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mix", choices=("device", "engine"), default="device")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-floor", action="store_true", help="skip the bare aiohttp run")
    parser.add_argument("--profile", help="write the SOAP server's cProfile stats to this file")
    parser.add_argument(
        "--rate", type=float, help="also run open loop: total offered requests/s over the clients"
    )
    args = parser.parse_args()
    if args.serve:
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        if args.engine:
            serve_engine()
        else:
            serve(args.bare)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return
    for clients in (int(n) for n in args.clients.split(",")):
        floor = None if args.no_floor else run(clients, min(args.seconds, 10.0), bare=True)
        soap = run(clients, args.seconds, bare=False, mix=args.mix, profile=args.profile)
        print(f"{clients} closed-loop clients (saturation), {args.seconds:.0f} s:")
        if floor is not None:
            _print("bare aiohttp (floor)", floor)
        _print(f"ONVIF SOAP ({args.mix})", soap)
        bound = clients / max(soap["rps"], 1) * 1000
        ratio = floor["rps_per_core"] / max(soap["rps_per_core"], 1) if floor else float("nan")
        print(
            f"  SOAP cost vs floor {ratio:.1f}x CPU/req; queueing floor N/throughput {bound:.1f} ms"
        )
        if not args.rate:
            continue
        print(f"{clients} open-loop clients offering {args.rate:.0f} req/s, {args.seconds:.0f} s:")
        if not args.no_floor:
            seconds = min(args.seconds, 10.0)
            _print("bare aiohttp (floor)", run(clients, seconds, bare=True, rate=args.rate))
        offered = run(clients, args.seconds, bare=False, mix=args.mix, rate=args.rate)
        _print(f"ONVIF SOAP ({args.mix})", offered)
        if offered["rps"] < 0.95 * args.rate:
            print("  (not sustained: the latencies are a growing queue, not service times)")


if __name__ == "__main__":
    main()
