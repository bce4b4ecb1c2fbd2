"""A scripted RTSP camera on 127.0.0.1:0 for ingest tests: well-behaved by default, hostile on
request (every answer and the media after PLAY can be replaced by the test)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import struct
from collections.abc import Awaitable, Callable

from app.core.media import Codec, CodecParams
from app.core.time import unix_ns_to_ntp64
from app.formats.h26x import split_length_prefixed
from app.protocols.rtp.formats import packetizer_for
from app.protocols.rtp.packet import RtpPacket
from app.protocols.rtp.rtcp import build_bye, build_sr
from tests.formats.h26x.streams import encode

SSRC = 0x1234_5678
SESSION_ID = "F00DCAFE"
MAX_REQUEST_BYTES = 64 * 1024


@dataclasses.dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def h264_units(frames: int = 10, gop: int = 5) -> list[tuple[bytes, bool]]:
    """Real H.264 access units (64x64, length-prefixed NAL units) with their keyframe flags."""
    return [(u.data, u.keyframe) for u in encode("libx264", 64, 64, frames=frames, gop=gop)]


def h264_sdp(units: list[tuple[bytes, bool]], *, extra_media: str = "") -> bytes:
    """An SDP offering one H.264 track (parameter sets from the first keyframe)."""
    nals = split_length_prefixed(units[0][0])
    sets = [n for n in nals if n[0] & 0x1F in (7, 8)]
    sprop = ",".join(base64.b64encode(n).decode() for n in sets)
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprop}\r\n"
        f"a=control:trackID=0\r\n{extra_media}"
    ).encode()


H264_PARAMS = CodecParams(Codec.H264, 90_000)


def rtp_packets(
    units: list[tuple[bytes, bool]],
    *,
    first_ts: int = 1000,
    first_seq: int = 100,
    ts_step: int = 3600,
    ssrc: int = SSRC,
) -> list[bytes]:
    """The RTP packets of `units` (FU-A for large NAL units), marker on each unit's last."""
    packetizer = packetizer_for(H264_PARAMS)
    out = []
    seq = first_seq
    for index, (data, _) in enumerate(units):
        ts = (first_ts + index * ts_step) & 0xFFFF_FFFF
        for chunk in packetizer.packetize(data):
            packet = RtpPacket(96, seq & 0xFFFF, ts, ssrc, chunk.payload, marker=chunk.marker)
            out.append(packet.to_bytes())
            seq += 1
    return out


def interleaved(channel: int, data: bytes) -> bytes:
    return struct.pack("!BBH", 0x24, channel, len(data)) + data


def sender_report(wall_ns: int, rtp_ts: int, ssrc: int = SSRC) -> bytes:
    return build_sr(ssrc, unix_ns_to_ntp64(wall_ns), rtp_ts, 0, 0)


def bye(ssrc: int = SSRC) -> bytes:
    return build_bye((ssrc,))


#: Answers a request: returns the raw bytes to write (None = the default answer).
Responder = Callable[[Request, "Connection"], bytes | None]
#: Runs after PLAY is answered: streams (or misbehaves) on the connection.
MediaScript = Callable[["Connection"], Awaitable[None]]


def response(
    cseq: str | None,
    status: str = "200 OK",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"RTSP/1.0 {status}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One client connection of the fake camera."""

    def __init__(self, camera: FakeCamera, writer: asyncio.StreamWriter) -> None:
        self.camera = camera
        self.writer = writer
        self.transport_reply = ""
        self.client_ports: list[tuple[int, int]] = []
        self.media_task: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def send_rtp(self, packets: list[bytes], channel: int = 0) -> None:
        """Interleaved (TCP) or to the client's RTP port (UDP), as SETUP negotiated."""
        if self.client_ports:
            await self.camera.send_udp(packets, self.client_ports[channel // 2][channel % 2])
            return
        for packet in packets:
            self.write(interleaved(channel, packet))
        await self.drain()

    def close(self) -> None:
        self.writer.close()


async def stream_units(conn: Connection, units: list[tuple[bytes, bool]], **kwargs: int) -> None:
    await conn.send_rtp(rtp_packets(units, **kwargs))


class FakeCamera:
    """An RTSP server answering OPTIONS/DESCRIBE/SETUP/PLAY/GET_PARAMETER/TEARDOWN from a script."""

    def __init__(
        self,
        *,
        sdp: bytes,
        media: MediaScript | None = None,
        responders: dict[str, Responder] | None = None,
        session: str = f"{SESSION_ID};timeout=60",
        public: str = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN",
    ) -> None:
        self.sdp = sdp
        self.media = media
        self.responders = responders or {}
        self.session = session
        self.public = public
        self.requests: list[Request] = []
        self.connections = 0
        self.port = 0
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, path: str = "/stream", userinfo: str = "") -> str:
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends the connection handlers; cancelling them instead makes
        # asyncio's stream machinery log the CancelledError.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._udp is not None:
            self._udp.close()

    async def __aenter__(self) -> FakeCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_for(self, predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    async def send_udp(self, packets: list[bytes], port: int, host: str = "127.0.0.1") -> None:
        if self._udp is None:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
            )
        for packet in packets:
            self._udp.sendto(packet, (host, port))
            await asyncio.sleep(0)  # let the receiver keep up: loopback UDP drops on overflow

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self._writers.append(writer)
        await self._notify()
        conn = Connection(self, writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                await self._notify()
                await self._answer(request, conn)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if conn.media_task is not None:
                conn.media_task.cancel()
            writer.close()
            self._tasks.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        while True:
            first = await reader.read(1)
            if not first:
                return None
            if first == b"$":  # the client's RTCP receiver reports
                header = await reader.readexactly(3)
                await reader.readexactly(int.from_bytes(header[1:], "big"))
                continue
            head = first + await reader.readuntil(b"\r\n\r\n")
            break
        lines = head.decode("utf-8").split("\r\n")
        method, url, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        return Request(method, url, headers)

    async def _answer(self, request: Request, conn: Connection) -> None:
        custom = self.responders.get(request.method)
        raw = custom(request, conn) if custom is not None else None
        if raw is None:
            raw = self._default(request, conn)
        conn.write(raw)
        await conn.drain()
        if request.method == "PLAY" and self.media is not None and raw.startswith(b"RTSP/1.0 200"):
            # Media runs beside the request loop, so keepalives and TEARDOWN are still answered.
            task = asyncio.get_running_loop().create_task(self._run_media(self.media, conn))
            self._tasks.add(task)
            conn.media_task = task

    async def _run_media(self, media: MediaScript, conn: Connection) -> None:
        task = asyncio.current_task()
        try:
            await media(conn)
        except ConnectionError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _default(self, request: Request, conn: Connection) -> bytes:
        cseq = request.header("cseq")
        method = request.method
        if method == "OPTIONS":
            return response(cseq, headers={"Public": self.public})
        if method == "DESCRIBE":
            headers = {"Content-Type": "application/sdp", "Content-Base": request.url + "/"}
            return response(cseq, headers=headers, body=self.sdp)
        if method == "SETUP":
            transport = request.header("transport") or ""
            if "client_port=" in transport:
                ports = transport.split("client_port=")[1].split(";")[0].split("-")
                conn.client_ports.append((int(ports[0]), int(ports[1])))
                reply = f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]};server_port=6970-6971"
            else:
                reply = transport
            conn.transport_reply = reply
            return response(cseq, headers={"Session": self.session, "Transport": reply})
        if method == "PLAY":
            return response(cseq, headers={"Session": SESSION_ID, "Range": "npt=0.000-"})
        return response(cseq, headers={"Session": SESSION_ID})
