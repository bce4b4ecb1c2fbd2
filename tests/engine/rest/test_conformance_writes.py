"""REST conformance, write side: users and time round trips (HR-06…HR-08, AU-06, AU-07) and
hostile or wrong input (malformed XML, wrong root or namespace, huge bodies, bad Digest, wrong
level, unknown path and method), each answered with the right ResponseStatus and HTTP status and
leaving the device state as it was (HR-09…HR-12, HR-15, AU-01…AU-03).

The hostile cases run as one table on one Engine; every failing case is reported, not only the
first, so a server author sees the whole list.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.core.time import format_iso
from app.engine.runtime import Engine
from tests.engine.onvif.test_engine_interop_support import password, running_engine
from tests.engine.rest.test_conformance_support import (
    NS_PSIA,
    P,
    Peer,
    Reply,
    check_root,
    expect_status,
    psia,
    status_of,
    text,
)

USERS = "/PSIA/Security/AAA/users"
TIME = "/PSIA/System/time"
#: Namespaces HR-15 says a device accepts besides urn:psialliance-org (and none at all).
HIKVISION_NS = "http://www.hikvision.com/ver20/XMLSchema"
ISAPI_NS = "http://www.isapi.org/ver20/XMLSchema"
#: Far beyond the ~64 KiB the spec (§5.4) suggests refusing.
HUGE_BYTES = 4 * 1024 * 1024


def user_doc(name: str, secret: str, level: str, *, ns: str | None = None, extra: str = "") -> str:
    body = f"<userName>{name}</userName><password>{secret}</password><userLevel>{level}</userLevel>"
    return psia(body + extra, "User", ns)


async def user_ids(peer: Peer) -> dict[str, str]:
    """userName → id from the UserList."""
    doc = await peer.get_doc(USERS, "UserList")
    return {text(u, "userName"): text(u, "id") for u in doc.iterchildren(P + "User")}


async def can_log_in(engine: Engine, user: str, secret: str) -> bool:
    async with Peer(engine, user, secret) as peer:
        status = (await peer.get("/PSIA/System/deviceInfo")).status
    assert status in (200, 401), f"GET deviceInfo as {user!r}: HTTP {status}"
    return status == 200


async def time_settings(peer: Peer) -> dict[str, str]:
    doc = await peer.get_doc(TIME, "Time")
    return {"timeMode": text(doc, "timeMode"), "timeZone": text(doc, "timeZone")}


def time_doc(mode: str, zone: str, *, ns: str | None = NS_PSIA, extra: str = "") -> str:
    now = format_iso(time.time_ns(), digits=0)
    body = f"<timeMode>{mode}</timeMode><localTime>{now}</localTime><timeZone>{zone}</timeZone>"
    return psia(body + extra, "Time", ns)


async def test_users_round_trip_post_get_put_delete_hr07_hr08_au07(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine, Peer(engine) as admin:
        reply = await admin.request("POST", USERS, user_doc("rest-a", "pw-a1", "Viewer"))
        expect_status(reply, "POST users", 1)
        ids = await user_ids(admin)
        assert "rest-a" in ids, f"POSTed user missing from the UserList {sorted(ids)}"
        path = f"{USERS}/{ids['rest-a']}"
        user = await admin.get_doc(path, "User")
        assert (text(user, "userName"), text(user, "userLevel")) == ("rest-a", "Viewer")
        assert user.find(P + "password") is None, "AU-07: password returned on GET"
        assert await can_log_in(engine, "rest-a", "pw-a1")

        body = user_doc("rest-a", "pw-a2", "Operator", extra=f"<id>{ids['rest-a']}</id>")
        expect_status(await admin.request("PUT", path, body), f"PUT {path}", 1)
        assert text(await admin.get_doc(path, "User"), "userLevel") == "Operator"
        assert not await can_log_in(engine, "rest-a", "pw-a1")
        assert await can_log_in(engine, "rest-a", "pw-a2")

        expect_status(await admin.request("DELETE", path), f"DELETE {path}", 1)
        assert (await admin.get(path)).status == 404, f"GET {path} after DELETE"
        assert "rest-a" not in await user_ids(admin)
        assert not await can_log_in(engine, "rest-a", "pw-a2")

        # HR-15: no namespace, Hikvision/ISAPI namespaces, unknown elements and Extensions.
        variants = {
            "rest-nons": user_doc("rest-nons", "pw-1", "Viewer", ns=None),
            "rest-hik": user_doc("rest-hik", "pw-2", "Viewer", ns=HIKVISION_NS),
            "rest-isapi": user_doc("rest-isapi", "pw-3", "Viewer", ns=ISAPI_NS),
            "rest-ext": user_doc(
                "rest-ext",
                "pw-4",
                "Viewer",
                extra="<unknownLeaf>1</unknownLeaf><Extensions><selfExt><x/></selfExt></Extensions>",
            ),
        }
        for name, doc in variants.items():
            expect_status(await admin.request("POST", USERS, doc), f"POST users ({name})", 1)
        ids = await user_ids(admin)
        assert set(variants) <= set(ids), f"tolerated POSTs missing: {set(variants) - set(ids)}"
        for name in variants:
            expect_status(await admin.request("DELETE", f"{USERS}/{ids[name]}"), name, 1)
        assert set(await user_ids(admin)) == {"admin", "operator", "viewer"}


async def test_time_round_trip_put_get_hr06_au06(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine, Peer(engine, "operator") as operator:
        before = await time_settings(operator)
        reply = await operator.request("PUT", TIME, time_doc(before["timeMode"], "CST-8:00:00"))
        code, *_ = status_of(reply, "PUT time")
        assert (reply.status, code) in ((200, 1), (200, 7)), f"PUT time: {reply.status}/{code}"
        assert await time_settings(operator) == {**before, "timeZone": "CST-8:00:00"}
        # HR-15: a Hikvision-namespace document with an Extensions child is accepted too.
        doc = time_doc(
            before["timeMode"], before["timeZone"], ns=HIKVISION_NS, extra="<Extensions/>"
        )
        reply = await operator.request("PUT", TIME, doc)
        assert status_of(reply, "PUT time back")[0] in (1, 7) and reply.status == 200
        assert await time_settings(operator) == before


Send = Callable[[Engine, dict[str, Peer], dict[str, str]], Awaitable[Reply]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile request: who sends what, and the answer the spec asks for."""

    name: str
    send: Send
    check: Callable[[Reply], None]


