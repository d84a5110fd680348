"""Teacher-side accounting per session and per key, and idempotent span requests. Pure
bookkeeping.

    book = SessionBook(ReplayWindow(per_session=64, seconds=600, max_bytes=64 << 20),
                       max_sessions=100_000)
    replay = await book.claim(request)                   # waits while that id is in flight
    if replay is None:                                   # ours to generate
        try:
            totals = book.complete(request, span)        # counted once, remembered
        finally:
            book.release(request)                        # wakes a duplicate; it then takes over

A retried `request_id` gets the remembered span back (`replayed=True`), neither generated nor
counted again; the same id with a different request is refused (a client bug that would
otherwise get a span for another context). Only a digest of each request is kept, with its
span: never the context.

Everything is scoped to the tenant (the API key) that created it: another tenant sees neither
the session nor its replays, exactly as if they did not exist.

Retention (published in GetInfo): the answers to a session's last `per_session` requests are
replayed for `seconds` after they were answered. Past `max_bytes` in all, the oldest answers
are dropped earlier.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from cloud_teacher.errors import InvalidRequestError, SessionNotFoundError
from cloud_teacher.requests import SpanRequest
from cloud_teacher.spans import Span
from relay_common.echo import quoted

# What an answer costs besides its text and ids: keys, digest, objects (an estimate).
_ENTRY_OVERHEAD_BYTES = 512


@dataclass(slots=True)
class UsageTotals:
    spans: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    draft_tokens: int = 0  # read to check them (teacher-verified relay)

    def add(self, span: Span) -> None:
        self.spans += 1
        self.prompt_tokens += span.usage.prompt_tokens
        self.cached_prompt_tokens += span.usage.cached_prompt_tokens
        self.generated_tokens += span.usage.generated_tokens
        self.draft_tokens += span.usage.draft_tokens


@dataclass(slots=True)
class SessionUsage(UsageTotals):
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """How long answered requests are kept for retries (see the module docstring)."""

    per_session: int
    seconds: float
    max_bytes: int

    def __post_init__(self) -> None:
        if self.per_session < 1 or self.seconds <= 0 or self.max_bytes < 1:
            raise ValueError("per_session, seconds and max_bytes must be positive")


@dataclass(frozen=True, slots=True)
class _Answer:
    digest: bytes  # of the whole request: tells a retry from a reuse of its id
    span: Span
    size: int
    answered_at: float


_SessionKey = tuple[str, str]  # (tenant, session_id)
_RequestKey = tuple[str, str, str]  # (tenant, session_id, request_id)


def _session_key(request: SpanRequest) -> _SessionKey:
    return (request.tenant, request.session_id)


def _request_key(request: SpanRequest) -> _RequestKey:
    return (request.tenant, request.session_id, request.request_id)


def request_digest(request: SpanRequest) -> bytes:
    """SHA-256 of everything the request asks (its dataclass repr is deterministic)."""
    return hashlib.sha256(repr(request).encode("utf-8")).digest()


def _answer_size(span: Span) -> int:
    return len(span.text.encode("utf-8")) + 8 * len(span.token_ids) + _ENTRY_OVERHEAD_BYTES


class SessionBook:
    """Usage totals per session and per tenant, and the spans answered per request id.

    One event loop only. `clock` (seconds) lets tests step past the retention window.
    """

    def __init__(
        self,
        window: ReplayWindow,
        *,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.window = window
        self._max_sessions = max_sessions
        self._clock = clock
        # Oldest answer first: expiry and the byte bound both drop from the front.
        self._answered: OrderedDict[_RequestKey, _Answer] = OrderedDict()
        self._answered_bytes = 0
        self._by_session: dict[_SessionKey, deque[_RequestKey]] = {}
        self._in_flight: dict[_RequestKey, asyncio.Event] = {}
        self._sessions: OrderedDict[_SessionKey, SessionUsage] = OrderedDict()
        self._tenants: dict[str, UsageTotals] = {}

    @property
    def answered_bytes(self) -> int:
        """Estimated memory the remembered answers take."""
        return self._answered_bytes

    def __len__(self) -> int:
        return len(self._answered)

    async def claim(self, request: SpanRequest) -> Span | None:
        """The span already answered for this id (marked replayed), or None: generate it.

        A second caller with an id in flight waits for the first, then replays its span, or
        takes over when the first gave up without one.
        """
        key = _request_key(request)
        digest = request_digest(request)
        while True:
            self._expire()
            answered = self._answered.get(key)
            if answered is not None:
                if answered.digest != digest:
                    raise InvalidRequestError(
                        f"request_id {quoted(request.request_id)} was already used in this session "
                        "for a different request; give each new span a new request_id"
                    )
                span = answered.span
                return dataclasses.replace(
                    span, usage=dataclasses.replace(span.usage, replayed=True)
                )
            in_flight = self._in_flight.get(key)
            if in_flight is None:
                self._in_flight[key] = asyncio.Event()
                return None
            await in_flight.wait()

    def complete(self, request: SpanRequest, span: Span) -> SessionUsage:
        """Counts a generated span once and remembers it; returns the session's new totals."""
        self._remember(request, span)
        session_key = _session_key(request)
        usage = self._sessions.get(session_key)
        if usage is None:
            usage = self._sessions[session_key] = SessionUsage(session_id=request.session_id)
        self._sessions.move_to_end(session_key)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        usage.add(span)
        self._tenants.setdefault(request.tenant, UsageTotals()).add(span)
        return dataclasses.replace(usage)

    def release(self, request: SpanRequest) -> None:
        """Ends the claim on an id, answered or not, and wakes whoever waits for it."""
        event = self._in_flight.pop(_request_key(request), None)
        if event is not None:
            event.set()

    @property
    def sessions_held(self) -> int:
        """Sessions whose usage is kept."""
        return len(self._sessions)

    def totals(self, tenant: str, session_id: str) -> SessionUsage:
        """A copy of the session's totals; zeros if it has none."""
        usage = self._sessions.get((tenant, session_id))
        return SessionUsage(session_id=session_id) if usage is None else dataclasses.replace(usage)

    def usage(self, tenant: str, session_id: str) -> SessionUsage:
        """A copy of the tenant's session totals; `SessionNotFoundError` if it has none."""
        usage = self._sessions.get((tenant, session_id))
        if usage is None:
            raise SessionNotFoundError(
                f"no usage for session {quoted(session_id)}: it has no answered spans here for "
                "this API key, or it was forgotten (the teacher keeps the most recent sessions "
                "only)"
            )
        return dataclasses.replace(usage)

    def tenant_totals(self, tenant: str) -> UsageTotals:
        """A copy of everything the tenant was served (replays not counted)."""
        return dataclasses.replace(self._tenants.get(tenant, UsageTotals()))

    def _remember(self, request: SpanRequest, span: Span) -> None:
        key = _request_key(request)
        self._forget(key)
        answer = _Answer(request_digest(request), span, _answer_size(span), self._clock())
        self._answered[key] = answer
        self._answered_bytes += answer.size
        session = self._by_session.setdefault(_session_key(request), deque())
        session.append(key)
        while len(session) > self.window.per_session:
            self._forget(session[0])
        while self._answered_bytes > self.window.max_bytes and len(self._answered) > 1:
            self._forget(next(iter(self._answered)))
        self._expire()

    def _expire(self) -> None:
        oldest_kept = self._clock() - self.window.seconds
        while self._answered:
            key, answer = next(iter(self._answered.items()))
            if answer.answered_at > oldest_kept:
                return
            self._forget(key)

    def _forget(self, key: _RequestKey) -> None:
        answer = self._answered.pop(key, None)
        if answer is None:
            return
        self._answered_bytes -= answer.size
        session_key = (key[0], key[1])
        session = self._by_session[session_key]
        session.remove(key)
        if not session:
            del self._by_session[session_key]
