"""ONVIF Receiver service (trv, spec §2.3 RX-01…RX-08): a thin edge over JobController.

Receivers are the RTSP clients recording jobs pull from; the controller stores them (RX-G7),
starts and stops their ingest (RX-G2) and publishes Receiver/ChangeState. The configuration is
echoed exactly as sent (RX-04.1, RX-06.2; MediaUri is an xs:anyURI, whitespace-collapsed by
the schema). Unknown tokens answer `env:Sender/ter:InvalidArgVal/ter:UnknownToken` (PF-10,
from the jobs/errors.py table).
"""

from __future__ import annotations

from typing import Any

from app.engine.jobs import MAX_RECEIVERS, MAX_URI_CHARS, JobController
from app.engine.jobs import errors as job_errors
from app.engine.onvif.convert import jobs_faults, required, text, wire_enum
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.storage import (
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    StreamType,
    TransportProtocol,
)


class ReceiverService(OnvifService):
    """Receiver over a JobController (`service = "receiver"`)."""

    service = "receiver"
    faults = jobs_faults()

    def __init__(self, jobs: JobController) -> None:
        self._jobs = jobs

    def capabilities(self) -> dict[str, Any]:
        """trv:Capabilities attributes (§6.3, A.5), also embedded by GetServices.

        The ingest pulls RTP over UDP or interleaved in RTSP/TCP; multicast and plain RTP/TCP
        are not offered. SupportedReceivers is a required attribute (PF-25).
        """
        return {
            "RTP_Multicast": False,
            "RTP_TCP": False,
            "RTP_RTSP_TCP": True,
            "SupportedReceivers": MAX_RECEIVERS,
            "MaximumRTSPURILength": MAX_URI_CHARS,
        }

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RX-01."""
        return {"Capabilities": self.capabilities()}

    @operation("GetReceivers", AccessClass.READ_MEDIA)
    async def get_receivers(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RX-02: auto-created receivers included; the element repeats as 'Receivers'."""
        return {"Receivers": [_receiver(r) for r in await self._jobs.receivers()]}

    @operation("GetReceiver", AccessClass.READ_MEDIA)
    async def get_receiver(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RX-03."""
        return {"Receiver": _receiver(await self._jobs.receiver(text(req.ReceiverToken)))}

    @operation("CreateReceiver", AccessClass.ACTUATE)
    async def create_receiver(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RX-04: answers the receiver as stored; AlwaysConnect starts connecting at once."""
        receiver = await self._jobs.create_receiver(_receiver_config(req.Configuration))
        return {"Receiver": _receiver(receiver)}

    @operation("DeleteReceiver", AccessClass.ACTUATE)
    async def delete_receiver(self, ctx: RequestContext, req: Any) -> None:
        """RX-05: refused with CannotDeleteReceiver while a recording job uses it."""
        await self._jobs.delete_receiver(text(req.ReceiverToken))

    @operation("ConfigureReceiver", AccessClass.ACTUATE)
    async def configure_receiver(self, ctx: RequestContext, req: Any) -> None:
        """RX-06: full replacement (also of auto-created receivers, RX-06.3)."""
        token = text(req.ReceiverToken)
        await self._jobs.receiver(token)  # UnknownToken before any complaint about the body
        await self._jobs.configure_receiver(token, _receiver_config(req.Configuration))

    @operation("SetReceiverMode", AccessClass.ACTUATE)
    async def set_receiver_mode(self, ctx: RequestContext, req: Any) -> None:
        """RX-07: only the mode changes; 'Unknown' or another text is InvalidArgVal."""
        await self._jobs.set_receiver_mode(text(req.ReceiverToken), text(req.Mode))

    @operation("GetReceiverState", AccessClass.READ_MEDIA)
    async def get_receiver_state(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        """RX-08: the WSDL's ReceiverState (State + AutoCreated), not the prose's State."""
        info = await self._jobs.receiver_state(text(req.ReceiverToken))
        return {"ReceiverState": {"State": info.state, "AutoCreated": info.auto_created}}


def _receiver_config(value: Any) -> ReceiverConfig:
    """tt:ReceiverConfiguration → ReceiverConfig; unknown enumeration texts: BadConfiguration.

    The deprecated Transport/Tunnel is not supported and therefore not stored.
    """
    bad = job_errors.BadConfigurationError
    value = required(value, "Configuration")
    setup = required(value.StreamSetup, "Configuration/StreamSetup")
    transport = required(setup.Transport, "Configuration/StreamSetup/Transport")
    if transport.Tunnel is not None:
        raise bad("receiver StreamSetup/Transport/Tunnel is not supported")
    return ReceiverConfig(
        mode=wire_enum(ReceiverMode, value.Mode, bad, "receiver mode"),
        media_uri=text(value.MediaUri),
        stream=wire_enum(StreamType, setup.Stream, bad, "receiver stream type"),
        protocol=wire_enum(TransportProtocol, transport.Protocol, bad, "receiver transport"),
    )


def _receiver(receiver: Receiver) -> dict[str, Any]:
    """tt:Receiver with the configuration exactly as stored."""
    config = receiver.config
    return {
        "Token": receiver.token,
        "Configuration": {
            "Mode": config.mode.value,
            "MediaUri": config.media_uri,
            "StreamSetup": {
                "Stream": config.stream.value,
                "Transport": {"Protocol": config.protocol.value},
            },
        },
    }
