"""Registry, ResponseStatus, tolerant XML reading and HTTPS Basic authentication."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.engine.rest.registry import (
    Access,
    Method,
    Node,
    RestRequest,
    RestResponse,
    description_document,
    index_document,
    required_access,
    resolve,
)
from app.engine.rest.status import (
    HTTP_STATUS,
    RestError,
    Status,
    StatusCode,
    from_domain_error,
    response_status_document,
)
from app.engine.rest.xml import BodyContentError, BodyFormatError, parse_body
from tests.engine.rest.rest_harness import PSIA, RestRig, serve_rest

XLINK = "{http://www.w3.org/1999/xlink}"


async def _handler(request: RestRequest) -> RestResponse:
    return RestResponse(b"")


def tree() -> Node:
    root = Node.service("PSIA")
    system = root.add(Node.service("System"))
    system.add(Node.resource("time", get=Method(_handler, Access.VIEWER, "t", result="Time")))
    users = system.add(
        Node.resource("users", post=Method(_handler, Access.ADMINISTRATOR, "add", inbound="User"))
    )
    member = users.add_item(
        Node.resource("user", delete=Method(_handler, Access.ADMINISTRATOR, "rm"))
    )
    member.add(Node.resource("status", get=Method(_handler, Access.OPERATOR, "s")))
    return root


def test_resolve_walks_names_case_insensitively_and_collects_ids() -> None:
    root = tree()
    found = resolve(root, ["system", "USERS", "guard", "Status"])
    assert found.node.path == "System/users/<ID>/status" and found.ids == ("guard",)
    assert found.standard is None
    assert resolve(root, ["System", "index"]).standard == "index"
    assert resolve(root, ["System", "time", "description"]).standard == "description"
    # index belongs to services only; a resource's unknown child is 404.
    with pytest.raises(RestError) as caught:
        resolve(root, ["System", "time", "index"])
    assert caught.value.status.http_status == 404


def test_required_access_and_method_support() -> None:
    root = tree()
    member = resolve(root, ["System", "users", "x"])
    assert required_access(member, "DELETE") is Access.ADMINISTRATOR
    assert required_access(member, "GET") is None
    assert member.node.allowed() == ("DELETE",)
    assert required_access(resolve(root, ["System"]), "GET") is Access.VIEWER
    assert required_access(resolve(root, ["System"]), "PUT") is None


def test_indexr_nests_services_with_full_hrefs() -> None:
    doc = index_document(tree(), "/PSIA", recursive=True)
    entries = {
        e.get(XLINK + "href"): e.findtext(PSIA + "type") for e in doc.iter(PSIA + "Resource")
    }
    assert entries["/PSIA/System"] == "service"
    assert entries["/PSIA/System/time"] == "resource"
    assert entries["/PSIA/System/index"] == "resource"
    flat = index_document(tree(), "/ISAPI", recursive=False)
    assert [e.get(XLINK + "href") for e in flat] == [
        "/ISAPI/index",
        "/ISAPI/indexr",
        "/ISAPI/description",
        "/ISAPI/System",
    ]


def test_description_has_one_block_per_method() -> None:
    users = resolve(tree(), ["System", "users"]).node
    doc = description_document(users, None)
    post = doc.find(PSIA + "post")
    assert post is not None and doc.find(PSIA + "get") is None
    assert post.findtext(PSIA + "inboundData") == "User"
    assert post.findtext(PSIA + "returnResult") == "ResponseStatus"
    assert post.findtext(PSIA + "accessLevel") == "Administrator"


def test_status_mapping_and_document_layout() -> None:
    assert HTTP_STATUS == {
        StatusCode.OK: 200,
        StatusCode.DEVICE_BUSY: 503,
        StatusCode.DEVICE_ERROR: 500,
        StatusCode.INVALID_OPERATION: 403,
        StatusCode.INVALID_XML_FORMAT: 400,
        StatusCode.INVALID_XML_CONTENT: 400,
        StatusCode.REBOOT_REQUIRED: 200,
    }
    body = response_status_document(
        "/PSIA/System/time", Status(StatusCode.INVALID_XML_CONTENT, "badXmlContent")
    )
    assert body == (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b'<ResponseStatus xmlns="urn:psialliance-org" version="1.0">'
        b"<requestURL>/PSIA/System/time</requestURL><statusCode>6</statusCode>"
        b"<statusString>Invalid XML Content</statusString>"
        b"<subStatusCode>badXmlContent</subStatusCode></ResponseStatus>"
    )


def test_domain_errors_map_to_response_status() -> None:
    cases = {
        NotFoundError("x"): (404, "invalidID"),
        ConfigError("x"): (400, "badParameters"),
        ConflictError("x"): (403, "invalidOperation"),
        LimitError("x"): (503, "deviceBusy"),
    }
    for error, (http, sub) in cases.items():
        mapped = from_domain_error(error)
        assert (mapped.status.http_status, mapped.status.sub) == (http, sub)


@pytest.mark.parametrize(
    "namespace",
    [
        "",
        ' xmlns="urn:psialliance-org"',
        ' xmlns="http://www.hikvision.com/ver20/XMLSchema"',
        ' xmlns="http://www.isapi.org/ver20/XMLSchema"',
    ],
)
def test_parse_body_accepts_namespace_variants_and_ignores_unknown(namespace: str) -> None:
    body = f"<Time{namespace}><Extensions><a/></Extensions><timeZone> UTC0 </timeZone></Time>"
    doc = parse_body(body.encode(), ("Time",))
    assert doc.text("timeZone") == "UTC0" and doc.text("timeMode") is None


def test_parse_body_refusals() -> None:
    with pytest.raises(BodyFormatError):
        parse_body(b"<Time>", ("Time",))
    with pytest.raises(BodyContentError):
        parse_body(b"<Other/>", ("Time",))
    with pytest.raises(BodyContentError):
        parse_body(b'<Time xmlns="urn:other"/>', ("Time",))


@settings(max_examples=80)
@given(st.binary(max_size=300))
def test_parse_body_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_body(data, ("Time",))
    except (BodyFormatError, BodyContentError):
        pass


@pytest.fixture
async def https_rig(tmp_path: Path) -> AsyncIterator[RestRig]:
    async with serve_rest(tmp_path / "data", tls=True) as served:
        yield served


async def test_basic_is_offered_and_accepted_over_https_only(https_rig: RestRig) -> None:
    good = base64.b64encode(b"viewer:viewer-pw").decode()
    bad = base64.b64encode(b"viewer:wrong").decode()
    async with https_rig.client("") as client:
        bare = await client.get("/PSIA/System/deviceInfo")
        ok = await client.get("/PSIA/System/deviceInfo", headers={"Authorization": f"Basic {good}"})
        refused = await client.get(
            "/PSIA/System/deviceInfo", headers={"Authorization": f"Basic {bad}"}
        )
        write = await client.put("/PSIA/System/reboot", headers={"Authorization": f"Basic {good}"})
    schemes = [c.split(" ", 1)[0] for c in bare.headers.get_list("WWW-Authenticate")]
    assert schemes == ["Digest", "Basic"]
    assert ok.status_code == 200
    assert etree.fromstring(ok.content).tag == PSIA + "DeviceInfo"
    assert refused.status_code == 401
    assert write.status_code == 403
    async with https_rig.client("admin") as digest:
        assert (await digest.get("/PSIA/index")).status_code == 200
    assert isinstance(httpx.DigestAuth, type)
