"""Recording Control service through the independent zeep client over HTTP Digest (RC-01…RC-25).

Every answer is validated against the official XSDs (test_recording_support.Stack). Read-backs
zeep would re-serialize (xs:duration) are checked on raw SOAP exchanges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

from tests.engine.onvif.test_recording_support import (
    ACTION_NOT_SUPPORTED,
    BAD_CONFIGURATION,
    BAD_MODE,
    INVALID_ARGS,
    NO_RECORDING,
    NO_RECORDING_JOB,
    NO_TRACK,
    NS,
    PROFILE_TYPE,
    RECEIVER_TYPE,
    UNKNOWN,
    call,
    fault,
    job_config,
    onvif_stack,
    plain,
    raw_fault,
    receiver_config,
    recording_config,
    snapshot,
    texts,
)

DEFAULT_TRACKS = [("VIDEO001", "Video"), ("AUDIO001", "Audio"), ("META001", "Metadata")]


def _raw_recording_config(retention: str, **strings: str) -> str:
    """A tt:RecordingConfiguration body with exactly these texts (no client re-serialization)."""
    source = "".join(
        f"<tt:{name}>{strings.get(name, '')}</tt:{name}>"
        for name in ("SourceId", "Name", "Location", "Description", "Address")
    )
    return (
        f"<tt:Source>{source}</tt:Source><tt:Content>{strings.get('Content', '')}</tt:Content>"
        f"<tt:MaximumRetentionTime>{retention}</tt:MaximumRetentionTime>"
    )


async def test_capabilities_rc01_pf25(tmp_path: Path) -> None:
    """RC-01, §6.1, PF-25: PRE_AUTH; integers without '.0'; no export formats advertised."""
    async with onvif_stack(tmp_path) as s:
        caps = await call(s.anonymous("recording"), "GetServiceCapabilities")
        assert caps.DynamicRecordings and caps.DynamicTracks and caps.Options
        assert caps.MetadataRecording and caps.MaxRecordingJobs == 64
        assert caps.Encoding == ["H264", "H265", "JPEG", "G711", "AAC"]
        payload = await s.raw_ok("recording", "<trc:GetServiceCapabilities/>")
        el = payload.find("trc:Capabilities", NS)
        assert el is not None
        assert el.get("MaxRecordings") == "32"
        assert (el.get("MaxRate"), el.get("MaxTotalRate")) == ("16384", "262144")
        assert el.get("SupportedExportFileFormats") is None
        assert s.served.server.faults == 0


async def test_fresh_recording_in_every_read_rc02_pf08(tmp_path: Path) -> None:
    """RC-02.1, RC-04, RC-06, RC-07, RC-10, PF-08: an empty recording reads back complete."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        (item,) = await call(rec, "GetRecordings")
        assert item.RecordingToken == token
        assert [(t.TrackToken, t.Configuration.TrackType) for t in item.Tracks.Track] == (
            DEFAULT_TRACKS
        )
        # zeep reads an empty element as None; the raw answer below shows it is present.
        assert all(not t.Configuration.Description for t in item.Tracks.Track)
        config = await call(rec, "GetRecordingConfiguration", RecordingToken=token)
        assert plain(config) == plain(item.Configuration)
        for track, kind in DEFAULT_TRACKS:
            got = await call(rec, "GetTrackConfiguration", RecordingToken=token, TrackToken=track)
            assert (got.TrackType, got.Description or "") == (kind, "")
        options = await call(rec, "GetRecordingOptions", RecordingToken=token)
        assert options.Job.Spare == 64
        assert options.Track.SpareTotal == 13
        assert options.Track.SpareVideo == options.Track.SpareAudio == 13
        assert options.Job.CompatibleSources is None  # RC-07.4: an NVR-type engine omits it

        # Mandatory empty strings are present as empty elements, never omitted (PF-08).
        empty = recording_config(
            name="", source_id="", location="", description="", address="", content=""
        )
        bare = await call(rec, "CreateRecording", RecordingConfiguration=empty)
        payload = await s.raw_ok("recording", "<trc:GetRecordings/>")
        (bare_item,) = [
            i
            for i in payload.findall("trc:RecordingItem", NS)
            if texts(i, "tt:RecordingToken") == [bare]
        ]
        for name in ("SourceId", "Name", "Location", "Description", "Address"):
            assert texts(bare_item, f"tt:Configuration/tt:Source/tt:{name}") == [""]
        assert texts(bare_item, "tt:Configuration/tt:Content") == [""]
        descriptions = texts(bare_item, "tt:Tracks/tt:Track/tt:Configuration/tt:Description")
        assert descriptions == ["", "", ""]


