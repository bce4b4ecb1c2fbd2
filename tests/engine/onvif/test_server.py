"""The SOAP framework over HTTP: dispatch (GEN-02/03), media types, faults, access (GEN-10/11).

A tiny fake Recording Control service with a counter stands in for the real ones, so every
refused request can be checked for "no state change". Requests are written by hand (raw bytes
over aiohttp) where the point is the wire, and sent by the independent zeep peer, with every
answer schema-validated, where the point is interop.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zeep.exceptions
from lxml import etree

from app.core.errors import NotFoundError
from app.core.time import NS_PER_SECOND, FakeClock, SystemClock, format_iso
from app.engine.onvif import server as server_module
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.protocols.rtsp.auth import digest_authorization, select_challenge
from app.protocols.soap.envelope import parse_envelope
from app.protocols.soap.wsse import password_digest
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.peers.onvif_zeep import assert_valid_body, validated_service

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TRC = "http://www.onvif.org/ver10/recording/wsdl"
TSE = "http://www.onvif.org/ver10/search/wsdl"
TRP = "http://www.onvif.org/ver10/replay/wsdl"
TER = "http://www.onvif.org/ver10/error"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SOAP_TYPE = "application/soap+xml; charset=utf-8"

CREATE = (
    f'<trc:CreateRecording xmlns:trc="{TRC}" xmlns:tt="http://www.onvif.org/ver10/schema">'
    "<trc:RecordingConfiguration><tt:Source><tt:SourceId>src</tt:SourceId><tt:Name>n</tt:Name>"
    "<tt:Location>l</tt:Location><tt:Description>d</tt:Description><tt:Address>a</tt:Address>"
    "</tt:Source><tt:Content>c</tt:Content>"
    "<tt:MaximumRetentionTime>{retention}</tt:MaximumRetentionTime>"
    "</trc:RecordingConfiguration></trc:CreateRecording>"
)


class CountingRecordings(OnvifService):
    """A fake Recording Control service: CreateRecording counts, the rest answer fixed values."""

    service = "recording"
    faults = ((NotFoundError, "Sender", ("InvalidArgVal", "NoRecording")),)

    def __init__(self) -> None:
        self.created: list[str] = []

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH)
    async def capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {
            "Capabilities": {
                "DynamicRecordings": True,
                "DynamicTracks": False,
                "MaxRecordings": 32,
                "MaxRecordingJobs": 8,
                "Encoding": ["H264", "G711"],
            }
        }

    @operation("CreateRecording", AccessClass.ACTUATE)
    async def create(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.created.append(req.RecordingConfiguration.MaximumRetentionTime)
        return {"RecordingToken": f"REC_{len(self.created)}"}

    @operation("DeleteRecording", AccessClass.ACTUATE)
    async def delete(self, ctx: RequestContext, req: Any) -> None:
        raise NotFoundError(f"no recording {req.RecordingToken!r}")

    @operation("GetRecordings", AccessClass.READ_MEDIA)
    async def recordings(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"RecordingItem": []}

    @operation("GetRecordingConfiguration", AccessClass.READ_MEDIA)
    async def broken(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        raise RuntimeError("secret internal detail /var/lib/custos")


class SearchCaps(OnvifService):
    """A second service, to show dispatch ignores the URL path (GEN-02)."""

    service = "search"

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH)
    async def capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"Capabilities": {"MetadataSearch": False, "GeneralStartEvents": True}}


def envelope(payload: str, header: str = "", *, ns: str = SOAP12) -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{ns}">{head}'
        f"<s:Body>{payload}</s:Body></s:Envelope>"
    ).encode()


def fault_of(body: bytes) -> tuple[str, list[str], str]:
    """(code, subcodes, reason) of a SOAP 1.2 fault, QNames resolved to local names."""
    root = etree.fromstring(body)
    fault = root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    assert fault is not None, body[:300]
    values = fault.findall(f".//{{{SOAP12}}}Value")
    resolved = []
    for value in values:
        prefix, _, local = (value.text or "").partition(":")
        expected = SOAP12 if local in ("Sender", "Receiver", "VersionMismatch") else None
        namespace = value.nsmap.get(prefix)
        assert namespace in (expected or TER, SOAP12), f"unresolvable QName {value.text}"
        resolved.append(local)
    reason = fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
    return resolved[0], resolved[1:], reason


class Raw:
    """Hand-made requests with a Digest signer that keeps its nonce and counts nc (PF-12)."""

    def __init__(self, session: aiohttp.ClientSession, served: Served) -> None:
        self.session = session
        self.served = served
        self.nc = 0
        self.challenge: Any = None

    async def post(
        self,
        body: bytes,
        *,
        path: str = "/onvif/recording_service",
        content_type: str = SOAP_TYPE,
        user: str | None = None,
        authorization: str | None = None,
    ) -> tuple[int, dict[str, str], bytes, list[str]]:
        headers = {"Content-Type": content_type}
        if user is not None:
            authorization = await self.sign(user, path)
        if authorization is not None:
            headers["Authorization"] = authorization
        async with self.session.post(self.served.url + path, data=body, headers=headers) as resp:
            data = await resp.read()
            challenges = resp.headers.getall("WWW-Authenticate", [])
            return resp.status, dict(resp.headers), data, challenges

    async def sign(self, user: str, path: str) -> str:
        if self.challenge is None:
            status, _, _, challenges = await self.post(envelope(CREATE), path=path)
            assert status == 401
            self.challenge = select_challenge(challenges)
            assert self.challenge is not None
        self.nc += 1
        password = ACCOUNTS[user][0]
        return digest_authorization(self.challenge, "POST", path, user, password, nc=self.nc)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Served, CountingRecordings, Raw]]:
    recordings = CountingRecordings()
    async with (
        serve([recordings, SearchCaps()], tmp_path) as served,
        aiohttp.ClientSession() as session,
    ):
        yield served, recordings, Raw(session, served)


def create(retention: str = "PT1H") -> bytes:
    return envelope(CREATE.format(retention=retention))


async def test_gen02_dispatch_by_body_element_on_any_path(env: Any) -> None:
    """GEN-02: the search service's GetServiceCapabilities answers on every /onvif/ path."""
    _, _, raw = env
    request = envelope(f'<tse:GetServiceCapabilities xmlns:tse="{TSE}"/>')
    for path in ("/onvif/recording_service", "/onvif/device_service", "/onvif/x/y"):
        status, headers, body, _ = await raw.post(request, path=path)
        assert status == 200
        assert headers["Content-Type"] == SOAP_TYPE
        assert_valid_body("search", body)
        caps = etree.fromstring(body).find(f".//{{{TSE}}}Capabilities")
        assert caps is not None and caps.get("GeneralStartEvents") == "true"


