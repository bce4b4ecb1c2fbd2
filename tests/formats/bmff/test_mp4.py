"""The fragmented MP4 export writer: golden bytes, layout, timing arithmetic, FFmpeg round trips."""

from __future__ import annotations

import fractions
import io
import itertools
import subprocess
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.media import Codec, CodecParams
from app.core.time import NS_PER_MS, NS_PER_SECOND, NS_PER_US
from app.formats.bmff import mp4
from app.formats.bmff.mp4 import Mp4Error, Mp4Writer, Sample, TrackSpec, to_ticks
from app.formats.bmff.sample_entry import SampleEntryError
from app.formats.stamp import read_stamp
from tests.formats.bmff import layout, streams
from tests.formats.bmff.streams import T0

GOLDEN = Path(__file__).parent / "golden" / "export_v1.hex"
CREATED = T0 + 3600 * NS_PER_SECOND

# A tiny baseline-profile SPS/PPS pair: enough for avcC, never decoded.
H264_FAKE = CodecParams(
    Codec.H264, 90_000, 320, 240, parameter_sets=(b"\x67\x42\xc0\x1e\xd9", b"\x68\xce\x3c\x80")
)
AAC_16K = CodecParams(Codec.AAC, 16_000, sample_rate=16_000, channels=1, audio_config=b"\x14\x08")
METADATA = CodecParams(Codec.METADATA, 90_000)
PCMU = CodecParams(Codec.PCMU, 8_000, sample_rate=8_000, channels=1)
XML = b'<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"/>'


def golden_file() -> bytes:
    """Three tracks, a 2 s gap in the video, deterministic bytes."""
    out = io.BytesIO()
    tracks = [TrackSpec(1, H264_FAKE), TrackSpec(2, AAC_16K), TrackSpec(3, METADATA)]
    writer = Mp4Writer(out, tracks, origin_ns=T0, creation_ns=CREATED)
    events: list[tuple[int, int, Sample]] = []
    for i in range(10):
        run, wall = (
            (0, T0 + i * 40 * NS_PER_MS)
            if i < 6
            else (1, T0 + 2 * NS_PER_SECOND + i * 40 * NS_PER_MS)
        )
        events.append(
            (
                wall,
                1,
                Sample(bytes([0, 0, 0, 2, 0x65 if i % 3 == 0 else 0x41, i]), wall, i % 3 == 0, run),
            )
        )
    for k in range(5):
        wall = T0 + k * 64 * NS_PER_MS
        events.append((wall, 2, Sample(bytes([0x21, k, k]), wall, True)))
    for j in range(2):
        wall = T0 + j * 150 * NS_PER_MS
        events.append((wall, 3, Sample(XML, wall, True)))
    for _, track, sample in sorted(events, key=lambda e: (e[0], e[1])):
        writer.add(track, sample)
    writer.finish()
    return out.getvalue()


def test_golden_bytes() -> None:
    """Any byte change of the layout must bump FORMAT_VERSION and re-record this fixture."""
    assert mp4.FORMAT_VERSION == 1
    expected = bytes.fromhex("".join(GOLDEN.read_text().split()))
    assert golden_file() == expected


