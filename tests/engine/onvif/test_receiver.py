"""Receiver service through the independent zeep client over HTTP Digest (RX-01…RX-08).

Every answer is validated against the official XSDs (test_recording_support.Stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.jobs import MAX_RECEIVERS, MAX_URI_CHARS
from tests.engine.onvif.test_recording_support import (
    BAD_CONFIGURATION,
    NS,
    UNKNOWN,
    UNKNOWN_TOKEN,
    call,
    fault,
    job_config,
    onvif_stack,
    plain,
    receiver_config,
    recording_config,
    snapshot,
    texts,
)

CANNOT_DELETE_RECEIVER = ("Receiver", ("Action", "CannotDeleteReceiver"))
MAX_RECEIVERS_FAULT = ("Receiver", ("Action", "MaxReceivers"))


def _uri(length: int) -> str:
    base = "rtsp://user:secret@192.0.2.10:554/"
    return base + "x" * (length - len(base))


async def test_capabilities_rx01(tmp_path: Path) -> None:
    """RX-01, §6.3, PF-25: PRE_AUTH; SupportedReceivers always present, integers plain."""
    async with onvif_stack(tmp_path) as s:
        caps = await call(s.anonymous("receiver"), "GetServiceCapabilities")
        assert (caps.RTP_Multicast, caps.RTP_TCP, caps.RTP_RTSP_TCP) == (False, False, True)
        assert caps.SupportedReceivers == MAX_RECEIVERS == 32
        assert caps.MaximumRTSPURILength == MAX_URI_CHARS == 1024
        payload = await s.raw_ok("receiver", "<trv:GetServiceCapabilities/>")
        el = payload.find("trv:Capabilities", NS)
        assert el is not None
        assert (el.get("SupportedReceivers"), el.get("MaximumRTSPURILength")) == ("32", "1024")


async def test_create_get_configure_echo_verbatim_rx02_to_rx06(tmp_path: Path) -> None:
    """RX-02…RX-04, RX-06, RX-G5: configuration echoed exactly; 128 and 1024 char URIs."""
    async with onvif_stack(tmp_path) as s:
        recv = s.client("receiver")
        assert await call(recv, "GetReceivers") == []
        sent = receiver_config(uri=_uri(128), mode="NeverConnect", protocol="UDP")
        created = await call(recv, "CreateReceiver", Configuration=sent)
        got = await call(recv, "GetReceiver", ReceiverToken=created.Token)
        assert plain(got) == plain(created)
        config = plain(got.Configuration)
        assert (config["Mode"], config["MediaUri"]) == ("NeverConnect", _uri(128))
        assert config["StreamSetup"]["Stream"] == "RTP-Unicast"
        assert config["StreamSetup"]["Transport"]["Protocol"] == "UDP"
        state = await call(recv, "GetReceiverState", ReceiverToken=created.Token)
        assert (state.State, state.AutoCreated) == ("NotConnected", False)

        # RX-06: full replacement, the longest URI we advertise, read back as sent.
        longest = receiver_config(uri=_uri(MAX_URI_CHARS), mode="NeverConnect", protocol="HTTP")
        await call(recv, "ConfigureReceiver", ReceiverToken=created.Token, Configuration=longest)
        payload = await s.raw_ok(
            "receiver",
            f"<trv:GetReceiver><trv:ReceiverToken>{created.Token}</trv:ReceiverToken>"
            "</trv:GetReceiver>",
        )
        assert texts(payload, "trv:Receiver/tt:Configuration/tt:MediaUri") == [_uri(MAX_URI_CHARS)]
        assert texts(
            payload, "trv:Receiver/tt:Configuration/tt:StreamSetup/tt:Transport/tt:Protocol"
        ) == ["HTTP"]
        second = await call(recv, "CreateReceiver", Configuration=receiver_config())
        listed = await call(recv, "GetReceivers")
        assert [r.Token for r in listed] == [created.Token, second.Token]
        assert plain(listed[0]) == plain(
            await call(recv, "GetReceiver", ReceiverToken=created.Token)
        )


async def test_bad_receiver_configurations_change_nothing_rx04_rx06(tmp_path: Path) -> None:
    """RX-04/RX-06 BadConfiguration: URI over MaximumRTSPURILength, modes, stream, scheme."""
    async with onvif_stack(tmp_path) as s:
        recv = s.client("receiver")
        token = (await call(recv, "CreateReceiver", Configuration=receiver_config())).Token
        before = await snapshot(s)
        bad = [
            receiver_config(uri=_uri(MAX_URI_CHARS + 1)),
            receiver_config(mode="Unknown"),
            receiver_config(mode="alwaysconnect"),
            receiver_config(stream="RTP-Multicast"),
            receiver_config(protocol="SCTP"),
            receiver_config(uri="ftp://192.0.2.10/live"),
        ]
        for config in bad:
            assert await fault(recv, "CreateReceiver", Configuration=config) == (
                BAD_CONFIGURATION
            ), config
            assert await fault(
                recv, "ConfigureReceiver", ReceiverToken=token, Configuration=config
            ) == (BAD_CONFIGURATION), config
        assert await snapshot(s) == before


async def test_set_receiver_mode_cycles_and_persists_rx07(tmp_path: Path) -> None:
    """RX-07, DTT 2-1-11/2-1-12: every mode in turn, only the mode changes; Unknown refused."""
    async with onvif_stack(tmp_path) as s:
        recv = s.client("receiver")
        sent = receiver_config(uri="rtsp://192.0.2.99:554/never", mode="NeverConnect")
        token = (await call(recv, "CreateReceiver", Configuration=sent)).Token
        for mode in ("AlwaysConnect", "AutoConnect", "NeverConnect", "AutoConnect"):
            await call(recv, "SetReceiverMode", ReceiverToken=token, Mode=mode)
            config = plain((await call(recv, "GetReceiver", ReceiverToken=token)).Configuration)
            assert config["Mode"] == mode
            assert config["MediaUri"] == sent["MediaUri"]
        before = await snapshot(s)
        for mode in ("Unknown", "Always"):
            # [ENGINE] no specific subcode is defined: env:Sender/ter:InvalidArgVal.
            got = await fault(recv, "SetReceiverMode", ReceiverToken=token, Mode=mode)
            assert got == ("Sender", ("InvalidArgVal",)), mode
        assert await snapshot(s) == before

    async with onvif_stack(tmp_path, generation=1) as s:
        recv = s.client("receiver")
        config = plain((await call(recv, "GetReceiver", ReceiverToken=token)).Configuration)
        assert (config["Mode"], config["MediaUri"]) == ("AutoConnect", sent["MediaUri"])


async def test_unknown_token_matrix_pf10(tmp_path: Path) -> None:
    """PF-10, RX-03/05/06/07/08: UnknownToken for every operation taking a receiver token."""
    async with onvif_stack(tmp_path) as s:
        recv = s.client("receiver")
        await call(recv, "CreateReceiver", Configuration=receiver_config())
        before = await snapshot(s)
        cases: list[tuple[str, dict[str, Any]]] = [
            ("GetReceiver", {"ReceiverToken": UNKNOWN}),
            ("DeleteReceiver", {"ReceiverToken": UNKNOWN}),
            ("ConfigureReceiver", {"ReceiverToken": UNKNOWN, "Configuration": receiver_config()}),
            # The token is checked before the configuration.
            (
                "ConfigureReceiver",
                {"ReceiverToken": UNKNOWN, "Configuration": receiver_config(mode="Unknown")},
            ),
            ("SetReceiverMode", {"ReceiverToken": UNKNOWN, "Mode": "AutoConnect"}),
            ("GetReceiverState", {"ReceiverToken": UNKNOWN}),
            ("GetReceiver", {"ReceiverToken": "r" * 65}),  # GEN-09: over-long token
        ]
        for operation, kwargs in cases:
            assert await fault(recv, operation, **kwargs) == UNKNOWN_TOKEN, (operation, kwargs)
        assert await snapshot(s) == before


async def test_delete_receiver_in_use_rx05(tmp_path: Path) -> None:
    """RX-05: CannotDeleteReceiver while a job uses it; afterwards deleted → UnknownToken."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        recording = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        receiver = (await call(recv, "CreateReceiver", Configuration=receiver_config())).Token
        job = await call(
            rec,
            "CreateRecordingJob",
            JobConfiguration=job_config(recording, sources=[{"SourceToken": {"Token": receiver}}]),
        )
        auto = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(recording))
        auto_receiver = auto.JobConfiguration.Source[0].SourceToken.Token
        before = await snapshot(s)
        for token in (receiver, auto_receiver):
            assert await fault(recv, "DeleteReceiver", ReceiverToken=token) == (
                CANNOT_DELETE_RECEIVER
            )
        assert await snapshot(s) == before

        await call(rec, "DeleteRecordingJob", JobToken=job.JobToken)
        await call(recv, "DeleteReceiver", ReceiverToken=receiver)
        assert await fault(recv, "GetReceiver", ReceiverToken=receiver) == UNKNOWN_TOKEN
        assert await fault(recv, "GetReceiverState", ReceiverToken=receiver) == UNKNOWN_TOKEN
        assert [r.Token for r in await call(recv, "GetReceivers")] == [auto_receiver]


async def test_max_receivers_rx04_rx043(tmp_path: Path) -> None:
    """RX-04, RX-04.3, DTT 2-1-8: up to SupportedReceivers (auto ones count), then MaxReceivers."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        recording = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        await call(rec, "CreateRecordingJob", JobConfiguration=job_config(recording))
        for _ in range(MAX_RECEIVERS - 1):
            await call(recv, "CreateReceiver", Configuration=receiver_config())
        assert len(await call(recv, "GetReceivers")) == MAX_RECEIVERS
        before = await snapshot(s)
        assert await fault(recv, "CreateReceiver", Configuration=receiver_config()) == (
            MAX_RECEIVERS_FAULT
        )
        # RC-12: AutoCreateReceiver cannot create one either.
        assert await fault(rec, "CreateRecordingJob", JobConfiguration=job_config(recording)) == (
            MAX_RECEIVERS_FAULT
        )
        assert await snapshot(s) == before