async def test_gen01_soap11_envelope_is_version_mismatch(env: Any) -> None:
    _, recordings, raw = env
    status, _, body, _ = await raw.post(create().replace(SOAP12.encode(), SOAP11.encode()))
    assert status == 400
    code, subcodes, _ = fault_of(body)
    assert (code, subcodes) == ("VersionMismatch", [])
    assert recordings.created == []


async def test_pf02_text_xml_is_accepted(env: Any) -> None:
    _, recordings, raw = env
    status, _, _, _ = await raw.post(create(), content_type="text/xml; charset=utf-8", user="admin")
    assert status == 200
    assert recordings.created == ["PT1H"]


@pytest.mark.parametrize("media_type", ["text/plain", "application/json", "multipart/form-data"])
async def test_gen01_other_media_types_are_415(env: Any, media_type: str) -> None:
    _, recordings, raw = env
    status, _, _, _ = await raw.post(create(), content_type=media_type, user="admin")
    assert status == 415
    assert recordings.created == []


async def test_gen01_get_is_405(env: Any) -> None:
    served, _, raw = env
    async with raw.session.get(served.address("recording")) as resp:
        assert resp.status == 405


async def test_gen03_unknown_element_is_unknown_action(env: Any) -> None:
    """GEN-03: an element of no served WSDL (also a real operation of an unserved service)."""
    _, recordings, raw = env
    for payload in (
        '<x:Frobnicate xmlns:x="urn:example:nothing"/>',
        f'<trp:GetReplayUri xmlns:trp="{TRP}"><trp:RecordingToken>r</trp:RecordingToken>'
        "</trp:GetReplayUri>",
    ):
        status, _, body, _ = await raw.post(envelope(payload), user="admin")
        assert status == 400
        code, subcodes, _ = fault_of(body)
        assert (code, subcodes) == ("Sender", ["UnknownAction"])
    assert recordings.created == []


async def test_gen03_unimplemented_operation_is_action_not_supported(env: Any) -> None:
    _, _, raw = env
    payload = f'<trc:DeleteTrack xmlns:trc="{TRC}"><trc:RecordingToken>r</trc:RecordingToken>'
    payload += "<trc:TrackToken>t</trc:TrackToken></trc:DeleteTrack>"
    status, _, body, _ = await raw.post(envelope(payload), user="admin")
    assert status == 500
    code, subcodes, _ = fault_of(body)
    assert (code, subcodes) == ("Receiver", ["ActionNotSupported"])


