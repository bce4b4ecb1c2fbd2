"""RecordingSummary, RecordingInformation, MediaAttributes and search scopes, from the store.

Every time value comes from the frame index (`Store.track_media`), so EarliestRecording and
LatestRecording equal min(DataFrom) and max(DataTo) exactly, and the history events' edges
equal them too (PF-06, EV-12).

The information of every recording is read once per store revision (`Store.revision` grows
after every write-thread call: flush cycle, catalog, jobs, retention) and shared by the
summary, information, scope and media-attribute answers until the store changes: those
reads were most of a search client's CPU (bench/soap --mix engine).
"""

from __future__ import annotations

import weakref

from app.core.media import Codec, TrackKind
from app.core.time import NS_PER_SECOND, format_iso
from app.engine.revisions import PerRevision
from app.engine.search.model import (
    AudioAttributes,
    InvalidFilterError,
    InvalidSourceError,
    InvalidTokenError,
    MediaAttributes,
    MetadataAttributes,
    RecordingInformation,
    RecordingSummary,
    SearchScope,
    SourceInformation,
    TrackAttributes,
    TrackInformation,
    VideoAttributes,
)
from app.engine.storage import Recording, Store, TrackMedia
from app.protocols.onvif.xpath import Node, XPathError, compile_filter

#: Frames around the asked time that GetMediaAttributes measures bitrate and frame rate over.
RATE_WINDOW_NS = 2 * NS_PER_SECOND
#: Most frames read for that measurement (bounds the cost of a very high frame rate).
RATE_WINDOW_FRAMES = 500

#: RS-04.3: tt:VideoEncoding / tt:AudioEncoding values, else the MIME subtype.
_ENCODINGS = {
    Codec.H264: "H264",
    Codec.H265: "H265",
    Codec.JPEG: "JPEG",
    Codec.AAC: "AAC",
    Codec.PCMU: "G711",
    Codec.PCMA: "G711",
}


def _information(rec: Recording, media: list[TrackMedia]) -> RecordingInformation:
    by_token = {m.track: m for m in media}
    tracks = []
    for track in rec.tracks:
        m = by_token.get(track.token)
        if m is None or m.earliest_ns is None or m.latest_ns is None:
            continue  # RS-03.2: only tracks that hold data
        tracks.append(
            TrackInformation(track.token, track.kind, track.description, m.earliest_ns, m.latest_ns)
        )
    cfg = rec.config
    return RecordingInformation(
        token=rec.token,
        source=SourceInformation(
            cfg.source_id, cfg.name, cfg.location, cfg.description, cfg.address
        ),
        earliest_ns=min((t.data_from_ns for t in tracks), default=None),
        latest_ns=max((t.data_to_ns for t in tracks), default=None),
        content=cfg.content,
        tracks=tuple(tracks),
        status=rec.status.value,
    )


#: Per store: every recording's information, read once per store revision.
_INFORMATION: weakref.WeakKeyDictionary[Store, PerRevision[tuple[RecordingInformation, ...]]] = (
    weakref.WeakKeyDictionary()
)


async def all_recording_information(store: Store) -> list[RecordingInformation]:
    """Every recording, in creation order (one store read per store revision)."""
    cache = _INFORMATION.get(store)
    if cache is None:
        cache = _INFORMATION[store] = PerRevision(lambda: _read_information(store))
    return list(await cache.get(store.revision))


async def _read_information(store: Store) -> tuple[RecordingInformation, ...]:
    recordings = await store.recordings()
    media: dict[str, list[TrackMedia]] = {}
    for m in await store.track_media():
        media.setdefault(m.recording, []).append(m)
    return tuple(_information(rec, media.get(rec.token, [])) for rec in recordings)


async def revised_information(store: Store) -> dict[str, RecordingInformation]:
    """Every recording's current information by token (one store read per store revision)."""
    return {info.token: info for info in await all_recording_information(store)}


async def recording_information(store: Store, token: str) -> RecordingInformation:
    """RS-03; an unknown token is InvalidToken (not NoRecording)."""
    for info in await all_recording_information(store):
        if info.token == token:
            return info
    raise InvalidTokenError(f"no recording {token!r}")


async def recording_summary(store: Store, now_ns: int) -> RecordingSummary:
    """RS-02: data extent over all recordings; both "now" when nothing is recorded."""
    infos = await all_recording_information(store)
    starts = [i.earliest_ns for i in infos if i.earliest_ns is not None]
    ends = [i.latest_ns for i in infos if i.latest_ns is not None]
    if not starts or not ends:
        return RecordingSummary(now_ns, now_ns, len(infos))
    return RecordingSummary(min(starts), max(ends), len(infos))


