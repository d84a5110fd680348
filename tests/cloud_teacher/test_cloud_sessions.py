"""SessionBook: per-session and per-tenant usage, idempotent request ids and the bounded replay
cache, without any engine or gRPC."""

from __future__ import annotations

import asyncio

import pytest

from cloud_teacher.errors import InvalidRequestError, SessionNotFoundError
from cloud_teacher.requests import SpanRequest, TokenContext
from cloud_teacher.sessions import ReplayWindow, SessionBook
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_book(
    *,
    per_session: int = 10,
    seconds: float = 600,
    max_bytes: int = 1 << 20,
    max_sessions: int = 10,
    clock: Clock | None = None,
) -> SessionBook:
    return SessionBook(
        ReplayWindow(per_session=per_session, seconds=seconds, max_bytes=max_bytes),
        max_sessions=max_sessions,
        clock=clock or Clock(),
    )


def span_request(
    session: str, request: str, context: tuple[int, ...] = (7, 8), *, tenant: str = ""
) -> SpanRequest:
    return SpanRequest(
        session_id=session,
        request_id=request,
        context=TokenContext(token_ids=context),
        max_tokens=4,
        sampling=SamplingParams(),
        tenant=tenant,
    )


def answer(
    book: SessionBook,
    session: str,
    request: str,
    span: Span,
    *,
    context: tuple[int, ...] = (7, 8),
    tenant: str = "",
) -> Span | None:
    asked = span_request(session, request, context, tenant=tenant)

    async def run() -> Span | None:
        replay = await book.claim(asked)
        if replay is None:
            book.complete(asked, span)
            book.release(asked)
        return replay

    return asyncio.run(run())


def test_spans_are_counted_per_session() -> None:
    book = make_book()
    assert answer(book, "s1", "r1", make_span(prompt=10, cached=0)) is None
    assert answer(book, "s1", "r2", make_span((4, 5), prompt=15, cached=12)) is None
    assert answer(book, "s2", "r1", make_span()) is None

    usage = book.usage("", "s1")
    assert (usage.spans, usage.prompt_tokens, usage.cached_prompt_tokens) == (2, 25, 12)
    assert usage.generated_tokens == 5
    assert book.usage("", "s2").spans == 1


def test_a_retried_request_id_replays_and_is_not_counted_again() -> None:
    book = make_book()
    span = make_span()
    answer(book, "s1", "r1", span)

    replay = answer(book, "s1", "r1", make_span((9, 9, 9)))

    assert replay is not None
    assert replay.token_ids == span.token_ids
    assert replay.usage.replayed and not span.usage.replayed
    assert book.usage("", "s1").spans == 1
    assert book.usage("", "s1").generated_tokens == 3


def test_the_same_request_id_for_a_different_request_is_refused() -> None:
    book = make_book()
    answer(book, "s1", "r1", make_span(), context=(7, 8))
    with pytest.raises(InvalidRequestError, match="new request_id"):
        answer(book, "s1", "r1", make_span(), context=(7, 8, 9))
    assert book.usage("", "s1").spans == 1


def test_the_same_request_id_in_another_session_is_another_request() -> None:
    book = make_book()
    answer(book, "s1", "r1", make_span())
    assert answer(book, "s2", "r1", make_span()) is None


def test_a_concurrent_duplicate_waits_for_the_first_and_replays_it() -> None:
    book = make_book()
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
            book.release(span_request("s1", "r1"))

    async def both() -> list[Span]:
        return await asyncio.gather(request("first"), request("second"))

    first, second = asyncio.run(both())
    assert generated == ["first"]
    assert not first.usage.replayed and second.usage.replayed
    assert book.usage("", "s1").spans == 1


def test_a_duplicate_takes_over_when_the_first_gives_up() -> None:
    book = make_book()

    async def run() -> Span | None:
        assert await book.claim(span_request("s1", "r1")) is None
        waiter = asyncio.create_task(book.claim(span_request("s1", "r1")))
        await asyncio.sleep(0)
        assert not waiter.done()
        book.release(span_request("s1", "r1"))  # the first failed: nothing answered
        return await waiter

    assert asyncio.run(run()) is None  # the duplicate now owns the request


def test_only_a_session_s_last_requests_are_remembered() -> None:
    book = make_book(per_session=2)
    for request in ("r1", "r2", "r3"):
        answer(book, "s1", request, make_span())
    answer(book, "s2", "r1", make_span())  # another session does not push s1's out

    assert answer(book, "s1", "r3", make_span()) is not None
    assert answer(book, "s1", "r2", make_span()) is not None
    assert answer(book, "s1", "r1", make_span()) is None  # forgotten: generated again
    assert answer(book, "s2", "r1", make_span()) is not None


def test_answers_are_forgotten_after_the_retention_window() -> None:
    clock = Clock()
    book = make_book(seconds=60, clock=clock)
    answer(book, "s1", "r1", make_span())
    clock.now += 59
    assert answer(book, "s1", "r1", make_span()) is not None
    clock.now += 2
    assert answer(book, "s1", "r1", make_span()) is None
    assert book.usage("", "s1").spans == 2  # forgotten, so generated and counted again


def test_the_replay_cache_is_bounded_by_bytes_and_keeps_no_context() -> None:
    book = make_book(max_bytes=4096, per_session=1000)
    long_context = tuple(range(100_000))  # 100k tokens of context: none of it is kept
    for index in range(100):
        answer(book, f"s{index}", "r1", make_span(), context=long_context)

    assert book.answered_bytes <= 4096
    assert 1 <= len(book) < 100
    assert answer(book, "s99", "r1", make_span(), context=long_context) is not None
    assert answer(book, "s0", "r1", make_span(), context=long_context) is None


def test_a_tenant_sees_neither_the_sessions_nor_the_replays_of_another() -> None:
    book = make_book()
    answer(book, "s1", "r1", make_span(), tenant="alice")

    with pytest.raises(SessionNotFoundError):
        book.usage("bob", "s1")
    # Bob's request with the same ids is his own: generated, not alice's span replayed.
    assert answer(book, "s1", "r1", make_span((5,)), tenant="bob") is None
    assert book.usage("alice", "s1").generated_tokens == 3
    assert book.usage("bob", "s1").generated_tokens == 1
    assert book.tenant_totals("alice").generated_tokens == 3
    assert book.tenant_totals("bob").spans == 1
    assert book.tenant_totals("carol").spans == 0


def test_sessions_are_bounded_and_unknown_ones_are_not_found() -> None:
    book = make_book(max_sessions=1)
    answer(book, "s1", "r1", make_span())
    answer(book, "s2", "r1", make_span())

    assert book.usage("", "s2").spans == 1
    with pytest.raises(SessionNotFoundError, match="s1"):
        book.usage("", "s1")
    assert book.totals("", "s1").spans == 0
