"""RTP/RTCP over UDP for ingest: an even/odd client port pair that accepts only the camera."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
from collections.abc import Callable, Container

from app.core.errors import PeerError

#: Attempts at finding a free even port whose odd neighbour is free too.
MAX_PORT_ATTEMPTS = 64
#: Receive buffer asked of the kernel per socket: a 4K keyframe burst is a few MiB.
UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

#: Called with the datagram bytes for every packet from an accepted sender.
DatagramHandler = Callable[[bytes], None]


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, handler: DatagramHandler, accept: Callable[[str], bool]) -> None:
        self.handler = handler
        self.accept = accept
        self.foreign = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if not self.accept(str(addr[0])):
            self.foreign += 1  # not the camera: a stray or spoofed packet
            return
        self.handler(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable after the camera went away) are not ours to act on:
        # the RTSP connection and the dead-stream watchdog decide when a run is over.
        pass


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    for _ in range(MAX_PORT_ATTEMPTS):
        rtp = _bind(host, 0)
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            try:
                return rtp, _bind(host, port + 1)
            except OSError:
                pass
        rtp.close()
    raise PeerError(f"no free UDP port pair on {host} after {MAX_PORT_ATTEMPTS} attempts")


class UdpPair:
    """The RTP (even) and RTCP (odd) sockets of one track."""

    def __init__(self, transports: list[asyncio.DatagramTransport], rtp_port: int) -> None:
        self._transports = transports
        self.rtp_port = rtp_port
        self.rtcp_port = rtp_port + 1

    @classmethod
    async def open(
        cls,
        local_host: str,
        senders: Container[str],
        on_rtp: DatagramHandler,
        on_rtcp: DatagramHandler,
    ) -> UdpPair:
        """Bind a port pair on `local_host`; datagrams from hosts not in `senders` are dropped.

        `senders` is consulted live, so hosts learnt later (a SETUP's source=) can be added.
        """

        def accept(host: str) -> bool:
            return host in senders

        loop = asyncio.get_running_loop()
        rtp_sock, rtcp_sock = _bind_pair(local_host)
        transports: list[asyncio.DatagramTransport] = []
        try:
            for sock, handler in ((rtp_sock, on_rtp), (rtcp_sock, on_rtcp)):
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_Endpoint, handler, accept), sock=sock
                )
                transports.append(transport)
        except OSError as exc:
            for transport in transports:
                transport.close()
            rtp_sock.close()
            rtcp_sock.close()
            raise PeerError(f"cannot open UDP sockets on {local_host}: {exc}") from exc
        return cls(transports, rtp_sock.getsockname()[1])

    def send_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send from the RTCP port (receiver reports, NAT keepalive)."""
        with contextlib.suppress(OSError):
            self._transports[1].sendto(data, addr)

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
