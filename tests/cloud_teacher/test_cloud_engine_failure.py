"""An engine that dies: the call is UNAVAILABLE and health goes NOT_SERVING. A failure of one
span (a batch llama.cpp would refuse, a bug in its own work) fails that span alone: the call is
INTERNAL and the teacher goes on serving."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_teacher.engines.llama_cpp.batch_runner import DecodeError
from relay_common.embedded import smollm2_path
from relay_common.sampling import Sampler
from relay_proto import relay_pb2, relay_pb2_grpc


def test_a_dead_engine_is_unavailable_and_not_serving(start_teacher, smollm_tokenizer) -> None:
    teacher = start_teacher(model=smollm2_path(), slots=1)
    runner = teacher.engine.runner

    def crash(inputs) -> None:  # what a llama.cpp decode failure looks like from Python
        raise DecodeError("llama_decode returned -3")

    runner.decode = crash  # the one injected fault: llama.cpp cannot be made to fail
    span = relay_pb2.SpanRequest(
        session_id="s",
        request_id="r",
        max_tokens=4,
        tokens=relay_pb2.TokenContext(
            token_ids=smollm_tokenizer.tokenize("Hi", add_bos=True),
            tokenizer_fingerprint=smollm_tokenizer.fingerprint,
        ),
    )
    for _ in range(2):  # the first call finds it dying, the next one dead
        with pytest.raises(grpc.RpcError) as raised:
            teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=30)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "restart the teacher" in raised.value.details()

    health = health_pb2_grpc.HealthStub(teacher.channel)
    for service in ("", "relay.v1.TeacherService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING


def token_span(tokenizer, text: str, *, session: str, request: str) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=session,
        request_id=request,
        max_tokens=4,
        tokens=relay_pb2.TokenContext(
            token_ids=tokenizer.tokenize(text, add_bos=True),
            tokenizer_fingerprint=tokenizer.fingerprint,
        ),
    )


def assert_serving(teacher) -> None:
    health = health_pb2_grpc.HealthStub(teacher.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_a_span_llama_cpp_would_refuse_fails_alone_and_the_teacher_goes_on(
    start_teacher, smollm_tokenizer
) -> None:
    teacher = start_teacher(model=smollm2_path(), slots=2, kv_sessions=2)
    story = "Once upon a time, in a land far away, there lived"
    first = token_span(smollm_tokenizer, story, session="a", request="r1")
    teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=first), timeout=60)
    # The one injected fault: session a's KV cells vanish behind the engine's back (its first
    # sequence), so its next step would not continue what llama.cpp holds for it.
    assert teacher.engine.runner.drop(seq_id=0, from_position=0)

    async def both() -> list[object]:
        async with grpc.aio.insecure_channel(teacher.address) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            spans = (
                token_span(smollm_tokenizer, story + " a king", session="a", request="r2"),
                token_span(smollm_tokenizer, "The weather today is", session="b", request="r1"),
            )
            calls = (stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=s)) for s in spans)
            return await asyncio.gather(*calls, return_exceptions=True)

    refused, other = asyncio.run(both())

    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() == grpc.StatusCode.INTERNAL
    assert "could not evaluate this span" in refused.details()
    assert "starts at position" in refused.details()
    assert isinstance(other, relay_pb2.GenerateSpanResponse) and other.token_ids
    assert_serving(teacher)
    # The session's next call starts its context over, and is served.
    again = token_span(smollm_tokenizer, story + " a king", session="a", request="r3")
    reply = teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=again), timeout=60)
    assert reply.token_ids and reply.usage.cached_prompt_tokens == 0


def test_an_unexpected_error_is_internal_and_the_teacher_goes_on(
    start_teacher, smollm_tokenizer, monkeypatch
) -> None:
    teacher = start_teacher(model=smollm2_path(), slots=1)

    def broken(self, logits) -> int:  # the injected fault: a bug in one span's own work
        raise RuntimeError("sampler bug")

    monkeypatch.setattr(Sampler, "sample", broken)
    span = token_span(smollm_tokenizer, "Hi", session="s", request="r1")
    with pytest.raises(grpc.RpcError) as raised:
        teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INTERNAL  # gRPC's own answer: UNKNOWN
    assert (
        "RuntimeError" in raised.value.details() and "bug of the teacher" in raised.value.details()
    )

    monkeypatch.undo()
    assert_serving(teacher)
    retried = teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
    assert retried.token_ids
