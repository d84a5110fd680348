"""The relay loop against the real teacher (`relay-teacher serve` in a subprocess, real gRPC).

With SmolLM2 as both student and teacher, token mode and greedy decoding, the relayed answer
must equal the student's answer alone token for token, whatever the policy calls (DESIGN §4).
"""

from __future__ import annotations

import pytest

from edge_client.policies.baselines import NeverPolicy, RandomPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.policies.step import StepPolicy
from edge_client.relay.events import AnswerFinished, Source, TeacherCall, TokensAppended
from edge_client.teacher.grpc_client import GrpcTeacherClient
from relay_common.chat import ChatMessage
from tests.edge_client.relay.answering import answer

pytestmark = pytest.mark.timeout(600)

QUESTIONS = [
    [ChatMessage("user", "Explain in three sentences why the sky is blue.")],
    [ChatMessage("user", "Tom has 3 apples and buys 5 more. How many apples does he have?")],
]


@pytest.mark.parametrize("messages", QUESTIONS)
@pytest.mark.parametrize(
    "make_policy",
    [
        lambda: ConfidencePolicy(threshold=0.9, span=3, min_gap=1),
        lambda: RandomPolicy(rate=0.3, span=2, seed=11),
    ],
    ids=["confidence", "random"],
)
def test_greedy_relay_equals_the_student_alone(
    student, smollm2_teacher, patient_settings, make_policy, messages
):
    _, _, alone, _ = answer(student, None, NeverPolicy(), messages)
    client = GrpcTeacherClient(smollm2_teacher, settings=patient_settings)
    try:
        session, events, relayed, evaluated = answer(student, client, make_policy(), messages)
    finally:
        client.close()
    calls = [e for e in events if isinstance(e, TeacherCall)]
    assert session.token_mode is True
    assert len(calls) >= 2 and not any(call.failed for call in calls)
    assert session.usage.teacher_tokens >= 2
    assert relayed == alone
    # Each token was evaluated once: the new prompt tokens, then every student token and
    # every span token (a span of k tokens costs the student exactly k evaluations).
    assert evaluated == session.usage.prompt_tokens + len(relayed)


def test_the_step_policy_gets_each_line_whole_from_the_teacher(
    student, smollm2_teacher, patient_settings
):
    messages = [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    _, _, alone, _ = answer(student, None, NeverPolicy(), messages, max_tokens=60)
    client = GrpcTeacherClient(smollm2_teacher, settings=patient_settings)
    try:  # bound 0: the teacher writes every line, each in a span of its own
        _, events, relayed, _ = answer(
            student, client, StepPolicy(bound=0.0, span=64), messages, max_tokens=60
        )
    finally:
        client.close()
    spans = [e.text for e in events if isinstance(e, TokensAppended) and e.source is Source.TEACHER]
    assert relayed == alone
    assert len(spans) >= 3
    for text in spans[:-1]:  # the last may be cut by max_tokens
        assert text.endswith("\n") and "\n" not in text.strip(), spans


def test_a_step_the_teacher_cannot_write_ends_with_its_line(student, free_port):
    """Nothing listens at the teacher's address: the student writes each step itself, and,
    as the teacher would, ends it with its line, so the policy decides the next line afresh."""
    messages = [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    _, _, alone, _ = answer(student, None, NeverPolicy(), messages, max_tokens=60)
    client = GrpcTeacherClient(f"127.0.0.1:{free_port()}")
    try:
        session, events, relayed, _ = answer(
            student, client, StepPolicy(bound=0.0, span=64), messages, max_tokens=60
        )
    finally:
        client.close()
    steps: list[str] = []  # the text written after each call, one entry per call
    for event in events:
        if isinstance(event, TeacherCall):
            assert event.failed
            steps.append("")
        elif isinstance(event, TokensAppended):
            assert event.source is Source.FALLBACK
            steps[-1] += event.text
    assert relayed == alone
    assert len(steps) >= 3 and session.usage.fallback_spans == len(steps)
    for text in steps[:-1]:  # the last may be cut by max_tokens
        assert text.endswith("\n") and "\n" not in text.strip(), steps


def test_text_mode_against_the_gemma_teacher(student, gemma_teacher, patient_settings):
    client = GrpcTeacherClient(gemma_teacher, settings=patient_settings)
    try:
        session, events, ids, _ = answer(
            student, client, ConfidencePolicy(threshold=0.6, span=4), QUESTIONS[1]
        )
    finally:
        client.close()
    assert session.token_mode is False
    teacher_spans = [
        e for e in events if isinstance(e, TokensAppended) and e.source is Source.TEACHER
    ]
    assert teacher_spans and session.usage.teacher_tokens == sum(
        len(e.token_ids) for e in teacher_spans
    )
    assert session.usage.teacher_failures == 0
    assert isinstance(events[-1], AnswerFinished)
    assert session.usage.generated_tokens == len(ids)
