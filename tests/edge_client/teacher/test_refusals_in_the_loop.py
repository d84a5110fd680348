"""Refusals in the relay loop: a request the teacher refuses (or would refuse) falls back to
the student without touching the circuit breaker, so a healthy teacher is never shown offline."""

from __future__ import annotations

import grpc
import pytest

from edge_client.policies.baselines import AlwaysPolicy
from edge_client.relay.events import AnswerFinished, CallOutcome, TeacherCall
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.teacher.client import TeacherState
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_proto import relay_pb2, relay_pb2_grpc

QUESTION = [ChatMessage("user", "Describe a sunny day at the beach in a few words.")]


def answer(student, client, *, max_tokens: int = 12):
    session = RelaySession(
        student=student,
        teacher=client,
        policy=AlwaysPolicy(span=2),
        options=RelayOptions(max_tokens=max_tokens),
    )
    events = list(session.answer(QUESTION))
    calls = [event for event in events if isinstance(event, TeacherCall)]
    assert isinstance(events[-1], AnswerFinished)
    return session, calls


def test_text_mode_refusals_fall_back_without_tripping_the_breaker(
    student, teacher, address, make_client
):
    client = make_client(address, breaker_threshold=2)
    teacher.script = [grpc.StatusCode.INVALID_ARGUMENT] * 100

    session, calls = answer(student, client)

    assert session.token_mode is False  # the scripted teacher has another tokenizer
    assert len(calls) >= 3 and all(call.outcome is CallOutcome.REFUSED for call in calls)
    assert len(teacher.span_requests) == len(calls)  # each one was asked: no breaker
    assert client.state is TeacherState.ONLINE
    usage = session.usage
    assert usage.teacher_failures == usage.fallback_spans == len(calls)
    assert usage.fallback_tokens == usage.student_tokens == 12


@pytest.mark.timeout(300)
def test_token_mode_checks_the_teachers_context_limit_before_calling(student):
    with start_local_teacher(
        model=smollm2_path(), extra_args=["--max-context-tokens", "16"]
    ) as teacher:
        client = GrpcTeacherClient(
            teacher.address, settings=TeacherClientSettings(deadline_s=120, breaker_threshold=1)
        )
        try:
            session, calls = answer(student, client)
            assert client.info().max_context_tokens == 16
            assert client.state is TeacherState.ONLINE
        finally:
            client.close()
        channel = grpc.insecure_channel(teacher.address)
        with pytest.raises(grpc.RpcError) as unknown:
            relay_pb2_grpc.TeacherServiceStub(channel).GetSessionUsage(
                relay_pb2.GetSessionUsageRequest(session_id=session.session_id), timeout=60
            )
        channel.close()

    assert session.token_mode is True
    assert calls and all(call.outcome is CallOutcome.NOT_SENT for call in calls)
    assert "over the teacher's limit of 16" in calls[0].error
    usage = session.usage
    assert usage.teacher_calls == 0 and usage.calls_not_sent == usage.fallback_spans == len(calls)
    # The teacher never saw the session: not one request was sent.
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
