"""Teacher-side accounting per session, and idempotent span requests. Pure bookkeeping.

    book = SessionBook(max_remembered=10_000, max_sessions=100_000)
    replay = await book.claim(request)                   # waits while that id is in flight
    if replay is None:                                   # ours to generate
        try:
            totals = book.complete(request, span)        # counted once, remembered
        finally:
            book.release(session_id, request_id)         # wakes a duplicate; it then takes over

A retried `request_id` gets the remembered span back (`replayed=True`), neither generated nor
counted again; the same id with a different request is refused (a client bug that would
otherwise get a span for another context). Remembered ids and sessions are bounded, least
recently used first out.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from cloud_teacher.errors import InvalidRequestError, SessionNotFoundError
from cloud_teacher.requests import SpanRequest
from cloud_teacher.spans import Span


@dataclass(slots=True)
class SessionUsage:
    session_id: str
    spans: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0

    def add(self, span: Span) -> None:
        self.spans += 1
        self.prompt_tokens += span.usage.prompt_tokens
        self.cached_prompt_tokens += span.usage.cached_prompt_tokens
        self.generated_tokens += span.usage.generated_tokens


_Key = tuple[str, str]  # (session_id, request_id)


class SessionBook:
    """Usage totals per session and the spans answered per request id. One event loop only."""

    def __init__(self, *, max_remembered: int, max_sessions: int) -> None:
        if max_remembered < 1 or max_sessions < 1:
            raise ValueError("max_remembered and max_sessions must be at least 1")
        self._max_remembered = max_remembered
        self._max_sessions = max_sessions
        self._answered: OrderedDict[_Key, tuple[SpanRequest, Span]] = OrderedDict()
        self._in_flight: dict[_Key, asyncio.Event] = {}
        self._sessions: OrderedDict[str, SessionUsage] = OrderedDict()

    async def claim(self, request: SpanRequest) -> Span | None:
        """The span already answered for this id (marked replayed), or None: generate it.

        A second caller with an id in flight waits for the first, then replays its span, or
        takes over when the first gave up without one.
        """
        key = (request.session_id, request.request_id)
        while True:
            answered = self._answered.get(key)
            if answered is not None:
                asked, span = answered
                if asked != request:
                    raise InvalidRequestError(
                        f"request_id {request.request_id!r} was already used in this session "
                        "for a different request; give each new span a new request_id"
                    )
                self._answered.move_to_end(key)
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
        session_id = request.session_id
        key = (session_id, request.request_id)
        self._answered[key] = (request, span)
        self._answered.move_to_end(key)
        while len(self._answered) > self._max_remembered:
            self._answered.popitem(last=False)
        usage = self._sessions.get(session_id)
        if usage is None:
            usage = self._sessions[session_id] = SessionUsage(session_id)
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        usage.add(span)
        return dataclasses.replace(usage)

    def release(self, session_id: str, request_id: str) -> None:
        """Ends the claim on an id, answered or not, and wakes whoever waits for it."""
        event = self._in_flight.pop((session_id, request_id), None)
        if event is not None:
            event.set()

    @property
    def sessions_held(self) -> int:
        """Sessions whose usage is kept."""
        return len(self._sessions)

    def totals(self, session_id: str) -> SessionUsage:
        """A copy of the session's totals; zeros if it has none."""
        usage = self._sessions.get(session_id)
        return SessionUsage(session_id) if usage is None else dataclasses.replace(usage)

    def usage(self, session_id: str) -> SessionUsage:
        """A copy of the session's totals; `SessionNotFoundError` if it has none."""
        usage = self._sessions.get(session_id)
        if usage is None:
            raise SessionNotFoundError(
                f"no usage for session {session_id!r}: it has no answered spans here, or it "
                "was forgotten (the teacher keeps the most recent sessions only)"
            )
        return dataclasses.replace(usage)