def information_document(info: RecordingInformation) -> Node:
    """The tt:RecordingInformation document a RecordingInformationFilter sees (XP-01)."""

    def leaf(name: str, text: str) -> Node:
        return Node(name, text)

    children = [leaf("RecordingToken", info.token)]
    src = info.source
    children.append(
        Node(
            "Source",
            children=(
                leaf("SourceId", src.source_id),
                leaf("Name", src.name),
                leaf("Location", src.location),
                leaf("Description", src.description),
                leaf("Address", src.address),
            ),
        )
    )
    if info.earliest_ns is not None and info.latest_ns is not None:
        children.append(leaf("EarliestRecording", format_iso(info.earliest_ns)))
        children.append(leaf("LatestRecording", format_iso(info.latest_ns)))
    children.append(leaf("Content", info.content))
    for t in info.tracks:
        children.append(
            Node(
                "Track",
                children=(
                    leaf("TrackToken", t.token),
                    leaf("TrackType", t.kind.value),
                    leaf("Description", t.description),
                    leaf("DataFrom", format_iso(t.data_from_ns)),
                    leaf("DataTo", format_iso(t.data_to_ns)),
                ),
            )
        )
    children.append(leaf("RecordingStatus", info.status))
    return Node("RecordingInformation", children=tuple(children))


async def resolve_scope(store: Store, scope: SearchScope) -> list[RecordingInformation]:
    """The recordings a search covers (RS-S2), in creation order.

    Raises InvalidTokenError for an unknown recording, InvalidSourceError for a source that
    no recording or job refers to, InvalidFilterError for a filter outside the dialect.
    """
    check = None
    if scope.recording_information_filter is not None:
        try:
            check = compile_filter(scope.recording_information_filter)
        except XPathError as exc:
            raise InvalidFilterError(f"RecordingInformationFilter: {exc.message}") from None
    infos = await all_recording_information(store)
    known = {i.token for i in infos}
    for token in scope.included_recordings:
        if token not in known:
            raise InvalidTokenError(f"the scope names an unknown recording {token!r}")
    if scope.included_recordings or scope.included_sources:
        chosen = set(scope.included_recordings)
        if scope.included_sources:
            by_source: dict[str, set[str]] = {}
            for info in infos:
                by_source.setdefault(info.source.source_id, set()).add(info.token)
            for job in await store.jobs():
                for source in job.config.sources:
                    if source.source_token is not None:
                        by_source.setdefault(source.source_token, set()).add(job.config.recording)
            for source_token in scope.included_sources:
                matches = by_source.get(source_token)
                if not matches:
                    raise InvalidSourceError(
                        f"no recording or recording job uses the source {source_token!r}"
                    )
                chosen |= matches
        infos = [i for i in infos if i.token in chosen]
    if check is not None:
        infos = [i for i in infos if check.matches(information_document(i))]
    return infos


async def media_attributes(
    store: Store, tokens: tuple[str, ...], at_ns: int
) -> list[MediaAttributes]:
    """RS-04: per recording (all if `tokens` is empty) the attributes of tracks with data at
    `at_ns`; recordings without data then are left out. From = Until = the asked time."""
    infos = await all_recording_information(store)
    by_token = {i.token: i for i in infos}
    for token in tokens:
        if token not in by_token:
            raise InvalidTokenError(f"no recording {token!r}")
    chosen = [by_token[t] for t in dict.fromkeys(tokens)] if tokens else infos
    media = {(m.recording, m.track): m for m in await store.track_media()}
    out = []
    for info in chosen:
        tracks = []
        for track in info.tracks:
            m = media.get((info.token, track.token))
            if m is None or not any(s.start_ns <= at_ns <= s.end_ns for s in m.slices):
                continue
            attrs = await _track_attributes(store, info.token, track, at_ns)
            if attrs is not None:
                tracks.append(TrackAttributes(track, attrs))
        if tracks:
            out.append(MediaAttributes(info.token, tuple(tracks), at_ns, at_ns))
    return out


async def _track_attributes(
    store: Store, recording: str, track: TrackInformation, at_ns: int
) -> VideoAttributes | AudioAttributes | MetadataAttributes | None:
    if track.kind is TrackKind.METADATA:
        return MetadataAttributes()
    ref = await store.keyframe_at_or_before(recording, track.token, at_ns)
    if ref is None:
        return None
    params = await store.params_for_frame(ref)
    count = size = 0
    first = last = None
    async for frame in store.frames(
        recording, track.token, at_ns - RATE_WINDOW_NS // 2, at_ns + RATE_WINDOW_NS // 2
    ):
        count += 1
        size += frame.size
        first = frame.wall_ns if first is None else first
        last = frame.wall_ns
        if count >= RATE_WINDOW_FRAMES:
            break
    span = (last - first) if first is not None and last is not None else 0
    # Over n frames there are n - 1 intervals; the rate is frames per interval time.
    rate = (count - 1) * NS_PER_SECOND / span if span > 0 else 0.0
    bitrate = round(size * 8 * rate / max(count, 1) / 1000) if span > 0 else None
    encoding = _ENCODINGS.get(params.codec, params.codec.value)
    if track.kind is TrackKind.VIDEO:
        return VideoAttributes(bitrate, params.width, params.height, encoding, round(rate, 3))
    return AudioAttributes(bitrate, encoding, params.sample_rate // 1000)
