"""The ONVIF Events service: PullPoint subscriptions over the engine event bus, and the TopicSet.

A CreatePullPointSubscription makes a bus subscription (current property states first, EV-02)
and answers the address of its PullPoint, `<base>/onvif/events/subscription/<id>`. The later
PullMessages / Renew / Unsubscribe / SetSynchronizationPoint requests are dispatched by body
element like everything else (GEN-02); the PullPoint is found from the request path, or from the
wsa:To header when a client posts to another path. Pull points expire at their termination time
on the injected Clock; expired ones are reaped whenever the service is used.

WS-BaseNotification faults carry their WS-N name as the ONVIF subcode (e.g.
`env:Receiver / ter:ResourceUnknownFault`, HTTP 500 as Core 9.9 asks); the WS-N Detail element
is not sent (the framework's faults have no Detail).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import zeep.xsd
from lxml import etree

from app.core.errors import ConfigError
from app.core.time import NS_PER_SECOND, Clock, format_iso, parse_iso
from app.engine.events import (
    TOPIC_NAMESPACE,
    EventBus,
    MessageDescription,
    Notification,
    Subscription,
    Topic,
    TopicFilter,
)
from app.engine.onvif.security import AccessClass
from app.engine.onvif.server import OnvifService, RequestContext, operation
from app.engine.storage.duration import parse_duration
from app.protocols.onvif.wsdl import NS_EVENTS, NS_SCHEMA, NS_WSA, NS_WSNT, NS_WSTOP, catalog
from app.protocols.soap.fault import SoapFault

log = logging.getLogger(__name__)

#: Pull points alive at once (tev:Capabilities MaxPullPoints).
MAX_PULL_POINTS = 32
#: Lifetime of a pull point created without InitialTerminationTime.
DEFAULT_TERMINATION_NS = 60 * NS_PER_SECOND
#: Longest lifetime a subscription may ask for in one Create/Renew.
MAX_TERMINATION_NS = 24 * 3600 * NS_PER_SECOND
#: Longest PullMessages Timeout (Core: at least one minute must be supported).
MAX_PULL_TIMEOUT_NS = 10 * 60 * NS_PER_SECOND
#: Most messages one PullMessages answers; a larger MessageLimit is served up to this.
MAX_MESSAGE_LIMIT = 1000
#: Notifications kept per pull point between pulls (the bus drops the oldest beyond this).
PULL_POINT_QUEUE = 1000
#: Longest topic expression accepted, and most '|' alternatives in it.
MAX_TOPIC_EXPRESSION_CHARS = 4096
MAX_TOPIC_ALTERNATIVES = 64

#: URL path under which pull points live; the id follows.
SUBSCRIPTION_PATH = "/onvif/events/subscription/"

DIALECT_CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
DIALECT_CONCRETE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete"
DIALECT_SIMPLE = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
TOPIC_DIALECTS = (DIALECT_CONCRETE_SET, DIALECT_CONCRETE, DIALECT_SIMPLE)
TOPIC_NAMESPACE_LOCATION = "http://www.onvif.org/onvif/ver10/topics/topicns.xml"
MESSAGE_SCHEMA_LOCATION = "http://www.onvif.org/onvif/ver10/schema/onvif.xsd"

_TEV = f"{{{NS_EVENTS}}}"
_WSNT = f"{{{NS_WSNT}}}"
_TT = f"{{{NS_SCHEMA}}}"
_NS_XS = "http://www.w3.org/2001/XMLSchema"


def wsn_fault(name: str, reason: str) -> SoapFault:
    """A WS-BaseNotification fault (Core 9.9: a Receiver fault, HTTP 500)."""
    return SoapFault.receiver(name, reason=reason)


@dataclasses.dataclass(eq=False)
class PullPoint:
    """One subscription created by CreatePullPointSubscription."""

    id: str
    subscription: Subscription
    termination_ns: int
    #: A PullMessages is waiting on it (a second concurrent one is refused).
    pulling: bool = False


class EventsService(OnvifService):
    """tev: PullPoint subscriptions and GetEventProperties over an EventBus."""

    service = "events"
    # wsnt:Topic text is a QName path ('tns1:RecordingConfig/JobState'): its prefix must be
    # declared in scope (EV-01).
    response_nsmap: Mapping[str, str] = {"tns1": TOPIC_NAMESPACE, "tt": NS_SCHEMA}

    def __init__(
        self, bus: EventBus, clock: Clock, *, max_pull_points: int = MAX_PULL_POINTS
    ) -> None:
        self._bus = bus
        self._clock = clock
        self.max_pull_points = max_pull_points
        self._points: dict[str, PullPoint] = {}
        self._ids = itertools.count(1)

    def capabilities(self) -> dict[str, Any]:
        """tev:Capabilities (also what GetServices reports)."""
        return {
            "WSSubscriptionPolicySupport": False,
            "WSPausableSubscriptionManagerInterfaceSupport": False,
            "MaxNotificationProducers": 0,
            "MaxPullPoints": self.max_pull_points,
            "PersistentNotificationStorage": False,
        }

    @property
    def pull_points(self) -> Mapping[str, PullPoint]:
        return dict(self._points)

    def expire(self) -> int:
        """Close the pull points whose termination time has passed; returns how many."""
        now = self._clock.wall_ns()
        dead = [p for p in self._points.values() if p.termination_ns <= now]
        for point in dead:
            self._drop(point)
            log.info("pull point %s expired", point.id)
        return len(dead)

    def close(self) -> None:
        """End every pull point (engine shutdown)."""
        for point in list(self._points.values()):
            self._drop(point)

    def _drop(self, point: PullPoint) -> None:
        self._points.pop(point.id, None)
        point.subscription.close()

    # ------------------------------------------------------------ event service

    @operation("GetServiceCapabilities", AccessClass.PRE_AUTH, cacheable=True)
    async def get_service_capabilities(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {"Capabilities": self.capabilities()}

    @operation("GetEventProperties", AccessClass.READ_MEDIA)
    async def get_event_properties(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        return {
            "TopicNamespaceLocation": [TOPIC_NAMESPACE_LOCATION],
            "FixedTopicSet": True,
            "TopicSet": {"_value_1": topic_set_elements(self._bus.topics)},
            "TopicExpressionDialect": [DIALECT_CONCRETE_SET, DIALECT_CONCRETE],
            # Core 9.7: a device without a message content filter lists one empty URI.
            "MessageContentFilterDialect": [""],
            "MessageContentSchemaLocation": [MESSAGE_SCHEMA_LOCATION],
        }

    @operation("CreatePullPointSubscription", AccessClass.READ_MEDIA)
    async def create_pull_point(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        self.expire()
        payload = ctx.envelope.payload
        accept = _filter_of(payload, self._bus.topics)
        now = self._clock.wall_ns()
        initial = payload.find(f"{_TEV}InitialTerminationTime")
        termination = now + DEFAULT_TERMINATION_NS
        if initial is not None:
            termination = _termination(initial.text, now, "UnacceptableInitialTerminationTimeFault")
        if len(self._points) >= self.max_pull_points:
            raise wsn_fault(
                "SubscribeCreationFailedFault",
                f"all {self.max_pull_points} pull points are in use",
            )
        try:
            subscription = self._bus.subscribe(accept, max_queue=PULL_POINT_QUEUE, initial=True)
        except ConfigError as exc:
            raise wsn_fault("SubscribeCreationFailedFault", exc.message) from None
        point = PullPoint(f"{next(self._ids)}-{secrets.token_hex(6)}", subscription, termination)
        self._points[point.id] = point
        log.info("pull point %s created by %r", point.id, ctx.caller.user)
        return {
            "SubscriptionReference": {"Address": ctx.base_url + SUBSCRIPTION_PATH + point.id},
            "CurrentTime": format_iso(now),
            "TerminationTime": format_iso(termination),
        }

    # ------------------------------------------------------------ pull point

    @operation("PullMessages", AccessClass.READ_MEDIA)
    async def pull_messages(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        point = self._point(ctx)
        try:
            timeout_ns = parse_duration(str(req.Timeout))
        except ConfigError as exc:
            raise SoapFault.sender("InvalidArgs", reason=exc.message) from None
        if timeout_ns > MAX_PULL_TIMEOUT_NS:
            raise SoapFault.receiver(
                "PullMessagesFault",
                reason=f"Timeout {req.Timeout} exceeds MaxTimeout "
                f"PT{MAX_PULL_TIMEOUT_NS // NS_PER_SECOND}S (MaxMessageLimit "
                f"{MAX_MESSAGE_LIMIT})",
            )
        limit = int(req.MessageLimit)
        if limit < 1:
            raise SoapFault.sender("InvalidArgVal", reason=f"MessageLimit {limit} is below 1")
        if point.pulling:
            raise wsn_fault(
                "UnableToGetMessagesFault", f"pull point {point.id} is already being pulled"
            )
        # Core 9.1.1: the pull point stays alive at least for the Timeout of each pull.
        now = self._clock.wall_ns()
        point.termination_ns = max(point.termination_ns, now + timeout_ns)
        point.pulling = True
        try:
            found = await point.subscription.pull(
                min(limit, MAX_MESSAGE_LIMIT), timeout_ns / NS_PER_SECOND
            )
        finally:
            point.pulling = False
        producer = ctx.base_url + SUBSCRIPTION_PATH + point.id
        return {
            "CurrentTime": format_iso(self._clock.wall_ns()),
            "TerminationTime": format_iso(point.termination_ns),
            "NotificationMessage": [notification_message(n, producer) for n in found],
        }

    @operation("Renew", AccessClass.READ_MEDIA)
    async def renew(self, ctx: RequestContext, req: Any) -> dict[str, Any]:
        point = self._point(ctx)
        now = self._clock.wall_ns()
        element = ctx.envelope.payload.find(f"{_WSNT}TerminationTime")
        text = element.text if element is not None else None
        point.termination_ns = _termination(text, now, "UnacceptableTerminationTimeFault")
        return {"TerminationTime": format_iso(point.termination_ns), "CurrentTime": format_iso(now)}

    @operation("Unsubscribe", AccessClass.READ_MEDIA)
    async def unsubscribe(self, ctx: RequestContext, req: Any) -> None:
        point = self._point(ctx)
        self._drop(point)
        log.info("pull point %s unsubscribed by %r", point.id, ctx.caller.user)

    @operation("SetSynchronizationPoint", AccessClass.READ_MEDIA)
    async def set_synchronization_point(self, ctx: RequestContext, req: Any) -> None:
        """EV-02: queue every live property instance again as Initialized."""
        self._point(ctx).subscription.synchronize()

    def _point(self, ctx: RequestContext) -> PullPoint:
        """The pull point the request is addressed to (path, else wsa:To)."""
        self.expire()
        ident = _subscription_id(ctx.path)
        if ident is None:
            to = ctx.envelope.header(NS_WSA, "To")
            if to is not None and to.text:
                ident = _subscription_id(urlparse(to.text.strip()).path)
        point = self._points.get(ident) if ident else None
        if point is None:
            where = ident or ctx.path
            raise wsn_fault("ResourceUnknownFault", f"no pull point at {where!r}")
        return point


def _subscription_id(path: str) -> str | None:
    if not path.startswith(SUBSCRIPTION_PATH):
        return None
    ident = path[len(SUBSCRIPTION_PATH) :].strip("/")
    return ident or None


def _termination(text: str | None, now: int, fault: str) -> int:
    """An AbsoluteOrRelativeTimeType (xs:dateTime or xs:duration) → absolute UTC ns."""
    value = (text or "").strip()
    try:
        relative = value.startswith(("P", "-P"))
        when = now + parse_duration(value) if relative else parse_iso(value)
    except (ConfigError, ValueError) as exc:
        reason = exc.message if isinstance(exc, ConfigError) else str(exc)
        raise SoapFault.sender("InvalidArgs", reason=f"termination time: {reason}") from None
    if when <= now:
        raise wsn_fault(fault, f"termination time {value!r} is not in the future")
    if when - now > MAX_TERMINATION_NS:
        limit = MAX_TERMINATION_NS // NS_PER_SECOND
        raise wsn_fault(fault, f"termination time {value!r} is more than {limit} s ahead")
    return when


# ---------------------------------------------------------------- topic filter


def _filter_of(payload: etree._Element, topics: Mapping[Topic, MessageDescription]) -> TopicFilter:
    """The subscription's TopicFilter from the wsnt:TopicExpression(s) of its Filter (PF-22).

    Several TopicExpressions must all match (WS-BaseNotification); the bus filter takes one
    set, so their intersection is used. A MessageContent filter is not supported and ignored
    (GetEventProperties says so with an empty MessageContentFilterDialect).
    """
    expressions = payload.findall(f"{_TEV}Filter/{_WSNT}TopicExpression")
    result: TopicFilter | None = None
    for element in expressions:
        dialect = (element.get("Dialect") or DIALECT_CONCRETE_SET).strip()
        if dialect not in TOPIC_DIALECTS:
            raise wsn_fault(
                "TopicExpressionDialectUnknownFault", f"topic dialect {dialect!r} is not supported"
            )
        text = "".join(element.itertext())
        nsmap = {k: v for k, v in element.nsmap.items() if k is not None}
        parsed = parse_topic_expression(text, nsmap, topics)
        result = parsed if result is None else _intersect(result, parsed, topics)
    return result or TopicFilter()


def _intersect(
    a: TopicFilter, b: TopicFilter, topics: Mapping[Topic, MessageDescription]
) -> TopicFilter:
    both = frozenset(t for t in topics if _matches(a, t) and _matches(b, t))
    # An empty set would mean "everything" to the bus: keep an impossible topic instead.
    return TopicFilter(topics=both or frozenset({("",)}))


def _matches(f: TopicFilter, topic: Topic) -> bool:
    return topic in f.topics or any(topic[: len(s)] == s for s in f.subtrees)


def parse_topic_expression(
    text: str, nsmap: Mapping[str, str], topics: Mapping[Topic, MessageDescription]
) -> TopicFilter:
    """A ConcreteSet expression ('tns1:A/B|tns1:C//.') → TopicFilter (Core 9.6.3).

    Prefixes resolve through `nsmap` (the in-scope namespaces of the TopicExpression element):
    clients use any prefix for the ONVIF topic namespace. An unprefixed root is taken to be in
    it. Faults: InvalidTopicExpressionFault for bad syntax or an unknown prefix,
    TopicNotSupportedFault for a path that names no topic (or subtree) of `topics`.
    """
    if len(text) > MAX_TOPIC_EXPRESSION_CHARS:
        raise wsn_fault("InvalidTopicExpressionFault", f"topic expression of {len(text)} chars")
    alternatives = [p.strip() for p in text.split("|")]
    if len(alternatives) > MAX_TOPIC_ALTERNATIVES:
        raise wsn_fault(
            "InvalidTopicExpressionFault", f"more than {MAX_TOPIC_ALTERNATIVES} alternatives"
        )
    exact: set[Topic] = set()
    subtrees: list[Topic] = []
    for path in alternatives:
        subtree = path.endswith("//.")
        steps = (path[:-3] if subtree else path).split("/")
        if not path or any(not s.strip() or s != s.strip() for s in steps):
            raise wsn_fault("InvalidTopicExpressionFault", f"malformed topic path {path!r}")
        topic = tuple(_local_name(step, nsmap, root=i == 0) for i, step in enumerate(steps))
        if subtree:
            if not any(t[: len(topic)] == topic for t in topics):
                raise wsn_fault("TopicNotSupportedFault", f"no topics under {path!r}")
            subtrees.append(topic)
        else:
            if topic not in topics:
                raise wsn_fault("TopicNotSupportedFault", f"topic {path!r} is not supported")
            exact.add(topic)
    return TopicFilter(topics=frozenset(exact), subtrees=tuple(subtrees))


def _local_name(step: str, nsmap: Mapping[str, str], *, root: bool) -> str:
    prefix, colon, local = step.rpartition(":")
    if not colon:
        return step
    namespace = nsmap.get(prefix)
    if namespace is None:
        raise wsn_fault("InvalidTopicExpressionFault", f"prefix {prefix!r} is not declared")
    if root and namespace != TOPIC_NAMESPACE:
        raise wsn_fault("TopicNotSupportedFault", f"topic namespace {namespace!r} is not served")
    return local


# ---------------------------------------------------------------- wire forms


def notification_message(notification: Notification, producer: str) -> dict[str, Any]:
    """The wsnt:NotificationMessage value for zeep (EV-01): Topic, ProducerReference, Message."""
    return {
        "Topic": {"_value_1": notification.topic_text, "Dialect": DIALECT_CONCRETE_SET},
        "ProducerReference": {"Address": producer},
        "Message": {"_value_1": message_element(notification)},
    }


def message_element(notification: Notification) -> etree._Element:
    """tt:Message with UtcTime, PropertyOperation and Source/Key/Data items (EV-01, EV-01a)."""
    root = etree.Element(f"{_TT}Message", nsmap={"tt": NS_SCHEMA})
    root.set("UtcTime", format_iso(notification.utc_ns))
    if notification.property_operation is not None:
        root.set("PropertyOperation", notification.property_operation.value)
    groups = (("Source", notification.source), ("Key", notification.key))
    for group, items in groups:
        if items:
            parent = etree.SubElement(root, f"{_TT}{group}")
            for name, value in items:
                etree.SubElement(parent, f"{_TT}SimpleItem", Name=name, Value=value)
    data = etree.SubElement(root, f"{_TT}Data")
    for name, value in notification.data:
        etree.SubElement(data, f"{_TT}SimpleItem", Name=name, Value=value)
    for item in notification.elements:
        holder = etree.SubElement(data, f"{_TT}ElementItem", Name=item.name)
        element = _element_of(item.type_name)
        element.render(holder, element(**item.value))
    return root


@functools.cache
def _element_of(type_name: str) -> Any:
    """A zeep element `tt:<type_name>` of schema type tt:<type_name> (EV-01a naming)."""
    xsd_type = catalog().type(f"{_TT}{type_name}")
    return zeep.xsd.Element(etree.QName(NS_SCHEMA, type_name), xsd_type)  # type: ignore[no-untyped-call]


def topic_set_elements(topics: Mapping[Topic, MessageDescription]) -> list[etree._Element]:
    """The children of wstop:TopicSet: one tns1-qualified root per tree, unqualified below.

    EV-03: only the root topic element is in the topic namespace; every leaf carries
    wstop:topic="true" and its tt:MessageDescription. The xs/tt prefixes used in the Type
    QNames are declared on each root.
    """
    nsmap = {"tns1": TOPIC_NAMESPACE, "tt": NS_SCHEMA, "xs": _NS_XS, "wstop": NS_WSTOP}
    roots: dict[str, etree._Element] = {}
    for topic, description in topics.items():
        node = roots.get(topic[0])
        if node is None:
            node = roots[topic[0]] = etree.Element(f"{{{TOPIC_NAMESPACE}}}{topic[0]}", nsmap=nsmap)
        for step in topic[1:]:
            child = node.find(step)
            node = child if child is not None else etree.SubElement(node, step)
        node.set(f"{{{NS_WSTOP}}}topic", "true")
        node.append(_description_element(description))
    return list(roots.values())


def _description_element(description: MessageDescription) -> etree._Element:
    root = etree.Element(f"{_TT}MessageDescription")
    root.set("IsProperty", "true" if description.is_property else "false")
    groups = (
        ("Source", description.source, ()),
        ("Key", description.key, ()),
        ("Data", description.data, description.elements),
    )
    for group, simple, elements in groups:
        if not simple and not elements:
            continue
        parent = etree.SubElement(root, f"{_TT}{group}")
        for item in simple:
            etree.SubElement(parent, f"{_TT}SimpleItemDescription", Name=item.name, Type=item.type)
        for item in elements:
            etree.SubElement(parent, f"{_TT}ElementItemDescription", Name=item.name, Type=item.type)
    return root
