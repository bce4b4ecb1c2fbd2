"""Shared parts of the HTTP benchmarks (bench/rest, later bench/soap): a server subprocess with
CPU accounting, closed-loop clients, percentiles and the printed table.

A benchmark module runs itself twice: as the driver (this process: clients, timing, printing)
and, with its own hidden `--serve ...` arguments, as the server subprocess, which calls
`serve_app` (prints its port, stops when its stdin closes). Server CPU is read from
/proc/<pid>/stat before and after the measured window, so requests/s per server core is stated
next to requests/s; the floor is the same clients against a bare aiohttp handler in the same run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from aiohttp import web

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Longest wait for a server subprocess to print its port (an engine records footage first).
SERVER_START_TIMEOUT_S = 120.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# ------------------------------------------------------------------ server side


async def wait_for_stdin_eof() -> None:
    """Return when the driver closes our stdin (its way of saying stop)."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def serve_app(app: web.Application, *, host: str = "127.0.0.1") -> None:
    """Serve `app` on host:0, print the port, run until stdin closes."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await wait_for_stdin_eof()
    finally:
        await runner.cleanup()


def bare_app(body: bytes, content_type: str, paths: Sequence[str]) -> web.Application:
    """The floor: a handler that reads the request and answers a fixed body, nothing else."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    for path in paths:
        app.router.add_route("*", path, handle)
    return app


@dataclasses.dataclass
class Server:
    """A running server subprocess: its port and its CPU seconds since `mark()`."""

    process: subprocess.Popen[str]
    port: int
    _cpu0: float = 0.0

    def mark(self) -> None:
        self._cpu0 = cpu_seconds(self.process.pid)

    def cpu_since_mark(self) -> float:
        return cpu_seconds(self.process.pid) - self._cpu0


@contextlib.contextmanager
def server_process(module: str, args: Sequence[str]) -> Iterator[Server]:
    """`python -m module *args` as a server that prints its port; stopped on exit."""
    cmd = [sys.executable, "-m", module, *args]
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{' '.join(cmd)} printed {line!r} instead of its port")
        yield Server(process, int(line))
        process.stdin.close()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ------------------------------------------------------------------ client side

#: One closed-loop client: runs requests until the deadline, appending each latency (s) and
#: the HTTP status of each failure.
ClientLoop = Callable[[float, list[float], list[int]], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class Result:
    clients: int
    requests: int
    errors: int
    error_statuses: dict[int, int]
    wall_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    @property
    def rps_per_core(self) -> float:
        return self.requests / self.server_cpu_s if self.server_cpu_s else 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * fraction // 1))
    return sorted_values[int(rank) - 1]


def closed_loop(server: Server, clients: int, seconds: float, loop: ClientLoop) -> Result:
    """Run `clients` copies of `loop` for `seconds` against `server`; measure its CPU."""
    latencies: list[float] = []
    errors: list[int] = []

    async def everyone() -> float:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(loop(deadline, latencies, errors) for _ in range(clients)))
        return time.perf_counter() - started

    server.mark()
    wall = asyncio.run(everyone())
    cpu = server.cpu_since_mark()
    latencies.sort()
    return Result(
        clients=clients,
        requests=len(latencies),
        errors=len(errors),
        error_statuses=dict(collections.Counter(errors)),
        wall_s=wall,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu_s=cpu,
    )


def print_result(name: str, r: Result) -> None:
    print(
        f"  {name:26} {r.requests:8d} req  {r.errors:4d} errors  {r.rps:7.0f} req/s  "
        f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  server CPU {r.server_cpu_s:6.1f} s  "
        f"{r.rps_per_core:7.0f} req/s per core"
    )
    if r.errors:
        print(f"  {'':26} failed requests by HTTP status: {r.error_statuses}")


def print_ratio(name: str, r: Result, floor: Result | None) -> None:
    if floor is None:
        return
    cost = floor.rps_per_core / r.rps_per_core if r.rps_per_core else float("inf")
    share = r.rps / floor.rps if floor.rps else 0.0
    print(
        f"  {name}: {share:.2f}x the floor's req/s, {cost:.1f}x its CPU per request; "
        f"queueing floor N/throughput {1000 * r.clients / max(r.rps, 1):.1f} ms"
    )
