"""The relay loop with the real student and no teacher, or a teacher that cannot be reached."""

from __future__ import annotations

import socket
import threading

import pytest

from edge_client.policies.baselines import AlwaysPolicy, NeverPolicy
from edge_client.relay.events import (
    AnswerEndReason,
    AnswerFinished,
    AnswerStarted,
    Source,
    TeacherCall,
    TokensAppended,
)
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.grpc_client import GrpcTeacherClient
from relay_common.chat import ChatMessage

QUESTION = [ChatMessage("user", "Name three colours of the rainbow.")]


def run(session: RelaySession, messages=QUESTION):
    events = list(session.answer(messages))
    text = "".join(e.text for e in events if isinstance(e, TokensAppended))
    return events, text


def test_teacher_free_answer_is_complete_and_accounted(student):
    session = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=48)
    )
    events, text = run(session)
    assert isinstance(events[0], AnswerStarted)
    assert isinstance(events[-1], AnswerFinished)
    tokens = [e for e in events if isinstance(e, TokensAppended)]
    assert text.strip()
    assert {e.source for e in tokens} == {Source.STUDENT}
    assert session.usage.student_tokens == sum(len(e.token_ids) for e in tokens) > 0
    assert session.usage.teacher_tokens == 0
    assert session.usage.prompt_tokens == len(student.render_prompt(QUESTION))
    assert session.usage.offload_ratio == 0


def test_max_tokens_ends_the_answer(student):
    session = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=5)
    )
    events, _ = run(session)
    assert events[-1] == AnswerFinished(AnswerEndReason.MAX_TOKENS)
    assert session.usage.student_tokens == 5


def test_a_stop_string_ends_the_answer_and_options_hold_for_one_answer(student):
    session = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=40)
    )
    _, full = run(session)
    stop = full.split()[2]  # a word from the middle of the greedy answer
    events = list(session.answer(QUESTION, options=RelayOptions(max_tokens=40, stop=(stop,))))
    pieces = [e.text for e in events if isinstance(e, TokensAppended)]
    assert events[-1] == AnswerFinished(AnswerEndReason.STOP_STRING)
    # The loop ends at the token that completes the stop string; cutting it is the front end's.
    assert full.startswith("".join(pieces)) and stop in "".join(pieces)
    assert stop not in "".join(pieces[:-1])
    # The session's own options apply again to the next answer.
    _, again = run(session)
    assert again == full


def test_cancel_stops_between_tokens(student):
    written = []
    cancel = threading.Event()
    session = RelaySession(
        student=student,
        teacher=None,
        policy=NeverPolicy(),
        options=RelayOptions(max_tokens=40),
        cancel=cancel,
    )
    for event in session.answer(QUESTION):
        if isinstance(event, TokensAppended):
            written.append(event)
            if len(written) >= 3:
                cancel.set()
        last = event
    assert last == AnswerFinished(AnswerEndReason.CANCELLED)
    assert session.usage.student_tokens == 3


def test_a_full_context_ends_the_answer_cleanly():
    small = LlamaStudent(n_ctx=256)
    try:
        session = RelaySession(
            student=small, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=500)
        )
        # About 240 prompt tokens: the context is full a few tokens into the answer.
        long_question = [ChatMessage("user", "one two three " * 66 + "Go on counting.")]
        events, _ = run(session, long_question)
        assert events[-1] == AnswerFinished(AnswerEndReason.CONTEXT_FULL)
        assert session.usage.prompt_tokens + session.usage.student_tokens <= 256
    finally:
        small.close()


def test_second_turn_evaluates_only_the_new_turn(student):
    session = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=12)
    )
    _, first_answer = run(session)
    conversation = [
        *QUESTION,
        ChatMessage("assistant", first_answer),
        ChatMessage("user", "And one more?"),
    ]
    events, _ = run(session, conversation)
    started = events[0]
    assert isinstance(started, AnswerStarted)
    assert 0 < started.prompt_tokens < len(student.render_prompt(conversation)) // 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(60)
def test_unreachable_teacher_falls_back_and_loses_nothing(student, fast_settings):
    """Every span falls back to the student; greedy, so the answer equals the teacher-free one."""
    alone = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=24)
    )
    _, expected = run(alone)
    client = GrpcTeacherClient(f"127.0.0.1:{_closed_port()}", settings=fast_settings)
    try:
        session = RelaySession(
            student=student,
            teacher=client,
            policy=AlwaysPolicy(span=4),
            options=RelayOptions(max_tokens=24),
        )
        events, text = run(session)
    finally:
        client.close()
    calls = [e for e in events if isinstance(e, TeacherCall)]
    assert text == expected
    assert calls and all(call.failed for call in calls)
    usage = session.usage
    # The first calls failed; once the breaker opened, the rest were not sent at all.
    assert usage.teacher_failures >= 1 and usage.calls_not_sent >= 1
    assert usage.teacher_failures + usage.calls_not_sent == usage.fallback_spans == len(calls)
    assert usage.teacher_calls == usage.teacher_failures
    assert usage.fallback_tokens == usage.student_tokens > 0
    assert usage.teacher_tokens == 0
    assert usage.retries >= 1  # the first calls were retried before the breaker opened
