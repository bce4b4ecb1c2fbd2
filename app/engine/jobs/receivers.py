"""One ONVIF receiver at run time: its ingest loop, the LiveHub it feeds, its state events.

The controller starts a `ReceiverRuntime` while the receiver must be connected (RX-G2) and
stops it otherwise. The runtime maps the ingest states to tt:ReceiverState and publishes
`tns1:Receiver/ChangeState` on every change and `tns1:Receiver/ConnectionFailed` after each
failed attempt (one per back-off period, as the ingest retries at that pace). Event URIs are
redacted: a camera password never reaches a subscriber or a log line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from app.core.errors import ConfigError
from app.engine import events
from app.engine.ingest import Receiver as Ingest
from app.engine.ingest import ReceiverState, ReceiverStatus, redact_url
from app.engine.ingest.session import Transport
from app.engine.live import LiveHub
from app.engine.storage import Receiver, ReceiverConfig, TransportProtocol

log = logging.getLogger(__name__)

NOT_CONNECTED = "NotConnected"
CONNECTING = "Connecting"
CONNECTED = "Connected"


@dataclasses.dataclass(frozen=True, slots=True)
class IngestOptions:
    """Tunables of the ingest loops the controller starts (tests shorten them)."""

    backoff_initial_s: float = 1.0
    backoff_cap_s: float = 8.0
    request_timeout_s: float = 10.0
    dead_after_s: float = 10.0


def ingest_transport(config: ReceiverConfig) -> Transport:
    """RTP over UDP for Protocol UDP; interleaved RTSP over TCP for everything else.

    HTTP tunnelling is not implemented by the ingest yet: such receivers use RTSP over TCP to
    the same URI, which is what most cameras answer on the RTSP port anyway.
    """
    return "udp" if config.protocol is TransportProtocol.UDP else "tcp"


class ReceiverRuntime:
    """The running side of one receiver; `config` is the configuration it was started with."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        bus: events.EventBus,
        options: IngestOptions,
        on_change: Callable[[], None],
    ) -> None:
        self.token = receiver.token
        self.config = receiver.config
        self.hub = LiveHub(f"receiver {receiver.token}")
        self._bus = bus
        self._options = options
        self._on_change = on_change
        self._ingest: Ingest | None = None
        self._state = NOT_CONNECTED
        #: Why the last attempt or run failed; None once data flows again.
        self.failure: str | None = None

    @property
    def state(self) -> str:
        """The tt:ReceiverState value."""
        return self._state

    @property
    def ingest(self) -> Ingest | None:
        return self._ingest

    def start(self) -> None:
        """Start connecting; a receiver without a MediaUri just stays NotConnected."""
        if self._ingest is not None or not self.config.media_uri:
            return
        try:
            ingest = Ingest(
                self.config.media_uri,
                self.hub,
                transport=ingest_transport(self.config),
                clock=self._bus.clock,
                backoff_initial_s=self._options.backoff_initial_s,
                backoff_cap_s=self._options.backoff_cap_s,
                request_timeout_s=self._options.request_timeout_s,
                dead_after_s=self._options.dead_after_s,
                on_state=self._on_status,
                name=f"receiver {self.token}",
            )
        except ConfigError as exc:
            # Validated when configured, so only a stored value from an older version lands here.
            self.failure = exc.message
            self._connection_failed()
            self._on_change()
            return
        self._ingest = ingest
        ingest.start()

    async def stop(self) -> None:
        """Disconnect (the hub's sinks get `stop`), ending in NotConnected."""
        ingest, self._ingest = self._ingest, None
        if ingest is not None:
            await ingest.stop()
        self._move(NOT_CONNECTED)

    def _on_status(self, status: ReceiverStatus) -> None:
        if status.state is ReceiverState.FAILED:
            self.failure = status.reason or "connection failed"
            self._connection_failed()
        elif status.state is ReceiverState.STREAMING:
            self.failure = None
        self._move(status.state.onvif)
        self._on_change()

    def _move(self, state: str) -> None:
        if state == self._state:
            return
        self._state = state
        self._bus.emit(
            events.RECEIVER_CHANGE_STATE,
            source=[("ReceiverToken", self.token)],
            data=[("NewState", state), ("MediaUri", redact_url(self.config.media_uri))],
        )

    def _connection_failed(self) -> None:
        self._bus.emit(
            events.RECEIVER_CONNECTION_FAILED,
            source=[("ReceiverToken", self.token)],
            data=[("MediaUri", redact_url(self.config.media_uri))],
        )