async def test_recording_without_tracks_keeps_tracks_element_rc04_pf08(tmp_path: Path) -> None:
    """RC-04.2: Tracks is mandatory even when a recording has none (an empty <tt:Tracks/>)."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        for track, _kind in DEFAULT_TRACKS:
            await call(rec, "DeleteTrack", RecordingToken=token, TrackToken=track)
        payload = await s.raw_ok("recording", "<trc:GetRecordings/>")
        tracks = payload.findall("trc:RecordingItem/tt:Tracks", NS)
        assert len(tracks) == 1 and len(tracks[0]) == 0
        (item,) = await call(rec, "GetRecordings")
        assert item.Tracks is None or item.Tracks.Track == []  # zeep: an empty element is None
        options = await call(rec, "GetRecordingOptions", RecordingToken=token)
        assert options.Track.SpareTotal == 16


async def test_configuration_read_back_verbatim_gen12_pf07(tmp_path: Path) -> None:
    """RC-02.3, RC-05.2, GEN-12, PF-07: Name 20, SourceId/Address 128 chars, PT60M echoed."""
    strings = {
        "SourceId": "urn:" + "s" * 124,
        "Name": "N" * 20,
        "Location": "  Tor Nord — Einfahrt  ",
        "Description": "Kamera 1 &amp; 2",
        "Address": "http://192.0.2.1/" + "a" * 111,
        "Content": "ünïcödé content ✓",
    }
    expected = {k: v.replace("&amp;", "&") for k, v in strings.items()}
    assert len(expected["SourceId"]) == len(expected["Address"]) == 128
    async with onvif_stack(tmp_path) as s:
        created = await s.raw_ok(
            "recording",
            "<trc:CreateRecording><trc:RecordingConfiguration>"
            f"{_raw_recording_config('PT60M', **strings)}"
            "</trc:RecordingConfiguration></trc:CreateRecording>",
        )
        (token,) = texts(created, "trc:RecordingToken")

        def check(config: etree._Element, retention: str) -> None:
            for name in ("SourceId", "Name", "Location", "Description", "Address"):
                assert texts(config, f"tt:Source/tt:{name}") == [expected[name]], name
            assert texts(config, "tt:Content") == [expected["Content"]]
            assert texts(config, "tt:MaximumRetentionTime") == [retention]

        got = await s.raw_ok(
            "recording",
            f"<trc:GetRecordingConfiguration><trc:RecordingToken>{token}</trc:RecordingToken>"
            "</trc:GetRecordingConfiguration>",
        )
        config = got.find("trc:RecordingConfiguration", NS)
        assert config is not None
        check(config, "PT60M")
        listed = await s.raw_ok("recording", "<trc:GetRecordings/>")
        item = listed.find("trc:RecordingItem/tt:Configuration", NS)
        assert item is not None
        check(item, "PT60M")

        # RC-05: full replacement, a long-form duration also comes back as sent.
        await s.raw_ok(
            "recording",
            f"<trc:SetRecordingConfiguration><trc:RecordingToken>{token}</trc:RecordingToken>"
            "<trc:RecordingConfiguration>"
            f"{_raw_recording_config('P0Y0M0DT0H0M10.000S', **strings)}"
            "</trc:RecordingConfiguration></trc:SetRecordingConfiguration>",
        )
        got = await s.raw_ok(
            "recording",
            f"<trc:GetRecordingConfiguration><trc:RecordingToken>{token}</trc:RecordingToken>"
            "</trc:GetRecordingConfiguration>",
        )
        config = got.find("trc:RecordingConfiguration", NS)
        assert config is not None
        check(config, "P0Y0M0DT0H0M10.000S")
        recording = await s.jobs.recording(token)
        assert recording.max_retention_ns == 10 * 10**9


async def test_bad_recording_configurations_change_nothing_rc02_rc05(tmp_path: Path) -> None:
    """RC-02/RC-05 BadConfiguration (Name > 64, negative retention), GEN-04 InvalidArgs."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        before = await snapshot(s)
        too_long = recording_config(name="N" * 65)
        assert await fault(rec, "CreateRecording", RecordingConfiguration=too_long) == (
            BAD_CONFIGURATION
        )
        assert await fault(
            rec, "SetRecordingConfiguration", RecordingToken=token, RecordingConfiguration=too_long
        ) == (BAD_CONFIGURATION)
        for retention, expected in (("-PT1S", BAD_CONFIGURATION), ("one hour", INVALID_ARGS)):
            body = _raw_recording_config(retention, Name="x")
            status, payload = await s.raw(
                "recording",
                f"<trc:CreateRecording><trc:RecordingConfiguration>{body}"
                "</trc:RecordingConfiguration></trc:CreateRecording>",
            )
            assert status == 400
            assert raw_fault(payload) == expected, retention
            status, payload = await s.raw(
                "recording",
                f"<trc:SetRecordingConfiguration><trc:RecordingToken>{token}"
                f"</trc:RecordingToken><trc:RecordingConfiguration>{body}"
                "</trc:RecordingConfiguration></trc:SetRecordingConfiguration>",
            )
            assert raw_fault(payload) == expected, retention
        assert await snapshot(s) == before


