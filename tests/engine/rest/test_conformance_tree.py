"""REST conformance, read side: the /PSIA tree walked from /PSIA/index, every resource and its
description fetched, the document shapes of §1.1/§2 checked (HR-01…HR-04, HR-09, HR-13, AU-01,
AU-07), and the live RTSP URL of a streaming channel played by FFmpeg (HR-20).

Independent of the server code: httpx + lxml, expectations from the spec notes only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from pathlib import Path

import av
from lxml import etree

from app.core.time import NS_PER_SECOND, parse_iso
from app.formats.stamp import Stamp, read_stamp
from tests.engine.onvif.test_engine_interop_support import CAMERA_SIZE, password, running_engine
from tests.engine.rest.test_conformance_support import (
    CHANNEL,
    XLINK_HREF,
    XLINK_TYPE,
    P,
    Peer,
    Reply,
    check_root,
    child,
    resources,
    status_of,
    text,
)

STANDARD = ("index", "indexr", "description")
#: HR-01 + the issue's scope: the services every Custos device has.
SERVICES = {"System", "Security", "Streaming", "ContentMgmt"}
METHODS = ("get", "put", "post", "delete")
#: Most resources the walk visits (a generated tree that loops would never end otherwise).
MAX_NODES = 500
CLOCK_SLACK_NS = 5 * NS_PER_SECOND


@dataclasses.dataclass
class Walk:
    """What the recursive index walk found: href → (name, type)."""

    nodes: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def of_type(self, kind: str) -> list[str]:
        return sorted(h for h, (_, k) in self.nodes.items() if k == kind)


async def walk_index(peer: Peer) -> Walk:
    """HR-02/03/13: every index is a flat ResourceList of direct children with xlink hrefs."""
    walk = Walk()
    services = ["/PSIA"]
    while services:
        service = services.pop()
        listing = await peer.get_doc(f"{service}/index", "ResourceList")
        assert listing.nsmap.get("xlink") == "http://www.w3.org/1999/xlink", (
            f"{service}/index does not declare xmlns:xlink (HR-13)"
        )
        names = set()
        for res in resources(listing):
            href = res.get(XLINK_HREF, "")
            name, kind = text(res, "name"), text(res, "type")
            assert res.get(XLINK_TYPE) == "simple", f"{href}: xlink:type {res.get(XLINK_TYPE)!r}"
            assert href == f"{service}/{name}", (
                f"{service}/index lists {name!r} at {href!r}, not a direct child (HR-03)"
            )
            assert kind in ("service", "resource"), f"{href}: <type>{kind}</type> (HR-02)"
            assert text(res, "version"), f"{href}: no <version>"
            assert res.find(P + "ResourceList") is None, f"{service}/index is not flat (HR-03)"
            names.add(name)
            walk.nodes[href] = (name, kind)
            if kind == "service":
                services.append(href)
            assert len(walk.nodes) <= MAX_NODES, "the index tree does not end"
        missing = set(STANDARD) - names
        assert not missing, f"{service}/index lacks the standard resources {sorted(missing)}"
    return walk


def flatten_indexr(listing: etree._Element, into: set[str]) -> None:
    """HR-03: indexr nests each service's ResourceList inside its Resource."""
    for res in resources(listing):
        into.add(res.get(XLINK_HREF, ""))
        nested = res.find(P + "ResourceList")
        if nested is not None:
            flatten_indexr(nested, into)


def description_methods(doc: etree._Element) -> set[str]:
    return {m for m in METHODS if doc.find(P + m) is not None}


async def check_resource(peer: Peer, href: str, name: str) -> None:
    """GET answers 200 (or 405 when the description lists no get); the description matches."""
    desc = await peer.get_doc(f"{href}/description", "ResourceDescription")
    assert text(desc, "name") == name, f"{href}/description names {text(desc, 'name')!r}"
    assert text(desc, "type") == "resource", f"{href}/description type {text(desc, 'type')!r}"
    methods = description_methods(desc)
    assert methods, f"{href}/description lists no get/put/post/delete block (§1.1)"
    for method in methods:
        block = child(desc, method)
        for leaf in ("inboundData", "returnResult"):
            assert block.find(P + leaf) is not None, f"{href}/description <{method}> lacks {leaf}"
    reply = await peer.get(href)
    if "get" in methods:
        assert reply.status == 200, f"GET {href}: HTTP {reply.status}, its description has <get>"
        check_body(reply, href)
    else:
        assert reply.status == 405, f"GET {href}: HTTP {reply.status}, description has no <get>"
        check_405(reply, href, methods)


