"""The Transport header: alternatives, UDP/TCP, unicast/multicast, ports, channels, ssrc, mode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.protocols.rtsp.message import RtspParseError
from app.protocols.rtsp.transport import (
    MAX_TRANSPORT_SPECS,
    LowerTransport,
    TransportSpec,
    format_transport,
    parse_transport,
)

UDP = LowerTransport.UDP
TCP = LowerTransport.TCP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (  # FFmpeg, GStreamer
            "RTP/AVP/TCP;unicast;interleaved=0-1",
            TransportSpec(lower=TCP, unicast=True, interleaved=(0, 1)),
        ),
        (  # VLC / live555
            "RTP/AVP;unicast;client_port=54086-54087",
            TransportSpec(lower=UDP, unicast=True, client_port=(54086, 54087)),
        ),
        (  # camera answer (ONVIF Streaming §5.2.2.6), folded and spaced
            "RTP/AVP;unicast;client_port=8002-8003; server_port=9004-9005;ssrc=1D3A4B5C;"
            'mode="PLAY"',
            TransportSpec(
                unicast=True,
                client_port=(8002, 8003),
                server_port=(9004, 9005),
                ssrc=0x1D3A4B5C,
                mode=("PLAY",),
            ),
        ),
        (  # RFC 2326 §12.39 multicast example
            'RTP/AVP;multicast;ttl=127;mode="PLAY"',
            TransportSpec(unicast=False, ttl=127, mode=("PLAY",)),
        ),
        (  # single port means the pair, mode without quotes, lower case protocol
            "rtp/avp/udp;unicast;client_port=5000;mode=play;destination=192.0.2.7",
            TransportSpec(
                unicast=True, client_port=(5000, 5001), mode=("PLAY",), destination="192.0.2.7"
            ),
        ),
        (  # unknown parameters are kept; no cast given
            "RTP/AVP/TCP;interleaved=4;x-retransmit;x-dynamic-rate=1",
            TransportSpec(
                lower=TCP,
                unicast=None,
                interleaved=(4, 5),
                extra=(("x-retransmit", None), ("x-dynamic-rate", "1")),
            ),
        ),
        (
            "RTP/SAVP;unicast;client_port=6970-6971",
            TransportSpec(profile="SAVP", unicast=True, client_port=(6970, 6971)),
        ),
    ],
)
def test_real_transport_values(value: str, expected: TransportSpec) -> None:
    assert parse_transport(value) == [expected]


def test_alternatives_keep_the_clients_order() -> None:
    value = (
        "RTP/AVP/UDP;multicast, RTP/AVP/TCP;unicast;interleaved=0-1,"
        'RTP/AVP;unicast;client_port=6970-6971;mode="PLAY,RECORD"'
    )
    specs = parse_transport(value)
    assert [(s.lower, s.unicast) for s in specs] == [(UDP, False), (TCP, True), (UDP, True)]
    assert specs[2].mode == ("PLAY", "RECORD")
    assert not specs[2].is_rtp_avp or specs[2].profile == "AVP"


def test_serialization() -> None:
    spec = TransportSpec(
        lower=TCP, interleaved=(2, 3), ssrc=0xF337B847, mode=("PLAY",), unicast=True
    )
    assert spec.to_header() == 'RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=F337B847;mode="PLAY"'
    udp = TransportSpec(client_port=(5000, 5001), server_port=(6000, 6001))
    assert udp.to_header() == "RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001"
    assert format_transport([spec, udp]) == spec.to_header() + "," + udp.to_header()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "RTP",
        "RTP/AVP/SCTP;unicast",
        "RTP/AVP;client_port=abc",
        "RTP/AVP;client_port=70000-70001",
        "RTP/AVP/TCP;interleaved=300-301",
        "RTP/AVP;ssrc=XYZ",
        "RTP/AVP;ssrc=123456789",
        "RTP/AVP;ttl=999",
        "RTP/AVP;mo de=PLAY",
        ",".join(["RTP/AVP"] * (MAX_TRANSPORT_SPECS + 1)),
    ],
)
def test_malformed_transport_is_400(value: str) -> None:
    with pytest.raises(RtspParseError) as info:
        parse_transport(value)
    assert info.value.status == 400


_pair = st.tuples(st.integers(0, 65535), st.integers(0, 65535))


@settings(max_examples=500)
@given(
    lower=st.sampled_from(list(LowerTransport)),
    unicast=st.sampled_from([True, False, None]),
    interleaved=st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)),
    client_port=st.none() | _pair,
    server_port=st.none() | _pair,
    ssrc=st.none() | st.integers(0, 0xFFFF_FFFF),
    mode=st.sampled_from([(), ("PLAY",), ("PLAY", "RECORD")]),
)
def test_round_trip(
    lower: LowerTransport,
    unicast: bool | None,
    interleaved: tuple[int, int] | None,
    client_port: tuple[int, int] | None,
    server_port: tuple[int, int] | None,
    ssrc: int | None,
    mode: tuple[str, ...],
) -> None:
    spec = TransportSpec(
        lower=lower,
        unicast=unicast,
        interleaved=interleaved,
        client_port=client_port,
        server_port=server_port,
        ssrc=ssrc,
        mode=mode,
    )
    assert parse_transport(spec.to_header()) == [spec]


@settings(max_examples=2_000)
@given(st.text(max_size=120))
def test_random_text_raises_only_parse_errors(value: str) -> None:
    try:
        parse_transport(value)
    except RtspParseError as exc:
        assert exc.status == 400
