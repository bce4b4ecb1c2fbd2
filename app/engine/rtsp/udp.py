"""UDP unicast transport of one session track: an RTP/RTCP socket pair on even/odd server ports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Attempts at finding a free even/odd port pair before SETUP fails with 453.
MAX_PORT_ATTEMPTS = 32

#: Receives (datagram, source address) from the client's RTCP port.
RtcpHandler = Callable[[bytes, tuple[str, int]], None]


class _Endpoint(asyncio.DatagramProtocol):
    """One socket of the pair: flow-control state plus an optional receive callback."""

    def __init__(self, on_datagram: RtcpHandler | None) -> None:
        self._on_datagram = on_datagram
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._on_datagram is not None:
            self._on_datagram(data, addr[:2])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: the session timeout handles it.
        logger.debug("UDP send error: %s", exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()


class UdpChannel:
    """Sends a track's RTP to client_port[0] and RTCP to client_port[1] from a server port pair."""

    def __init__(
        self,
        rtp: tuple[asyncio.DatagramTransport, _Endpoint],
        rtcp: tuple[asyncio.DatagramTransport, _Endpoint],
        client_host: str,
        client_ports: tuple[int, int],
    ) -> None:
        self._rtp_transport, self._rtp = rtp
        self._rtcp_transport, self._rtcp = rtcp
        self._rtp_dest = (client_host, client_ports[0])
        self._rtcp_dest = (client_host, client_ports[1])
        self.server_ports: tuple[int, int] = (
            self._rtp_transport.get_extra_info("sockname")[1],
            self._rtcp_transport.get_extra_info("sockname")[1],
        )

    def send_rtp(self, packets: list[bytes]) -> None:
        if self._rtp.closed:
            return
        for packet in packets:
            self._rtp_transport.sendto(packet, self._rtp_dest)

    def send_rtcp(self, packet: bytes) -> None:
        if not self._rtcp.closed:
            self._rtcp_transport.sendto(packet, self._rtcp_dest)

    async def wait_writable(self) -> None:
        await self._rtp.writable.wait()
        if self._rtp.closed:
            raise ConnectionError("UDP transport closed")

    def close(self) -> None:
        self._rtp_transport.close()
        self._rtcp_transport.close()


async def open_udp_channel(
    host: str,
    client_host: str,
    client_ports: tuple[int, int],
    on_rtcp: RtcpHandler,
) -> UdpChannel:
    """Bind an even RTP port and the odd port above it on `host` (RFC 3550 §11 convention).

    Raises OSError when no pair was free after MAX_PORT_ATTEMPTS tries.
    """
    loop = asyncio.get_running_loop()
    last_error: OSError | None = None
    for _ in range(MAX_PORT_ATTEMPTS):
        rtp_transport, rtp = await loop.create_datagram_endpoint(
            lambda: _Endpoint(None), local_addr=(host, 0)
        )
        port = rtp_transport.get_extra_info("sockname")[1]
        if port % 2 or port == 65535:
            rtp_transport.close()
            continue
        try:
            rtcp_transport, rtcp = await loop.create_datagram_endpoint(
                lambda: _Endpoint(on_rtcp), local_addr=(host, port + 1)
            )
        except OSError as exc:
            last_error = exc
            rtp_transport.close()
            continue
        except BaseException:
            rtp_transport.close()  # cancelled: the client went away during SETUP
            raise
        return UdpChannel((rtp_transport, rtp), (rtcp_transport, rtcp), client_host, client_ports)
    raise OSError(
        f"no free even/odd UDP port pair on {host} after {MAX_PORT_ATTEMPTS} tries"
    ) from (last_error)
