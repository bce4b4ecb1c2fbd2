"""Sans-IO RTSP 1.0 (RFC 2326 with the ONVIF replay headers): messages, stream parser, header
codecs and Digest authentication. No sockets here; app.engine.rtsp drives these over asyncio."""
