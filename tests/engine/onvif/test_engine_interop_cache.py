"""The SOAP framework's answer cache for operations that declare a constant answer (bench/soap).

A handler marked `cacheable=True` runs once per base URL; later requests get the same bytes,
still authenticated and authorized on every call (GEN-10/11), and validated against the schemas.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions

from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from tests.engine.onvif.harness import ACCOUNTS, serve
from tests.peers.onvif_zeep import validated_service


class CountingDevice(OnvifService):
    service = "device"

    def __init__(self) -> None:
        self.calls = 0

    @operation("GetDeviceInformation", AccessClass.READ_SYSTEM, cacheable=True)
    async def info(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.calls += 1
        return {
            "Manufacturer": "Custos",
            "Model": ctx.base_url,
            "FirmwareVersion": "0.1.0",
            "SerialNumber": str(self.calls),
            "HardwareId": "hw",
        }

    @operation("GetHostname", AccessClass.PRE_AUTH)
    async def hostname(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.calls += 1
        return {"HostnameInformation": {"FromDHCP": False, "Name": f"n{self.calls}"}}


async def test_cacheable_answer_is_reused_but_still_authenticated_gen10(tmp_path: Path) -> None:
    device = CountingDevice()
    async with serve([device], tmp_path) as served:
        url = served.address("device")
        admin = validated_service("device", url, "admin", ACCOUNTS["admin"][0])
        first = await asyncio.to_thread(admin.GetDeviceInformation)
        again = await asyncio.to_thread(admin.GetDeviceInformation)
        assert (first.SerialNumber, again.SerialNumber) == ("1", "1")
        assert first.Model == served.url  # XAddr-like values keep the client's base URL
        assert device.calls == 1
        # Every request is still checked: anonymous gets 401, the cache is not consulted.
        anonymous = validated_service("device", url, None, None)
        with pytest.raises(zeep.exceptions.TransportError) as refused:
            await asyncio.to_thread(anonymous.GetDeviceInformation)
        assert refused.value.status_code == 401
        # Operations not marked cacheable run their handler every time.
        names = [(await asyncio.to_thread(admin.GetHostname)).Name for _ in range(2)]
        assert names == ["n2", "n3"]
        # A different base URL (the Host the client used) gets its own answer.
        other = validated_service(
            "device", url.replace("127.0.0.1", "localhost"), "admin", ACCOUNTS["admin"][0]
        )
        via_name = await asyncio.to_thread(other.GetDeviceInformation)
        assert via_name.Model == served.url.replace("127.0.0.1", "localhost")
        assert device.calls == 4
