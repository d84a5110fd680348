"""Teacher spans over a real channel: both context modes, streaming, idempotent retries,
KV prefix reuse within a session, concurrent sessions and cancellation."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_proto import relay_pb2, relay_pb2_grpc

QUESTION = (
    "A farmer has 17 sheep. All but 9 run away. Then he buys twice as many sheep as he has "
    "left, and sells 5 of them at the market. How many sheep does the farmer have now? "
    "Explain your reasoning step by step before giving the final number."
)


def new_session() -> str:
    return uuid.uuid4().hex


def token_span(
    tokenizer: GgufModel, ids: list[int], *, session: str, request: str = "r1", max_tokens: int = 16
) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=session,
        request_id=request,
        max_tokens=max_tokens,
        tokens=relay_pb2.TokenContext(token_ids=ids, tokenizer_fingerprint=tokenizer.fingerprint),
    )


def text_span(
    question: str,
    prefix: str = "",
    *,
    session: str,
    request: str = "r1",
    max_tokens: int = 16,
) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=session,
        request_id=request,
        max_tokens=max_tokens,
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content=question)],
            assistant_prefix=prefix,
        ),
    )


def generate(teacher, span: relay_pb2.SpanRequest) -> relay_pb2.GenerateSpanResponse:
    return teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=120)


def stream(teacher, span: relay_pb2.SpanRequest) -> list[relay_pb2.StreamSpanResponse]:
    return list(teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=120))


def joined(pieces: list[relay_pb2.StreamSpanResponse]) -> tuple[list[int], str]:
    return [t for p in pieces for t in p.token_ids], "".join(p.text for p in pieces)


def chat_ids(tokenizer: GgufModel, question: str) -> list[int]:
    return tokenizer.render_chat([ChatMessage("user", question)])


# -- token mode (SmolLM2 teacher, SmolLM2 tokenizer) --------------------------------------------


def test_token_mode_span_continues_the_context(smollm_teacher, smollm_tokenizer) -> None:
    ids = chat_ids(smollm_tokenizer, QUESTION)
    reply = generate(smollm_teacher, token_span(smollm_tokenizer, ids, session=new_session()))

    assert 1 <= len(reply.token_ids) <= 16
    assert reply.text == smollm_tokenizer.detokenize(reply.token_ids).decode("utf-8", "replace")
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.generated_tokens == len(reply.token_ids)
    assert not any(smollm_tokenizer.is_end(t) for t in reply.token_ids)
    if reply.finish_reason == relay_pb2.FINISH_REASON_LENGTH:
        assert len(reply.token_ids) == 16
    else:
        assert reply.finish_reason == relay_pb2.FINISH_REASON_END_OF_ANSWER


def test_token_mode_stream_concatenates_to_the_generated_span(
    smollm_teacher, smollm_tokenizer
) -> None:
    ids = chat_ids(smollm_tokenizer, QUESTION)
    whole = generate(smollm_teacher, token_span(smollm_tokenizer, ids, session=new_session()))
    pieces = stream(smollm_teacher, token_span(smollm_tokenizer, ids, session=new_session()))

    assert joined(pieces) == (list(whole.token_ids), whole.text)
    assert all(len(p.token_ids) == 1 for p in pieces[:-1])  # token by token
    assert pieces[-1].finish_reason == whole.finish_reason
    assert all(p.finish_reason == relay_pb2.FINISH_REASON_UNSPECIFIED for p in pieces[:-1])
    assert pieces[-1].usage.generated_tokens == len(whole.token_ids)


def test_streamed_text_is_utf8_safe_when_a_character_spans_tokens(
    smollm_teacher, smollm_tokenizer
) -> None:
    # SmolLM2's byte-level tokens split each emoji over several tokens.
    ids = smollm_tokenizer.tokenize("🍕🎉🚀🍕🎉🚀🍕🎉", add_bos=True)
    pieces = stream(smollm_teacher, token_span(smollm_tokenizer, ids, session=new_session()))
    token_ids, text = joined(pieces)

    assert any(p.token_ids and not p.text for p in pieces)  # a character still incomplete
    expected = smollm_tokenizer.detokenize(token_ids).decode("utf-8", "replace")
    assert text == expected


def test_token_mode_second_call_reuses_the_session_prefix(smollm_teacher, smollm_tokenizer) -> None:
    session = new_session()
    first_ids = chat_ids(smollm_tokenizer, QUESTION)
    first = generate(smollm_teacher, token_span(smollm_tokenizer, first_ids, session=session))
    student_tokens = smollm_tokenizer.tokenize(" So the answer is", add_bos=False)
    second_ids = first_ids + list(first.token_ids) + student_tokens

    before = smollm_teacher.evaluated_tokens()
    second = generate(
        smollm_teacher, token_span(smollm_tokenizer, second_ids, session=session, request="r2")
    )

    assert second.usage.prompt_tokens == len(second_ids)
    assert second.usage.cached_prompt_tokens >= 0.9 * len(first_ids)
    # Only the new tokens were evaluated: the span's last token, the student's, the span.
    evaluated = smollm_teacher.evaluated_tokens() - before
    new = len(second_ids) - second.usage.cached_prompt_tokens
    assert evaluated <= new + len(second.token_ids)
    assert second.session_usage.spans == 2
    assert second.session_usage.cached_prompt_tokens == (
        first.usage.cached_prompt_tokens + second.usage.cached_prompt_tokens
    )


# -- text mode (the default Gemma teacher) -------------------------------------------------------


def test_text_mode_span_continues_the_assistant_prefix(gemma_teacher) -> None:
    reply = generate(
        gemma_teacher, text_span(QUESTION, "Let's think. First, we", session=new_session())
    )

    assert 1 <= len(reply.token_ids) <= 16
    assert reply.text
    assert "\nQuestion:" not in reply.text  # a base model's next turn ends the span instead
    assert reply.usage.prompt_tokens > 20
    assert reply.finish_reason in (
        relay_pb2.FINISH_REASON_LENGTH,
        relay_pb2.FINISH_REASON_END_OF_ANSWER,
    )


def test_text_mode_stream_concatenates_to_the_generated_span(gemma_teacher) -> None:
    whole = generate(gemma_teacher, text_span(QUESTION, "First,", session=new_session()))
    pieces = stream(gemma_teacher, text_span(QUESTION, "First,", session=new_session()))

    assert joined(pieces) == (list(whole.token_ids), whole.text)
    assert pieces[-1].finish_reason == whole.finish_reason


def test_text_mode_span_asked_to_stop_at_line_end_is_one_line(gemma_teacher) -> None:
    def line_span() -> relay_pb2.SpanRequest:
        span = text_span(
            "List five colours, one per line.", "1. Red\n2.", session=new_session(), max_tokens=48
        )
        span.stop_at_line_end = True
        return span

    reply = generate(gemma_teacher, line_span())
    pieces = stream(gemma_teacher, line_span())

    assert reply.finish_reason == relay_pb2.FINISH_REASON_LINE_END
    assert reply.text.strip() and reply.text.endswith("\n") and "\n" not in reply.text.strip()
    assert joined(pieces) == (list(reply.token_ids), reply.text)
    assert pieces[-1].finish_reason == relay_pb2.FINISH_REASON_LINE_END


def test_text_mode_second_call_reuses_the_session_prefix(gemma_teacher) -> None:
    # Gemma 3 has sliding-window attention: this fails if the KV cache cannot roll back.
    session = new_session()
    first = generate(gemma_teacher, text_span(QUESTION, "Let's see.", session=session))
    prefix = "Let's see." + first.text + " So"
    second = generate(gemma_teacher, text_span(QUESTION, prefix, session=session, request="r2"))

    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    assert second.usage.cached_prompt_tokens >= 0.9 * first.usage.prompt_tokens


# -- idempotency and accounting ----------------------------------------------------------------


def test_a_retried_request_id_replays_the_span_and_counts_once(gemma_teacher) -> None:
    session = new_session()
    span = text_span(QUESTION, "Well,", session=session, max_tokens=8)
    first = generate(gemma_teacher, span)
    before = gemma_teacher.evaluated_tokens()
    retried = generate(gemma_teacher, span)
    streamed = stream(gemma_teacher, span)

    assert gemma_teacher.evaluated_tokens() == before  # nothing generated again
    assert (retried.token_ids, retried.text) == (first.token_ids, first.text)
    assert joined(streamed) == (list(first.token_ids), first.text)
    assert not first.usage.replayed
    assert retried.usage.replayed and streamed[-1].usage.replayed
    usage = gemma_teacher.stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=session), timeout=10
    ).usage
    assert usage.spans == 1
    assert usage.generated_tokens == len(first.token_ids)
    assert usage.prompt_tokens == first.usage.prompt_tokens


def test_concurrent_duplicates_generate_once(gemma_teacher) -> None:
    session = new_session()
    span = text_span(QUESTION, "Hmm,", session=session, max_tokens=8)

    async def twice() -> list[relay_pb2.GenerateSpanResponse]:
        async with grpc.aio.insecure_channel(gemma_teacher.address) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            request = relay_pb2.GenerateSpanRequest(span=span)
            return await asyncio.gather(stub.GenerateSpan(request), stub.GenerateSpan(request))

    replies = asyncio.run(twice())
    assert replies[0].token_ids == replies[1].token_ids
    assert sorted(r.usage.replayed for r in replies) == [False, True]
    usage = gemma_teacher.stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=session), timeout=10
    ).usage
    assert usage.spans == 1


# -- concurrency and cancellation ----------------------------------------------------------------

TOPICS = ["rivers", "volcanoes", "bees", "trains", "glaciers", "violins", "comets", "tea"]


async def all_at_once(
    address: str, spans: list[relay_pb2.SpanRequest]
) -> list[relay_pb2.GenerateSpanResponse]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        return await asyncio.gather(
            *(
                stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=300)
                for span in spans
            )
        )


def test_eight_concurrent_sessions_in_exact_mode_match_the_same_requests_run_one_by_one(
    start_teacher,
) -> None:
    # Only exact mode promises this: by default, flash attention and batched kernels make
    # logits depend slightly on the batch's shape, and a near-tie may flip (it did, at the
    # seventh span, on an AMD EPYC with AVX-512).
    teacher = start_teacher(exact=True, slots=4, kv_sessions=8)

    def spans() -> list[relay_pb2.SpanRequest]:
        return [
            text_span(f"Write one sentence about {topic}.", session=new_session(), max_tokens=12)
            for topic in TOPICS
        ]

    one_by_one = [generate(teacher, span) for span in spans()]
    concurrent = asyncio.run(all_at_once(teacher.address, spans()))

    assert [r.token_ids for r in concurrent] == [r.token_ids for r in one_by_one]
    assert [r.text for r in concurrent] == [r.text for r in one_by_one]
    assert all(r.session_usage.spans == 1 for r in concurrent)
    assert len({r.text for r in one_by_one}) > 1  # distinct prompts, distinct spans


def test_eight_concurrent_sessions_each_continue_their_own_context(gemma_teacher) -> None:
    # What the default (batched) mode promises: each session's span continues its own
    # context, whoever shares the batch. Counting leaves no near-tie for batching to flip:
    # the next number leads its runner-up by more than 2 logits here, batching moves logits
    # by under 1.
    starts = [12, 23, 37, 41, 56, 64, 78, 91]

    def counting(start: int) -> relay_pb2.SpanRequest:
        counted = ", ".join(str(n) for n in range(start, start + 6)) + ","
        return text_span(
            "Count on, one number at a time.", counted, session=new_session(), max_tokens=4
        )

    replies = asyncio.run(all_at_once(gemma_teacher.address, [counting(s) for s in starts]))

    for start, reply in zip(starts, replies, strict=True):
        assert reply.text.startswith(f" {start + 6}"), (start, reply.text)
        assert reply.session_usage.spans == 1
        assert reply.usage.generated_tokens == len(reply.token_ids)


def test_a_cancelled_stream_stops_generating_and_is_not_counted(
    start_teacher, smollm_tokenizer
) -> None:
    # One slot: the next call runs only once the cancelled span's thread let go of it.
    teacher = start_teacher(model=smollm2_path(), slots=1)
    ids = smollm_tokenizer.tokenize("Once upon a time, in a land far away,", add_bos=True)
    sampling = relay_pb2.Sampling(temperature=1.0, seed=7)
    full = token_span(smollm_tokenizer, ids, session=new_session(), max_tokens=64)
    full.sampling.CopyFrom(sampling)
    reference = generate(teacher, full)
    assert reference.finish_reason == relay_pb2.FINISH_REASON_LENGTH  # it would run 64 tokens

    session = new_session()
    span = token_span(smollm_tokenizer, ids, session=session, max_tokens=64)
    span.sampling.CopyFrom(sampling)
    before = teacher.evaluated_tokens()
    call = teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=120)
    first = next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as raised:
        list(call)
    assert raised.value.code() == grpc.StatusCode.CANCELLED
    assert first.token_ids

    after = generate(teacher, token_span(smollm_tokenizer, ids, session=session))
    assert after.session_usage.spans == 1  # the cancelled span was not counted
    # Had it not stopped, the cancelled span alone would have evaluated 63 generated tokens;
    # both calls' prompts and the second span are fewer than that.
    assert 2 * len(ids) + len(after.token_ids) < 48
    assert teacher.evaluated_tokens() - before < 63


def test_requests_over_the_pending_bound_are_resource_exhausted(
    start_teacher, smollm_tokenizer
) -> None:
    teacher = start_teacher(model=smollm2_path(), slots=1, max_pending=1)
    ids = smollm_tokenizer.tokenize("Once upon a time, in a land far away,", add_bos=True)
    busy = token_span(smollm_tokenizer, ids, session=new_session(), max_tokens=64)
    busy.sampling.CopyFrom(relay_pb2.Sampling(temperature=1.0, seed=7))
    call = teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=busy), timeout=120)
    next(call)  # admitted and generating

    with pytest.raises(grpc.RpcError) as raised:
        generate(teacher, token_span(smollm_tokenizer, ids, session=new_session()))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry later" in raised.value.details()

    assert list(call)[-1].usage.generated_tokens == 64  # the admitted span is unharmed
    assert generate(teacher, token_span(smollm_tokenizer, ids, session=new_session())).token_ids
