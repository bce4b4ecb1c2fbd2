"""OnvifServer's compiled response writers: the same bytes as zeep, and zeep when they refuse.

Two servers with the same service run side by side on loopback: one with compiled writers (the
default), one with `compiled_writers=False` (zeep for every answer, the reference). Each answer
is requested from both and compared byte for byte, status included, while a spy on the compiled
writer tells which path made it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.core.time import SystemClock
from app.engine.onvif.security import AccessClass, Authenticator
from app.engine.onvif.server import OnvifServer, OnvifService, RequestContext, operation
from app.engine.users import UserDirectory
from app.protocols.onvif.wsdl import NS_TOPICS
from app.protocols.soap.writer import NotCompiled

TSE = "http://www.onvif.org/ver10/search/wsdl"
SUMMARY_RESPONSE = f"{{{TSE}}}GetRecordingSummary"
REQUEST = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
    b'<tse:GetRecordingSummary xmlns:tse="http://www.onvif.org/ver10/search/wsdl"/>'
    b"</s:Body></s:Envelope>"
)
SUMMARY = {
    "DataFrom": "2024-05-01T10:00:00Z",
    "DataUntil": "2024-05-01T11:00:00.123Z",
    "NumberRecordings": 2,
}


class Summaries(OnvifService):
    """Answers GetRecordingSummary with whatever the test put in `answer`."""

    service = "search"
    response_nsmap = MappingProxyType({"tns1": NS_TOPICS})

    def __init__(self) -> None:
        self.answer: Any = None

    @operation("GetRecordingSummary", AccessClass.PRE_AUTH)
    async def summary(self, ctx: RequestContext, req: Any) -> Any:
        return self.answer


class Spy:
    """Counts what the compiled writer of one route did."""

    def __init__(self, server: OnvifServer) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        writer = server._routes[SUMMARY_RESPONSE].writer
        assert writer is not None, "GetRecordingSummaryResponse is a plain shape"
        envelope = writer.envelope

        def spied(*args: Any) -> Any:
            try:
                root = envelope(*args)
            except NotCompiled:
                self.outcomes["zeep"] += 1
                raise
            self.outcomes["compiled"] += 1
            return root

        writer.envelope = spied  # type: ignore[method-assign,assignment]


@contextlib.asynccontextmanager
async def served(server: OnvifServer) -> AsyncIterator[str]:
    app = web.Application()
    server.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/onvif/search_service"
    finally:
        await runner.cleanup()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Summaries, Spy, str, str]]:
    users = await asyncio.to_thread(
        UserDirectory.open, tmp_path, {"CUSTOS_ADMIN_PASSWORD": "writer-pw"}
    )
    service = Summaries()
    compiled = OnvifServer(Authenticator(users, SystemClock(), "Custos"), [service])
    reference = OnvifServer(
        Authenticator(users, SystemClock(), "Custos"), [service], compiled_writers=False
    )
    assert reference._routes[SUMMARY_RESPONSE].writer is None
    spy = Spy(compiled)
    async with served(compiled) as url, served(reference) as reference_url:
        yield service, spy, url, reference_url


async def post(url: str) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=REQUEST, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


async def test_plain_answer_is_compiled_and_identical(
    pair: tuple[Summaries, Spy, str, str],
) -> None:
    service, spy, url, reference_url = pair
    service.answer = {"Summary": SUMMARY}
    status, body = await post(url)
    assert (status, body) == await post(reference_url)
    assert status == 200
    assert spy.outcomes == {"compiled": 1}
    # The service's extra prefix is declared on the Envelope, the values are as sent.
    assert b'xmlns:tns1="http://www.onvif.org/ver10/topics"' in body.split(b">")[1]
    assert b">2024-05-01T11:00:00.123Z</" in body
    assert b">2</ns3:NumberRecordings>" in body


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"Summary": collections.OrderedDict(SUMMARY)}, id="dict-subclass"),
        pytest.param({"Summary": {**SUMMARY, "NumberRecordings": None}}, id="required-none"),
        pytest.param({"Summary": {**SUMMARY, "NumberRecordings": "x\x01"}}, id="control-char"),
        pytest.param({"Summary": {**SUMMARY, "Extra": 1}}, id="unknown-name"),
    ],
)
async def test_unusual_answers_fall_back_to_zeep(
    pair: tuple[Summaries, Spy, str, str], answer: dict[str, Any]
) -> None:
    service, spy, url, reference_url = pair
    service.answer = answer
    assert await post(url) == await post(reference_url)
    assert spy.outcomes == {"zeep": 1}


async def test_invalid_answer_is_the_same_fault(pair: tuple[Summaries, Spy, str, str]) -> None:
    service, spy, url, reference_url = pair
    service.answer = {"Summary": {**SUMMARY, "Extra": 1}}
    status, body = await post(url)
    assert (status, body) == await post(reference_url)
    assert status == 500
    assert b"GetRecordingSummary produced an invalid response" in body
    assert spy.outcomes == {"zeep": 1}


async def test_the_same_answer_object_is_resent_without_writing(
    pair: tuple[Summaries, Spy, str, str],
) -> None:
    service, spy, url, reference_url = pair
    service.answer = {"Summary": SUMMARY}
    first = await post(url)
    assert await post(url) == first == await post(reference_url)
    assert spy.outcomes == {"compiled": 1}  # the second answer's bytes were kept
    # An equal but new mapping is written again (identity, not equality, is the promise).
    service.answer = {"Summary": {**SUMMARY, "NumberRecordings": True}}
    status, body = await post(url)
    assert (status, body) == await post(reference_url)
    assert b">True</ns3:NumberRecordings>" in body  # zeep's str(True) for an xs:int
    assert spy.outcomes == {"compiled": 2}
