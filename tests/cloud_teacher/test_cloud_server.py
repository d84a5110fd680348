"""The server's surface: health, reflection, GetInfo, and refusals of bad requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from relay_common.gguf import GgufModel
from relay_proto import relay_pb2

SERVICE = "relay.v1.TeacherService"


def health_status(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def with_fields(span: relay_pb2.SpanRequest, fields: dict[str, object]) -> relay_pb2.SpanRequest:
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(span, name).CopyFrom(value)
        else:
            setattr(span, name, value)
    return span


def text_span(**fields: object) -> relay_pb2.SpanRequest:
    span = relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="r1",
        max_tokens=4,
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content="Hello there.")]
        ),
    )
    return with_fields(span, fields)


def test_health_is_serving_for_the_server_and_the_service(gemma_teacher) -> None:
    assert health_status(gemma_teacher.channel) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(gemma_teacher.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_teacher_service(gemma_teacher) -> None:
    services = ProtoReflectionDescriptorDatabase(gemma_teacher.channel).get_services()
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services


def test_get_info_names_the_model_and_its_limits(gemma_teacher) -> None:
    info = gemma_teacher.stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=10)
    assert info.model_name == "gemma-3-270m-q4_k_m"
    assert info.engine == "llama.cpp"
    assert info.tokenizer_fingerprint.startswith("sha256:")
    assert info.vocab_size == 262144
    assert info.limits.max_span_tokens == 64
    assert info.limits.max_context_tokens == 2048 - 64
    assert info.limits.max_message_bytes == 4 << 20
    assert info.limits.max_calls_per_key == 32
    assert info.limits.key_tokens_per_minute == 0  # no quota
    assert info.replay_window.requests_per_session == 64
    assert info.replay_window.seconds == 600


def test_get_info_fingerprint_matches_a_tokenizer_of_the_same_file(
    smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    info = smollm_teacher.stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=10)
    assert info.tokenizer_fingerprint == smollm_tokenizer.fingerprint
    assert info.model_name == smollm_tokenizer.name


def _token_span(fingerprint: str, ids: list[int], **fields: object) -> relay_pb2.SpanRequest:
    span = relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="r1",
        max_tokens=4,
        tokens=relay_pb2.TokenContext(token_ids=ids, tokenizer_fingerprint=fingerprint),
    )
    return with_fields(span, fields)


BadRequest = Callable[[GgufModel], relay_pb2.SpanRequest]

BAD_REQUESTS: dict[str, tuple[BadRequest, str]] = {
    "no context": (
        lambda tok: relay_pb2.SpanRequest(session_id="s", request_id="r", max_tokens=4),
        "no context",
    ),
    "empty token ids": (lambda tok: _token_span(tok.fingerprint, []), "empty"),
    "no messages": (
        lambda tok: text_span(text=relay_pb2.TextContext(assistant_prefix="Hi")),
        "empty",
    ),
    "max_tokens 0": (lambda tok: text_span(max_tokens=0), "max_tokens must be 1 to 64, got 0"),
    "max_tokens over the limit": (lambda tok: text_span(max_tokens=65), "got 65"),
    "context over the limit": (
        lambda tok: _token_span(tok.fingerprint, [1] * (2048 - 64 + 1)),
        "over the limit of 1984",
    ),
    "token id outside the vocabulary": (
        lambda tok: _token_span(tok.fingerprint, [1, 2, 49152]),
        "token id 49152 at position 2",
    ),
    "wrong fingerprint": (
        lambda tok: _token_span("sha256:0000", [1, 2, 3]),
        "sha256:0000",
    ),
    "missing session_id": (lambda tok: text_span(session_id=""), "session_id"),
    "too long request_id": (lambda tok: text_span(request_id="x" * 129), "request_id"),
    "role unspecified": (
        lambda tok: text_span(
            text=relay_pb2.TextContext(messages=[relay_pb2.ChatMessage(content="Hi")])
        ),
        "message 0 has no valid role",
    ),
    "negative temperature": (
        lambda tok: text_span(sampling=relay_pb2.Sampling(temperature=-0.5)),
        "temperature",
    ),
    "top_p over 1": (lambda tok: text_span(sampling=relay_pb2.Sampling(top_p=1.5)), "top_p"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_are_invalid_argument_with_a_message(
    case: str, smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    build, expected = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as raised:
        smollm_teacher.stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=build(smollm_tokenizer)), timeout=30
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in raised.value.details()


def test_the_wrong_fingerprint_message_names_both_and_says_to_use_text_mode(
    smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    span = _token_span("sha256:0000", [1, 2, 3])
    with pytest.raises(grpc.RpcError) as raised:
        list(smollm_teacher.stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = raised.value.details()
    assert "sha256:0000" in message and smollm_tokenizer.fingerprint in message
    assert "text mode" in message


def test_text_context_over_the_limit_is_refused_after_rendering(gemma_teacher) -> None:
    long_text = "word " * 2100  # about 2100 Gemma tokens: over 1984 once rendered
    span = text_span(
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content=long_text)]
        )
    )
    with pytest.raises(grpc.RpcError) as raised:
        gemma_teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit of 1984" in raised.value.details()


def test_the_server_keeps_serving_after_bad_requests(
    smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    for build, _ in BAD_REQUESTS.values():
        with pytest.raises(grpc.RpcError):
            smollm_teacher.stub.GenerateSpan(
                relay_pb2.GenerateSpanRequest(span=build(smollm_tokenizer)), timeout=30
            )

    assert health_status(smollm_teacher.channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    ids = smollm_tokenizer.tokenize("The sky is", add_bos=True)
    reply = smollm_teacher.stub.GenerateSpan(
        relay_pb2.GenerateSpanRequest(span=_token_span(smollm_tokenizer.fingerprint, ids)),
        timeout=60,
    )
    assert len(reply.token_ids) >= 1


def test_unknown_session_usage_is_not_found(gemma_teacher) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        gemma_teacher.stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id="never-seen"), timeout=10
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "never-seen" in raised.value.details()