async def test_unknown_token_matrix_pf10(tmp_path: Path) -> None:
    """PF-10, Appendix C #3: each operation with an unknown token names the exact subcode."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        job = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(token))
        before = await snapshot(s)
        track = {"TrackType": "Video", "Description": "x"}
        cases: list[tuple[str, dict[str, Any], tuple[str, tuple[str, ...]]]] = [
            ("DeleteRecording", {"RecordingToken": UNKNOWN}, NO_RECORDING),
            (
                "SetRecordingConfiguration",
                {"RecordingToken": UNKNOWN, "RecordingConfiguration": recording_config()},
                NO_RECORDING,
            ),
            ("GetRecordingConfiguration", {"RecordingToken": UNKNOWN}, NO_RECORDING),
            ("GetRecordingOptions", {"RecordingToken": UNKNOWN}, NO_RECORDING),
            ("CreateTrack", {"RecordingToken": UNKNOWN, "TrackConfiguration": track}, NO_RECORDING),
            ("DeleteTrack", {"RecordingToken": UNKNOWN, "TrackToken": "VIDEO001"}, NO_RECORDING),
            ("DeleteTrack", {"RecordingToken": token, "TrackToken": UNKNOWN}, NO_TRACK),
            (
                "GetTrackConfiguration",
                {"RecordingToken": UNKNOWN, "TrackToken": UNKNOWN},
                NO_RECORDING,
            ),
            ("GetTrackConfiguration", {"RecordingToken": token, "TrackToken": UNKNOWN}, NO_TRACK),
            (
                "SetTrackConfiguration",
                {"RecordingToken": UNKNOWN, "TrackToken": "VIDEO001", "TrackConfiguration": track},
                NO_RECORDING,
            ),
            (
                "SetTrackConfiguration",
                {"RecordingToken": token, "TrackToken": UNKNOWN, "TrackConfiguration": track},
                NO_TRACK,
            ),
            ("CreateRecordingJob", {"JobConfiguration": job_config(UNKNOWN)}, NO_RECORDING),
            ("DeleteRecordingJob", {"JobToken": UNKNOWN}, NO_RECORDING_JOB),
            (
                "SetRecordingJobConfiguration",
                {"JobToken": UNKNOWN, "JobConfiguration": job_config(token)},
                NO_RECORDING_JOB,
            ),
            ("GetRecordingJobConfiguration", {"JobToken": UNKNOWN}, NO_RECORDING_JOB),
            ("SetRecordingJobMode", {"JobToken": UNKNOWN, "Mode": "Active"}, NO_RECORDING_JOB),
            ("GetRecordingJobState", {"JobToken": UNKNOWN}, NO_RECORDING_JOB),
            # GEN-09: an over-long token is the same "unknown token" fault.
            ("GetRecordingConfiguration", {"RecordingToken": "r" * 65}, NO_RECORDING),
            ("GetRecordingJobState", {"JobToken": "j" * 65}, NO_RECORDING_JOB),
        ]
        for operation, kwargs, expected in cases:
            assert await fault(rec, operation, **kwargs) == expected, (operation, kwargs)
        assert await snapshot(s) == before
        assert (await call(rec, "GetRecordingJobState", JobToken=job.JobToken)).State == "Idle"


async def test_tracks_rc08_to_rc11(tmp_path: Path) -> None:
    """RC-08…RC-11: VIDEO002, Extended → BadConfiguration, only Description changes."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        new = await call(
            rec,
            "CreateTrack",
            RecordingToken=token,
            TrackConfiguration={"TrackType": "Video", "Description": "second view"},
        )
        assert new == "VIDEO002"
        meta = await call(
            rec,
            "CreateTrack",
            RecordingToken=token,
            TrackConfiguration={"TrackType": "Metadata", "Description": ""},
        )
        assert meta == "META002"
        before = await snapshot(s)
        extended = {"TrackType": "Extended", "Description": "x"}
        assert await fault(
            rec, "CreateTrack", RecordingToken=token, TrackConfiguration=extended
        ) == (BAD_CONFIGURATION)
        assert await fault(
            rec,
            "SetTrackConfiguration",
            RecordingToken=token,
            TrackToken="VIDEO002",
            TrackConfiguration=extended,
        ) == (BAD_CONFIGURATION)
        assert await snapshot(s) == before

        # RC-11.1: the type in the request is ignored, the description replaced.
        await call(
            rec,
            "SetTrackConfiguration",
            RecordingToken=token,
            TrackToken="VIDEO002",
            TrackConfiguration={"TrackType": "Audio", "Description": "  renamed  "},
        )
        got = await call(rec, "GetTrackConfiguration", RecordingToken=token, TrackToken="VIDEO002")
        assert (got.TrackType, got.Description) == ("Video", "  renamed  ")
        (item,) = await call(rec, "GetRecordings")
        listed = {t.TrackToken: plain(t.Configuration) for t in item.Tracks.Track}
        assert listed["VIDEO002"] == plain(got)  # RC-10.1

        await call(rec, "DeleteTrack", RecordingToken=token, TrackToken="VIDEO002")
        assert await fault(
            rec, "GetTrackConfiguration", RecordingToken=token, TrackToken="VIDEO002"
        ) == (NO_TRACK)
        (item,) = await call(rec, "GetRecordings")
        assert [t.TrackToken for t in item.Tracks.Track] == [
            "VIDEO001",
            "AUDIO001",
            "META001",
            "META002",
        ]


