"""The session header (x-relay-session): a span call whose header names another session than
its body is refused; a matching header, or none, is served."""

from __future__ import annotations

import uuid

import grpc
import pytest

from relay_common.gguf import GgufModel
from relay_common.routing import SESSION_HEADER, session_header_value
from relay_proto import relay_pb2


def token_span(tokenizer: GgufModel, session_id: str) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=session_id,
        request_id=uuid.uuid4().hex,
        max_tokens=2,
        tokens=relay_pb2.TokenContext(
            token_ids=tokenizer.tokenize("The sky is", add_bos=True),
            tokenizer_fingerprint=tokenizer.fingerprint,
        ),
    )


@pytest.mark.parametrize(
    "session_id", ["3f0c2a9e-8d7b-4c1e-9f00-12ab34cd56ef", "sessão 7/ü"], ids=["uuid", "unicode"]
)
def test_a_matching_header_or_none_is_served(smollm_teacher, smollm_tokenizer, session_id):
    header = ((SESSION_HEADER, session_header_value(session_id)),)
    for metadata in (header, ()):
        span = token_span(smollm_tokenizer, session_id)
        response = smollm_teacher.stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=span), metadata=metadata, timeout=240
        )
        assert response.usage.prompt_tokens > 0


def test_the_header_is_the_id_percent_encoded():
    assert session_header_value("3f0c2a9e-8d7b_4c1e.9f00~x") == "3f0c2a9e-8d7b_4c1e.9f00~x"
    assert session_header_value("sessão 7/ü") == "sess%C3%A3o%207%2F%C3%BC"


@pytest.mark.parametrize("method", ["GenerateSpan", "StreamSpan"])
def test_a_header_naming_another_session_is_invalid_argument(
    smollm_teacher, smollm_tokenizer, method
):
    span = token_span(smollm_tokenizer, "session-a")
    metadata = ((SESSION_HEADER, "session-b"),)
    with pytest.raises(grpc.RpcError) as raised:
        if method == "GenerateSpan":
            smollm_teacher.stub.GenerateSpan(
                relay_pb2.GenerateSpanRequest(span=span), metadata=metadata, timeout=240
            )
        else:
            list(
                smollm_teacher.stub.StreamSpan(
                    relay_pb2.StreamSpanRequest(span=span), metadata=metadata, timeout=240
                )
            )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert SESSION_HEADER in raised.value.details()
    assert "'session-b'" in raised.value.details() and "'session-a'" in raised.value.details()
