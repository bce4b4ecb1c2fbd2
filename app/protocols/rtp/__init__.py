"""RTP/RTCP packets, RTP timing, and per-codec (de)packetizers (RFC 3550/6184/7798/2435/3640)."""
