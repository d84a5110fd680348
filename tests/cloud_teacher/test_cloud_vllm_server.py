"""The gRPC paths against a vLLM-backed teacher: health, GetInfo, GenerateSpan, StreamSpan,
GetSessionUsage, idempotent retries and refusals, over a real loopback channel."""

from __future__ import annotations

import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay_proto import relay_pb2


def token_span(vllm_teacher, ids: list[int], *, session: str, **fields: object):
    info = vllm_teacher.stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=10)
    return relay_pb2.SpanRequest(
        session_id=session,
        request_id=uuid.uuid4().hex,
        max_tokens=fields.pop("max_tokens", 4),
        tokens=relay_pb2.TokenContext(
            token_ids=ids, tokenizer_fingerprint=info.tokenizer_fingerprint
        ),
        **fields,
    )


def test_health_is_serving(vllm_teacher) -> None:
    health = health_pb2_grpc.HealthStub(vllm_teacher.channel)
    for service in ("", "relay.v1.TeacherService"):
        request = health_pb2.HealthCheckRequest(service=service)
        assert health.Check(request, timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def test_get_info_says_vllm_and_the_students_fingerprint(vllm_teacher, smollm_tokenizer) -> None:
    info = vllm_teacher.stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=10)
    assert info.engine == "vllm"
    assert info.model_name == smollm_tokenizer.name
    assert info.tokenizer_fingerprint == smollm_tokenizer.fingerprint
    assert info.vocab_size == smollm_tokenizer.n_vocab
    assert info.limits.max_span_tokens == 64
    assert info.limits.max_context_tokens == 2048 - 64


def test_a_session_spans_report_cached_prompt_tokens_and_add_up(
    vllm_teacher, smollm_tokenizer
) -> None:
    session = uuid.uuid4().hex
    ids = smollm_tokenizer.tokenize("A story about a lighthouse keeper and a storm. " * 10)
    first = vllm_teacher.stub.GenerateSpan(
        relay_pb2.GenerateSpanRequest(span=token_span(vllm_teacher, ids, session=session)),
        timeout=60,
    )
    later_ids = ids + list(first.token_ids)
    later = vllm_teacher.stub.GenerateSpan(
        relay_pb2.GenerateSpanRequest(span=token_span(vllm_teacher, later_ids, session=session)),
        timeout=60,
    )
    assert len(first.token_ids) == first.usage.generated_tokens == 4
    assert first.finish_reason == relay_pb2.FINISH_REASON_LENGTH
    assert later.usage.prompt_tokens == len(later_ids)
    assert later.usage.cached_prompt_tokens >= 0.9 * len(later_ids)

    usage = vllm_teacher.stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=session), timeout=10
    ).usage
    assert usage.spans == 2
    assert usage.prompt_tokens == len(ids) + len(later_ids)
    assert usage.cached_prompt_tokens == (
        first.usage.cached_prompt_tokens + later.usage.cached_prompt_tokens
    )
    assert usage.generated_tokens == 8


def test_a_retried_request_id_is_answered_once(vllm_teacher, smollm_tokenizer) -> None:
    ids = smollm_tokenizer.tokenize("Once upon a time,", add_bos=True)
    span = token_span(
        vllm_teacher, ids, session=uuid.uuid4().hex, sampling=relay_pb2.Sampling(temperature=1.0)
    )
    first = vllm_teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    again = vllm_teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    assert again.token_ids == first.token_ids
    assert again.usage.replayed
    assert again.session_usage.spans == 1


def test_stream_span_in_text_mode_streams_the_continuation(vllm_teacher) -> None:
    span = relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="r1",
        max_tokens=8,
        text=relay_pb2.TextContext(
            messages=[
                relay_pb2.ChatMessage(
                    role=relay_pb2.ROLE_USER, content="What is the capital of France?"
                )
            ],
            assistant_prefix="The capital of France is",
        ),
    )
    responses = list(
        vllm_teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=60)
    )
    *pieces, last = responses
    text = "".join(p.text for p in pieces) + last.text
    assert "Paris" in text
    assert last.finish_reason != relay_pb2.FINISH_REASON_UNSPECIFIED
    assert sum(len(p.token_ids) for p in pieces) == last.usage.generated_tokens


def test_a_context_over_the_limit_is_invalid_argument(vllm_teacher) -> None:
    span = relay_pb2.SpanRequest(
        session_id="s",
        request_id="r",
        max_tokens=4,
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content="word " * 3000)]
        ),
    )
    with pytest.raises(grpc.RpcError) as raised:
        vllm_teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit" in raised.value.details()
