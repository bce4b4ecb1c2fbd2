"""PerRevision: one read per revision, shared by concurrent callers, errors not kept."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.revisions import PerRevision


async def settle() -> None:
    """Let started tasks run up to their next real wait (a task starting a task takes two)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Source:
    """A read that counts its calls and finishes when the test releases it."""

    def __init__(self) -> None:
        self.calls = 0
        self.gates: list[asyncio.Future[str]] = []

    async def read(self) -> str:
        self.calls += 1
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        return await gate


async def test_concurrent_callers_of_one_revision_share_one_read() -> None:
    source = Source()
    cache = PerRevision(source.read)
    waiters = [asyncio.create_task(cache.get(3)) for _ in range(50)]
    await settle()
    assert source.calls == 1
    source.gates[0].set_result("r3")
    assert await asyncio.gather(*waiters) == ["r3"] * 50
    assert await cache.get(3) == "r3" and await cache.get(2) == "r3"
    assert source.calls == 1


async def test_a_newer_revision_reads_again_and_an_older_read_never_overwrites_it() -> None:
    source = Source()
    cache = PerRevision(source.read)
    old = asyncio.create_task(cache.get(1))
    await settle()
    new = asyncio.create_task(cache.get(2))
    also_old = asyncio.create_task(cache.get(1))  # joins the newest read in flight
    await settle()
    assert source.calls == 2
    source.gates[1].set_result("r2")
    assert await new == "r2"
    source.gates[0].set_result("r1")
    assert await old == "r1"
    assert await also_old == "r2"
    assert await cache.get(2) == "r2"  # the late read of revision 1 did not replace it
    assert source.calls == 2


async def test_a_failed_read_reaches_every_waiter_and_is_not_kept() -> None:
    source = Source()
    cache = PerRevision(source.read)
    waiters = [asyncio.create_task(cache.get(5)) for _ in range(3)]
    await settle()
    source.gates[0].set_exception(OSError("disk gone"))
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert [str(r) for r in results] == ["disk gone"] * 3
    again = asyncio.create_task(cache.get(5))
    await settle()
    assert source.calls == 2
    source.gates[1].set_result("r5")
    assert await again == "r5"


async def test_a_cancelled_waiter_does_not_cancel_the_shared_read() -> None:
    source = Source()
    cache = PerRevision(source.read)
    reader = asyncio.create_task(cache.get(7))
    impatient = asyncio.create_task(cache.get(7))
    await settle()
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    source.gates[0].set_result("r7")
    assert await reader == "r7"
    assert source.calls == 1


async def test_when_the_reading_caller_is_cancelled_a_waiter_reads() -> None:
    source = Source()
    cache = PerRevision(source.read)
    impatient = asyncio.create_task(cache.get(7))  # the first caller reads
    patient = asyncio.create_task(cache.get(7))
    await settle()
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    await settle()
    assert source.calls == 2  # the waiter took over
    source.gates[1].set_result("r7")
    assert await patient == "r7"