async def test_gen02_wrong_namespace_is_not_dispatched(env: Any) -> None:
    """A CreateRecording in a misspelt namespace is no operation: UnknownAction, no change."""
    _, recordings, raw = env
    body_text = create().replace(TRC.encode(), b"http://www.onvif.org/ver10/recordings/wsdl")
    status, _, body, _ = await raw.post(body_text, user="admin")
    assert status == 400
    assert fault_of(body)[:2] == ("Sender", ["UnknownAction"])
    assert recordings.created == []


async def test_gen04_malformed_xml_is_well_formed_fault(env: Any) -> None:
    _, recordings, raw = env
    for bad in (create()[:-20], b"not xml at all", b"", create().replace(b"</s:Body>", b"")):
        status, _, body, _ = await raw.post(bad, user="admin")
        assert status == 400, bad
        assert fault_of(body)[:2] == ("Sender", ["WellFormed"])
    assert recordings.created == []


async def test_gen04_unparsable_value_is_invalid_args(env: Any) -> None:
    """An xs:duration that is no duration → Sender/InvalidArgs, naming the value; no change."""
    _, recordings, raw = env
    status, _, body, _ = await raw.post(create("banana"), user="admin")
    assert status == 400
    code, subcodes, reason = fault_of(body)
    assert (code, subcodes) == ("Sender", ["InvalidArgs"])
    assert "CreateRecording" in reason
    assert recordings.created == []


async def test_pf14_unknown_must_understand_header_is_refused(env: Any) -> None:
    _, recordings, raw = env
    header = f'<v:Trace xmlns:v="urn:vendor" s:mustUnderstand="true" xmlns:s="{SOAP12}">1</v:Trace>'
    status, _, body, _ = await raw.post(
        envelope(CREATE.format(retention="PT1H"), header), user="admin"
    )
    assert status == 400
    assert fault_of(body)[:2] == ("MustUnderstand", [])
    assert recordings.created == []


async def test_pf14_addressing_headers_with_must_understand_are_accepted(env: Any) -> None:
    _, recordings, raw = env
    wsa = "http://www.w3.org/2005/08/addressing"
    header = (
        f'<a:Action xmlns:a="{wsa}" s:mustUnderstand="1" xmlns:s="{SOAP12}">{TRC}/CreateRecording'
        f'</a:Action><a:MessageID xmlns:a="{wsa}">urn:uuid:1</a:MessageID>'
    )
    status, _, _, _ = await raw.post(envelope(CREATE.format(retention="P1D"), header), user="admin")
    assert status == 200
    assert recordings.created == ["P1D"]


async def test_gen10_missing_credentials_get_401_with_digest_challenge(env: Any) -> None:
    _, recordings, raw = env
    status, _, _, challenges = await raw.post(create())
    assert status == 401
    assert len(challenges) == 1
    challenge = select_challenge(challenges)
    assert challenge is not None
    assert challenge.realm == "Custos" and challenge.algorithm == "MD5"
    assert challenge.qop == ("auth",) and not challenge.stale
    assert recordings.created == []


async def test_gen11_pre_auth_needs_no_credentials(env: Any) -> None:
    _, _, raw = env
    status, _, body, _ = await raw.post(
        envelope(f'<trc:GetServiceCapabilities xmlns:trc="{TRC}"/>')
    )
    assert status == 200
    assert_valid_body("recording", body)


async def test_gen10_wrong_password_is_401(env: Any) -> None:
    _, recordings, raw = env
    await raw.sign("admin", "/onvif/recording_service")  # fetch a challenge
    bad = digest_authorization(
        raw.challenge, "POST", "/onvif/recording_service", "admin", "guess", nc=1
    )
    status, _, _, challenges = await raw.post(create(), authorization=bad)
    assert status == 401 and challenges
    assert recordings.created == []


async def test_pf12_replayed_digest_nonce_count_is_refused(env: Any) -> None:
    """The same Authorization header twice: the second is a replay (nc not increasing)."""
    _, recordings, raw = env
    authorization = await raw.sign("admin", "/onvif/recording_service")
    first = await raw.post(create("PT1M"), authorization=authorization)
    second = await raw.post(create("PT2M"), authorization=authorization)
    assert first[0] == 200 and second[0] == 401
    lower = digest_authorization(
        raw.challenge, "POST", "/onvif/recording_service", "admin", "admin-pw", nc=raw.nc - 1 or 1
    )
    assert (await raw.post(create("PT3M"), authorization=lower))[0] == 401
    assert recordings.created == ["PT1M"]
    # The next nc still works: the refusals did not break the session.
    assert (await raw.post(create("PT4M"), user="admin"))[0] == 200
    assert recordings.created == ["PT1M", "PT4M"]