def status_is(code: int, sub: str | None = None) -> Callable[[Reply], None]:
    return lambda reply: expect_status(reply, "answer", code, sub)


def http_is(*statuses: int, response_status: bool = True) -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        assert reply.status in statuses, f"HTTP {reply.status}, expected one of {statuses}"
        if response_status:
            status_of(reply, "answer")

    return check


def not_allowed(*allowed: str) -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        assert reply.status == 405, f"HTTP {reply.status}, expected 405 (HR-09)"
        allow = {m.strip().upper() for m in reply.headers.get("allow", "").split(",")}
        assert set(allowed) <= allow, f"Allow {sorted(allow)} lacks {allowed}"
        status_of(reply, "405 answer")

    return check


def unauthorized(reply: Reply) -> None:
    assert reply.status == 401, f"HTTP {reply.status}, expected 401 (AU-01)"
    challenges = reply.headers.get_list("www-authenticate")
    assert any(c.startswith("Digest ") for c in challenges), f"challenges {challenges}"


def send(method: str, path: str, body: str | bytes | None = None, user: str = "admin") -> Send:
    async def run(engine: Engine, peers: dict[str, Peer], ids: dict[str, str]) -> Reply:
        return await peers[user].request(method, path.format(**ids), body)

    return run


def send_as(user: str, secret: str, method: str, path: str, body: str | None = None) -> Send:
    async def run(engine: Engine, peers: dict[str, Peer], ids: dict[str, str]) -> Reply:
        async with Peer(engine, user, secret) as peer:
            return await peer.request(method, path, body)

    return run


