"""What the REST resources share: the engine objects, persisted REST settings, the ID plan.

ID plan [I] (spec §5.2, Hikvision convention HR-17): recording n (1-based, creation order) is
input channel n, streaming channel and track `n01` (main); `n02` names the same stream (there
is no separate sub stream), so clients that hard-code 101/102 work.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from app.core.errors import ConfigError
from app.core.files import write_atomic
from app.core.media import TrackKind
from app.core.time import Clock
from app.engine.jobs import JobController
from app.engine.onvif.device import DeviceInfo, InterfaceFacts
from app.engine.rest.status import not_found
from app.engine.storage import Recording, Store
from app.engine.users import UserDirectory

#: File of the REST-only settings (device name, time zone) in the data directory.
SETTINGS_FILE = "rest.json"
#: Longest device name / time zone text accepted.
MAX_NAME_CHARS = 64
MAX_TIME_ZONE_CHARS = 64
#: Highest channel number an ID may name (IDs are "<channel>01").
MAX_CHANNEL = 9999
#: Namespace of the stable UUIDs (deviceID, TrackGUID, SrcGUID).
CUSTOS_UUID_NS = uuid.UUID("6f1c2a4e-0d7b-5c1e-9a51-3b0d2f7c9e10")

_STREAM_ID = re.compile(r"([1-9][0-9]{0,3})0([12])")


@dataclasses.dataclass
class RestSettings:
    """Writable System values that have no other home; persisted as JSON (atomic write)."""

    device_name: str = "Custos"
    time_mode: str = "NTP"
    time_zone: str = "UTC0"
    path: Path | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def load(cls, data_dir: Path | None) -> RestSettings:
        if data_dir is None:
            return cls()
        path = data_dir / SETTINGS_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(doc["device_name"]), str(doc["time_mode"]), str(doc["time_zone"]), path)
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"REST settings file {path} is unreadable: {exc}") from None

    def save(self) -> None:
        if self.path is None:
            return
        doc = {
            "device_name": self.device_name,
            "time_mode": self.time_mode,
            "time_zone": self.time_zone,
        }
        write_atomic(self.path, json.dumps(doc, indent=1).encode("utf-8"))


@dataclasses.dataclass
class RestContext:
    """The engine objects the resources read and drive."""

    store: Store
    users: UserDirectory
    jobs: JobController
    clock: Clock
    settings: RestSettings
    info: DeviceInfo
    #: The RTSP server's port (known only once it listens).
    rtsp_port: Callable[[], int]
    interfaces: Callable[[], Sequence[InterfaceFacts]]
    #: Whether a recording has a live RTSP mount (a configured source feeds it).
    has_live: Callable[[str], bool]
    data_dir: Path | None = None
    started_mono_ns: int = 0

    def device_id(self) -> str:
        return str(uuid.uuid5(CUSTOS_UUID_NS, f"device:{self.info.serial_number}"))

    def rtsp_base(self, host: str) -> str:
        shown = f"[{host}]" if ":" in host else host
        return f"rtsp://{shown}:{self.rtsp_port()}"


def stream_id(channel: int) -> str:
    return f"{channel}01"


def parse_stream_id(text: str) -> int | None:
    """The channel number of a streaming/track ID like 101 or 102; None if not of that form."""
    found = _STREAM_ID.fullmatch(text)
    if found is None or int(found.group(1)) > MAX_CHANNEL:
        return None
    return int(found.group(1))


async def channels(store: Store) -> list[tuple[int, Recording]]:
    """(channel number, recording) for every recording, in creation order."""
    recordings = await store.recordings()
    return [(n, rec) for n, rec in enumerate(recordings[:MAX_CHANNEL], start=1)]


async def recording_of(store: Store, ident: str) -> tuple[int, Recording]:
    """The channel and recording a streaming/track ID names; 404 ResponseStatus if none."""
    channel = parse_stream_id(ident)
    if channel is not None:
        for n, rec in await channels(store):
            if n == channel:
                return n, rec
    raise not_found(f"no channel or track {ident[:40]!r}")


def video_track(recording: Recording) -> str | None:
    return next((t.token for t in recording.tracks if t.kind is TrackKind.VIDEO), None)


def stable_uuid(kind: str, key: str) -> str:
    return str(uuid.uuid5(CUSTOS_UUID_NS, f"{kind}:{key}"))
