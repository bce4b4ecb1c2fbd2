"""PSIA Streaming service: channels with their RTSP URLs, status, JPEG `picture` (spec §2.3).

Channel `n01` is the live stream of recording n (context.py ID plan); only recordings fed by a
configured source have one. The RTSP URL is rtsp://<host the client used>:<rtsp port>/PSIA/
Streaming/channels/<id>, which playback.py resolves to the recording's live mount.
"""

from __future__ import annotations

from lxml import etree

from app.core.media import Codec
from app.engine.rest.context import RestContext, channels, recording_of, stream_id, video_track
from app.engine.rest.registry import (
    Access,
    Method,
    Node,
    RestRequest,
    RestResponse,
    xml_response,
)
from app.engine.rest.snapshot import Snapshots
from app.engine.rest.status import not_found, not_supported
from app.engine.rest.xml import child, new_root, text_child
from app.engine.storage import Recording

#: PSIA videoCodecType words.
CODEC_NAMES = {Codec.H264: "H.264", Codec.H265: "H.265", Codec.JPEG: "MJPEG"}
#: Path of live streams on the RTSP server (HR-20).
CHANNELS_PATH = "PSIA/Streaming/channels"


class Streaming:
    """Handlers of the Streaming service."""

    def __init__(self, ctx: RestContext) -> None:
        self.ctx = ctx
        self.snapshots = Snapshots(ctx.store, ctx.clock)

    async def _live(self) -> list[tuple[int, Recording]]:
        return [(n, r) for n, r in await channels(self.ctx.store) if self.ctx.has_live(r.token)]

    async def _channel(self, request: RestRequest) -> tuple[int, Recording]:
        n, rec = await recording_of(self.ctx.store, request.ids[0])
        if not self.ctx.has_live(rec.token):
            raise not_found(f"recording {rec.token!r} has no live stream")
        return n, rec

    async def _fill(
        self, element: etree._Element, n: int, rec: Recording, host: str, *, options: bool = False
    ) -> etree._Element:
        ident = stream_id(n)
        text_child(element, "id", ident)
        text_child(element, "channelName", rec.config.name or rec.token)
        text_child(element, "enabled", True)
        transport = child(element, "Transport")
        text_child(transport, "rtspPortNo", self.ctx.rtsp_port())
        protocol = child(child(transport, "ControlProtocolList"), "ControlProtocol")
        text_child(protocol, "streamingTransport", "RTSP")
        unicast = child(transport, "Unicast")
        text_child(unicast, "enabled", True)
        kind = text_child(unicast, "rtpTransportType", "RTP/TCP")
        text_child(child(transport, "Multicast"), "enabled", False)
        text_child(child(transport, "Security"), "enabled", True)
        video = child(element, "Video")
        text_child(video, "enabled", True)
        text_child(video, "videoInputChannelID", n)
        codec = text_child(video, "videoCodecType", "H.264")
        track = video_track(rec)
        last = await self.ctx.store.last_frame(rec.token, track) if track else None
        if last is not None:
            params = await self.ctx.store.params_for_frame(last)
            codec.text = CODEC_NAMES.get(params.codec, params.codec.value)
            text_child(video, "videoResolutionWidth", params.width)
            text_child(video, "videoResolutionHeight", params.height)
        if options:
            kind.set("opt", "RTP/TCP,RTP/UDP")
            codec.set("opt", ",".join(sorted(set(CODEC_NAMES.values()))))
        extensions = child(element, "Extensions")
        base = self.ctx.rtsp_base(host)
        text_child(extensions, "rtspURL", f"{base}/{CHANNELS_PATH}/{ident}")
        text_child(extensions, "recordingToken", rec.token)
        return element

    async def get_channels(self, request: RestRequest) -> RestResponse:
        root = new_root("StreamingChannelList")
        for n, rec in await self._live():
            await self._fill(child(root, "StreamingChannel"), n, rec, request.host)
        return xml_response(root)

    async def get_channel(self, request: RestRequest) -> RestResponse:
        n, rec = await self._channel(request)
        return xml_response(await self._fill(new_root("StreamingChannel"), n, rec, request.host))

    async def channel_capabilities(self, request: RestRequest) -> RestResponse:
        n, rec = await self._channel(request)
        root = new_root("StreamingChannel")
        return xml_response(await self._fill(root, n, rec, request.host, options=True))

    async def put_channel(self, request: RestRequest) -> RestResponse:
        await self._channel(request)
        request.doc("StreamingChannel")
        raise not_supported("channels re-stream their source; encoder settings are read-only")

    async def get_status(self, request: RestRequest) -> RestResponse:
        root = new_root("StreamingStatus")
        text_child(root, "totalStreamingSessions", 0)
        child(root, "StreamingSessionStatusList")
        return xml_response(root)

    async def get_channel_status(self, request: RestRequest) -> RestResponse:
        await self._channel(request)
        return xml_response(new_root("StreamingSessionStatusList"))

    async def get_picture(self, request: RestRequest) -> RestResponse:
        _, rec = await recording_of(self.ctx.store, request.ids[0])
        track = video_track(rec)
        if track is None:
            raise not_found(f"recording {rec.token!r} has no video track")
        jpeg = await self.snapshots.jpeg(rec.token, track)
        return RestResponse(jpeg, content_type="image/jpeg")

    def node(self) -> Node:
        v, o = Access.VIEWER, Access.OPERATOR
        streaming = Node.service("Streaming", "Live streams of the recordings")
        streaming.add(
            Node.resource(
                "status",
                get=Method(self.get_status, v, "Streaming sessions", result="StreamingStatus"),
            )
        )
        channel_list = streaming.add(
            Node.resource(
                "channels",
                get=Method(self.get_channels, v, "Live channels", result="StreamingChannelList"),
            )
        )
        channel = channel_list.add_item(
            Node.resource(
                "channel",
                get=Method(self.get_channel, v, "One channel", result="StreamingChannel"),
                put=Method(
                    self.put_channel,
                    o,
                    "Change encoder settings (not supported)",
                    inbound="StreamingChannel",
                ),
                capabilities=self.channel_capabilities,
            )
        )
        channel.add(
            Node.resource(
                "status",
                get=Method(
                    self.get_channel_status, v, "Sessions", result="StreamingSessionStatusList"
                ),
            )
        )
        channel.add(
            Node.resource(
                "picture",
                get=Method(
                    self.get_picture,
                    v,
                    "JPEG of the newest recorded keyframe",
                    result="image/jpeg",
                    notes="cached for 1 s",
                ),
            )
        )
        return streaming
