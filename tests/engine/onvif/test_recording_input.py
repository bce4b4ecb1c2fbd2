"""Recording Control input handling: missing/unparsable elements, post-IEC options, any text.

GEN-04 (InvalidArgs), RC-12.1 [ENGINE] (EventFilter/ScheduleToken refused) and a hypothesis
property that every XML-legal string is echoed unchanged (GEN-12), through the independent
client over HTTP Digest with schema-validated answers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.onvif.test_recording_support import (
    BAD_CONFIGURATION,
    INVALID_ARGS,
    call,
    onvif_stack,
    plain,
    raw_fault,
    recording_config,
    snapshot,
)
from tests.peers.onvif_zeep import validated_service


async def test_missing_mandatory_elements_are_invalid_args_gen04(tmp_path: Path) -> None:
    """GEN-04: a missing mandatory element or bad xs:int is Sender/InvalidArgs; no change."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        before = await snapshot(s)
        bodies = [
            "<trc:CreateRecording/>",
            "<trc:CreateRecording><trc:RecordingConfiguration><tt:Content>c</tt:Content>"
            "<tt:MaximumRetentionTime>PT0S</tt:MaximumRetentionTime>"
            "</trc:RecordingConfiguration></trc:CreateRecording>",
            f"<trc:SetRecordingConfiguration><trc:RecordingToken>{token}</trc:RecordingToken>"
            "</trc:SetRecordingConfiguration>",
            f"<trc:CreateTrack><trc:RecordingToken>{token}</trc:RecordingToken></trc:CreateTrack>",
            "<trc:CreateRecordingJob/>",
            "<trc:CreateRecordingJob><trc:JobConfiguration>"
            f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Mode>Idle</tt:Mode>"
            "</trc:JobConfiguration></trc:CreateRecordingJob>",
            # An unparsable xs:int is InvalidArgs too, never a silent None.
            "<trc:CreateRecordingJob><trc:JobConfiguration>"
            f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Mode>Idle</tt:Mode>"
            "<tt:Priority>high</tt:Priority></trc:JobConfiguration></trc:CreateRecordingJob>",
        ]
        for body in bodies:
            status, payload = await s.raw("recording", body)
            assert (status, raw_fault(payload)) == (400, INVALID_ARGS), body
        assert await snapshot(s) == before


async def test_post_iec_job_options_are_bad_configuration_rc12(tmp_path: Path) -> None:
    """RC-12.1 [ENGINE]: EventFilter (and ScheduleToken) present but unsupported."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        before = await snapshot(s)
        status, payload = await s.raw(
            "recording",
            "<trc:CreateRecordingJob><trc:JobConfiguration>"
            f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Mode>Idle</tt:Mode>"
            "<tt:Priority>1</tt:Priority>"
            "<tt:Source><tt:AutoCreateReceiver>true</tt:AutoCreateReceiver></tt:Source>"
            "<tt:EventFilter><tt:Filter><tt:Topic>tns1:VideoSource/MotionAlarm</tt:Topic>"
            "</tt:Filter></tt:EventFilter>"
            "</trc:JobConfiguration></trc:CreateRecordingJob>",
        )
        assert (status, raw_fault(payload)) == (400, BAD_CONFIGURATION)
        assert await snapshot(s) == before


#: XML 1.0 characters that survive a round trip unchanged (a bare CR is normalized to LF).
_XML_TEXT = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="\r\ufffe\uffff",
        min_codepoint=0x09,
    ).filter(lambda c: c in "\t\n" or c >= " "),
    max_size=40,
)
#: xs:anyURI is whiteSpace=collapse in the schema (both zeep sides apply it): no whitespace.
_URI_TEXT = st.text(
    st.characters(
        exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"], exclude_characters="\ufffe\uffff"
    ),
    max_size=40,
)


def _round_trip_property(stack_address: str) -> None:
    """GEN-12, SM-07: any legal text in every field is stored and echoed unchanged."""
    rec = validated_service("recording", stack_address, "admin", "admin-pw")

    @settings(max_examples=10, deadline=None)
    @given(
        name=_XML_TEXT.filter(lambda t: len(t) <= 64),
        source_id=_URI_TEXT,
        location=_XML_TEXT,
        description=_XML_TEXT,
        address=_URI_TEXT,
        content=_XML_TEXT,
    )
    def check(**fields: str) -> None:
        sent = recording_config(retention="PT0S", **fields)
        token = rec.CreateRecording(RecordingConfiguration=sent)
        try:
            got = plain(rec.GetRecordingConfiguration(RecordingToken=token))
            source = {k: v or "" for k, v in got["Source"].items() if k in sent["Source"]}
            assert source == sent["Source"]
            assert (got["Content"] or "") == sent["Content"]
        finally:
            rec.DeleteRecording(RecordingToken=token)

    check()


async def test_any_text_round_trips_verbatim_gen12(tmp_path: Path) -> None:
    """GEN-12 property: arbitrary XML-legal strings read back exactly (zeep client)."""
    async with onvif_stack(tmp_path) as s:
        await asyncio.to_thread(_round_trip_property, s.served.address("recording"))
        assert await call(s.client("recording"), "GetRecordings") == []
