"""The recorder: a MediaSink that writes a source's tracks into the tracks of one recording."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.core.media import AccessUnit, CodecParams, TrackKind
from app.engine.storage import Store, TrackWriter

log = logging.getLogger(__name__)

#: The default tracks every recording has (SM-02); the first source track of each kind goes there.
DEFAULT_TRACKS: dict[TrackKind, str] = {
    TrackKind.VIDEO: "VIDEO001",
    TrackKind.AUDIO: "AUDIO001",
    TrackKind.METADATA: "META001",
}


class Recorder:
    """Writes the first video, audio and metadata track of each run to VIDEO001/AUDIO001/META001.

    Writers are opened once (`open`) and kept for the recorder's life; each source run maps its
    track indices anew, and the end of a run ends the writers' runs so the store records a gap.
    All callbacks run on the engine loop and never block (TrackWriter.append only buffers).
    """

    def __init__(self, store: Store, recording: str) -> None:
        self.recording = recording
        self._store = store
        self._writers: dict[TrackKind, TrackWriter] = {}
        self._by_index: dict[int, TrackWriter] = {}
        #: Source tracks this recording has no place for (a second video track, …), per run.
        self.ignored_tracks = 0

    async def open(self) -> None:
        """Open one writer per default track (ConflictError if another recorder holds one)."""
        for kind, token in DEFAULT_TRACKS.items():
            self._writers[kind] = await self._store.open_writer(self.recording, token)

    async def close(self) -> None:
        """Make everything appended durable and release the tracks."""
        writers, self._writers, self._by_index = list(self._writers.values()), {}, {}
        for writer in writers:
            await writer.close()

    # ---------------------------------------------------------------- MediaSink

    def start(self, tracks: Sequence[CodecParams]) -> None:
        self._by_index = {}
        taken: set[TrackKind] = set()
        for index, params in enumerate(tracks):
            writer = self._writers.get(params.kind)
            if writer is None or params.kind in taken:
                self.ignored_tracks += 1
                log.info(
                    "%s: source track %d (%s) has no free track in the recording; not recorded",
                    self.recording,
                    index,
                    params.codec,
                )
                continue
            taken.add(params.kind)
            self._by_index[index] = writer

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        writer = self._by_index.get(track)
        if writer is not None:
            writer.append(unit, params)

    def stop(self, reason: str | None) -> None:
        for writer in self._by_index.values():
            writer.end_run(reason)
        self._by_index = {}