async def test_recording_job_lifecycle_rc12_to_rc18_pf24(tmp_path: Path) -> None:
    """RC-12…RC-18, PF-24, A.4: AutoCreateReceiver resolved and never echoed; full replacement."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        created = await s.raw_ok(
            "recording",
            "<trc:CreateRecordingJob><trc:JobConfiguration>"
            f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Mode>Idle</tt:Mode>"
            "<tt:Priority>1</tt:Priority>"
            "<tt:Source><tt:AutoCreateReceiver>true</tt:AutoCreateReceiver></tt:Source>"
            "</trc:JobConfiguration></trc:CreateRecordingJob>",
        )
        assert b"AutoCreateReceiver" not in etree.tostring(created)
        (job,) = texts(created, "trc:JobToken")
        source = created.find("trc:JobConfiguration/tt:Source", NS)
        assert source is not None
        reference = source.find("tt:SourceToken", NS)
        assert reference is not None and reference.get("Type") == RECEIVER_TYPE
        (auto,) = texts(reference, "tt:Token")
        bindings = [
            (texts(t, "tt:SourceTag"), texts(t, "tt:Destination"))
            for t in source.findall("tt:Tracks", NS)
        ]
        assert [(tag, dest) for (tag,), (dest,) in bindings] == [
            ("video", "VIDEO001"),
            ("audio", "AUDIO001"),
            ("metadata", "META001"),
        ]
        state = await call(recv, "GetReceiverState", ReceiverToken=auto)
        assert (state.State, state.AutoCreated) == ("NotConnected", True)
        listed = await s.raw_ok("recording", "<trc:GetRecordingJobs/>")
        assert b"AutoCreateReceiver" not in etree.tostring(listed)

        (item,) = await call(rec, "GetRecordingJobs")
        assert item.JobToken == job
        config = await call(rec, "GetRecordingJobConfiguration", JobToken=job)
        assert plain(config) == plain(item.JobConfiguration)  # RC-14.1
        assert (config.Mode, config.Priority, config.RecordingToken) == ("Idle", 1, token)

        # RC-18: Idle job, one source, one Track per binding.
        status = await call(rec, "GetRecordingJobState", JobToken=job)
        assert (status.RecordingToken, status.State) == (token, "Idle")
        (src,) = status.Sources
        assert (src.SourceToken.Token, src.SourceToken.Type) == (auto, RECEIVER_TYPE)
        assert [(t.Destination, t.State) for t in src.Tracks.Track] == [
            ("VIDEO001", "Idle"),
            ("AUDIO001", "Idle"),
            ("META001", "Idle"),
        ]

        # RC-15: full replacement with explicit bindings; the answer mirrors the request.
        manual = (
            await call(recv, "CreateReceiver", Configuration=receiver_config(mode="NeverConnect"))
        ).Token
        replacement = job_config(
            token,
            priority=7,
            sources=[
                {
                    "SourceToken": {"Token": manual, "Type": RECEIVER_TYPE},
                    "Tracks": [{"SourceTag": "video", "Destination": "VIDEO001"}],
                }
            ],
        )
        answer = await call(
            rec, "SetRecordingJobConfiguration", JobToken=job, JobConfiguration=replacement
        )
        mirrored = plain(answer)
        assert mirrored["Priority"] == 7 and mirrored["Mode"] == "Idle"
        (only,) = mirrored["Source"]
        assert only["SourceToken"]["Token"] == manual
        assert only["SourceToken"]["Type"] == RECEIVER_TYPE
        assert [(t["SourceTag"], t["Destination"]) for t in only["Tracks"]] == [
            ("video", "VIDEO001")
        ]
        assert plain(await call(rec, "GetRecordingJobConfiguration", JobToken=job)) == mirrored
        # RC-15.3: the auto receiver no job references any more is gone.
        receivers = [r.Token for r in await call(recv, "GetReceivers")]
        assert receivers == [manual]

        # RC-17: BadMode for anything but Idle/Active (case-sensitive), nothing changes.
        before = await snapshot(s)
        for mode in ("active", "Paused", ""):
            assert await fault(rec, "SetRecordingJobMode", JobToken=job, Mode=mode) == BAD_MODE
        assert await snapshot(s) == before
        await call(rec, "SetRecordingJobMode", JobToken=job, Mode="Active")
        config = await call(rec, "GetRecordingJobConfiguration", JobToken=job)
        assert config.Mode == "Active"
        # The receiver never connects: Active mode, Idle state (SM-03).
        assert (await call(rec, "GetRecordingJobState", JobToken=job)).State == "Idle"

        await call(rec, "DeleteRecordingJob", JobToken=job)
        assert await call(rec, "GetRecordingJobs") == []
        assert await fault(rec, "GetRecordingJobConfiguration", JobToken=job) == NO_RECORDING_JOB
        # A receiver created by the client outlives the job.
        assert [r.Token for r in await call(recv, "GetReceivers")] == [manual]


async def test_bad_job_configurations_change_nothing_rc12_rc15(tmp_path: Path) -> None:
    """RC-12.1, RC-15: each invalid configuration is refused with its fault; no state change."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        other = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        receiver = (await call(recv, "CreateReceiver", Configuration=receiver_config())).Token
        job = (
            await call(
                rec,
                "CreateRecordingJob",
                JobConfiguration=job_config(token, sources=[{"SourceToken": {"Token": receiver}}]),
            )
        ).JobToken
        before = await snapshot(s)
        bad = [
            job_config(token, mode="Running"),
            job_config(token, mode="active"),
            job_config(token, priority=-1),
            job_config(token, sources=[{}]),  # neither SourceToken nor AutoCreateReceiver
            job_config(token, sources=[{"SourceToken": {"Token": UNKNOWN}}]),
            job_config(
                token, sources=[{"SourceToken": {"Token": "Profile1", "Type": PROFILE_TYPE}}]
            ),
            job_config(
                token,
                sources=[
                    {
                        "SourceToken": {"Token": receiver},
                        "Tracks": [{"SourceTag": "video", "Destination": "VIDEO009"}],
                    }
                ],
            ),
            job_config(
                token,
                sources=[
                    {
                        "SourceToken": {"Token": receiver},
                        "Tracks": [{"SourceTag": "video", "Destination": "VIDEO001"}] * 2,
                    }
                ],
            ),
            {**job_config(token), "ScheduleToken": "Schedule1"},
        ]
        for config in bad:
            assert await fault(rec, "CreateRecordingJob", JobConfiguration=config) == (
                BAD_CONFIGURATION
            ), config
            assert await fault(
                rec, "SetRecordingJobConfiguration", JobToken=job, JobConfiguration=config
            ) == (BAD_CONFIGURATION), config
        # RC-15: the recording of a job cannot change.
        assert await fault(
            rec, "SetRecordingJobConfiguration", JobToken=job, JobConfiguration=job_config(other)
        ) == (BAD_CONFIGURATION)
        assert await snapshot(s) == before


