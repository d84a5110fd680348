"""Per-caller limits: concurrent calls and teacher tokens per minute. Pure bookkeeping.

    limits = CallerLimits(tokens_per_minute=10_000, max_calls=8)
    with limits.admit(caller):                 # OverloadedError: too many calls at once
        limits.check_quota(caller.tenant)      # QuotaExceededError: before generating only
        limits.charge(caller.tenant, tokens)   # generated tokens, counted against the minute

The quota is checked only before a span is generated, not for a retry the teacher replays:
replays cost nothing, and refusing one would leave the client without a span it was billed for.

The minute is a sliding window: a key that spent its tokens may call again as soon as enough
of them are older than 60 s, and the refusal says exactly when that is (RetryInfo).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cloud_teacher.access.keys import Caller
from cloud_teacher.errors import OverloadedError, QuotaExceededError

WINDOW_S = 60.0


class CallerLimits:
    """Limits per tenant; `None` turns a limit off. One event loop only."""

    def __init__(
        self,
        *,
        tokens_per_minute: int | None,
        max_calls: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tokens_per_minute = tokens_per_minute
        self._max_calls = max_calls
        self._clock = clock
        self._calls: defaultdict[str, int] = defaultdict(int)
        self._spent: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)

    @contextmanager
    def admit(self, caller: Caller) -> Iterator[None]:
        """Holds one of the caller's concurrent calls for the duration of the block."""
        calls = self._calls[caller.tenant]
        # Without keys every caller is one tenant: max_pending alone bounds them.
        if self._max_calls is not None and caller.tenant and calls >= self._max_calls:
            raise OverloadedError(
                f"this API key has {calls} calls in progress, the limit; "
                "wait for one to finish before sending another"
            )
        self._calls[caller.tenant] += 1
        try:
            yield
        finally:
            self._calls[caller.tenant] -= 1
            if not self._calls[caller.tenant]:
                del self._calls[caller.tenant]

    def charge(self, tenant: str, tokens: int) -> None:
        """Counts generated tokens against the tenant's minute."""
        if self._tokens_per_minute is not None and tokens > 0:
            self._spent[tenant].append((self._clock(), tokens))

    def check_quota(self, tenant: str) -> None:
        """`QuotaExceededError`, with when to retry, if the tenant's minute is spent."""
        if self._tokens_per_minute is None:
            return
        spent = self._spent[tenant]
        now = self._clock()
        while spent and spent[0][0] <= now - WINDOW_S:
            spent.popleft()
        used = sum(tokens for _, tokens in spent)
        if used < self._tokens_per_minute:
            if not spent:
                del self._spent[tenant]
            return
        # The earliest moment enough old spans leave the window to go under the quota.
        over = used - self._tokens_per_minute
        freed = 0
        for moment, tokens in spent:
            freed += tokens
            if freed > over:
                retry_after_s = max(0.001, moment + WINDOW_S - now)
                break
        raise QuotaExceededError(
            f"this API key used {used} teacher tokens in the last minute, its quota is "
            f"{self._tokens_per_minute}; retry in {retry_after_s:.1f} s",
            retry_after_s=retry_after_s,
        )
