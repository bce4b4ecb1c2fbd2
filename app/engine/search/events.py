"""FindEvents as a lazy stream: virtual start-state events, then stored history, page by page.

Each in-scope recording is read through its own keyset cursor (utc_ns, owner, seq) on the
history index, one page per recording per trip to a read thread; a heap merges them. Nothing
is loaded beyond the pages needed for the results asked so far, so the first page costs the
same over a day or a year of history (RS-07, RS-S7, EV-20..23).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque

from app.core.errors import NotFoundError
from app.core.time import format_iso
from app.engine.search.info import revised_information
from app.engine.search.model import (
    TOPIC_NAMESPACE,
    TOPIC_RECORDING_STATE,
    TOPIC_TRACK_STATE,
    EventFilter,
    FindEventResult,
    InvalidFilterError,
    RecordingInformation,
)
from app.engine.storage import HistoryEvent, HistoryTopic, Store
from app.protocols.onvif.xpath import (
    MESSAGE_ITEM_FILTER,
    TOPIC_CONCRETE_SET,
    Filter,
    Node,
    XPathError,
    compile_filter,
    compile_topic_filter,
)

#: History events read per recording per trip to the store.
PAGE = 100

_TOPICS = {
    HistoryTopic.RECORDING_STATE: TOPIC_RECORDING_STATE,
    HistoryTopic.TRACK_STATE: TOPIC_TRACK_STATE,
}


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A SearchFilter checked once at FindEvents: the topics it admits, the content test."""

    topics: tuple[HistoryTopic, ...]
    content: Filter | None

    def admits(self, result: FindEventResult) -> bool:
        return self.content is None or self.content.matches(message_document(result))


def compile_event_filter(spec: EventFilter) -> CompiledFilter:
    """RS-07.2..4; InvalidFilterError (ter:InvalidFilterFault) for anything not understood."""
    topics = tuple(HistoryTopic)
    if spec.topic_expression is not None:
        try:
            topic_filter = compile_topic_filter(
                spec.topic_expression, spec.topic_dialect or TOPIC_CONCRETE_SET, spec.namespaces
            )
        except XPathError as exc:
            raise InvalidFilterError(f"TopicExpression: {exc.message}") from None
        topics = tuple(t for t in HistoryTopic if topic_filter.matches(TOPIC_NAMESPACE, _TOPICS[t]))
    content = None
    if spec.message_content is not None:
        dialect = spec.message_content_dialect or MESSAGE_ITEM_FILTER
        if dialect != MESSAGE_ITEM_FILTER:
            raise InvalidFilterError(f"unsupported MessageContent dialect {dialect!r}")
        try:
            content = compile_filter(spec.message_content)
        except XPathError as exc:
            raise InvalidFilterError(f"MessageContent: {exc.message}") from None
    return CompiledFilter(topics, content)


def message_document(result: FindEventResult) -> Node:
    """The tt:Message an ItemFilter sees: Source and Data SimpleItems (RS-07.4)."""

    def items(name: str, pairs: tuple[tuple[str, str], ...]) -> Node:
        return Node(
            name,
            children=tuple(Node("SimpleItem", attrs={"Name": n, "Value": v}) for n, v in pairs),
        )

    return Node(
        "Message",
        attrs={
            "UtcTime": format_iso(result.time_ns),
            "PropertyOperation": result.property_operation,
        },
        children=(items("Source", result.source), items("Data", result.data)),
    )


def _result(
    recording: str, track: str, topic: HistoryTopic, at_ns: int, value: bool, virtual: bool
) -> FindEventResult:
    text = "true" if value else "false"
    if topic is HistoryTopic.RECORDING_STATE:
        source: tuple[tuple[str, str], ...] = (("RecordingToken", recording),)
        data = (("IsRecording", text),)
    else:
        # PF-21: Track/State names its track "Track", not "TrackToken".
        source = (("RecordingToken", recording), ("Track", track))
        data = (("IsDataPresent", text),)
    return FindEventResult(
        recording_token=recording,
        track_token=track,
        time_ns=at_ns,
        topic_namespace=TOPIC_NAMESPACE,
        topic=_TOPICS[topic],
        property_operation="Initialized" if virtual else "Changed",
        source=source,
        data=data,
        start_state_event=virtual,
    )


@dataclasses.dataclass(slots=True)
class _Cursor:
    position: int
    recording: str
    after: tuple[int, int, int] | None = None
    buffer: deque[HistoryEvent] = dataclasses.field(default_factory=deque)
    exhausted: bool = False


