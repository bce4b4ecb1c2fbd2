"""The engine's in-process event bus: ONVIF-shaped notifications, bounded subscriptions, topics.

Producers (the job controller, retention) call `EventBus.publish` on the loop thread; it never
blocks. Consumers (the Events service's PullPoints, tests, the GUI bridge) `subscribe` with a
filter and read from a bounded queue. The policy when a consumer falls behind is **drop oldest**:
the queue keeps the newest `max_queue` notifications, and every one pushed out is counted in
`Subscription.dropped` and `EventBus.dropped` (live notifications describe the present, so the
newest matter most; recorded history is searched through the store, never through the bus).

Topics are tuples of local names under the ONVIF topic namespace (`tns1` in the spec):
`("RecordingConfig", "JobState")` is `tns1:RecordingConfig/JobState`. Every topic the engine can
emit is registered with its message description (`TOPICS`), which is what GetEventProperties
lists. For property topics the bus remembers the current message of every live instance
(keyed by topic and Source items), so a subscriber can get them as `Initialized` messages on
subscription and again on `Subscription.synchronize()` (SetSynchronizationPoint, EV-02).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

from app.core.errors import ConfigError
from app.core.time import Clock, SystemClock

log = logging.getLogger(__name__)

#: The ONVIF topic namespace; topic tuples are local names under it.
TOPIC_NAMESPACE = "http://www.onvif.org/ver10/topics"
TOPIC_PREFIX = "tns1"
#: Queue bounds a subscriber may ask for (notifications).
DEFAULT_MAX_QUEUE = 1000
MAX_QUEUE_LIMIT = 100_000
#: Subscriptions one bus serves at once (PullPoints are created by remote clients).
MAX_SUBSCRIPTIONS = 256

Topic = tuple[str, ...]
#: A SimpleItem: (Name, Value); values are already the wire text.
Item = tuple[str, str]


class PropertyOperation(enum.StrEnum):
    INITIALIZED = "Initialized"
    CHANGED = "Changed"
    DELETED = "Deleted"


@dataclasses.dataclass(frozen=True, slots=True)
class ElementItem:
    """A tt:ElementItem: `value` is the structure of one `tt:<type_name>` element.

    The keys of `value` are the schema's element/attribute local names in schema order (lists
    for repeated elements, nested dicts for complex ones), so the SOAP edge can hand it to a
    schema-driven serializer unchanged. Treat it as read-only.
    """

    name: str
    type_name: str
    value: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One tt:Message with its topic; `utc_ns` is the UtcTime attribute (UTC ns)."""

    topic: Topic
    utc_ns: int
    property_operation: PropertyOperation | None = None
    source: tuple[Item, ...] = ()
    key: tuple[Item, ...] = ()
    data: tuple[Item, ...] = ()
    elements: tuple[ElementItem, ...] = ()

    @property
    def topic_text(self) -> str:
        """'tns1:RecordingConfig/JobState' (the ConcreteSet topic expression)."""
        return topic_text(self.topic)

    def item(self, name: str) -> str | None:
        """The value of the first Source, Key or Data SimpleItem called `name`."""
        for n, v in (*self.source, *self.key, *self.data):
            if n == name:
                return v
        return None

    def element(self, name: str) -> ElementItem | None:
        return next((e for e in self.elements if e.name == name), None)


def topic_text(topic: Topic) -> str:
    return f"{TOPIC_PREFIX}:" + "/".join(topic)


@dataclasses.dataclass(frozen=True, slots=True)
class ItemDescription:
    """tt:SimpleItemDescription / ElementItemDescription: Name and a prefixed QName Type."""

    name: str
    type: str


@dataclasses.dataclass(frozen=True, slots=True)
class MessageDescription:
    """tt:MessageDescription of one topic (what GetEventProperties reports)."""

    is_property: bool
    source: tuple[ItemDescription, ...] = ()
    key: tuple[ItemDescription, ...] = ()
    data: tuple[ItemDescription, ...] = ()
    elements: tuple[ItemDescription, ...] = ()


def _d(*pairs: tuple[str, str]) -> tuple[ItemDescription, ...]:
    return tuple(ItemDescription(n, t) for n, t in pairs)


_REC = ("RecordingToken", "tt:RecordingReference")
_TRACK = ("TrackToken", "tt:TrackReference")
_JOB = ("RecordingJobToken", "tt:RecordingJobReference")
_RECEIVER = ("ReceiverToken", "tt:ReferenceToken")

