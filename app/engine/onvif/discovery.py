"""WS-Discovery responder: answers Probes over UDP and announces Hello/Bye (ONVIF Core §7).

Disabled by default (an engine on a forensic workstation should not advertise itself unasked);
SetDiscoveryMode or the runtime turns it on. In production it listens on 0.0.0.0:3702 and joins
239.255.255.250; tests bind unicast loopback on port 0 and announce to a listener of their own.

    discovery = WsDiscovery(lambda: Endpoint(urn, tuple(device.scopes()), (xaddr,)))
    await discovery.set_discoverable(True)   # bind, send Hello
    ...
    await discovery.close()                  # send Bye, unbind
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

from app.protocols.onvif.discovery import (
    MULTICAST_ADDRESS,
    Endpoint,
    bye,
    hello,
    matches,
    parse_probe,
    probe_matches,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: WsDiscovery) -> None:
        self._owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._owner._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("WS-Discovery socket error: %s", exc)


class WsDiscovery:
    """The responder; implements the device service's Discovery protocol."""

    def __init__(
        self,
        endpoint: Callable[[], Endpoint],
        *,
        bind: Address = ("0.0.0.0", MULTICAST_ADDRESS[1]),
        multicast: bool = True,
        announce_to: Address = MULTICAST_ADDRESS,
    ) -> None:
        self._endpoint = endpoint
        self._bind = bind
        self._multicast = multicast
        self._announce_to = announce_to
        self._protocol: _Protocol | None = None
        #: Probes answered and datagrams ignored (garbage, other messages, no match).
        self.answered = 0
        self.ignored = 0

    @property
    def discoverable(self) -> bool:
        return self._protocol is not None

    @property
    def address(self) -> Address:
        """Where the responder listens (the real port when bound to port 0)."""
        if self._protocol is None or self._protocol.transport is None:
            raise RuntimeError("WS-Discovery is not running")
        host, port = self._protocol.transport.get_extra_info("sockname")[:2]
        return host, port

    async def set_discoverable(self, discoverable: bool) -> None:
        if discoverable and self._protocol is None:
            await self._start()
        elif not discoverable and self._protocol is not None:
            self._stop()

    async def close(self) -> None:
        await self.set_discoverable(False)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._bind)
            if self._multicast:
                group = socket.inet_aton(MULTICAST_ADDRESS[0])
                membership = struct.pack("4s4s", group, socket.inet_aton("0.0.0.0"))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), sock=sock
        )
        protocol.transport = transport  # connection_made may not have run yet
        self._protocol = protocol
        self._send(hello(self._endpoint()), self._announce_to)
        log.info("WS-Discovery on %s:%d", *self.address)

    def _stop(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is None or protocol.transport is None:
            return
        try:
            protocol.transport.sendto(bye(self._endpoint()), self._announce_to)
        except OSError as exc:
            log.debug("WS-Discovery Bye not sent: %s", exc)
        protocol.transport.close()

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        probe = parse_probe(data)
        endpoint = self._endpoint()
        if probe is None or not matches(probe, endpoint.scopes):
            self.ignored += 1
            return
        self.answered += 1
        self._send(probe_matches(probe, endpoint), addr)

    def _send(self, data: bytes, addr: Address) -> None:
        if self._protocol is None or self._protocol.transport is None:
            return
        try:
            self._protocol.transport.sendto(data, addr)
        except OSError as exc:
            log.debug("WS-Discovery answer to %s not sent: %s", addr, exc)
