"""A circuit breaker: stop calling a teacher that keeps failing, probe it again later.

A small class rather than pybreaker: pybreaker reads `datetime.now()` itself (tests would have
to sleep through the cool-down or patch the module), wraps the callable and raises its own
error types, and brings storage back ends (Redis) the edge has no use for. Here the clock is
injected and the caller keeps its own control flow and exceptions.

    breaker = CircuitBreaker(threshold=3, cooldown_s=30.0)
    if not breaker.allow():
        raise CircuitOpenError(...)          # no network touched
    try:
        reply = call()
    except TeacherCallError:
        breaker.record_failure()
        raise
    breaker.record_success()
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"  # calls go through; failures are counted
    OPEN = "open"  # calls are refused until the cool-down has passed
    HALF_OPEN = "half_open"  # the cool-down has passed: the next call is a probe


class CircuitBreaker:
    """Opens after `threshold` consecutive failed calls; after `cooldown_s` it lets one probe
    through, which closes it on success and opens it again (for another cool-down) on failure.

    `clock` returns seconds (time.monotonic by default); tests pass a fake one. Thread-safe:
    when several threads share one teacher, only one of them probes.
    """

    def __init__(
        self,
        *,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._opened_at is None:
                return BreakerState.CLOSED
            if self._probing or self._cooled_down(self._opened_at):
                return BreakerState.HALF_OPEN
            return BreakerState.OPEN

    def allow(self) -> bool:
        """True when a call may go ahead. Past the cool-down it admits one probe; calls made
        while that probe is in flight are refused, so a dead teacher costs one call, not many."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or not self._cooled_down(self._opened_at):
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._probing = False

    def record_abandoned(self) -> None:
        """A call that ended without a verdict (cancelled by the user): a probe in flight is
        released, so the next call may probe again; the failure count is unchanged."""
        with self._lock:
            self._probing = False

    def _cooled_down(self, opened_at: float) -> bool:
        return self._clock() - opened_at >= self._cooldown_s
