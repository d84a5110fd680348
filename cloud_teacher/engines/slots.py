"""A fixed pool of engine slots (one model context each) with session affinity.

A session goes back to the slot that last served it when that slot is free, so its KV prefix
is still there; otherwise it takes the least recently used free slot. Waiters are served first
come, first served. Pure bookkeeping on one event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Slot(Generic[T]):
    item: T
    owner: str | None = None  # the session whose tokens the slot holds
    tenant: str = ""  # the tenant (API key digest) whose tokens the slot holds
    busy: bool = False
    last_used: int = 0


class SlotPool(Generic[T]):
    def __init__(self, items: Sequence[T]) -> None:
        if not items:
            raise ValueError("a slot pool needs at least one slot")
        self.slots = [Slot(item) for item in items]
        self._waiters: deque[tuple[str, asyncio.Future[Slot[T]]]] = deque()
        self._clock = itertools.count(1)

    async def acquire(self, session_id: str) -> Slot[T]:
        """A free slot for the session, waiting for one if all are busy."""
        if not self._waiters:
            slot = self._pick(session_id)
            if slot is not None:
                return self._take(slot, session_id)
        waiter: asyncio.Future[Slot[T]] = asyncio.get_running_loop().create_future()
        self._waiters.append((session_id, waiter))
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed a slot just as the caller was cancelled: give it on, or it is lost.
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, slot: Slot[T]) -> None:
        slot.busy = False
        while self._waiters:
            session_id, waiter = self._waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            chosen = self._pick(session_id) or slot  # `slot` at least is free now
            waiter.set_result(self._take(chosen, session_id))
            return

    def _pick(self, session_id: str) -> Slot[T] | None:
        free = [slot for slot in self.slots if not slot.busy]
        for slot in free:
            if slot.owner == session_id:
                return slot
        return min(free, key=lambda slot: slot.last_used, default=None)

    def _take(self, slot: Slot[T], session_id: str) -> Slot[T]:
        slot.busy = True
        slot.owner = session_id
        slot.last_used = next(self._clock)
        return slot