def check_body(reply: Reply, href: str) -> None:
    kind = reply.content_type
    if kind.startswith("image/jpeg"):
        assert reply.body[:2] == b"\xff\xd8" and reply.body[-2:] == b"\xff\xd9", f"{href}: no JPEG"
    elif kind.startswith("application/octet-stream"):
        assert reply.body, f"{href}: empty octet-stream (HR-18)"
    else:
        assert reply.xml is not None, f"{href}: Content-Type {kind!r} and no XML body"
        check_root(reply, etree_local(reply.xml.tag), href)


def check_405(reply: Reply, href: str, methods: set[str]) -> None:
    allow = {m.strip().lower() for m in reply.headers.get("allow", "").split(",") if m.strip()}
    assert allow, f"{href}: 405 without an Allow header (HR-09, RFC 9110 §15.5.6)"
    assert "get" not in allow, f"{href}: 405 for GET but Allow lists GET"
    assert methods <= allow, f"{href}: Allow {sorted(allow)} misses described {sorted(methods)}"
    code, _, sub, url = status_of(reply, f"GET {href}")
    assert (code, sub) == (4, "methodNotAllowed"), f"GET {href}: statusCode {code}/{sub}"
    assert url == href, f"GET {href}: requestURL {url!r}"


def etree_local(tag: str) -> str:
    return tag.rpartition("}")[2]


async def test_index_walk_descriptions_and_indexr_hr02_hr03_hr09(tmp_path: Path) -> None:
    async with running_engine(tmp_path) as engine, Peer(engine) as admin:
        walk = await walk_index(admin)
        top = {name for href, (name, kind) in walk.nodes.items() if href.count("/") == 2}
        assert top >= SERVICES, f"/PSIA/index lacks services {sorted(SERVICES - top)}"
        for href in ["/PSIA", *walk.of_type("service")]:
            desc = await admin.get_doc(f"{href}/description", "ResourceDescription")
            assert text(desc, "type") == "service", f"{href}/description type is not service"
            assert text(desc, "name") == href.rpartition("/")[2], f"{href}/description name"
            indexr = await admin.get_doc(f"{href}/indexr", "ResourceList")
            found: set[str] = set()
            flatten_indexr(indexr, found)
            expected = {h for h in walk.nodes if h.startswith(href + "/")}
            assert found == expected, (
                f"{href}/indexr differs from the index walk: only in indexr "
                f"{sorted(found - expected)}, only in the walk {sorted(expected - found)}"
            )
        for href in walk.of_type("resource"):
            name = walk.nodes[href][0]
            if name in STANDARD:
                continue  # the service checks above fetched them
            await check_resource(admin, href, name)


