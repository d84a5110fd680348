"""A caller's long value never comes back whole: a refusal that names a 1 MB field is still
INVALID_ARGUMENT (not a status message over the client's metadata limit, which the client
would see as RESOURCE_EXHAUSTED), and the message and the teacher's log line stay under 1 KB.
Both engines, over a real channel."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest

from relay_proto import relay_pb2
from tests.cloud_teacher.teacher_helpers import token_span

MEGABYTE = 1 << 20
KILOBYTE = 1 << 10


@pytest.fixture(params=["smollm_teacher", "vllm_teacher"])
def teacher(request):
    return request.getfixturevalue(request.param)


def refused(teacher, span: relay_pb2.SpanRequest, metadata=()) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        teacher.stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=span), metadata=metadata, timeout=60
        )
    return raised.value


def assert_short_refusal(error: grpc.RpcError, caplog, *, names: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert names in error.details()
    assert len(error.details().encode()) < KILOBYTE
    lines = [r.getMessage() for r in caplog.records if "INVALID_ARGUMENT" in r.getMessage()]
    assert lines, "the refusal was not logged"
    assert all(len(line.encode()) < KILOBYTE for line in lines)


def test_a_one_megabyte_fingerprint_is_refused_in_a_short_message(
    teacher, smollm_tokenizer, caplog
) -> None:
    caplog.set_level(logging.INFO)
    span = token_span(smollm_tokenizer)
    span.tokens.tokenizer_fingerprint = "f" * MEGABYTE

    error = refused(teacher, span)

    assert_short_refusal(error, caplog, names="fingerprint")
    assert "1,048,576 characters" in error.details()


def test_a_long_session_header_is_refused_in_a_short_message(
    teacher, smollm_tokenizer, caplog
) -> None:
    caplog.set_level(logging.INFO)
    header = "h" * 4000  # under gRPC's metadata limit (8 KiB), far over 1 KB
    error = refused(teacher, token_span(smollm_tokenizer), metadata=[("x-relay-session", header)])

    assert_short_refusal(error, caplog, names="x-relay-session")


def test_a_reused_request_id_is_refused_in_a_short_message(
    teacher, smollm_tokenizer, caplog
) -> None:
    caplog.set_level(logging.INFO)
    session, request_id = uuid.uuid4().hex, "r" * 128  # the longest id there is
    first = token_span(smollm_tokenizer, session_id=session, request_id=request_id)
    teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=first), timeout=120)
    other = token_span(
        smollm_tokenizer, prompt="Something else", session_id=session, request_id=request_id
    )

    error = refused(teacher, other)

    assert_short_refusal(error, caplog, names="request_id")
    assert "128 characters" in error.details()
