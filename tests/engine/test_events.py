"""The engine event bus: topics and descriptions, filters, drop-oldest queues, property state."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND, FakeClock
from app.engine import events
from app.engine.events import (
    ElementItem,
    EventBus,
    ItemDescription,
    MessageDescription,
    Notification,
    PropertyOperation,
    TopicFilter,
)


def _job_state(bus: EventBus, token: str, state: str, op: PropertyOperation) -> Notification:
    return bus.emit(
        events.JOB_STATE,
        operation=op,
        source=[("RecordingJobToken", token)],
        data=[("State", state)],
        elements=[ElementItem("Information", "RecordingJobStateInformation", {"State": state})],
    )


def test_notification_carries_topic_items_and_clock_time() -> None:
    clock = FakeClock()
    bus = EventBus(clock=clock)
    sub = bus.subscribe()
    clock.advance(3 * NS_PER_SECOND)
    sent = _job_state(bus, "JOB0001", "Active", PropertyOperation.INITIALIZED)
    (got,) = sub.take()
    assert got is sent
    assert got.topic_text == "tns1:RecordingConfig/JobState"
    assert got.utc_ns == clock.wall_ns()
    assert got.property_operation is PropertyOperation.INITIALIZED
    assert got.source == (("RecordingJobToken", "JOB0001"),)
    assert got.item("State") == "Active"
    info = got.element("Information")
    assert info is not None and info.type_name == "RecordingJobStateInformation"
    assert info.value == {"State": "Active"}
    assert got.item("Missing") is None and got.element("Missing") is None


def test_registry_describes_the_recording_and_receiver_topics() -> None:
    topics = EventBus().topics
    job = topics[events.JOB_STATE]
    assert job.is_property
    assert job.source == (ItemDescription("RecordingJobToken", "tt:RecordingJobReference"),)
    assert job.data == (ItemDescription("State", "xs:string"),)
    assert job.elements == (ItemDescription("Information", "tt:RecordingJobStateInformation"),)
    track_cfg = topics[events.TRACK_CONFIGURATION]
    assert not track_cfg.is_property
    assert [d.name for d in track_cfg.source] == ["RecordingToken", "TrackToken"]
    assert [d.type for d in topics[events.DELETE_TRACK_DATA].data] == ["xs:dateTime"] * 2
    assert [d.name for d in topics[events.RECEIVER_CHANGE_STATE].data] == ["NewState", "MediaUri"]
    # RecordingHistory/Track/State names its track item 'Track', not 'TrackToken' (PF-21).
    assert [d.name for d in topics[events.HISTORY_TRACK_STATE].source] == [
        "RecordingToken",
        "Track",
    ]
    assert {t[0] for t in topics} == {"RecordingConfig", "Receiver", "RecordingHistory"}


def test_publish_refuses_unregistered_topics_and_wrong_property_use() -> None:
    bus = EventBus()
    with pytest.raises(ConfigError, match="tns1:Vendor/Thing is not registered"):
        bus.emit(("Vendor", "Thing"))
    with pytest.raises(ConfigError, match="IsProperty=True"):
        bus.emit(events.JOB_STATE, source=[("RecordingJobToken", "J")])
    with pytest.raises(ConfigError, match="IsProperty=False"):
        bus.emit(events.CREATE_RECORDING, operation=PropertyOperation.CHANGED)
    bus.register(("Vendor", "Thing"), MessageDescription(False))
    bus.register(("Vendor", "Thing"), MessageDescription(False))  # same again is fine
    with pytest.raises(ConfigError, match="another description"):
        bus.register(("Vendor", "Thing"), MessageDescription(True))
    assert bus.emit(("Vendor", "Thing")).topic_text == "tns1:Vendor/Thing"


def test_filters_match_exact_topics_and_subtrees() -> None:
    bus = EventBus()
    jobs = bus.subscribe(TopicFilter(frozenset({events.JOB_STATE})))
    receivers = bus.subscribe(TopicFilter(subtrees=(("Receiver",),)))
    everything = bus.subscribe()
    _job_state(bus, "J1", "Idle", PropertyOperation.INITIALIZED)
    bus.emit(events.RECEIVER_CONNECTION_FAILED, source=[("ReceiverToken", "R1")])
    bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", "REC1")])
    assert [n.topic for n in jobs.take()] == [events.JOB_STATE]
    assert [n.topic for n in receivers.take()] == [events.RECEIVER_CONNECTION_FAILED]
    assert len(everything.take()) == 3
    assert bus.published == 3


def test_full_queue_drops_the_oldest_and_counts() -> None:
    bus = EventBus()
    sub = bus.subscribe(max_queue=3)
    for i in range(5):
        bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", f"R{i}")])
    assert sub.dropped == 2 and bus.dropped == 2
    assert [n.item("RecordingToken") for n in sub.take()] == ["R2", "R3", "R4"]
    with pytest.raises(ConfigError, match="outside 1"):
        bus.subscribe(max_queue=0)


@settings(max_examples=40)
@given(max_queue=st.integers(1, 20), sent=st.integers(0, 60), limit=st.integers(1, 30))
def test_drop_policy_keeps_the_newest(max_queue: int, sent: int, limit: int) -> None:
    bus = EventBus()
    sub = bus.subscribe(max_queue=max_queue)
    for i in range(sent):
        bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", str(i))])
    kept = list(range(max(0, sent - max_queue), sent))
    assert sub.dropped == sent - len(kept)
    got = sub.take(limit)
    assert [int(n.item("RecordingToken") or -1) for n in got] == kept[:limit]
    assert sub.pending == len(kept) - len(got)


def test_property_state_initialized_on_subscribe_and_synchronize() -> None:
    clock = FakeClock()
    bus = EventBus(clock=clock)
    _job_state(bus, "J1", "Idle", PropertyOperation.INITIALIZED)
    _job_state(bus, "J2", "Idle", PropertyOperation.INITIALIZED)
    _job_state(bus, "J1", "Active", PropertyOperation.CHANGED)
    _job_state(bus, "J2", "Idle", PropertyOperation.DELETED)
    bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", "R")])  # not a property
    clock.advance(NS_PER_SECOND)

    sub = bus.subscribe(initial=True)
    (current,) = sub.take()
    assert current.property_operation is PropertyOperation.INITIALIZED
    assert current.source == (("RecordingJobToken", "J1"),)
    assert current.item("State") == "Active"
    assert current.utc_ns == clock.wall_ns()

    _job_state(bus, "J1", "Error", PropertyOperation.CHANGED)
    sub.take()
    sub.synchronize()  # SetSynchronizationPoint
    (again,) = sub.take()
    assert again.property_operation is PropertyOperation.INITIALIZED
    assert again.item("State") == "Error"
    # A filtered subscription only gets the instances its filter accepts.
    other = bus.subscribe(TopicFilter(subtrees=(("Receiver",),)), initial=True)
    assert other.take() == []


async def test_pull_waits_for_the_first_message_then_takes_up_to_the_limit() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    assert await sub.pull(10, 0.01) == []  # times out empty

    async def later() -> None:
        await asyncio.sleep(0)
        for i in range(3):
            bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", str(i))])

    task = asyncio.create_task(later())
    got = await sub.pull(2, 30)
    await task
    assert [n.item("RecordingToken") for n in got] == ["0", "1"]
    assert [n.item("RecordingToken") for n in await sub.pull(5, 0)] == ["2"]
    with pytest.raises(ConfigError, match="at least 1"):
        await sub.pull(0, 1)


async def test_close_ends_reads_and_ignores_later_publishes() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", "R")])
    waiting = bus.subscribe()
    waiting.take()
    pull = asyncio.create_task(waiting.pull(5, 30))
    bus.close()
    assert await pull == []
    assert [n.item("RecordingToken") async for n in sub] == ["R"]  # drained, then it ends
    with pytest.raises(EOFError):
        await sub.get()
    bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", "after")])
    assert sub.closed and sub.take() == []
    with pytest.raises(ConfigError, match="closed"):
        bus.subscribe()


def test_subscription_close_unsubscribes() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        assert list(bus.subscriptions) == [sub]
    assert list(bus.subscriptions) == []
    bus.emit(events.CREATE_RECORDING, source=[("RecordingToken", "R")])
    assert sub.take() == []