def test_layout_of_golden_file() -> None:
    data = golden_file()
    f = layout.read(data)
    assert f.top[:2] == [b"ftyp", b"moov"]
    assert f.top[2:] == [b"moof", b"mdat"] * ((len(f.top) - 2) // 2)
    assert data[8:12] == b"isom" and data[16:32] == b"isomiso6mp41avc1"
    assert f.sample_entries == {1: b"avc3", 2: b"mp4a", 3: b"metx"}
    assert f.timescales == {1: 90_000, 2: 16_000, 3: 90_000}
    # Every traf has a 64-bit tfdt; sequence numbers increase by one.
    assert {version for _, _, version, _ in f.trafs} == {1}
    sequences = sorted({seq for seq, *_ in f.trafs})
    assert sequences == list(range(1, len(sequences) + 1))
    video = f.samples[1]
    assert [s.data[5] for s in video] == list(range(10))
    assert [s.flags for s in video[:4]] == [0x02000000, 0x01010000, 0x01010000, 0x02000000]
    # Decode times are the wall clocks; the gap is a time jump, not a stretched sample.
    walls = [i * 40 for i in range(6)] + [2000 + i * 40 for i in range(6, 10)]
    assert [s.decode_ticks for s in video] == [w * 90 for w in walls]
    assert [s.duration for s in video] == [3600] * 10
    assert video[5].fragment != video[6].fragment
    assert [s.decode_ticks for s in f.samples[2]] == [k * 1024 for k in range(5)]
    assert [s.duration for s in f.samples[3]] == [13_500, 13_500]
    assert f.samples[3][0].data == XML
    assert f.mehd_duration == 2400  # ms: the last video frame ends at 2.4 s


def test_metx_entry_carries_onvif_namespace() -> None:
    data = golden_file()
    at = data.index(b"metx")
    assert data[at + 4 : at + 12] == bytes(6) + b"\x00\x01"
    assert data[at + 12 : at + 48] == b"\x00http://www.onvif.org/ver10/schema\x00\x00"


def test_metadata_track_keeps_onvif_handler_despite_vlc() -> None:
    """EX-07: handler `meta`, `nmhd`, `metx`. VLC 3 plays our exports smoothly when this track
    has a handler it knows (`text`), but that would break EX-07; docs/export.md explains why
    the VLC slowdown is VLC's fragmented-demux PCR bug and not something to work around here."""
    data = golden_file()
    handlers = [data[i + 12 : i + 16] for i in _all(data, b"hdlr")]
    assert handlers == [b"vide", b"soun", b"meta"]
    assert len(list(_all(data, b"nmhd"))) == 1
    assert not list(_all(data, b"sthd"))
    # One trex per track, metadata included: VLC's trouble is not a missing or odd trex.
    trex = [data[i + 8 : i + 28] for i in _all(data, b"trex")]
    assert trex == [bytes([0, 0, 0, t, 0, 0, 0, 1]) + bytes(12) for t in (1, 2, 3)]


def _all(data: bytes, kind: bytes) -> list[int]:
    """Offsets of every box type `kind` (its 4-byte type field) in `data`."""
    found, at = [], data.find(kind)
    while at >= 0:
        found.append(at)
        at = data.find(kind, at + 1)
    return found


# ---------------------------------------------------------------- timing arithmetic

steps = st.lists(
    st.tuples(st.integers(0, 3 * NS_PER_SECOND), st.booleans()), min_size=1, max_size=60
)


@settings(max_examples=150)
@given(steps=steps, timescale=st.sampled_from([8_000, 16_000, 44_100, 90_000]))
def test_decode_times_follow_wall_clocks(steps: list[tuple[int, bool]], timescale: int) -> None:
    """Decode time = rounded wall offset, durations never overlap, and runs stay contiguous."""
    params = H264_FAKE
    if timescale != mp4.VIDEO_TIMESCALE:
        params = CodecParams(Codec.AAC, timescale, sample_rate=timescale, audio_config=b"\x14\x08")
    out = io.BytesIO()
    origin = T0 + 12_345
    writer = Mp4Writer(out, [TrackSpec(7, params)], origin_ns=origin, creation_ns=T0)
    walls, runs = [], []
    wall, run = origin, 0
    for i, (step, new_run) in enumerate(steps):
        if i:
            wall += step
            run += new_run
        walls.append(wall)
        runs.append(run)
        writer.add(7, Sample(i.to_bytes(2, "big"), wall, True, run))
    summary = writer.finish()
    samples = layout.read(out.getvalue()).samples[7]
    assert [int.from_bytes(s.data, "big") for s in samples] == list(range(len(steps)))
    assert [s.decode_ticks for s in samples] == [to_ticks(w, origin, timescale) for w in walls]
    for i, (a, b) in enumerate(itertools.pairwise(samples)):
        assert a.decode_ticks + a.duration <= b.decode_ticks
        jump = walls[i + 1] - walls[i] > mp4.MAX_STEP_NS
        if runs[i] == runs[i + 1] and not jump:
            assert a.decode_ticks + a.duration == b.decode_ticks
        else:
            assert a.fragment != b.fragment
    assert len(summary.tracks[0].gaps) == sum(
        runs[i] != runs[i + 1] or walls[i + 1] - walls[i] > mp4.MAX_STEP_NS
        for i in range(len(steps) - 1)
    )
    assert summary.tracks[0].end_ticks == samples[-1].decode_ticks + samples[-1].duration


def test_successor_sets_last_duration_exactly() -> None:
    out = io.BytesIO()
    writer = Mp4Writer(out, [TrackSpec(1, H264_FAKE)], origin_ns=T0, creation_ns=T0)
    writer.add(1, Sample(b"\0\0\0\1\x65", T0, True))
    writer.add(1, Sample(b"\0\0\0\1\x41", T0 + 40 * NS_PER_MS, False))
    writer.finish({1: Sample(b"", T0 + 73 * NS_PER_MS, True)})
    assert [s.duration for s in layout.read(out.getvalue()).samples[1]] == [3600, 2970]


def test_fragment_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mp4, "MAX_FRAGMENT_BYTES", 1000)
    out = io.BytesIO()
    writer = Mp4Writer(out, [TrackSpec(1, H264_FAKE)], origin_ns=T0, creation_ns=T0)
    payloads = [bytes([i]) * 300 for i in range(20)]
    for i, data in enumerate(payloads):
        writer.add(1, Sample(data, T0 + i * 40 * NS_PER_MS, i == 0))
    summary = writer.finish()
    samples = layout.read(out.getvalue()).samples[1]
    assert [s.data for s in samples] == payloads
    assert summary.fragments == 5
    assert [s.decode_ticks for s in samples] == [i * 3600 for i in range(20)]