def send_raw(method: str, path: str, headers: dict[str, str], body: str | None = None) -> Send:
    async def run(engine: Engine, peers: dict[str, Peer], ids: dict[str, str]) -> Reply:
        async with Peer(engine, None) as peer:
            return await peer.request(method, path, body, headers=headers)

    return run


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE Time [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    '<Time version="1.0" xmlns="urn:psialliance-org"><timeZone>&c;</timeZone></Time>'
)
HUGE = psia("<timeMode>manual</timeMode>" + " " * HUGE_BYTES + "<timeZone>X</timeZone>", "Time")
NEW_ZONE = "EST+5:00:00"
CASES = [
    # HR-11/12: malformed XML → 400 statusCode 5; wrong root / namespace / values → 400 / 6.
    Case("malformed PUT time", send("PUT", TIME, "<Time><timeZone>"), status_is(5, "badXmlFormat")),
    Case("malformed POST users", send("POST", USERS, "<User><userName>x</User>"), status_is(5)),
    Case("not XML at all", send("PUT", TIME, b"\x00\xff binary"), status_is(5, "badXmlFormat")),
    Case(
        "wrong root PUT time",
        send("PUT", TIME, psia("<deviceName>x</deviceName>", "DeviceInfo")),
        status_is(6, "badXmlContent"),
    ),
    Case(
        "wrong root POST users",
        send("POST", USERS, psia("<timeZone>x</timeZone>", "Time")),
        status_is(6, "badXmlContent"),
    ),
    Case(
        "foreign namespace PUT time",
        send(
            "PUT", TIME, time_doc("manual", NEW_ZONE, ns="http://www.w3.org/2003/05/soap-envelope")
        ),
        status_is(6),
    ),
    Case(
        "bad timeMode value",
        send("PUT", TIME, time_doc("sometimes", NEW_ZONE)),
        status_is(6),
    ),
    Case("entity expansion (DOCTYPE)", send("PUT", TIME, BOMB), http_is(400)),
    Case("huge body", send("PUT", TIME, HUGE), http_is(400, 413, response_status=False)),
    # AU-01/02/03: bad Digest → 401 with a challenge, and nothing changes.
    Case(
        "wrong password",
        send_as("admin", "nope", "PUT", TIME, time_doc("manual", NEW_ZONE)),
        unauthorized,
    ),
    Case("unknown user", send_as("nobody", "x", "GET", "/PSIA/System/deviceInfo"), unauthorized),
    Case(
        "forged Digest nonce",
        send_raw(
            "GET",
            "/PSIA/System/deviceInfo",
            {
                "Authorization": 'Digest username="admin", realm="Custos", nonce="Zm9yZ2Vk", '
                'uri="/PSIA/System/deviceInfo", response="00000000000000000000000000000000", '
                'qop=auth, nc=00000001, cnonce="abc"'
            },
        ),
        unauthorized,
    ),
    Case(
        "Basic over plain HTTP",
        send_raw("GET", "/PSIA/System/deviceInfo", {"Authorization": "Basic YWRtaW46YWRtaW4tcHc="}),
        unauthorized,
    ),
    # AU-06: wrong level → 403 statusCode 4 lowPrivilege.
    Case(
        "viewer reboot",
        send("PUT", "/PSIA/System/reboot", user="viewer"),
        status_is(4, "lowPrivilege"),
    ),
    Case(
        "viewer POST users",
        send("POST", USERS, user_doc("evil", "pw", "Administrator"), user="viewer"),
        status_is(4, "lowPrivilege"),
    ),
    Case(
        "operator POST users",
        send("POST", USERS, user_doc("evil", "pw", "Administrator"), user="operator"),
        status_is(4, "lowPrivilege"),
    ),
    Case(
        "viewer PUT own user",
        send(
            "PUT",
            USERS + "/{viewer}",
            user_doc("viewer", "pw", "Administrator", extra="<id>{viewer}</id>"),
            user="viewer",
        ),
        status_is(4, "lowPrivilege"),
    ),
    Case(
        "viewer DELETE admin",
        send("DELETE", USERS + "/{admin}", user="viewer"),
        status_is(4, "lowPrivilege"),
    ),
    Case(
        "viewer PUT time",
        send("PUT", TIME, time_doc("manual", NEW_ZONE), user="viewer"),
        status_is(4, "lowPrivilege"),
    ),
    # HR-09: unknown path → 404, unknown method on a known path → 405 with Allow.
    Case("unknown resource", send("GET", "/PSIA/System/noSuchThing"), http_is(404)),
    Case("unknown service", send("GET", "/PSIA/NoSuchService/index"), http_is(404)),
    Case("unknown user id", send("GET", USERS + "/987654"), http_is(404)),
    Case(
        "PATCH deviceInfo",
        send("PATCH", "/PSIA/System/deviceInfo", "<x/>"),
        not_allowed("GET", "PUT"),
    ),
    Case("DELETE time", send("DELETE", TIME), not_allowed("GET", "PUT")),
    Case(
        "POST deviceInfo",
        send("POST", "/PSIA/System/deviceInfo", psia("", "DeviceInfo")),
        not_allowed("GET"),
    ),
    Case("GET reboot", send("GET", "/PSIA/System/reboot"), not_allowed("PUT")),
]


async def snapshot(admin: Peer) -> tuple[object, ...]:
    """What a hostile request must not change: users, time settings, device identity."""
    users = await admin.get_doc(USERS, "UserList")
    info = await admin.get("/PSIA/System/deviceInfo")
    check_root(info, "DeviceInfo", "deviceInfo")
    listed = sorted((text(u, "id"), text(u, "userName"), text(u, "userLevel")) for u in users)
    return (listed, await time_settings(admin), info.body)


async def test_hostile_input_right_status_and_no_state_change_hr09_hr12_au06(
    tmp_path: Path,
) -> None:
    failures: list[str] = []
    async with running_engine(tmp_path) as engine:
        peers = {name: Peer(engine, name) for name in ("admin", "operator", "viewer")}
        try:
            admin = peers["admin"]
            ids = await user_ids(admin)
            before = await snapshot(admin)
            for case in CASES:
                try:
                    reply = await case.send(engine, peers, ids)
                    case.check(reply)
                    if reply.xml is not None and reply.xml.tag == P + "ResponseStatus":
                        url = text(reply.xml, "requestURL")
                        assert url.startswith("/PSIA/") or url.startswith("/psia/"), (
                            f"requestURL {url!r}"
                        )
                except AssertionError as exc:
                    failures.append(f"{case.name}: {exc}")
                after = await snapshot(admin)
                if after != before:
                    failures.append(f"{case.name}: state changed {before} -> {after}")
                    before = after
            # The viewer still logs in after all this (no lock-out, no crash).
            assert await can_log_in(engine, "viewer", password("viewer"))
        finally:
            for peer in peers.values():
                await peer.__aexit__()
    assert not failures, "\n".join(failures)