async def test_pf12_expired_nonce_gets_stale_challenge(tmp_path: Path) -> None:
    clock = FakeClock()
    recordings = CountingRecordings()
    async with (
        serve([recordings], tmp_path, clock=clock) as served,
        aiohttp.ClientSession() as session,
    ):
        raw = Raw(session, served)
        assert (await raw.post(create(), user="admin"))[0] == 200
        clock.advance(3600 * NS_PER_SECOND)
        status, _, _, challenges = await raw.post(create(), user="admin")
        assert status == 401
        fresh = select_challenge(challenges)
        assert fresh is not None and fresh.stale
        raw.challenge, raw.nc = fresh, 0
        assert (await raw.post(create("PT9S"), user="admin"))[0] == 200
    assert recordings.created == ["PT1H", "PT9S"]


def username_token(
    user: str,
    password: str,
    *,
    created: str | None = None,
    nonce: bytes | None = None,
    password_type: str = "PasswordDigest",
    with_nonce: bool = True,
) -> str:
    nonce = nonce or secrets.token_bytes(16)
    created = created or format_iso(SystemClock().wall_ns())
    secret = (
        password_digest(nonce, created, password) if password_type == "PasswordDigest" else password
    )
    ptype = f"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#{password_type}"
    nonce_el = f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>" if with_nonce else ""
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" s:mustUnderstand="1" '
        f'xmlns:s="{SOAP12}"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username>'
        f'<wsse:Password Type="{ptype}">{secret}</wsse:Password>{nonce_el}'
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


async def test_gen10_username_token_accepted_and_replay_refused(env: Any) -> None:
    """PF-13: a valid PasswordDigest token works once; the same nonce again → NotAuthorized."""
    _, recordings, raw = env
    token = username_token("operator", "operator-pw")
    first = await raw.post(envelope(CREATE.format(retention="PT5S"), token))
    second = await raw.post(envelope(CREATE.format(retention="PT6S"), token))
    assert first[0] == 200
    assert second[0] == 400
    assert fault_of(second[2])[:2] == ("Sender", ["NotAuthorized"])
    assert recordings.created == ["PT5S"]


@pytest.mark.parametrize(
    "token",
    [
        username_token("operator", "wrong-pw"),
        username_token("nobody", "operator-pw"),
        username_token("operator", "operator-pw", with_nonce=False),
        username_token("operator", "operator-pw", password_type="PasswordText"),
        username_token("operator", "operator-pw", created="2001-01-01T00:00:00Z"),
        username_token("operator", "operator-pw", created="yesterday"),
    ],
    ids=["wrong-password", "unknown-user", "no-nonce", "password-text", "stale", "bad-created"],
)
async def test_gen10_bad_username_tokens_are_not_authorized(env: Any, token: str) -> None:
    _, recordings, raw = env
    status, _, body, _ = await raw.post(envelope(CREATE.format(retention="PT5S"), token))
    assert status == 400
    code, subcodes, reason = fault_of(body)
    assert (code, subcodes) == ("Sender", ["NotAuthorized"])
    assert "operator-pw" not in reason and "wrong-pw" not in reason
    assert recordings.created == []


async def test_gen11_user_level_cannot_actuate(env: Any) -> None:
    """PF-15: a User-level account reads but may not create: NotAuthorized (400), no change."""
    _, recordings, raw = env
    status, _, body, _ = await raw.post(create(), user="viewer")
    assert status == 400
    code, subcodes, reason = fault_of(body)
    assert (code, subcodes) == ("Sender", ["NotAuthorized"])
    assert "viewer" in reason
    read = envelope(f'<trc:GetRecordings xmlns:trc="{TRC}"/>')
    assert (await raw.post(read, user="viewer"))[0] == 200
    assert recordings.created == []


async def test_internal_errors_answer_receiver_action_without_details(env: Any) -> None:
    _, _, raw = env
    payload = f'<trc:GetRecordingConfiguration xmlns:trc="{TRC}"><trc:RecordingToken>r'
    payload += "</trc:RecordingToken></trc:GetRecordingConfiguration>"
    status, _, body, _ = await raw.post(envelope(payload), user="admin")
    assert status == 500
    code, subcodes, reason = fault_of(body)
    assert (code, subcodes) == ("Receiver", ["Action"])
    assert b"secret" not in body and b"Traceback" not in body and "/var" not in reason