JOB_STATE: Topic = ("RecordingConfig", "JobState")
RECORDING_CONFIGURATION: Topic = ("RecordingConfig", "RecordingConfiguration")
TRACK_CONFIGURATION: Topic = ("RecordingConfig", "TrackConfiguration")
RECORDING_JOB_CONFIGURATION: Topic = ("RecordingConfig", "RecordingJobConfiguration")
DELETE_TRACK_DATA: Topic = ("RecordingConfig", "DeleteTrackData")
CREATE_RECORDING: Topic = ("RecordingConfig", "CreateRecording")
DELETE_RECORDING: Topic = ("RecordingConfig", "DeleteRecording")
CREATE_TRACK: Topic = ("RecordingConfig", "CreateTrack")
DELETE_TRACK: Topic = ("RecordingConfig", "DeleteTrack")
RECEIVER_CHANGE_STATE: Topic = ("Receiver", "ChangeState")
RECEIVER_CONNECTION_FAILED: Topic = ("Receiver", "ConnectionFailed")
HISTORY_RECORDING_STATE: Topic = ("RecordingHistory", "Recording", "State")
HISTORY_TRACK_STATE: Topic = ("RecordingHistory", "Track", "State")

#: Every topic the engine produces (live §4.2, and the history topics FindEvents returns §4.3),
#: with the exact item names and types the spec and the conformance tool expect (EV-03a).
TOPICS: Mapping[Topic, MessageDescription] = {
    JOB_STATE: MessageDescription(
        True,
        source=_d(_JOB),
        data=_d(("State", "xs:string")),
        elements=_d(("Information", "tt:RecordingJobStateInformation")),
    ),
    RECORDING_CONFIGURATION: MessageDescription(
        False, source=_d(_REC), elements=_d(("Configuration", "tt:RecordingConfiguration"))
    ),
    TRACK_CONFIGURATION: MessageDescription(
        False, source=_d(_REC, _TRACK), elements=_d(("Configuration", "tt:TrackConfiguration"))
    ),
    RECORDING_JOB_CONFIGURATION: MessageDescription(
        False,
        source=_d(_JOB),
        elements=_d(("Configuration", "tt:RecordingJobConfiguration")),
    ),
    DELETE_TRACK_DATA: MessageDescription(
        False,
        source=_d(_REC, _TRACK),
        data=_d(("StartTime", "xs:dateTime"), ("EndTime", "xs:dateTime")),
    ),
    CREATE_RECORDING: MessageDescription(False, source=_d(_REC)),
    DELETE_RECORDING: MessageDescription(False, source=_d(_REC)),
    CREATE_TRACK: MessageDescription(False, source=_d(_REC, _TRACK)),
    DELETE_TRACK: MessageDescription(False, source=_d(_REC, _TRACK)),
    RECEIVER_CHANGE_STATE: MessageDescription(
        False,
        source=_d(_RECEIVER),
        data=_d(("NewState", "tt:ReceiverState"), ("MediaUri", "xs:anyURI")),
    ),
    RECEIVER_CONNECTION_FAILED: MessageDescription(
        False, source=_d(_RECEIVER), data=_d(("MediaUri", "xs:anyURI"))
    ),
    HISTORY_RECORDING_STATE: MessageDescription(
        True, source=_d(_REC), data=_d(("IsRecording", "xs:boolean"))
    ),
    HISTORY_TRACK_STATE: MessageDescription(
        True,
        source=_d(_REC, ("Track", "tt:TrackReference")),
        data=_d(("IsDataPresent", "xs:boolean")),
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class TopicFilter:
    """Which topics a subscription wants: exact topics and whole subtrees (the `//.` form).

    An empty filter (no topics, no subtrees) matches everything, as a subscription without a
    Filter element does.
    """

    topics: frozenset[Topic] = frozenset()
    subtrees: tuple[Topic, ...] = ()

    def __call__(self, notification: Notification) -> bool:
        if not self.topics and not self.subtrees:
            return True
        topic = notification.topic
        return topic in self.topics or any(topic[: len(s)] == s for s in self.subtrees)


NotificationFilter = Callable[[Notification], bool]


class Subscription:
    """A bounded queue of the notifications matching one filter; see the module doc for drops.

    Read with `pull` (PullMessages: wait up to a timeout, take up to a limit), `get`, or
    `async for`; `close()` ends it (pending reads return what is queued, then nothing).
    """

    def __init__(self, bus: EventBus, accept: NotificationFilter, max_queue: int) -> None:
        self._bus = bus
        self._accept = accept
        self.max_queue = max_queue
        self._queue: collections.deque[Notification] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        #: Notifications pushed out of the full queue (the oldest ones) since subscribing.
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._queue)

    def matches(self, notification: Notification) -> bool:
        return self._accept(notification)

    def synchronize(self) -> None:
        """Queue the current state of every matching property instance as Initialized (EV-02)."""
        for notification in self._bus.current_properties(self._accept):
            self._offer(notification)

    def take(self, limit: int | None = None) -> list[Notification]:
        """Everything queued (at most `limit`), oldest first, without waiting."""
        count = len(self._queue) if limit is None else min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    async def pull(self, limit: int, timeout_s: float) -> list[Notification]:
        """Up to `limit` notifications, waiting at most `timeout_s` for the first one."""
        if limit < 1:
            raise ConfigError(f"a pull must ask for at least 1 message, got {limit}")
        if not self._queue and not self._closed:
            self._ready.clear()
            try:
                async with asyncio.timeout(max(timeout_s, 0.0)):
                    await self._ready.wait()
            except TimeoutError:
                pass
        return self.take(limit)

    async def get(self) -> Notification:
        """The next notification; raises EOFError once closed and drained."""
        while not self._queue:
            if self._closed:
                raise EOFError("the subscription is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Notification:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._end()
        self._bus._forget(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    def _offer(self, notification: Notification) -> int:
        """Queue one notification; returns how many old ones it pushed out (0 or 1)."""
        if self._closed:
            return 0
        lost = 0
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped += 1
            lost = 1
        self._queue.append(notification)
        self._ready.set()
        return lost


class EventBus:
    """Fan-out of notifications to subscriptions, with the topic registry and property state."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        topics: Mapping[Topic, MessageDescription] = TOPICS,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self._topics = dict(topics)
        self._subscriptions: list[Subscription] = []
        #: (topic, source items) → the latest message of a live property instance.
        self._properties: dict[tuple[Topic, tuple[Item, ...]], Notification] = {}
        self._closed = False
        #: Notifications published since the bus was made.
        self.published = 0
        #: Notifications lost by all subscribers together (drop-oldest).
        self.dropped = 0

    # ---------------------------------------------------------------- topics

    @property
    def topics(self) -> Mapping[Topic, MessageDescription]:
        """Every topic this bus can carry, with its message description."""
        return dict(self._topics)

    def register(self, topic: Topic, description: MessageDescription) -> None:
        """Add a topic (e.g. a vendor topic); registering it again must not change it."""
        old = self._topics.get(topic)
        if old is not None and old != description:
            raise ConfigError(f"topic {topic_text(topic)} is registered with another description")
        self._topics[topic] = description

    # ---------------------------------------------------------------- publishing

    def publish(self, notification: Notification) -> None:
        """Deliver to every matching subscription; never blocks (drop-oldest when full)."""
        description = self._topics.get(notification.topic)
        if description is None:
            raise ConfigError(f"topic {notification.topic_text} is not registered")
        if description.is_property != (notification.property_operation is not None):
            raise ConfigError(
                f"topic {notification.topic_text}: PropertyOperation "
                f"{notification.property_operation} does not fit "
                f"IsProperty={description.is_property}"
            )
        if self._closed:
            return
        if description.is_property:
            instance = (notification.topic, notification.source)
            if notification.property_operation is PropertyOperation.DELETED:
                self._properties.pop(instance, None)
            else:
                self._properties[instance] = notification
        self.published += 1
        for subscription in list(self._subscriptions):
            if subscription.matches(notification):
                self.dropped += subscription._offer(notification)

    def emit(
        self,
        topic: Topic,
        *,
        source: Iterable[Item] = (),
        data: Iterable[Item] = (),
        elements: Iterable[ElementItem] = (),
        operation: PropertyOperation | None = None,
        utc_ns: int | None = None,
    ) -> Notification:
        """Build a notification stamped with the bus clock (unless `utc_ns`) and publish it."""
        notification = Notification(
            topic,
            self.clock.wall_ns() if utc_ns is None else utc_ns,
            operation,
            tuple(source),
            (),
            tuple(data),
            tuple(elements),
        )
        self.publish(notification)
        return notification

    def current_properties(self, accept: NotificationFilter | None = None) -> list[Notification]:
        """The live property instances as Initialized messages stamped now, in publish order."""
        now = self.clock.wall_ns()
        return [
            dataclasses.replace(n, utc_ns=now, property_operation=PropertyOperation.INITIALIZED)
            for n in self._properties.values()
            if accept is None or accept(n)
        ]

    # ---------------------------------------------------------------- subscribing

    def subscribe(
        self,
        accept: NotificationFilter | None = None,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        initial: bool = False,
    ) -> Subscription:
        """A new subscription; with `initial`, current property states are queued first."""
        if self._closed:
            raise ConfigError("the event bus is closed")
        if not 1 <= max_queue <= MAX_QUEUE_LIMIT:
            raise ConfigError(
                f"subscription queue of {max_queue} messages is outside 1 … {MAX_QUEUE_LIMIT}"
            )
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            raise ConfigError(f"the event bus already serves {MAX_SUBSCRIPTIONS} subscriptions")
        subscription = Subscription(self, accept or TopicFilter(), max_queue)
        self._subscriptions.append(subscription)
        if initial:
            subscription.synchronize()
        return subscription

    @property
    def subscriptions(self) -> Sequence[Subscription]:
        return tuple(self._subscriptions)

    def close(self) -> None:
        """End every subscription; later publishes are ignored."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription._end()
        self._subscriptions.clear()

    def _forget(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
