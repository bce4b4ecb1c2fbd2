"""RestApi over HTTP: service model, auth and access levels, refusals without state change,
System/Security round trips."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from app.engine.rest import MAX_BODY_BYTES, Access
from app.engine.rest.registry import walk
from tests.engine.rest.rest_harness import PSIA, RestRig, serve_rest

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[RestRig]:
    async with serve_rest(tmp_path / "data") as served:
        yield served


def xml(response: httpx.Response) -> etree._Element:
    assert response.headers["content-type"] == 'application/xml; charset="UTF-8"'
    return etree.fromstring(response.content)


def status_of(response: httpx.Response) -> tuple[int, str, str, str]:
    root = xml(response)
    assert root.tag == PSIA + "ResponseStatus" and root.get("version") == "1.0"
    return (
        int(root.findtext(PSIA + "statusCode")),
        root.findtext(PSIA + "statusString"),
        root.findtext(PSIA + "subStatusCode"),
        root.findtext(PSIA + "requestURL"),
    )


async def test_index_walk_every_href_answers_and_has_a_description(rig: RestRig) -> None:
    async with rig.client("admin") as client:
        response = await client.get("/PSIA/indexr")
        root = xml(response)
        assert root.tag == PSIA + "ResourceList"
        hrefs = [e.get(XLINK_HREF) for e in root.iter(PSIA + "Resource")]
        assert "/PSIA/System/deviceInfo" in hrefs
        assert "/PSIA/ContentMgmt/record/tracks" in hrefs
        assert "/PSIA/Security/AAA/users" in hrefs
        for href in hrefs:
            answer = await client.get(href)
            assert answer.status_code in (200, 405), href
            if answer.status_code == 405:
                assert "PUT" in answer.headers["Allow"] or "POST" in answer.headers["Allow"]
                assert status_of(answer)[:3] == (4, "Invalid Operation", "methodNotAllowed")
            if not href.endswith(("/index", "/indexr", "/description")):
                described = xml(await client.get(href + "/description"))
                assert described.tag == PSIA + "ResourceDescription"
                assert described.findtext(PSIA + "name") == href.rsplit("/", 1)[1]


async def test_index_lists_standard_children_then_services(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        root = xml(await client.get("/PSIA/index"))
    names = [(e.findtext(PSIA + "name"), e.findtext(PSIA + "type")) for e in root]
    assert names == [
        ("index", "resource"),
        ("indexr", "resource"),
        ("description", "resource"),
        ("System", "service"),
        ("Security", "service"),
        ("Streaming", "service"),
        ("ContentMgmt", "service"),
    ]
    assert root[3].get("{http://www.w3.org/1999/xlink}type") == "simple"


async def test_reboot_description_names_put_and_its_result(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        root = xml(await client.get("/PSIA/System/reboot/description"))
    put = root.find(PSIA + "put")
    assert put is not None and root.find(PSIA + "get") is None
    assert put.findtext(PSIA + "inboundData") == "none"
    assert put.findtext(PSIA + "returnResult") == "ResponseStatus"


async def test_prefix_is_case_insensitive_and_isapi_is_an_alias(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        for path in ("/psia/system/deviceInfo", "/ISAPI/System/deviceInfo"):
            root = xml(await client.get(path))
            assert root.tag == PSIA + "DeviceInfo"
            assert root.findtext(PSIA + "serialNumber") == "TESTSERIAL"
            assert root.findtext(PSIA + "macAddress") == "02:00:00:00:00:01"


async def test_unknown_path_is_404_and_unknown_method_405_with_allow(rig: RestRig) -> None:
    async with rig.client("admin") as client:
        missing = await client.get("/PSIA/System/nothing")
        assert missing.status_code == 404
        assert status_of(missing) == (4, "Invalid Operation", "invalidID", "/PSIA/System/nothing")
        wrong = await client.delete("/PSIA/System/time")
        assert wrong.status_code == 405
        assert wrong.headers["Allow"] == "GET, PUT"
        get_reboot = await client.get("/PSIA/System/reboot")
        assert get_reboot.status_code == 405 and get_reboot.headers["Allow"] == "PUT"


async def test_no_or_bad_credentials_get_401_with_a_digest_challenge(rig: RestRig) -> None:
    async with httpx.AsyncClient(base_url=rig.url) as client:
        bare = await client.get("/PSIA/System/deviceInfo")
        assert bare.status_code == 401
        challenges = bare.headers.get_list("WWW-Authenticate")
        assert len(challenges) == 1 and challenges[0].startswith("Digest ")
        assert 'qop="auth"' in challenges[0] and "MD5" in challenges[0]
        assert status_of(bare)[2] == "badAuthorization"
    wrong = httpx.DigestAuth("admin", "not-the-password")
    async with httpx.AsyncClient(base_url=rig.url, auth=wrong) as client:
        assert (await client.get("/PSIA/System/deviceInfo")).status_code == 401


async def test_basic_is_refused_over_plain_http(rig: RestRig) -> None:
    token = base64.b64encode(b"admin:admin-pw").decode()
    async with httpx.AsyncClient(base_url=rig.url) as client:
        response = await client.get(
            "/PSIA/System/deviceInfo", headers={"Authorization": f"Basic {token}"}
        )
    assert response.status_code == 401
    assert all(not c.startswith("Basic") for c in response.headers.get_list("WWW-Authenticate"))


async def test_viewer_is_refused_writes_with_low_privilege(rig: RestRig) -> None:
    before = rig.users.list()
    async with rig.client("viewer") as client:
        reboot = await client.put("/PSIA/System/reboot")
        assert reboot.status_code == 403
        assert status_of(reboot)[:3] == (4, "Invalid Operation", "lowPrivilege")
        users = await client.get("/PSIA/Security/AAA/users")
        assert users.status_code == 403
        body = b"<User><userName>x</userName><password>p</password></User>"
        assert (await client.post("/PSIA/Security/AAA/users", content=body)).status_code == 403
    assert rig.users.list() == before


async def test_operator_may_set_time_but_not_users(rig: RestRig) -> None:
    async with rig.client("operator") as client:
        body = b'<Time xmlns="urn:psialliance-org"><timeZone>CST-8:00:00</timeZone></Time>'
        assert (await client.put("/PSIA/System/time", content=body)).status_code == 200
        assert (await client.delete("/PSIA/Security/AAA/users/viewer")).status_code == 403


async def test_reboot_is_refused_with_not_support(rig: RestRig) -> None:
    async with rig.client("admin") as client:
        response = await client.put("/PSIA/System/reboot")
    assert response.status_code == 403
    assert status_of(response) == (4, "Invalid Operation", "notSupport", "/PSIA/System/reboot")


@pytest.mark.parametrize(
    ("body", "code", "sub"),
    [
        (b"<Time><timeZone>UTC0</timeZone>", 5, "badXmlFormat"),
        (b"", 5, "badXmlFormat"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><Time/>', 5, "badXmlFormat"),
        (b"<DeviceInfo><timeZone>UTC0</timeZone></DeviceInfo>", 6, "badXmlContent"),
        (b'<Time xmlns="urn:evil"><timeZone>UTC0</timeZone></Time>', 6, "badXmlContent"),
        (b"<Time><timeMode>sundial</timeMode></Time>", 6, "badParameters"),
    ],
)
async def test_bad_bodies_get_400_and_change_nothing(
    rig: RestRig, body: bytes, code: int, sub: str
) -> None:
    async with rig.client("admin") as client:
        before = (await client.get("/PSIA/System/time")).content
        response = await client.put("/PSIA/System/time", content=body)
        assert response.status_code == 400
        assert status_of(response)[0] == code and status_of(response)[2] == sub
        after = xml(await client.get("/PSIA/System/time"))
    assert after.findtext(PSIA + "timeZone") == etree.fromstring(before).findtext(PSIA + "timeZone")
    assert not (rig.data_dir / "rest.json").exists()


async def test_huge_body_is_413_and_creates_no_user(rig: RestRig) -> None:
    padding = b"<x>" + b"a" * MAX_BODY_BYTES + b"</x>"
    body = b"<User><userName>big</userName><password>p</password>" + padding + b"</User>"
    async with rig.client("admin") as client:
        response = await client.post("/PSIA/Security/AAA/users", content=body)
        # httpx Digest reuses a challenge it saw: the streamed body cannot be sent twice.
        assert (await client.get("/PSIA/index")).status_code == 200

        async def chunks() -> AsyncIterator[bytes]:
            yield body[:1000]
            yield body[1000:]

        chunked = await client.post("/PSIA/Security/AAA/users", content=chunks())
    assert response.status_code == 413 and status_of(response)[2] == "messageTooLarge"
    assert chunked.status_code == 413
    assert [u.name for u in rig.users.list()] == ["admin", "operator", "viewer"]


async def test_time_round_trip_persists_zone_and_mode(rig: RestRig) -> None:
    async with rig.client("admin") as client:
        current = xml(await client.get("/PSIA/System/time"))
        current.find(PSIA + "timeZone").text = "EST+5:00:00EDT"
        current.find(PSIA + "timeMode").text = "manual"
        put = await client.put("/PSIA/System/time", content=etree.tostring(current))
        assert status_of(put) == (1, "OK", "ok", "/PSIA/System/time")
        again = xml(await client.get("/PSIA/System/time"))
        far = b"<Time><localTime>2001-01-01T00:00:00Z</localTime><timeZone>X</timeZone></Time>"
        refused = await client.put("/PSIA/System/time", content=far)
        caps = xml(await client.get("/PSIA/System/time/capabilities"))
    assert again.findtext(PSIA + "timeZone") == "EST+5:00:00EDT"
    assert again.findtext(PSIA + "timeMode") == "manual"
    assert refused.status_code == 403 and status_of(refused)[2] == "notSupport"
    saved = json.loads((rig.data_dir / "rest.json").read_text())
    assert saved["time_zone"] == "EST+5:00:00EDT"
    assert caps.find(PSIA + "timeMode").get("opt") == "NTP,manual"


async def test_device_name_is_the_only_writable_leaf(rig: RestRig) -> None:
    body = b"<DeviceInfo><deviceName>Gate NVR</deviceName><model>fake</model><y/></DeviceInfo>"
    async with rig.client("admin") as client:
        assert (await client.put("/PSIA/System/deviceInfo", content=body)).status_code == 200
        info = xml(await client.get("/PSIA/System/deviceInfo"))
    assert info.findtext(PSIA + "deviceName") == "Gate NVR"
    assert info.findtext(PSIA + "model") == "Custos Recorder Engine"


async def test_users_round_trip_without_ever_returning_passwords(rig: RestRig) -> None:
    users = "/PSIA/Security/AAA/users"
    async with rig.client("admin") as client:
        created = await client.post(
            users,
            content=b'<User xmlns="http://www.hikvision.com/ver20/XMLSchema"><id>9</id>'
            b"<userName>guard</userName><password>guard-pw</password>"
            b"<userLevel>Operator</userLevel><Extensions><x/></Extensions></User>",
        )
        assert status_of(created)[:3] == (1, "OK", "ok")
        assert xml(created).findtext(PSIA + "id") == "guard"
        one = xml(await client.get(f"{users}/guard"))
        assert one.findtext(PSIA + "userLevel") == "Operator"
        listed = await client.get(users)
        assert b"password" not in listed.content and b"guard-pw" not in listed.content
        lone = b"<User><userName>guard</userName><userLevel>Viewer</userLevel></User>"
        assert (await client.put(users, content=lone)).status_code == 200
        assert xml(await client.get(f"{users}/guard")).findtext(PSIA + "userLevel") == "Viewer"
        assert (await client.delete(f"{users}/guard")).status_code == 200
        assert (await client.get(f"{users}/guard")).status_code == 404
        duplicate = b"<User><userName>viewer</userName><password>x</password></User>"
        conflict = await client.post(users, content=duplicate)
        last_admin = await client.delete(f"{users}/admin")
    assert rig.users.password_of("guard") is None
    assert conflict.status_code == 403 and status_of(conflict)[2] == "invalidOperation"
    assert last_admin.status_code == 403
    assert rig.users.password_of("admin") == "admin-pw"


async def test_a_bad_user_list_changes_no_user(rig: RestRig) -> None:
    body = (
        b"<UserList><User><userName>viewer</userName><userLevel>Operator</userLevel></User>"
        b"<User><userName>nobody</userName><userLevel>Viewer</userLevel></User></UserList>"
    )
    async with rig.client("admin") as client:
        response = await client.put("/PSIA/Security/AAA/users", content=body)
    assert response.status_code == 404
    assert rig.users.get("viewer").level.value == "User"


async def test_system_read_outs(rig: RestRig) -> None:
    async with rig.client("viewer") as client:
        status = xml(await client.get("/PSIA/System/status"))
        interface = xml(await client.get("/PSIA/System/Network/interfaces/1"))
        volume = xml(await client.get("/PSIA/System/Storage/volumes/1/status"))
        missing = await client.get("/PSIA/System/Network/interfaces/2")
    assert int(status.findtext(PSIA + "deviceUpTime")) >= 0
    assert status.find(f"{PSIA}MemoryList/{PSIA}Memory/{PSIA}memoryAvailable") is not None
    assert interface.findtext(f"{PSIA}IPAddress/{PSIA}ipAddress") == "192.0.2.10"
    assert interface.findtext(f"{PSIA}IPAddress/{PSIA}subnetMask") == "255.255.255.0"
    assert int(volume.findtext(PSIA + "capacity")) > 0
    assert missing.status_code == 404


async def test_access_table_follows_au06(rig: RestRig) -> None:
    table = {
        node.path: {verb: m.access for verb, m in node.methods.items()}
        for node in walk(rig.api.root)
    }
    for path, methods in table.items():
        for verb, access in methods.items():
            if path.startswith("Security") or (path.startswith("System/") and verb == "PUT"):
                expected = Access.OPERATOR if path == "System/time" else Access.ADMINISTRATOR
                assert access is expected, (path, verb)
            elif verb == "GET" or path.endswith(("search", "dailyDistribution")):
                assert access is Access.VIEWER, (path, verb)
            else:
                assert access is Access.OPERATOR, (path, verb)
    assert table["ContentMgmt/record/control/manual/start/tracks/<ID>"] == {
        "PUT": Access.OPERATOR,
        "POST": Access.OPERATOR,
    }
