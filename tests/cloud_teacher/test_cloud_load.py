"""Ordinary load must not take the teacher down: a wave of 8 sessions with 64-token contexts,
then 16 sessions at once with 200-token contexts, 8-token spans, three calls each, token mode.
On llama.cpp's default settings this once filled a step to `n_batch` with prompt chunks and
then added padding tokens, and llama.cpp aborted the process (GGML_ASSERT n_tokens_all <=
n_batch). The llama.cpp teacher runs as `relay-teacher serve` in its own process, so an abort
shows as its exit; the vLLM teacher is the suite's own."""

from __future__ import annotations

import asyncio
import random
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_client.teacher.local import start_local_teacher
from relay_common.embedded import smollm2_path
from relay_proto import relay_pb2, relay_pb2_grpc

pytestmark = pytest.mark.timeout(900)

WAVES = ((8, 64), (16, 200))  # (sessions at once, context tokens)
CALLS = 3
SPAN_TOKENS = 8


async def session_calls(
    stub: relay_pb2_grpc.TeacherServiceStub, *, context: list[int], fingerprint: str
) -> list[relay_pb2.GenerateSpanResponse]:
    """One session's calls, each continuing the context with the span it got."""
    session, replies = uuid.uuid4().hex, []
    for call in range(CALLS):
        span = relay_pb2.SpanRequest(
            session_id=session,
            request_id=f"r{call}",
            max_tokens=SPAN_TOKENS,
            tokens=relay_pb2.TokenContext(token_ids=context, tokenizer_fingerprint=fingerprint),
        )
        reply = await stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=600)
        replies.append(reply)
        context = [*context, *reply.token_ids, 13]  # the student's next token, say
    return replies


async def waves(address: str, vocab: range) -> list[relay_pb2.GenerateSpanResponse]:
    draw = random.Random(20)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        info = await stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=30)
        replies = []
        for sessions, length in WAVES:
            contexts = [[draw.choice(vocab) for _ in range(length)] for _ in range(sessions)]
            done = await asyncio.gather(
                *(
                    session_calls(stub, context=c, fingerprint=info.tokenizer_fingerprint)
                    for c in contexts
                )
            )
            replies += [reply for session in done for reply in session]
        return replies


def assert_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def assert_all_answered(replies: list[relay_pb2.GenerateSpanResponse]) -> None:
    assert len(replies) == CALLS * sum(sessions for sessions, _ in WAVES)
    assert all(1 <= len(reply.token_ids) <= SPAN_TOKENS for reply in replies)
    assert all(reply.session_usage.spans >= 1 for reply in replies)


def test_the_llama_cpp_teacher_on_its_defaults_survives_sixteen_sessions(
    smollm_tokenizer,
) -> None:
    # Its default slots, KV sessions and context window (start_local_teacher's are smaller).
    defaults = ["--slots", "8", "--kv-sessions", "16", "--n-ctx", "4096"]
    with start_local_teacher(model=smollm2_path(), extra_args=defaults) as teacher:
        try:
            replies = asyncio.run(waves(teacher.address, range(smollm_tokenizer.n_vocab)))
        except grpc.RpcError as exc:
            state = "is running" if teacher.running else "exited"
            log = teacher.log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"a call failed ({exc.code()}); the teacher {state}; its log ends:\n{log}")
        assert teacher.running
        with grpc.insecure_channel(teacher.address) as channel:
            assert_serving(channel)
    assert_all_answered(replies)


def test_the_vllm_teacher_survives_sixteen_sessions(vllm_teacher) -> None:
    replies = asyncio.run(waves(vllm_teacher.address, range(vllm_teacher.engine.info.vocab_size)))
    assert_serving(vllm_teacher.channel)
    assert_all_answered(replies)
