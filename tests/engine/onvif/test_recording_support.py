"""Shared pieces of the Recording Control / Receiver service tests (no tests of its own).

A store + event bus + job controller behind RecordingService and ReceiverService on a loopback
SOAP endpoint, the independent zeep client (tests/peers/onvif_zeep.py, every answer validated
against the official XSDs) for each account, raw
SOAP posts over httpx with Digest for the read-backs zeep would reformat, and fault helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep.exceptions
import zeep.helpers
from lxml import etree

from app.engine.events import EventBus
from app.engine.jobs import JobController
from app.engine.onvif.receiver import ReceiverService
from app.engine.onvif.recording import RecordingService
from app.engine.storage import Store
from tests.engine.jobs.helpers import controller
from tests.engine.onvif.harness import ACCOUNTS, Served, serve
from tests.peers.onvif_zeep import assert_valid_body, httpx_digest, validated_service

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "trv": "http://www.onvif.org/ver10/receiver/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
}
RECEIVER_TYPE = "http://www.onvif.org/ver10/schema/Receiver"
PROFILE_TYPE = "http://www.onvif.org/ver10/schema/Profile"
#: A token no object has (the DTT probes with random 8-character tokens).
UNKNOWN = "deadbeef"

# Shorthands for the fault chains of spec §2.A: (env:Code, ter: subcodes).
NO_RECORDING = ("Sender", ("InvalidArgVal", "NoRecording"))
NO_TRACK = ("Sender", ("InvalidArgVal", "NoTrack"))
NO_RECORDING_JOB = ("Sender", ("InvalidArgVal", "NoRecordingJob"))
BAD_CONFIGURATION = ("Sender", ("InvalidArgVal", "BadConfiguration"))
BAD_MODE = ("Sender", ("InvalidArgVal", "BadMode"))
UNKNOWN_TOKEN = ("Sender", ("InvalidArgVal", "UnknownToken"))
NOT_AUTHORIZED = ("Sender", ("NotAuthorized",))
INVALID_ARGS = ("Sender", ("InvalidArgs",))
ACTION_NOT_SUPPORTED = ("Receiver", ("ActionNotSupported",))


@dataclasses.dataclass
class Stack:
    """A running endpoint over a job controller."""

    served: Served
    jobs: JobController
    store: Store
    bus: EventBus

    def client(self, name: str, user: str = "admin") -> Any:
        """The independent zeep proxy of `name` as `user` (HTTP Digest); answers schema-checked."""
        return validated_service(name, self.served.address(name), user, ACCOUNTS[user][0])

    def anonymous(self, name: str) -> Any:
        return validated_service(name, self.served.address(name), None, None)

    async def raw(
        self, name: str, body: str, user: str | None = "admin"
    ) -> tuple[int, etree._Element]:
        """POST `body` (the Body's child, prefixes of NS) as-is; the status and the payload.

        The answer (result or fault) is validated against the official schemas first.
        """
        declarations = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
        envelope = f"<env:Envelope {declarations}><env:Body>{body}</env:Body></env:Envelope>"
        auth = httpx_digest(user, ACCOUNTS[user][0]) if user is not None else None
        async with httpx.AsyncClient(auth=auth, timeout=30) as http:
            response = await http.post(
                self.served.address(name),
                content=envelope.encode(),
                headers={"Content-Type": "application/soap+xml; charset=utf-8"},
            )
        root = etree.fromstring(response.content)
        assert_valid_body(name, root)
        body_el = root.find("env:Body", NS)
        assert body_el is not None and len(body_el) == 1, response.content[:300]
        return response.status_code, body_el[0]

    async def raw_ok(self, name: str, body: str, user: str = "admin") -> etree._Element:
        status, payload = await self.raw(name, body, user)
        assert status == 200, etree.tostring(payload)[:500]
        return payload


@contextlib.asynccontextmanager
async def onvif_stack(data: Path, generation: int = 0) -> AsyncIterator[Stack]:
    """Store, bus and controller on `data/store` behind both services; reopen to restart.

    Each `generation` gets its own user directory (the harness creates the accounts anew).
    """
    async with (
        controller(data / "store") as (store, bus, jobs),
        serve(
            [RecordingService(jobs), ReceiverService(jobs)], _users_dir(data, generation)
        ) as served,
    ):
        yield Stack(served, jobs, store, bus)


def _users_dir(data: Path, generation: int) -> Path:
    path = data / f"users{generation}"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def call(proxy: Any, operation: str, **kwargs: Any) -> Any:
    """Run one zeep operation in a thread (zeep's client is synchronous)."""
    return await asyncio.to_thread(getattr(proxy, operation), **kwargs)


def _fault_of(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    with pytest.raises(zeep.exceptions.Fault) as info:
        fn(**kwargs)
    fault = info.value
    code = str(fault.code or "").rpartition(":")[2]
    return code, tuple(q.localname for q in fault.subcodes or ())


async def fault(proxy: Any, operation: str, **kwargs: Any) -> tuple[str, tuple[str, ...]]:
    """The (env:Code, ter: subcodes) of the fault `operation` must answer."""
    return await asyncio.to_thread(_fault_of, getattr(proxy, operation), kwargs)


def recording_config(
    *,
    name: str = "Gate",
    source_id: str = "urn:custos:test:cam1",
    location: str = "North gate",
    description: str = "Camera 1",
    address: str = "rtsp://192.0.2.10/live",
    content: str = "Gate camera",
    retention: str = "PT0S",
) -> dict[str, Any]:
    """A tt:RecordingConfiguration for zeep."""
    return {
        "Source": {
            "SourceId": source_id,
            "Name": name,
            "Location": location,
            "Description": description,
            "Address": address,
        },
        "Content": content,
        "MaximumRetentionTime": retention,
    }


def receiver_config(
    uri: str = "rtsp://192.0.2.10/live",
    mode: str = "NeverConnect",
    stream: str = "RTP-Unicast",
    protocol: str = "RTSP",
) -> dict[str, Any]:
    """A tt:ReceiverConfiguration for zeep."""
    return {
        "Mode": mode,
        "MediaUri": uri,
        "StreamSetup": {"Stream": stream, "Transport": {"Protocol": protocol}},
    }


def job_config(
    recording: str,
    *,
    mode: str = "Idle",
    priority: int = 1,
    sources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A tt:RecordingJobConfiguration for zeep (default: one AutoCreateReceiver source)."""
    return {
        "RecordingToken": recording,
        "Mode": mode,
        "Priority": priority,
        "Source": [{"AutoCreateReceiver": True}] if sources is None else sources,
    }


def plain(value: Any) -> Any:
    """A zeep response value as plain dicts/lists (for equality checks)."""
    return zeep.helpers.serialize_object(value, dict)  # type: ignore[no-untyped-call]


def texts(element: etree._Element, path: str) -> list[str]:
    """The text of every element at `path` (prefixes of NS), '' for empty ones."""
    return [e.text or "" for e in element.findall(path, NS)]


async def snapshot(stack: Stack) -> tuple[Any, Any, Any]:
    """Everything the services can read, for "no state change" assertions."""
    rec = stack.client("recording")
    recv = stack.client("receiver")
    return (
        plain(await call(rec, "GetRecordings")),
        plain(await call(rec, "GetRecordingJobs")),
        plain(await call(recv, "GetReceivers")),
    )


def raw_fault(payload: etree._Element) -> tuple[str, tuple[str, ...]]:
    """(env:Code, ter: subcodes) of a raw Fault payload."""
    assert payload.tag == f"{{{NS['env']}}}Fault", etree.tostring(payload)[:300]
    code = payload.findtext("env:Code/env:Value", namespaces=NS) or ""
    subs = []
    sub = payload.find("env:Code/env:Subcode", NS)
    while sub is not None:
        subs.append((sub.findtext("env:Value", namespaces=NS) or "").rpartition(":")[2])
        sub = sub.find("env:Subcode", NS)
    return code.rpartition(":")[2], tuple(subs)
