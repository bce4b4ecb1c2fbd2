"""Sans-IO RTSP 1.0 (RFC 2326 plus the ONVIF replay headers) for servers and clients.

Messages and serializers (message.py), the stream parser (parser.py), header codecs
(transport.py, range.py, headers.py) and Digest authentication (auth.py). No sockets here:
app.engine.rtsp drives these over asyncio.
"""
