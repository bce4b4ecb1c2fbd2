"""The recorder: a MediaSink that writes a source's tracks into the tracks of one recording.

Which source track goes where is a list of `Binding`s (tt:RecordingJobTrack: SourceTag →
Destination). A SourceTag names a medium of the RTSP stream by kind and position: `video`,
`audio` or `metadata` (case-insensitive) is the first track of that kind, `video2` the second,
and so on. Without explicit bindings the first track of each kind goes to the default tracks
VIDEO001/AUDIO001/META001 (SM-02), which is what configured sources use.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
from collections.abc import Callable, Sequence

from app.core.media import AccessUnit, CodecParams, TrackKind
from app.engine.storage import Store, TrackWriter

log = logging.getLogger(__name__)

#: The default tracks every recording has (SM-02); the first source track of each kind goes there.
DEFAULT_TRACKS: dict[TrackKind, str] = {
    TrackKind.VIDEO: "VIDEO001",
    TrackKind.AUDIO: "AUDIO001",
    TrackKind.METADATA: "META001",
}
#: The SourceTag naming the first medium of each kind (RC-12.3 default bindings use these).
DEFAULT_SOURCE_TAGS: dict[TrackKind, str] = {
    TrackKind.VIDEO: "video",
    TrackKind.AUDIO: "audio",
    TrackKind.METADATA: "metadata",
}
#: Highest medium ordinal a SourceTag may name ('video99').
MAX_TAG_ORDINAL = 99

_TAG_RE = re.compile(r"^(video|audio|metadata)([1-9][0-9]?)?$", re.IGNORECASE)
_TAG_KIND = {tag: kind for kind, tag in DEFAULT_SOURCE_TAGS.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """Source medium `source_tag` is written to track `track` (of kind `kind`)."""

    source_tag: str
    track: str
    kind: TrackKind


class TrackFeed(enum.Enum):
    """What one destination track gets in the current run of the source."""

    #: The source is not running (between runs, or never started).
    STOPPED = "stopped"
    #: The run has the medium but no frame of it was written yet.
    WAITING = "waiting"
    #: Frames are being written.
    ACTIVE = "active"
    #: The stream has no medium matching the SourceTag.
    NO_MEDIUM = "no-medium"
    #: The medium's kind differs from the track's type ('Incompatible Stream', RC-18.1).
    INCOMPATIBLE = "incompatible"


def parse_source_tag(tag: str) -> tuple[TrackKind, int] | None:
    """'video2' → (VIDEO, 1): kind and 0-based position, or None for a tag we cannot resolve."""
    m = _TAG_RE.match(tag.strip())
    if m is None:
        return None
    ordinal = int(m.group(2) or "1")
    return _TAG_KIND[m.group(1).lower()], ordinal - 1


def select_medium(tag: str, tracks: Sequence[CodecParams]) -> int | None:
    """Index of the stream track a SourceTag names, or None when the stream has no such medium."""
    parsed = parse_source_tag(tag)
    if parsed is None:
        return None
    kind, position = parsed
    of_kind = [i for i, params in enumerate(tracks) if params.kind is kind]
    return of_kind[position] if position < len(of_kind) else None


def default_bindings(tracks: Sequence[tuple[str, TrackKind]] | None = None) -> tuple[Binding, ...]:
    """One binding per given (token, kind) with the kind's default tag; default tracks if None."""
    if tracks is None:
        tracks = [(token, kind) for kind, token in DEFAULT_TRACKS.items()]
    return tuple(Binding(DEFAULT_SOURCE_TAGS[kind], token, kind) for token, kind in tracks)


class Recorder:
    """Writes the bound media of each run of one source into tracks of one recording.

    Writers are opened once (`open`) and kept for the recorder's life; each source run maps its
    track indices anew, and the end of a run ends the writers' runs so the store records a gap.
    All callbacks run on the engine loop and never block (TrackWriter.append only buffers).
    `on_feed` is called whenever a destination's `TrackFeed` changes.
    """

    def __init__(
        self,
        store: Store,
        recording: str,
        bindings: Sequence[Binding] | None = None,
        *,
        on_feed: Callable[[], None] | None = None,
    ) -> None:
        self.recording = recording
        self.bindings = tuple(bindings) if bindings is not None else default_bindings()
        self._store = store
        self._on_feed = on_feed
        self._writers: dict[str, TrackWriter] = {}
        #: Stream track index → the writers it feeds, for the current run.
        self._by_index: dict[int, list[TrackWriter]] = {}
        self._feeds: dict[str, TrackFeed] = {b.track: TrackFeed.STOPPED for b in self.bindings}
        #: Source tracks this recording has no place for (a second video track, …), per run.
        self.ignored_tracks = 0

    @property
    def tracks(self) -> tuple[str, ...]:
        """The destination track tokens, in binding order."""
        return tuple(self._feeds)

    def feed(self, track: str) -> TrackFeed:
        return self._feeds.get(track, TrackFeed.STOPPED)

    async def open(self) -> None:
        """Open one writer per destination (ConflictError if another recorder holds one)."""
        try:
            for track in self._feeds:
                self._writers[track] = await self._store.open_writer(self.recording, track)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Make everything appended durable and release the tracks."""
        writers, self._writers, self._by_index = list(self._writers.values()), {}, {}
        self._set_all(TrackFeed.STOPPED)
        for writer in writers:
            await writer.close()

    # ---------------------------------------------------------------- MediaSink

    def start(self, tracks: Sequence[CodecParams]) -> None:
        self._by_index = {}
        feeds: dict[str, TrackFeed] = {}
        for binding in self.bindings:
            if binding.track in feeds:
                continue  # one source per destination; the first binding wins
            index = select_medium(binding.source_tag, tracks)
            writer = self._writers.get(binding.track)
            if index is None or writer is None:
                feeds[binding.track] = TrackFeed.NO_MEDIUM
            elif tracks[index].kind is not binding.kind:
                feeds[binding.track] = TrackFeed.INCOMPATIBLE
            else:
                feeds[binding.track] = TrackFeed.WAITING
                self._by_index.setdefault(index, []).append(writer)
        self.ignored_tracks += len(tracks) - len(self._by_index)
        for index, params in enumerate(tracks):
            if index not in self._by_index:
                log.info(
                    "%s: source track %d (%s) is bound to no track of the recording",
                    self.recording,
                    index,
                    params.codec,
                )
        self._update(feeds)

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        writers = self._by_index.get(track)
        if not writers:
            return
        changed = False
        for writer in writers:
            writer.append(unit, params)
            if self._feeds.get(writer.track) is TrackFeed.WAITING:
                self._feeds[writer.track] = TrackFeed.ACTIVE
                changed = True
        if changed:
            self._notify()

    def stop(self, reason: str | None) -> None:
        for writers in self._by_index.values():
            for writer in writers:
                writer.end_run(reason)
        self._by_index = {}
        self._set_all(TrackFeed.STOPPED)

    # ---------------------------------------------------------------- internals

    def _set_all(self, feed: TrackFeed) -> None:
        self._update(dict.fromkeys(self._feeds, feed))

    def _update(self, feeds: dict[str, TrackFeed]) -> None:
        if feeds != self._feeds:
            self._feeds = feeds
            self._notify()

    def _notify(self) -> None:
        if self._on_feed is not None:
            self._on_feed()