async def test_independent_client_round_trip_validates(env: Any) -> None:
    """The zeep peer: capabilities, create (duration echoed verbatim), a mapped domain fault."""
    served, recordings, _ = env

    def calls() -> tuple[Any, Any, zeep.exceptions.Fault]:
        svc = validated_service("recording", served.address("recording"), "admin", "admin-pw")
        caps = svc.GetServiceCapabilities()
        config = {
            "Source": {
                "SourceId": "rtsp://cam/1",
                "Name": "Gate",
                "Location": "North",
                "Description": "",
                "Address": "rtsp://cam/1",
            },
            "Content": "gate",
            "MaximumRetentionTime": "PT60M",
        }
        token = svc.CreateRecording(RecordingConfiguration=config)
        with pytest.raises(zeep.exceptions.Fault) as fault:
            svc.DeleteRecording(RecordingToken="REC_nope")
        return caps, token, fault.value

    caps, token, fault = await asyncio.to_thread(calls)
    assert caps.MaxRecordings == 32 and caps.Encoding == ["H264", "G711"]
    assert token == "REC_1"
    # Stock zeep re-formats durations it is given (PT60M → PT1H) before sending; the server
    # stores what arrived (the raw tests above show verbatim echo of the wire text).
    assert recordings.created == ["PT1H"]
    assert [q.localname for q in fault.subcodes] == ["InvalidArgVal", "NoRecording"]
    assert [q.namespace for q in fault.subcodes] == [TER, TER]
    assert "REC_nope" in fault.message


# ---------------------------------------------------------------------- remembered parses


async def test_repeated_request_bodies_are_parsed_once_and_answered_each_time(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll repeated byte for byte reuses its parse; every call still reaches the handler."""
    _, recordings, raw = env
    await raw.sign("operator", "/onvif/recording_service")  # the 401 round trip, parsed too
    parses: list[bytes] = []

    def counting(data: bytes) -> Any:
        parses.append(data)
        return parse_envelope(data)

    monkeypatch.setattr(server_module, "parse_envelope", counting)
    body = create("PT7S")
    for _ in range(3):
        assert (await raw.post(body, user="operator"))[0] == 200
    assert recordings.created == ["PT7S"] * 3
    assert parses == [body]
    # Another body is parsed; a body over the size limit is parsed every time.
    padding = " " * server_module.MAX_REMEMBERED_REQUEST_BYTES
    big = create("PT8S").replace(b"<s:Body>", f"<s:Body>{padding}".encode())
    for request in (create("PT9S"), big, big):
        assert (await raw.post(request, user="operator"))[0] == 200
    assert parses == [body, create("PT9S"), big, big]
    assert recordings.created[-3:] == ["PT9S", "PT8S", "PT8S"]


async def test_remembered_parses_are_bounded_and_faults_are_not_remembered(env: Any) -> None:
    served, recordings, raw = env
    remembered = served.server._remembered
    for n in range(server_module.MAX_REMEMBERED_REQUESTS + 5):
        request = envelope(
            f'<tse:GetServiceCapabilities xmlns:tse="{TSE}"><!--{n}--></tse:GetServiceCapabilities>'
        )
        assert (await raw.post(request))[0] == 200
    assert len(remembered._parsed) == server_module.MAX_REMEMBERED_REQUESTS
    # A body zeep refuses faults every time, the same way (its envelope parse is kept, no value).
    bad = create("not-a-duration")
    for _ in range(2):
        status, _, answer, _ = await raw.post(bad, user="operator")
        assert status == 400 and fault_of(answer)[:2] == ("Sender", ["InvalidArgs"])
    assert not remembered._parsed[bad].has_value
    malformed = create()[:-10]
    for _ in range(2):
        status, _, answer, _ = await raw.post(malformed, user="operator")
        assert status == 400 and fault_of(answer)[:2] == ("Sender", ["WellFormed"])
    assert malformed not in remembered._parsed
    assert recordings.created == []


async def test_gen10_a_replayed_username_token_body_is_refused_though_its_parse_is_kept(
    env: Any,
) -> None:
    """The whole request again, byte for byte: authentication still runs and refuses it."""
    _, recordings, raw = env
    request = envelope(CREATE.format(retention="PT5S"), username_token("operator", "operator-pw"))
    first = await raw.post(request)
    second = await raw.post(request)
    assert first[0] == 200
    assert second[0] == 400 and fault_of(second[2])[:2] == ("Sender", ["NotAuthorized"])
    assert recordings.created == ["PT5S"]
