"""SessionBook: per-session usage and idempotent request ids, without any engine or gRPC."""

from __future__ import annotations

import asyncio

import pytest

from cloud_teacher.errors import InvalidRequestError, SessionNotFoundError
from cloud_teacher.requests import SpanRequest, TokenContext
from cloud_teacher.sessions import SessionBook
from cloud_teacher.spans import FinishReason, Span, SpanUsage
from relay_common.sampling import SamplingParams


def make_span(tokens: tuple[int, ...] = (1, 2, 3), *, prompt: int = 10, cached: int = 4) -> Span:
    return Span(
        token_ids=tokens,
        text="abc",
        finish_reason=FinishReason.LENGTH,
        usage=SpanUsage(
            prompt_tokens=prompt,
            cached_prompt_tokens=cached,
            generated_tokens=len(tokens),
            queue_time_ms=0.5,
            compute_time_ms=2.0,
        ),
    )


def span_request(session: str, request: str, context: tuple[int, ...] = (7, 8)) -> SpanRequest:
    return SpanRequest(
        session_id=session,
        request_id=request,
        context=TokenContext(token_ids=context),
        max_tokens=4,
        sampling=SamplingParams(),
    )


def answer(
    book: SessionBook, session: str, request: str, span: Span, *, context: tuple[int, ...] = (7, 8)
) -> Span | None:
    asked = span_request(session, request, context)

    async def run() -> Span | None:
        replay = await book.claim(asked)
        if replay is None:
            book.complete(asked, span)
            book.release(session, request)
        return replay

    return asyncio.run(run())


def test_spans_are_counted_per_session() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)
    assert answer(book, "s1", "r1", make_span(prompt=10, cached=0)) is None
    assert answer(book, "s1", "r2", make_span((4, 5), prompt=15, cached=12)) is None
    assert answer(book, "s2", "r1", make_span()) is None

    usage = book.usage("s1")
    assert (usage.spans, usage.prompt_tokens, usage.cached_prompt_tokens) == (2, 25, 12)
    assert usage.generated_tokens == 5
    assert book.usage("s2").spans == 1


def test_a_retried_request_id_replays_and_is_not_counted_again() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)
    span = make_span()
    answer(book, "s1", "r1", span)

    replay = answer(book, "s1", "r1", make_span((9, 9, 9)))

    assert replay is not None
    assert replay.token_ids == span.token_ids
    assert replay.usage.replayed and not span.usage.replayed
    assert book.usage("s1").spans == 1
    assert book.usage("s1").generated_tokens == 3


def test_the_same_request_id_for_a_different_request_is_refused() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)
    answer(book, "s1", "r1", make_span(), context=(7, 8))
    with pytest.raises(InvalidRequestError, match="new request_id"):
        answer(book, "s1", "r1", make_span(), context=(7, 8, 9))
    assert book.usage("s1").spans == 1


def test_the_same_request_id_in_another_session_is_another_request() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)
    answer(book, "s1", "r1", make_span())
    assert answer(book, "s2", "r1", make_span()) is None


def test_a_concurrent_duplicate_waits_for_the_first_and_replays_it() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)
    generated: list[str] = []

    async def request(name: str) -> Span:
        replay = await book.claim(span_request("s1", "r1"))
        if replay is not None:
            return replay
        try:
            generated.append(name)
            await asyncio.sleep(0.01)  # the duplicate arrives while this one generates
            span = make_span()
            book.complete(span_request("s1", "r1"), span)
            return span
        finally:
            book.release("s1", "r1")

    async def both() -> list[Span]:
        return await asyncio.gather(request("first"), request("second"))

    first, second = asyncio.run(both())
    assert generated == ["first"]
    assert not first.usage.replayed and second.usage.replayed
    assert book.usage("s1").spans == 1


def test_a_duplicate_takes_over_when_the_first_gives_up() -> None:
    book = SessionBook(max_remembered=10, max_sessions=10)

    async def run() -> Span | None:
        assert await book.claim(span_request("s1", "r1")) is None
        waiter = asyncio.create_task(book.claim(span_request("s1", "r1")))
        await asyncio.sleep(0)
        assert not waiter.done()
        book.release("s1", "r1")  # the first failed: nothing answered
        return await waiter

    assert asyncio.run(run()) is None  # the duplicate now owns the request


def test_remembered_request_ids_are_bounded_least_recent_first() -> None:
    book = SessionBook(max_remembered=2, max_sessions=10)
    for request in ("r1", "r2", "r3"):
        answer(book, "s1", request, make_span())

    assert answer(book, "s1", "r3", make_span()) is not None
    assert answer(book, "s1", "r1", make_span()) is None  # forgotten: generated again


def test_sessions_are_bounded_and_unknown_ones_are_not_found() -> None:
    book = SessionBook(max_remembered=10, max_sessions=1)
    answer(book, "s1", "r1", make_span())
    answer(book, "s2", "r1", make_span())

    assert book.usage("s2").spans == 1
    with pytest.raises(SessionNotFoundError, match="s1"):
        book.usage("s1")
    assert book.totals("s1").spans == 0