def test_writer_refuses_bad_input() -> None:
    out = io.BytesIO()
    with pytest.raises(SampleEntryError, match="no NAL unit of type 7"):
        Mp4Writer(
            out,
            [TrackSpec(1, CodecParams(Codec.H264, 90_000, 64, 64))],
            origin_ns=T0,
            creation_ns=T0,
        )
    with pytest.raises(Mp4Error, match="unique"):
        Mp4Writer(
            out, [TrackSpec(1, METADATA), TrackSpec(1, METADATA)], origin_ns=T0, creation_ns=T0
        )
    with pytest.raises(SampleEntryError, match="AudioSpecificConfig"):
        Mp4Writer(
            out,
            [TrackSpec(1, CodecParams(Codec.AAC, 8000, sample_rate=8000))],
            origin_ns=T0,
            creation_ns=T0,
        )
    writer = Mp4Writer(io.BytesIO(), [TrackSpec(1, METADATA)], origin_ns=T0, creation_ns=T0)
    with pytest.raises(Mp4Error, match="precedes the file's media origin"):
        writer.add(1, Sample(XML, T0 - 1, True))
    writer.add(1, Sample(XML, T0 + 10, True))
    with pytest.raises(Mp4Error, match="goes back in time"):
        writer.add(1, Sample(XML, T0 + 5, True))
    with pytest.raises(Mp4Error, match="no track 9"):
        writer.add(9, Sample(XML, T0 + 20, True))
    writer.finish()
    with pytest.raises(Mp4Error, match="finished"):
        writer.add(1, Sample(XML, T0 + 30, True))


# ---------------------------------------------------------------- FFmpeg reads what we write


def write_av(tmp_path: Path, video: streams.Stream | None, audio: streams.Stream | None) -> Path:
    tracks, events = [], []
    if video is not None:
        tracks.append(TrackSpec(1, video.params))
        for i, unit in enumerate(video.units):
            wall = streams.capture_ns(i)
            events.append((wall, 1, Sample(unit.data, wall, unit.keyframe)))
    if audio is not None:
        tracks.append(TrackSpec(2, audio.params))
        rate = audio.params.sample_rate
        per_unit = len(audio.units[0].data) if audio.params.codec is Codec.PCMU else 1024
        for k, unit in enumerate(audio.units):
            wall = T0 + k * per_unit * NS_PER_SECOND // rate
            events.append((wall, 2, Sample(unit.data, wall, True)))
    path = tmp_path / "out.mp4"
    with path.open("wb") as f:
        writer = Mp4Writer(f, tracks, origin_ns=T0, creation_ns=CREATED)
        for _, track, sample in sorted(events, key=lambda e: (e[0], e[1])):
            writer.add(track, sample)
        writer.finish()
    return path


@pytest.mark.parametrize("codec", [Codec.H264, Codec.H265, Codec.JPEG])
def test_pyav_decodes_every_frame_at_its_wall_clock(tmp_path: Path, codec: Codec) -> None:
    video = streams.video(codec, 30)
    path = write_av(tmp_path, video, streams.aac(40))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        assert tb == fractions.Fraction(1, 90_000)
        pts, stamps = [], []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            pts.append(packet.pts)
            for frame in packet.decode():
                stamps.append(read_stamp(frame.to_ndarray(format="gray")))
        assert len(pts) == 30
        assert pts == [to_ticks(streams.capture_ns(i), T0, 90_000) for i in range(30)]
        assert [s.index for s in stamps] == list(range(30))
        assert [s.capture_us * NS_PER_US for s in stamps] == [
            streams.capture_ns(i) for i in range(30)
        ]


def test_pyav_reads_aac_and_g711(tmp_path: Path) -> None:
    path = write_av(tmp_path, None, streams.aac(40))
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.size]
        assert [p.pts for p in packets] == [k * 1024 for k in range(40)]
        assert container.streams.audio[0].codec_context.sample_rate == 16_000
    tone = streams.Stream(PCMU, tuple(streams.Unit(bytes([k]) * 160, True) for k in range(25)))
    path = write_av(tmp_path, None, tone)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "pcm_mulaw"
        data = b"".join(bytes(p) for p in container.demux(audio=0) if p.size)
        assert data == b"".join(bytes([k]) * 160 for k in range(25))
    with av.open(str(path)) as container:
        assert sum(f.samples for f in container.decode(audio=0)) == 25 * 160


def test_ffprobe_reports_duration_and_streams(tmp_path: Path) -> None:
    path = write_av(tmp_path, streams.video(Codec.H264, 30), streams.aac(40))
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_tag_string",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.split()
    assert lines[:2] == ["avc3", "mp4a"]
    assert float(lines[2]) == pytest.approx(40 * 1024 / 16_000, abs=0.002)