async def test_resource_shapes_of_the_minimum_tree_and_live_rtsp(tmp_path: Path) -> None:
    """§2 / §5.3: the M resources, their root elements and key fields; AU-01, AU-07, HR-01."""
    async with running_engine(tmp_path) as engine, Peer(engine) as admin:
        now = time.time_ns()
        info = await admin.get_doc("/PSIA/System/deviceInfo", "DeviceInfo")
        for leaf in ("deviceName", "model", "serialNumber", "macAddress", "firmwareVersion"):
            assert text(info, leaf), f"DeviceInfo lacks {leaf}"
        uuid.UUID(text(info, "deviceID"))  # HR-17
        assert re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", text(info, "macAddress"))

        clock = await admin.get_doc("/PSIA/System/time", "Time")
        assert text(clock, "timeMode") in ("manual", "NTP"), text(clock, "timeMode")
        assert abs(parse_iso(text(clock, "localTime")) - now) < CLOCK_SLACK_NS
        assert text(clock, "timeZone"), "Time lacks timeZone"
        caps = await admin.get_doc("/PSIA/System/time/capabilities", "Time")  # HR-04
        assert any(el.get("opt") or el.get("min") for el in caps.iter()), "no constraint attrs"

        status = await admin.get_doc("/PSIA/System/status", "DeviceStatus")
        assert abs(parse_iso(text(status, "currentDeviceTime")) - now) < CLOCK_SLACK_NS
        assert int(text(status, "deviceUpTime")) >= 0

        nics = await admin.get_doc("/PSIA/System/Network/interfaces", "NetworkInterfaceList")
        nic = child(nics, "NetworkInterface")
        assert text(nic, "id") and text(nic, "IPAddress/ipAddress"), "NetworkInterface fields"
        volumes = await admin.get_doc("/PSIA/System/Storage/volumes", "StorageVolumeList")
        volume = child(volumes, "StorageVolume")
        assert text(volume, "id") and int(text(volume, "capacity")) > 0

        users = await admin.get_doc("/PSIA/Security/AAA/users", "UserList")
        levels = {text(u, "userName"): text(u, "userLevel") for u in users}
        assert levels == {"admin": "Administrator", "operator": "Operator", "viewer": "Viewer"}
        assert all(text(u, "id") for u in users)
        assert not [el for el in users.iter() if etree_local(el.tag) == "password"], "AU-07"

        streaming = await admin.get_doc("/PSIA/Streaming/status", "StreamingStatus")
        assert int(text(streaming, "totalStreamingSessions")) >= 0
        channels = await admin.get_doc("/PSIA/Streaming/channels", "StreamingChannelList")
        ids = [text(c, "id") for c in channels.iterchildren(P + "StreamingChannel")]
        assert CHANNEL in ids, f"no StreamingChannel {CHANNEL} (HR-17) among {ids}"
        channel = await admin.get_doc(f"/PSIA/Streaming/channels/{CHANNEL}", "StreamingChannel")
        assert text(channel, "id") == CHANNEL
        assert text(channel, "Video/videoCodecType") == "H.264"
        width, height = CAMERA_SIZE
        assert text(channel, "Video/videoResolutionWidth") == str(width)
        assert text(channel, "Video/videoResolutionHeight") == str(height)
        assert engine.rtsp is not None
        assert text(channel, "Transport/rtspPortNo") == str(engine.rtsp.port)
        await admin.get_doc(f"/PSIA/Streaming/channels/{CHANNEL}/capabilities", "StreamingChannel")
        picture = await admin.get(f"/PSIA/Streaming/channels/{CHANNEL}/picture")
        assert (picture.status, picture.content_type) == (200, "image/jpeg"), picture.status
        assert picture.body[:2] == b"\xff\xd8", "picture is not a JPEG (HR-18)"

        tracks = await admin.get_doc("/PSIA/ContentMgmt/record/tracks", "TrackList")
        assert CHANNEL in [text(t, "id") for t in tracks.iterchildren(P + "Track")]
        track = await admin.get_doc(f"/PSIA/ContentMgmt/record/tracks/{CHANNEL}", "Track")
        assert text(track, "id") == CHANNEL

        # HR-01: the /PSIA prefix is matched case-insensitively (Hikvision: /PSIA/streaming/…).
        for path in ("/psia/System/deviceInfo", "/PSIA/streaming/channels"):
            reply = await admin.get(path)
            assert reply.status == 200, f"GET {path}: HTTP {reply.status} (HR-01)"

        # AU-01: no credentials → 401 with a Digest challenge (qop=auth, AU-02).
        async with Peer(engine, None) as anonymous:
            reply = await anonymous.get("/PSIA/System/deviceInfo")
        assert reply.status == 401
        challenges = reply.headers.get_list("www-authenticate")
        assert any(c.startswith("Digest ") and "auth" in c for c in challenges), challenges
        assert not any(c.lower().startswith("basic") for c in challenges), "AU-03: no Basic"

        # HR-20: the live URL of the channel plays in FFmpeg with Digest credentials.
        netloc = f"admin:{password('admin')}@127.0.0.1:{engine.rtsp.port}"
        live = f"rtsp://{netloc}/PSIA/Streaming/channels/{CHANNEL}"
        stamp = await asyncio.to_thread(first_stamp, live)
        assert stamp.index >= 0


def first_stamp(uri: str) -> Stamp:
    """The simulated camera's stamp on the first picture FFmpeg decodes from an RTSP URI."""
    with av.open(uri, options={"rtsp_transport": "tcp", "timeout": "10000000"}) as container:
        for frame in container.decode(video=0):
            return read_stamp(frame.to_ndarray(format="gray"))
    raise AssertionError(f"{uri}: no picture decoded")
