"""The teacher's core: admission, idempotency and accounting around an engine. No gRPC here.

    teacher = Teacher(engine, limits=limits, book=book, max_pending=64)
    done = await teacher.generate_span(request)       # SpanDone: the span and session totals
    async for event in teacher.stream_span(request):  # Piece, ..., then SpanDone
        ...

A retried request id is answered from the SessionBook; a new span from the engine, admitted
while fewer than `max_pending` are in progress.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from cloud_teacher.engines.base import Engine, EngineInfo
from cloud_teacher.errors import EngineDeadError, OverloadedError
from cloud_teacher.requests import Limits, SpanRequest
from cloud_teacher.sessions import ReplayWindow, SessionBook, SessionUsage, UsageTotals
from cloud_teacher.spans import Piece, Span, SpanEnd, SpanUsage


@dataclass(frozen=True, slots=True)
class SpanDone:
    """The end of a span: the whole span, the session's totals after it, and the text not yet
    streamed (pending bytes of a cut multi-byte character)."""

    span: Span
    session: SessionUsage
    tail_text: str


async def _nothing() -> None:
    return None


class Teacher:
    def __init__(
        self,
        engine: Engine,
        *,
        limits: Limits,
        book: SessionBook,
        max_pending: int,
        on_engine_dead: Callable[[], Awaitable[None]] = _nothing,
        before_generating: Callable[[SpanRequest], None] = lambda request: None,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self._book = book
        self._max_pending = max_pending
        self._pending = 0
        self._on_engine_dead = on_engine_dead
        # E.g. the tenant's quota: raises to refuse a span that would be generated (a replay
        # is not, so it is never refused this way).
        self._before_generating = before_generating

    @property
    def info(self) -> EngineInfo:
        return self.engine.info

    @property
    def replay_window(self) -> ReplayWindow:
        return self._book.window

    def session_usage(self, tenant: str, session_id: str) -> SessionUsage:
        return self._book.usage(tenant, session_id)

    def tenant_usage(self, tenant: str) -> UsageTotals:
        return self._book.tenant_totals(tenant)

    async def generate_span(self, request: SpanRequest) -> SpanDone:
        async for event in self.stream_span(request):
            last = event
        return cast(SpanDone, last)  # stream_span ends with SpanDone or raises

    async def stream_span(self, request: SpanRequest) -> AsyncIterator[Piece | SpanDone]:
        """Pieces as the engine writes them, then `SpanDone`; a replay is one piece."""
        replay = await self._book.claim(request)
        if replay is not None:
            yield Piece(token_ids=replay.token_ids, text=replay.text)
            totals = self._book.totals(request.tenant, request.session_id)
            yield SpanDone(span=replay, session=totals, tail_text="")
            return
        try:
            token_ids: list[int] = []
            texts: list[str] = []
            end: SpanEnd | None = None
            async for event in self._generate(request):
                if isinstance(event, Piece):
                    token_ids.extend(event.token_ids)
                    texts.append(event.text)
                    yield event
                else:
                    end = event
            if end is None:
                raise EngineDeadError("the engine ended a span without finishing it")
            span = _span(token_ids, "".join(texts) + end.tail_text, end)
            session = self._book.complete(request, span)
            yield SpanDone(span=span, session=session, tail_text=end.tail_text)
        finally:
            self._book.release(request)

    async def _generate(self, request: SpanRequest) -> AsyncIterator[Piece | SpanEnd]:
        self._before_generating(request)
        if self._pending >= self._max_pending:
            raise OverloadedError(
                f"the teacher has {self._pending} span requests in progress (the limit); "
                "retry later"
            )
        self._pending += 1
        try:
            async for event in self.engine.generate(request):
                yield event
        except EngineDeadError:
            await self._on_engine_dead()
            raise
        finally:
            self._pending -= 1


def _span(token_ids: list[int], text: str, end: SpanEnd) -> Span:
    return Span(
        token_ids=tuple(token_ids),
        text=text,
        finish_reason=end.finish_reason,
        usage=SpanUsage(
            prompt_tokens=end.prompt_tokens,
            cached_prompt_tokens=end.cached_prompt_tokens,
            generated_tokens=len(token_ids),
            queue_time_ms=end.queue_time_ms,
            compute_time_ms=end.compute_time_ms,
            draft_tokens=end.draft_tokens,
        ),
        accepted_draft_tokens=end.accepted_draft_tokens,
    )
