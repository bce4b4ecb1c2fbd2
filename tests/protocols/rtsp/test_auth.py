"""HTTP Digest for RTSP: RFC 2617/7616 vectors, server challenges, nonces, client helper."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.time import NS_PER_SECOND, FakeClock
from app.protocols.rtsp.auth import (
    DigestAuthenticator,
    DigestChallenge,
    DigestError,
    digest_authorization,
    digest_response,
    parse_authorization,
    parse_challenge,
    select_challenge,
)
from app.protocols.rtsp.message import RtspParseError

USERS = {"admin": "s3cret", "Mufasa": "Circle of Life", "ünï": "pässwörd"}


def make_auth(clock: FakeClock | None = None, nonce_lifetime_s: float = 120) -> DigestAuthenticator:
    return DigestAuthenticator(
        "Custos", USERS.get, clock=clock or FakeClock(), nonce_lifetime_s=nonce_lifetime_s
    )


def test_rfc2617_md5_vector() -> None:
    # RFC 2617 §3.5 (the HTTP example; the computation is the same for RTSP).
    assert (
        digest_response(
            "MD5",
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    # RFC 7616 §3.9.1.
    assert (
        digest_response(
            algorithm,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == expected
    )


def test_challenges_prefer_sha256_and_end_with_md5() -> None:
    values = make_auth().challenges()
    parsed = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in parsed] == ["SHA-256", "MD5"]
    assert {c.realm for c in parsed} == {"Custos"}
    assert parsed[0].nonce == parsed[1].nonce
    assert all(c.qop == ("auth",) and not c.stale for c in parsed)
    assert (
        values[1] == f'Digest realm="Custos", nonce="{parsed[1].nonce}", algorithm=MD5, qop="auth"'
    )


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
@pytest.mark.parametrize("user", ["admin", "ünï"])
def test_client_helper_is_accepted(algorithm: str, user: str) -> None:
    auth = make_auth()
    challenge = next(c for c in map(parse_challenge, auth.challenges()) if c.algorithm == algorithm)
    header = digest_authorization(challenge, "DESCRIBE", "rtsp://h/live", user, USERS[user])
    assert auth.authenticate("DESCRIBE", header) == user
    creds = parse_authorization(header)
    assert (creds.algorithm, creds.qop, creds.nc, creds.uri) == (
        algorithm,
        "auth",
        "00000001",
        "rtsp://h/live",
    )


def test_rfc2069_style_response_without_qop_is_accepted() -> None:
    # GStreamer's RTSP client answers without qop/cnonce/nc.
    auth = make_auth()
    nonce = parse_challenge(auth.challenges()[1]).nonce
    response = digest_response("MD5", "admin", "Custos", "s3cret", "PLAY", "rtsp://h/x/", nonce)
    header = (
        f'Digest username="admin", realm="Custos", nonce="{nonce}", uri="rtsp://h/x/", '
        f'response="{response}"'
    )
    assert auth.authenticate("PLAY", header) == "admin"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.replace('username="admin"', 'username="root"'),
        lambda h: h.replace('realm="Custos"', 'realm="Other"'),
        lambda h: h.replace("algorithm=MD5", "algorithm=MD5-sess"),
        lambda h: h.replace("qop=auth", "qop=auth-int"),
        lambda h: h.replace("nc=00000001, ", ""),
        lambda h: h.replace('uri="rtsp://h/x"', 'uri="rtsp://h/y"'),
        lambda h: h.replace("Digest ", "Basic "),
        lambda h: h[:-10],
    ],
)
def test_tampered_or_wrong_credentials_are_refused(mutate: object) -> None:
    auth = make_auth()
    challenge = parse_challenge(auth.challenges()[1])
    header = digest_authorization(challenge, "PLAY", "rtsp://h/x", "admin", "s3cret")
    assert callable(mutate)
    with pytest.raises(DigestError) as info:
        auth.authenticate("PLAY", mutate(header))
    assert not info.value.stale
    assert "s3cret" not in str(info.value)


def test_wrong_password_and_wrong_method_are_refused() -> None:
    auth = make_auth()
    challenge = parse_challenge(auth.challenges()[0])
    with pytest.raises(DigestError, match="wrong credentials"):
        auth.authenticate("PLAY", digest_authorization(challenge, "PLAY", "u", "admin", "guess"))
    header = digest_authorization(challenge, "PLAY", "u", "admin", "s3cret")
    with pytest.raises(DigestError):
        auth.authenticate("TEARDOWN", header)
    with pytest.raises(DigestError, match="no Authorization"):
        auth.authenticate("PLAY", None)


def test_expired_nonce_is_stale() -> None:
    clock = FakeClock()
    auth = make_auth(clock, nonce_lifetime_s=30)
    challenge = parse_challenge(auth.challenges()[0])
    header = digest_authorization(challenge, "PLAY", "u", "admin", "s3cret")
    clock.advance(29 * NS_PER_SECOND)
    assert auth.authenticate("PLAY", header) == "admin"
    clock.advance(2 * NS_PER_SECOND)
    with pytest.raises(DigestError) as info:
        auth.authenticate("PLAY", header)
    assert info.value.stale
    assert parse_challenge(auth.challenges(stale=True)[0]).stale


def test_nonce_from_another_server_or_forged_is_refused() -> None:
    clock = FakeClock()
    other = DigestAuthenticator("Custos", USERS.get, clock=clock)
    mine = DigestAuthenticator("Custos", USERS.get, clock=clock)
    challenge = parse_challenge(other.challenges()[0])
    header = digest_authorization(challenge, "PLAY", "u", "admin", "s3cret")
    with pytest.raises(DigestError, match="not issued"):
        mine.authenticate("PLAY", header)
    raw = bytearray(base64.urlsafe_b64decode(parse_challenge(mine.challenges()[0]).nonce))
    raw[0] ^= 1  # shift the timestamp: the MAC no longer matches
    forged = DigestChallenge("Custos", base64.urlsafe_b64encode(bytes(raw)).decode(), "SHA-256")
    with pytest.raises(DigestError, match="not issued"):
        mine.authenticate("PLAY", digest_authorization(forged, "PLAY", "u", "admin", "s3cret"))


def test_shared_secret_accepts_nonces_across_instances_and_future_nonces_are_stale() -> None:
    early, late = FakeClock(), FakeClock()
    late.advance(100 * NS_PER_SECOND)
    before_restart = DigestAuthenticator("Custos", USERS.get, clock=late, secret=b"k" * 32)
    after_restart = DigestAuthenticator("Custos", USERS.get, clock=early, secret=b"k" * 32)
    challenge = parse_challenge(before_restart.challenges()[0])
    header = digest_authorization(challenge, "PLAY", "u", "admin", "s3cret")
    with pytest.raises(DigestError) as info:
        after_restart.authenticate("PLAY", header)
    assert info.value.stale


def test_select_challenge_picks_the_strongest_supported() -> None:
    values = [
        'Basic realm="cam"',
        'Digest realm="cam", nonce="n1", algorithm=MD5, qop="auth"',
        'Digest realm="cam", nonce="n2", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="cam", nonce="n3", algorithm=SHA-256, qop="auth,auth-int"',
    ]
    chosen = select_challenge(values)
    assert chosen is not None and (chosen.nonce, chosen.algorithm) == ("n3", "SHA-256")
    assert select_challenge(['Basic realm="x"']) is None


def test_axis_style_challenge_without_qop_gets_an_rfc2069_answer() -> None:
    challenge = parse_challenge(
        'Digest realm="AXIS_ACCC8E000000", '
        'nonce="0024e47aY398109708de9ccd8056c58a068a59540a99d3", stale=FALSE'
    )
    assert (challenge.algorithm, challenge.qop, challenge.stale) == ("MD5", (), False)
    header = digest_authorization(challenge, "DESCRIBE", "rtsp://cam/", "root", "pass")
    creds = parse_authorization(header)
    assert creds.qop is None and creds.cnonce is None
    assert creds.response == digest_response(
        "MD5", "root", "AXIS_ACCC8E000000", "pass", "DESCRIBE", "rtsp://cam/", challenge.nonce
    )


def test_quoted_strings_with_escapes() -> None:
    creds = parse_authorization(
        r'Digest username="a\"b", realm="r", nonce="n", uri="rtsp://h/a,b", response="ABC"'
    )
    assert (creds.username, creds.uri, creds.response) == ('a"b', "rtsp://h/a,b", "abc")
    header = digest_authorization(DigestChallenge("r", "n", qop=()), "PLAY", "u", 'a"b\\', "p")
    assert parse_authorization(header).username == 'a"b\\'


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="algorithms"):
        DigestAuthenticator("x", USERS.get, algorithms=("SHA-1",))
    with pytest.raises(ValueError, match="realm"):
        DigestAuthenticator('x"y', USERS.get)


_PARAM_NAMES = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "qop",
    "nc",
    "cnonce",
    "algorithm",
    "userhash",
    "opaque",
    "x",
]
_digest_like = st.lists(
    st.tuples(st.sampled_from(_PARAM_NAMES), st.text(max_size=12), st.booleans()), max_size=8
).map(lambda ps: "Digest " + ", ".join(f'{n}="{v}"' if q else f"{n}={v}" for n, v, q in ps))


@settings(max_examples=2_000)
@given(st.text(max_size=200) | _digest_like)
def test_random_headers_raise_only_declared_errors(value: str) -> None:
    auth = make_auth()
    with pytest.raises(DigestError):
        auth.authenticate("PLAY", value)
    try:
        parse_challenge(value)
    except RtspParseError:
        pass
