"""Framework authentication seen from the Device service (GEN-10/11, PF-12, PF-15).

Complements test_server.py: Digest nonce-count tracking when two clients receive the same
nonce, PRE_AUTH device operations, and 401 vs NotAuthorized per user level.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from app.core.time import FakeClock
from app.engine.onvif.device import DeviceService
from app.protocols.rtsp.auth import digest_authorization, select_challenge
from tests.engine.onvif.harness import ACCOUNTS, serve
from tests.engine.onvif.test_device import open_users

TDS = "http://www.onvif.org/ver10/device/wsdl"
SOAP_TYPE = "application/soap+xml; charset=utf-8"


def envelope(operation: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
        f'<s:Body><tds:{operation} xmlns:tds="{TDS}"/></s:Body></s:Envelope>'
    ).encode()


async def post(
    session: aiohttp.ClientSession, url: str, operation: str, authorization: str | None = None
) -> tuple[int, str, list[str]]:
    headers = {"Content-Type": SOAP_TYPE}
    if authorization:
        headers["Authorization"] = authorization
    async with session.post(url, data=envelope(operation), headers=headers) as response:
        return (
            response.status,
            await response.text(),
            response.headers.getall("WWW-Authenticate", []),
        )


async def test_frozen_clock_still_gives_each_client_its_own_nonce_pf12(tmp_path: Path) -> None:
    """Nonces are a MAC of the monotonic clock: under a frozen clock two clients must still get
    distinct nonces, or the second client's nc=1 would look like a replay of the first's."""
    clock = FakeClock()
    users = await open_users(tmp_path)
    device = DeviceService(users, clock, [])
    async with serve([device], tmp_path, users=users, clock=clock) as served:
        url = served.address("device")
        path = "/onvif/device_service"
        headers = []
        async with aiohttp.ClientSession() as session:
            for user in ("admin", "viewer"):
                status, _, challenges = await post(session, url, "GetDeviceInformation")
                challenge = select_challenge(challenges)
                assert status == 401 and challenge is not None
                headers.append(
                    (
                        challenge.nonce,
                        digest_authorization(
                            challenge, "POST", path, user, ACCOUNTS[user][0], nc=1
                        ),
                    )
                )
            assert headers[0][0] != headers[1][0]
            for _, header in headers:
                status, body, _ = await post(session, url, "GetDeviceInformation", header)
                assert status == 200, body
            # The exact header again is a replay (GEN-10).
            status, _, _ = await post(session, url, "GetDeviceInformation", headers[0][1])
            assert status == 401


@pytest.mark.parametrize(
    "operation",
    [
        "GetSystemDateAndTime",
        "GetServices",
        "GetServiceCapabilities",
        "GetCapabilities",
        "GetHostname",
    ],
)
async def test_pre_auth_device_operations_need_no_credentials_gen11(
    tmp_path: Path, operation: str
) -> None:
    users = await open_users(tmp_path)
    device = DeviceService(users, FakeClock(), [])
    async with serve([device], tmp_path, users=users) as served:
        async with aiohttp.ClientSession() as session:
            status, body, _ = await post(session, served.address("device"), operation)
        assert status == 200 and f"{operation}Response" in body


@pytest.mark.parametrize(
    ("operation", "user", "status"),
    [
        ("GetDeviceInformation", None, 401),
        ("GetUsers", None, 401),
        ("GetUsers", "operator", 400),  # READ_SYSTEM_SECRET: Administrator only
        ("GetUsers", "admin", 200),
        ("GetScopes", "viewer", 200),
        ("SetDiscoveryMode", "viewer", 400),  # WRITE_SYSTEM
    ],
)
async def test_user_levels_map_to_401_or_not_authorized_pf15(
    tmp_path: Path, operation: str, user: str | None, status: int
) -> None:
    users = await open_users(tmp_path)
    device = DeviceService(users, FakeClock(), [])
    async with serve([device], tmp_path, users=users) as served:
        url = served.address("device")
        async with aiohttp.ClientSession() as session:
            got, body, challenges = await post(session, url, operation)
            if user is not None:
                challenge = select_challenge(challenges)
                assert challenge is not None
                header = digest_authorization(
                    challenge, "POST", "/onvif/device_service", user, ACCOUNTS[user][0]
                )
                got, body, _ = await post(session, url, operation, header)
        assert got == status, body
        if status == 400:
            assert "NotAuthorized" in body
        if status == 401:
            assert challenges and challenges[0].startswith("Digest ")
