"""An engine that dies: the call is UNAVAILABLE and health goes NOT_SERVING."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_teacher.engines.llama_cpp.batch_runner import DecodeError
from relay_common.embedded import smollm2_path
from relay_proto import relay_pb2


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
