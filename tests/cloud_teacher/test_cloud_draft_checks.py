"""Draft checks (the teacher-verified relay) over a real channel, on the llama.cpp engine with
SmolLM2 in token mode: where a draft is cut, the KV cache the session keeps, the replay of a
retried check and the usage on the session and the key. What both engines must do with a
draft is in test_cloud_engine_contract.py; refusals of bad drafts in test_cloud_bad_input.py."""

from __future__ import annotations

import uuid

from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_proto import relay_pb2

QUESTION = "Write two sentences about the sea."
UNLIKELY = 50  # a token id SmolLM2 gives next to no probability in an answer


def check(
    tokenizer: GgufModel,
    context: list[int],
    draft: list[int],
    *,
    session: str,
    request: str = "r1",
    max_tokens: int = 4,
    min_prob: float = 0.1,
) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=session,
        request_id=request,
        max_tokens=max_tokens,
        tokens=relay_pb2.TokenContext(
            token_ids=context, tokenizer_fingerprint=tokenizer.fingerprint
        ),
        draft=relay_pb2.Draft(token_ids=draft, min_prob=min_prob, accept_top_token=True),
    )


def generate(teacher, span: relay_pb2.SpanRequest) -> relay_pb2.GenerateSpanResponse:
    return teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=600)


def own_span(teacher, tokenizer: GgufModel, context: list[int], n: int) -> list[int]:
    """The teacher's own greedy continuation of `context` (a session of its own)."""
    span = relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="own",
        max_tokens=n,
        tokens=relay_pb2.TokenContext(
            token_ids=context, tokenizer_fingerprint=tokenizer.fingerprint
        ),
    )
    return list(generate(teacher, span).token_ids)


def prompt(tokenizer: GgufModel) -> list[int]:
    return tokenizer.render_chat([ChatMessage("user", QUESTION)])


def test_the_next_check_of_a_session_reads_only_its_new_tokens(
    start_teacher, smollm_tokenizer
) -> None:
    # Exact mode: the logits of a draft read in one pass are those of decoding it token by
    # token, so the span after the cut is exactly the teacher's own continuation.
    teacher = start_teacher(model=smollm2_path(), exact=True, slots=1)
    session = uuid.uuid4().hex
    context = prompt(smollm_tokenizer)
    own = own_span(teacher, smollm_tokenizer, context, 12)
    draft = [*own[:3], UNLIKELY, *own[4:8]]
    first = generate(teacher, check(smollm_tokenizer, context, draft, session=session))
    assert first.accepted_draft_tokens == 3
    assert list(first.token_ids) == own[3:7]  # the teacher's own tokens from the cut on

    # The next check sends the answer so far (accepted draft, span, new student tokens) and a
    # new draft: the session's sequence still holds the accepted draft and the span but for its
    # last token (sampled, not evaluated), so only that token and the new ones are read.
    student = own[7:9]
    context2 = [*context, *own[:3], *first.token_ids, *student]
    before = teacher.evaluated_tokens()
    second = generate(
        teacher, check(smollm_tokenizer, context2, own[9:12], session=session, request="r2")
    )
    evaluated = teacher.evaluated_tokens() - before

    assert second.finish_reason == relay_pb2.FINISH_REASON_DRAFT_ACCEPTED
    assert (second.accepted_draft_tokens, list(second.token_ids)) == (3, [])
    assert second.usage.cached_prompt_tokens == len(context2) - 1 - len(student)
    assert evaluated == 1 + len(student) + 3
    assert second.usage.draft_tokens == 3 and second.usage.generated_tokens == 0


def test_a_retried_check_replays_its_verdict_and_counts_once(
    smollm_teacher, smollm_tokenizer
) -> None:
    session = uuid.uuid4().hex
    context = prompt(smollm_tokenizer)
    own = own_span(smollm_teacher, smollm_tokenizer, context, 6)
    span = check(smollm_tokenizer, context, [*own[:2], UNLIKELY, UNLIKELY], session=session)
    first = generate(smollm_teacher, span)
    before = smollm_teacher.evaluated_tokens()
    retried = generate(smollm_teacher, span)
    streamed = list(
        smollm_teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=600)
    )

    assert smollm_teacher.evaluated_tokens() == before  # neither read nor written again
    assert retried.usage.replayed and streamed[-1].usage.replayed
    assert (retried.accepted_draft_tokens, retried.token_ids) == (2, first.token_ids)
    assert streamed[-1].accepted_draft_tokens == 2
    assert [t for piece in streamed for t in piece.token_ids] == list(first.token_ids)
    assert retried.usage.draft_tokens == first.usage.draft_tokens == 4
    usage = smollm_teacher.stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=session), timeout=10
    ).usage
    assert (usage.spans, usage.draft_tokens) == (1, 4)
    assert usage.generated_tokens == len(first.token_ids)


def test_the_same_request_id_with_another_draft_is_refused(
    smollm_teacher, smollm_tokenizer
) -> None:
    session = uuid.uuid4().hex
    context = prompt(smollm_tokenizer)
    generate(smollm_teacher, check(smollm_tokenizer, context, [UNLIKELY], session=session))
    other = check(smollm_tokenizer, context, [UNLIKELY, UNLIKELY], session=session)
    try:
        generate(smollm_teacher, other)
    except Exception as exc:  # grpc.RpcError
        assert "already used in this session" in exc.details()  # type: ignore[attr-defined]
    else:
        raise AssertionError("a reused request_id with another draft was served")


def test_the_key_s_usage_counts_the_draft_tokens_read(smollm_teacher, smollm_tokenizer) -> None:
    before = smollm_teacher.stub.GetKeyUsage(relay_pb2.GetKeyUsageRequest(), timeout=10).usage
    context = prompt(smollm_tokenizer)
    reply = generate(
        smollm_teacher,
        check(smollm_tokenizer, context, [UNLIKELY] * 5, session=uuid.uuid4().hex),
    )
    after = smollm_teacher.stub.GetKeyUsage(relay_pb2.GetKeyUsageRequest(), timeout=10).usage

    assert reply.accepted_draft_tokens == 0 and reply.usage.draft_tokens == 5
    assert after.draft_tokens - before.draft_tokens == 5
    assert after.generated_tokens - before.generated_tokens == len(reply.token_ids)
