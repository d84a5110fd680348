"""Text mode with the real SmolLM2 student and the real Gemma teacher (another tokenizer):
a teacher span arrives whole, however many student tokens its text takes, and a character cut
at a span's end is never turned into U+FFFD."""

from __future__ import annotations

import pytest

from edge_client.policies.baselines import AlwaysPolicy
from edge_client.relay.events import AnswerEndReason, AnswerFinished, TeacherCall, TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage

pytestmark = pytest.mark.timeout(400)

# Generous: the teacher shares two busy cores; these tests are about what arrives, not when.
PATIENT = TeacherClientSettings(deadline_s=120.0, latency_budget_s=240.0)


def relay(student, address: str, question: str, *, span: int, max_tokens: int):
    client = GrpcTeacherClient(address, settings=PATIENT)
    try:
        session = RelaySession(
            student=student,
            teacher=client,
            policy=AlwaysPolicy(span=span),
            options=RelayOptions(max_tokens=max_tokens),
        )
        events = list(session.answer([ChatMessage("user", question)]))
    finally:
        client.close()
    assert session.token_mode is False
    text = "".join(e.text for e in events if isinstance(e, TokensAppended))
    calls = [e for e in events if isinstance(e, TeacherCall)]
    assert calls and not any(call.failed for call in calls)
    return session, events, text, calls


def test_a_span_keeps_every_student_token_of_its_text(student, gemma_teacher):
    # Each 漢 is one Gemma token but three SmolLM2 tokens: a span of 8 teacher tokens is more
    # student tokens than that, and all of them belong to the answer.
    session, _, text, calls = relay(
        student,
        gemma_teacher,
        "Write the character 漢 three times and nothing else.",
        span=8,
        max_tokens=40,
    )
    assert any(call.received > call.requested for call in calls)
    assert text.count("漢") >= 3
    assert "\ufffd" not in text
    assert session.usage.teacher_tokens == sum(call.received for call in calls)
    assert session.usage.generated_tokens <= 40  # the answer's budget still holds


def test_a_span_that_ends_the_answer_is_not_cut(student, gemma_teacher):
    # "photosynthesis" is one Gemma token and two SmolLM2 tokens; the answer ends after it.
    _, events, text, calls = relay(
        student,
        gemma_teacher,
        "What process do plants use to make food? One word.",
        span=1,
        max_tokens=20,
    )
    assert text.strip().lower().startswith("photosynthesis")
    assert events[-1] == AnswerFinished(AnswerEndReason.END_OF_ANSWER)
    assert any(call.received > call.requested for call in calls)


def test_a_character_cut_by_the_span_end_is_written_whole(student, gemma_teacher):
    # 龘 is three byte tokens for Gemma: spans of 4 cut every second one in two.
    _, _, text, calls = relay(
        student, gemma_teacher, "Write the character 龘 ten times.", span=4, max_tokens=24
    )
    assert "龘" in text
    assert "\ufffd" not in text
    assert all(call.teacher_usage.generated_tokens <= 4 for call in calls)