class EventStream:
    """The ordered results of one FindEvents; `take(n)` returns up to n more, [] at the end."""

    def __init__(
        self,
        store: Store,
        recordings: list[RecordingInformation],
        start_ns: int,
        end_ns: int,
        *,
        spec: CompiledFilter,
        include_start_state: bool,
    ) -> None:
        self._store = store
        self._recordings = recordings
        self._start = start_ns
        self._end = end_ns
        self._descending = end_ns < start_ns
        self._low, self._high = min(start_ns, end_ns), max(start_ns, end_ns)
        self._spec = spec
        self._include_start_state = include_start_state
        self._cursors = [_Cursor(i, r.token) for i, r in enumerate(recordings)]
        self._heap: list[tuple[tuple[int, ...], int]] = []
        self._head: deque[FindEventResult] = deque()
        self._tail: deque[FindEventResult] = deque()
        self._started = False
        self.exhausted = False
        #: The time of the newest result produced, None before the first (EndSearch).
        self.reached_ns: int | None = None

    async def take(self, n: int) -> list[FindEventResult]:
        out: list[FindEventResult] = []
        if not self._started:
            await self._virtual()  # before `_started`: a failed read is repeated next time
            self._started = True
        while len(out) < n and self._head:
            out.append(self._head.popleft())
        try:
            while len(out) < n:
                event = await self._next_stored()
                if event is None:
                    break
                result = _result(
                    event.recording, event.track, event.topic, event.utc_ns, event.value, False
                )
                if self._spec.admits(result):
                    out.append(result)
        except BaseException:
            # A failed (or cancelled) read loses nothing: what was taken is taken again next.
            self._head.extendleft(reversed(out))
            raise
        while len(out) < n and self._tail:
            out.append(self._tail.popleft())
        if len(out) < n:
            self.exhausted = True
        if out:
            self.reached_ns = out[-1].time_ns
        return out

    async def _virtual(self) -> None:
        """EV-20/21: state at StartPoint first; backward also at EndPoint, last."""
        if not self._include_start_state:
            return
        head: deque[FindEventResult] = deque()
        tail: deque[FindEventResult] = deque()
        await self._virtual_at(self._start, head, inclusive=self._descending)
        if self._descending:
            await self._virtual_at(self._end, tail, inclusive=False)
        # All or nothing: a read failing half way leaves nothing to be duplicated on the retry.
        self._head.extend(head)
        self._tail.extend(tail)

    async def _virtual_at(
        self, at_ns: int, into: deque[FindEventResult], *, inclusive: bool
    ) -> None:
        current = await revised_information(self._store)
        for info in self._recordings:
            tracks: dict[str, bool] = {}
            now = current.get(info.token)
            if now is None:
                continue  # deleted since FindEvents: no more results for it (RC-03.3)
            if now.earliest_ns is None or at_ns + int(inclusive) <= now.earliest_ns:
                # No history event precedes a recording's first frame (EV-12): all false
                # there without a store read, the usual "search from the beginning".
                is_recording = False
            else:
                try:
                    is_recording, tracks = await self._store.history_state(
                        info.token, at_ns, inclusive=inclusive
                    )
                except NotFoundError:
                    continue  # deleted meanwhile
            candidates = []
            if HistoryTopic.RECORDING_STATE in self._spec.topics:
                candidates.append(
                    _result(info.token, "", HistoryTopic.RECORDING_STATE, at_ns, is_recording, True)
                )
            if HistoryTopic.TRACK_STATE in self._spec.topics:
                for track in info.tracks:  # EV-22: tracks with data
                    value = tracks.get(track.token, False)
                    candidates.append(
                        _result(
                            info.token, track.token, HistoryTopic.TRACK_STATE, at_ns, value, True
                        )
                    )
            into.extend(c for c in candidates if self._spec.admits(c))

    def _order(self, cursor: _Cursor, event: HistoryEvent) -> tuple[int, ...]:
        utc_ns, owner, seq = event.key
        # Same instant: recording-level before track-level, then scope order (RS-S7).
        key = (utc_ns, int(owner > 0), cursor.position, owner, seq)
        return tuple(-k for k in key) if self._descending else key

    async def _next_stored(self) -> HistoryEvent | None:
        await self._refill()
        if not self._heap:
            return None
        _key, position = heapq.heappop(self._heap)
        cursor = self._cursors[position]
        event = cursor.buffer.popleft()
        if cursor.buffer:
            heapq.heappush(self._heap, (self._order(cursor, cursor.buffer[0]), position))
        return event

    async def _refill(self) -> None:
        """Next pages, in one trip, for every cursor whose buffer ran dry."""
        in_heap = {position for _key, position in self._heap}
        dry = [
            c
            for c in self._cursors
            if not c.buffer and not c.exhausted and c.position not in in_heap
        ]
        if not dry or self._low > self._high or not self._spec.topics:
            for c in dry:
                c.exhausted = True
            return
        pages = await self._store.history_pages(
            [(c.recording, self._low, self._high, c.after) for c in dry],
            descending=self._descending,
            topics=self._spec.topics,
            limit=PAGE,
        )
        for cursor, page in zip(dry, pages, strict=True):
            if len(page) < PAGE:
                cursor.exhausted = True
            if page:
                cursor.after = page[-1].key
                cursor.buffer.extend(page)
                heapq.heappush(self._heap, (self._order(cursor, page[0]), cursor.position))
