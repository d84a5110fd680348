"""SlotPool: session affinity and first-come, first-served waiting."""

from __future__ import annotations

import asyncio

from cloud_teacher.engines.slots import SlotPool


def test_a_session_returns_to_its_slot_when_free() -> None:
    async def run() -> tuple[str, str, str]:
        pool = SlotPool(["a", "b"])
        first = await pool.acquire("s1")
        other = await pool.acquire("s2")
        pool.release(other)
        pool.release(first)
        again = await pool.acquire("s1")
        return first.item, other.item, again.item

    first, other, again = asyncio.run(run())
    assert first != other
    assert again == first


def test_a_new_session_takes_the_least_recently_used_slot() -> None:
    async def run() -> str:
        pool = SlotPool(["a", "b"])
        a = await pool.acquire("s1")
        b = await pool.acquire("s2")
        pool.release(a)
        pool.release(b)
        again_a = await pool.acquire("s1")
        pool.release(again_a)
        return (await pool.acquire("s3")).item

    assert asyncio.run(run()) == "b"


def test_waiters_are_served_in_order_and_a_cancelled_one_is_skipped() -> None:
    async def run() -> list[str]:
        pool = SlotPool(["only"])
        held = await pool.acquire("s0")
        served: list[str] = []

        async def wait(session: str) -> None:
            slot = await pool.acquire(session)
            served.append(session)
            pool.release(slot)

        first = asyncio.create_task(wait("s1"))
        cancelled = asyncio.create_task(wait("s2"))
        third = asyncio.create_task(wait("s3"))
        await asyncio.sleep(0)
        cancelled.cancel()
        pool.release(held)
        await asyncio.gather(first, third)
        return served

    assert asyncio.run(run()) == ["s1", "s3"]