async def test_delete_recording_takes_jobs_and_auto_receivers_rc03(tmp_path: Path) -> None:
    """RC-03.1/RC-03.2: jobs and their auto receivers go; the token then answers NoRecording."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        recv = s.client("receiver")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        keep = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        job = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(token))
        kept_job = await call(rec, "CreateRecordingJob", JobConfiguration=job_config(keep))
        await call(rec, "DeleteRecording", RecordingToken=token)
        assert [i.RecordingToken for i in await call(rec, "GetRecordings")] == [keep]
        assert [j.JobToken for j in await call(rec, "GetRecordingJobs")] == [kept_job.JobToken]
        kept_receiver = kept_job.JobConfiguration.Source[0].SourceToken.Token
        assert [r.Token for r in await call(recv, "GetReceivers")] == [kept_receiver]
        assert await fault(rec, "GetRecordingConfiguration", RecordingToken=token) == NO_RECORDING
        assert await fault(rec, "GetRecordingJobState", JobToken=job.JobToken) == NO_RECORDING_JOB
        assert await fault(rec, "DeleteRecording", RecordingToken=token) == NO_RECORDING


async def test_post_iec_operations_not_supported_rc19_to_rc25(tmp_path: Path) -> None:
    """RC-19…RC-25, EX-06: export and segment operations answer ActionNotSupported."""
    async with onvif_stack(tmp_path) as s:
        rec = s.client("recording")
        token = await call(rec, "CreateRecording", RecordingConfiguration=recording_config())
        before = await snapshot(s)
        scope = {"IncludedRecordings": [token]}
        cases: list[tuple[str, dict[str, Any]]] = [
            (
                "ExportRecordedData",
                {
                    "SearchScope": scope,
                    "FileFormat": "ONVIF",
                    "StorageDestination": {"StorageToken": "Storage1"},
                },
            ),
            ("StopExportRecordedData", {"OperationToken": "op1"}),
            ("GetExportRecordedDataState", {"OperationToken": "op1"}),
            (
                "ListRecordedSegments",
                {
                    "Time": {"From": "2024-01-01T00:00:00Z", "Until": "2024-01-02T00:00:00Z"},
                    "RecordingToken": token,
                },
            ),
            ("StopExportRecordedSegments", {"OperationToken": "op1"}),
        ]
        for operation, kwargs in cases:
            assert await fault(rec, operation, **kwargs) == ACTION_NOT_SUPPORTED, operation
        assert await fault(
            rec,
            "OverrideSegmentDuration",
            TargetSegmentDuration="PT10S",
            Expiration="PT1H",
            RecordingConfiguration=token,
        ) == ("Receiver", ("ActionNotSupported", "NotImplemented"))
        assert await snapshot(s) == before
