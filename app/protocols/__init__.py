"""Sans-IO wire codecs: RTSP messages, SDP, RTP/RTCP and (de)packetizers. No sockets, no asyncio."""
