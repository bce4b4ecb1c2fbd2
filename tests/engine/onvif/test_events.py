"""Events service through the independent zeep client: PullPoint lifecycle, delivery, filters,
expiry and GetEventProperties (issue #3; spec §4.1/4.2, EV-01..EV-05, PF-22, Core 9.1-9.7).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import zeep.exceptions
from lxml import etree

from app.core.time import NS_PER_SECOND, FakeClock, format_iso, parse_iso
from app.engine.events import (
    JOB_STATE,
    RECEIVER_CHANGE_STATE,
    RECORDING_CONFIGURATION,
    EventBus,
    PropertyOperation,
)
from app.engine.onvif.events import SUBSCRIPTION_PATH, EventsService, parse_topic_expression
from app.protocols.soap.fault import SoapFault
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.peers.onvif_zeep import validated_service

TT = "http://www.onvif.org/ver10/schema"
WSNT = "http://docs.oasis-open.org/wsn/b-2"
WSTOP = "http://docs.oasis-open.org/wsn/t-1"
TNS1 = "http://www.onvif.org/ver10/topics"
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
START_NS = 1_767_225_600 * NS_PER_SECOND


@contextlib.asynccontextmanager
async def events_endpoint(
    tmp_path: Path, **kwargs: Any
) -> AsyncIterator[tuple[Served, EventBus, EventsService, FakeClock]]:
    clock = FakeClock(START_NS)
    bus = EventBus(clock=clock)
    events = EventsService(bus, clock, **kwargs)
    # The authenticator keeps the real clock: UsernameToken/Digest are not under test here.
    async with serve([events], tmp_path) as served:
        try:
            yield served, bus, events, clock
        finally:
            events.close()


def proxy(served: Served, name: str, address: str | None = None, user: str = "viewer") -> Any:
    return validated_service(name, address or served.address("events"), user, ACCOUNTS[user][0])


def topic_filter(expression: str, prefix: str = "tns1") -> dict[str, Any]:
    """A Filter whose TopicExpression declares `prefix` itself (PF-22: any prefix)."""
    element = etree.Element(
        f"{{{WSNT}}}TopicExpression", nsmap={"wsnt": WSNT, prefix: TNS1}, Dialect=CONCRETE_SET
    )
    element.text = expression
    return {"_value_1": [element]}


def subscribe(served: Served, **kwargs: Any) -> tuple[Any, str]:
    answer = proxy(served, "events").CreatePullPointSubscription(**kwargs)
    address = answer.SubscriptionReference.Address._value_1
    return answer, address


def codes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        fn(*args, **kwargs)
    return [q.localname for q in info.value.subcodes or []]


def emit_job_state(bus: EventBus, token: str, state: str, op: PropertyOperation) -> None:
    bus.emit(
        JOB_STATE,
        source=[("RecordingJobToken", token)],
        data=[("State", state)],
        operation=op,
        elements=[],
    )


async def test_pull_point_delivers_published_events_ev01(tmp_path: Path) -> None:
    """Publish on the bus → PullMessages returns it with Topic, UtcTime and items (EV-01)."""
    async with events_endpoint(tmp_path) as (served, bus, _, clock):
        answer, address = await asyncio.to_thread(subscribe, served)
        assert address.startswith(served.url + SUBSCRIPTION_PATH)
        assert parse_iso(answer.CurrentTime.isoformat()) == START_NS
        assert answer.TerminationTime - answer.CurrentTime == datetime.timedelta(seconds=60)
        pull = proxy(served, "pullpoint", address)
        clock.advance(5 * NS_PER_SECOND)
        bus.emit(
            RECEIVER_CHANGE_STATE,
            source=[("ReceiverToken", "RCV_1")],
            data=[("NewState", "Connected"), ("MediaUri", "rtsp://cam/1")],
        )
        got = await asyncio.to_thread(pull.PullMessages, Timeout="PT5S", MessageLimit=10)
        assert len(got.NotificationMessage) == 1
        envelope = pull.last_received
        topic = envelope.find(f".//{{{WSNT}}}Topic")
        assert topic.get("Dialect") == CONCRETE_SET
        prefix, _, path = topic.text.partition(":")
        assert topic.nsmap[prefix] == TNS1 and path == "Receiver/ChangeState"
        message = envelope.find(f".//{{{WSNT}}}Message/{{{TT}}}Message")
        assert message.get("UtcTime") == format_iso(START_NS + 5 * NS_PER_SECOND)
        assert message.get("PropertyOperation") is None
        items = [
            (e.getparent().tag, e.get("Name"), e.get("Value"))
            for e in message.iter(f"{{{TT}}}SimpleItem")
        ]
        assert items == [
            (f"{{{TT}}}Source", "ReceiverToken", "RCV_1"),
            (f"{{{TT}}}Data", "NewState", "Connected"),
            (f"{{{TT}}}Data", "MediaUri", "rtsp://cam/1"),
        ]


async def test_pull_messages_waits_for_timeout_then_answers_empty_core_9_1_2(
    tmp_path: Path,
) -> None:
    async with events_endpoint(tmp_path) as (served, _, _, _):
        _, address = await asyncio.to_thread(subscribe, served)
        pull = proxy(served, "pullpoint", address)
        started = time.monotonic()
        got = await asyncio.to_thread(pull.PullMessages, Timeout="PT0.6S", MessageLimit=5)
        assert time.monotonic() - started >= 0.6
        assert got.NotificationMessage == []


async def test_blocked_pull_answers_as_soon_as_an_event_arrives_core_9_1_2(
    tmp_path: Path,
) -> None:
    async with events_endpoint(tmp_path) as (served, bus, _, _):
        _, address = await asyncio.to_thread(subscribe, served)
        pull = proxy(served, "pullpoint", address)
        started = time.monotonic()
        # Published while the pull (Timeout 30 s) is blocked, or just before it arrives: either
        # way the answer must come at once, not at the timeout.
        asyncio.get_running_loop().call_later(
            0.5, lambda: bus.emit(RECORDING_CONFIGURATION, source=[("RecordingToken", "REC_1")])
        )
        waiting = asyncio.to_thread(pull.PullMessages, Timeout="PT30S", MessageLimit=5)
        got = await waiting
        assert len(got.NotificationMessage) == 1
        assert 0.5 <= time.monotonic() - started < 10


async def test_message_limit_and_no_loss_between_pulls_core_9_1_2(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, bus, _, _):
        _, address = await asyncio.to_thread(subscribe, served)
        for n in range(5):
            bus.emit(RECORDING_CONFIGURATION, source=[("RecordingToken", f"REC_{n}")])
        pull = proxy(served, "pullpoint", address)
        first = await asyncio.to_thread(pull.PullMessages, Timeout="PT1S", MessageLimit=2)
        rest = await asyncio.to_thread(pull.PullMessages, Timeout="PT1S", MessageLimit=100)
        tokens = [
            m.Message._value_1.find(f"{{{TT}}}Source/{{{TT}}}SimpleItem").get("Value")
            for m in (*first.NotificationMessage, *rest.NotificationMessage)
        ]
        assert tokens == [f"REC_{n}" for n in range(5)]
        assert len(first.NotificationMessage) == 2


async def test_property_state_initialized_then_synchronization_point_ev02(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, bus, _, _):
        emit_job_state(bus, "JOB_1", "Active", PropertyOperation.INITIALIZED)
        _, address = await asyncio.to_thread(subscribe, served)
        pull = proxy(served, "pullpoint", address)

        def operations() -> list[tuple[str | None, str | None]]:
            got = pull.PullMessages(Timeout="PT1S", MessageLimit=10)
            return [
                (
                    m.Message._value_1.get("PropertyOperation"),
                    m.Message._value_1.find(f"{{{TT}}}Data/{{{TT}}}SimpleItem").get("Value"),
                )
                for m in got.NotificationMessage
            ]

        assert await asyncio.to_thread(operations) == [("Initialized", "Active")]
        emit_job_state(bus, "JOB_1", "Idle", PropertyOperation.CHANGED)
        assert await asyncio.to_thread(operations) == [("Changed", "Idle")]
        await asyncio.to_thread(pull.SetSynchronizationPoint)
        assert await asyncio.to_thread(operations) == [("Initialized", "Idle")]


async def test_topic_filter_with_any_prefix_and_alternatives_pf22_ev05(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, bus, _, _):
        expression = " ns7:RecordingConfig/RecordingConfiguration | ns7:Receiver//. "
        _, address = await asyncio.to_thread(
            subscribe, served, Filter=topic_filter(expression, prefix="ns7")
        )
        emit_job_state(bus, "JOB_1", "Active", PropertyOperation.INITIALIZED)
        bus.emit(RECORDING_CONFIGURATION, source=[("RecordingToken", "REC_1")])
        bus.emit(RECEIVER_CHANGE_STATE, source=[("ReceiverToken", "R")], data=[("NewState", "x")])
        pull = proxy(served, "pullpoint", address)
        got = await asyncio.to_thread(pull.PullMessages, Timeout="PT1S", MessageLimit=10)
        topics = [m.Topic._value_1 for m in got.NotificationMessage]
        assert topics == [
            "tns1:RecordingConfig/RecordingConfiguration",
            "tns1:Receiver/ChangeState",
        ]


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("tns1:Nope/Nothing", "TopicNotSupportedFault"),
        ("tns1:RecordingConfig", "TopicNotSupportedFault"),
        ("undeclared:RecordingConfig/JobState", "InvalidTopicExpressionFault"),
        ("tns1:RecordingConfig//JobState", "InvalidTopicExpressionFault"),
        ("", "InvalidTopicExpressionFault"),
    ],
)
async def test_bad_topic_expressions_create_nothing_ev05(
    tmp_path: Path, expression: str, code: str
) -> None:
    async with events_endpoint(tmp_path) as (served, bus, events, _):
        got = await asyncio.to_thread(
            codes, lambda: subscribe(served, Filter=topic_filter(expression))
        )
        assert got == [code]
        assert events.pull_points == {} and bus.subscriptions == ()


async def test_renew_unsubscribe_and_unknown_pull_point_core_9_1_3(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, bus, events, _):
        _, address = await asyncio.to_thread(subscribe, served, InitialTerminationTime="PT10S")
        manager = proxy(served, "subscription", address)
        renewed = await asyncio.to_thread(manager.Renew, TerminationTime="PT120S")
        assert renewed.TerminationTime == parse_iso_dt(START_NS + 120 * NS_PER_SECOND)
        absolute = format_iso(START_NS + 300 * NS_PER_SECOND)
        renewed = await asyncio.to_thread(manager.Renew, TerminationTime=absolute)
        assert renewed.TerminationTime == parse_iso_dt(START_NS + 300 * NS_PER_SECOND)
        got = await asyncio.to_thread(codes, lambda: manager.Renew(TerminationTime="P30D"))
        assert got == ["UnacceptableTerminationTimeFault"]
        pull = proxy(served, "pullpoint", address)
        await asyncio.to_thread(pull.Unsubscribe)
        assert events.pull_points == {} and bus.subscriptions == ()
        for call in (
            lambda: pull.PullMessages(Timeout="PT1S", MessageLimit=1),
            lambda: pull.Unsubscribe(),
            lambda: manager.Renew(TerminationTime="PT10S"),
            lambda: pull.SetSynchronizationPoint(),
        ):
            assert await asyncio.to_thread(codes, call) == ["ResourceUnknownFault"]
        # A PullPoint operation posted to the event service path has no subscription.
        other = proxy(served, "pullpoint", served.address("events"))
        assert await asyncio.to_thread(codes, other.SetSynchronizationPoint) == [
            "ResourceUnknownFault"
        ]


def parse_iso_dt(ns: int) -> datetime.datetime:
    return datetime.datetime.fromisoformat(format_iso(ns).replace("Z", "+00:00"))


async def test_pull_point_expires_on_the_clock_and_limit_is_enforced(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path, max_pull_points=2) as (served, bus, events, clock):
        _, first = await asyncio.to_thread(subscribe, served, InitialTerminationTime="PT10S")
        await asyncio.to_thread(subscribe, served, InitialTerminationTime="PT60S")
        got = await asyncio.to_thread(codes, lambda: subscribe(served))
        assert got == ["SubscribeCreationFailedFault"]
        clock.advance(11 * NS_PER_SECOND)
        pull = proxy(served, "pullpoint", first)
        got = await asyncio.to_thread(
            codes, lambda: pull.PullMessages(Timeout="PT1S", MessageLimit=1)
        )
        assert got == ["ResourceUnknownFault"]
        assert len(events.pull_points) == 1 and len(bus.subscriptions) == 1
        await asyncio.to_thread(subscribe, served)  # the expired one freed its place
        assert len(events.pull_points) == 2


async def test_bad_termination_and_pull_arguments(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, _, events, _):
        for value, code in (
            ("PT0S", "UnacceptableInitialTerminationTimeFault"),
            (format_iso(START_NS - NS_PER_SECOND), "UnacceptableInitialTerminationTimeFault"),
            ("P2D", "UnacceptableInitialTerminationTimeFault"),
            ("soon", "InvalidArgs"),
        ):
            got = await asyncio.to_thread(codes, subscribe, served, InitialTerminationTime=value)
            assert got == [code], value
        assert events.pull_points == {}
        _, address = await asyncio.to_thread(subscribe, served)
        pull = proxy(served, "pullpoint", address)
        got = await asyncio.to_thread(
            codes, lambda: pull.PullMessages(Timeout="PT1H", MessageLimit=1)
        )
        assert got == ["PullMessagesFault"]
        got = await asyncio.to_thread(
            codes, lambda: pull.PullMessages(Timeout="PT1S", MessageLimit=0)
        )
        assert got == ["InvalidArgVal"]


async def test_event_properties_topic_set_shape_ev03_a6(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, bus, _, _):
        client = proxy(served, "events")
        answer = await asyncio.to_thread(client.GetEventProperties)
        assert answer.FixedTopicSet is True
        assert CONCRETE_SET in answer.TopicExpressionDialect
        envelope = client.last_received
        topic_set = envelope.find(f".//{{{WSTOP}}}TopicSet")
        roots = {etree.QName(r).localname: r for r in topic_set}
        assert set(roots) == {"RecordingConfig", "Receiver", "RecordingHistory"}
        assert all(etree.QName(r).namespace == TNS1 for r in roots.values())
        job = roots["RecordingConfig"].find("JobState")
        assert job is not None and job.get(f"{{{WSTOP}}}topic") == "true"
        description = job.find(f"{{{TT}}}MessageDescription")
        assert description.get("IsProperty") == "true"
        source = description.find(f"{{{TT}}}Source/{{{TT}}}SimpleItemDescription")
        assert (source.get("Name"), source.get("Type")) == (
            "RecordingJobToken",
            "tt:RecordingJobReference",
        )
        element = description.find(f"{{{TT}}}Data/{{{TT}}}ElementItemDescription")
        assert element.get("Name") == "Information"
        assert element.nsmap["tt"] == TT and job.nsmap["xs"] == "http://www.w3.org/2001/XMLSchema"
        track = roots["RecordingHistory"].find("Track/State")
        assert track is not None and track.get(f"{{{WSTOP}}}topic") == "true"
        leaves = [e for e in topic_set.iter() if e.get(f"{{{WSTOP}}}topic") == "true"]
        assert len(leaves) == len(bus.topics)


async def test_service_capabilities_pre_auth(tmp_path: Path) -> None:
    async with events_endpoint(tmp_path) as (served, _, _, _):
        anonymous = validated_service("events", served.address("events"), None, None)
        caps = await asyncio.to_thread(anonymous.GetServiceCapabilities)
        assert caps.MaxPullPoints == 32 and caps.PersistentNotificationStorage is False


async def test_element_items_render_as_tt_type_element_ev01a(tmp_path: Path) -> None:
    from app.engine.events import ElementItem

    async with events_endpoint(tmp_path) as (served, bus, _, _):
        _, address = await asyncio.to_thread(subscribe, served)
        info = {"RecordingToken": "REC_1", "State": "Active", "Sources": []}
        bus.emit(
            JOB_STATE,
            source=[("RecordingJobToken", "JOB_1")],
            data=[("State", "Active")],
            elements=[ElementItem("Information", "RecordingJobStateInformation", info)],
            operation=PropertyOperation.INITIALIZED,
        )
        pull = proxy(served, "pullpoint", address)
        await asyncio.to_thread(pull.PullMessages, Timeout="PT1S", MessageLimit=10)
        item = pull.last_received.find(f".//{{{TT}}}ElementItem")
        assert item.get("Name") == "Information"
        (child,) = list(item)
        assert child.tag == f"{{{TT}}}RecordingJobStateInformation"
        assert [(etree.QName(c).localname, c.text) for c in child] == [
            ("RecordingToken", "REC_1"),
            ("State", "Active"),
        ]


def test_topic_expression_parser_resolves_prefixes_pf22() -> None:
    topics = EventBus().topics
    parsed = parse_topic_expression(
        "a:RecordingConfig/JobState|a:RecordingHistory//.", {"a": TNS1}, topics
    )
    assert parsed.topics == frozenset({JOB_STATE})
    assert parsed.subtrees == (("RecordingHistory",),)
    with pytest.raises(SoapFault) as info:
        parse_topic_expression("b:RecordingConfig/JobState", {"b": "urn:other"}, topics)
    assert info.value.subcodes == ("TopicNotSupportedFault",)
