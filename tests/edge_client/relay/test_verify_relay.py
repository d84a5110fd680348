"""The verify policy against real teachers (`relay-teacher serve` subprocesses, real gRPC): the
student drafts, the teacher checks each draft and rewrites it where it rejects a token.

With SmolLM2 as both student and teacher (exact mode, greedy) the teacher's top token is the
student's at every position: each draft is accepted whole and the answer is the student's alone.
With the Qwen2.5-Coder pair the 1.5B teacher corrects the 0.5B student: the answer is then the
accepted drafts and the teacher's spans, and the student evaluates each token once, the spans'
included, rejected drafts aside.
"""

from __future__ import annotations

import pytest

from edge_client.policies.base import Policy
from edge_client.policies.baselines import NeverPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.policies.verify import VerifyPolicy
from edge_client.relay.events import Source, TeacherCall, TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from relay_common import qwen_pair
from relay_common.chat import ChatMessage
from relay_common.errors import ModelNotFoundError

pytestmark = pytest.mark.timeout(900)

QUESTIONS = [
    [ChatMessage("user", "Explain in three sentences why the sky is blue.")],
    [ChatMessage("user", "Say only the word: yes")],  # ends within a draft: its end is checked
]


def answer(student, teacher, policy: Policy, messages, *, max_tokens: int = 40):
    session = RelaySession(
        student=student,
        teacher=teacher,
        policy=policy,
        options=RelayOptions(max_tokens=max_tokens),
    )
    before = student.evaluated_tokens
    events = list(session.answer(messages))
    evaluated = student.evaluated_tokens - before
    ids = [t for e in events if isinstance(e, TokensAppended) for t in e.token_ids]
    return session, events, ids, evaluated


def verify(*, accept_prob: float, draft: int, span: int, window: int) -> VerifyPolicy:
    return VerifyPolicy(
        accept_prob=accept_prob, draft=draft, span=span, window=window, fallback=NeverPolicy()
    )


@pytest.mark.parametrize("messages", QUESTIONS, ids=["long", "short"])
def test_greedy_verified_relay_equals_the_student_alone(
    student, smollm2_teacher, patient_settings, messages
):
    _, _, alone, _ = answer(student, None, NeverPolicy(), messages)
    client = GrpcTeacherClient(smollm2_teacher, settings=patient_settings)
    try:
        # accept_prob 1: a draft token passes only as the teacher's own top token, so every
        # position of every draft is compared with the teacher's argmax there.
        policy = verify(accept_prob=1.0, draft=8, span=2, window=8)
        session, events, relayed, evaluated = answer(student, client, policy, messages)
    finally:
        client.close()
    calls = [e for e in events if isinstance(e, TeacherCall)]
    assert session.token_mode is True
    assert relayed == alone
    assert calls and all(not call.failed for call in calls)
    assert all(call.accepted_draft_tokens == call.draft_tokens for call in calls)
    assert all(call.received == 0 for call in calls)
    usage = session.usage
    assert usage.draft_tokens == sum(call.draft_tokens for call in calls) >= len(alone)
    assert (usage.teacher_tokens, usage.rejected_draft_tokens) == (0, 0)
    assert usage.student_tokens == len(alone)
    # Each token was evaluated once: drafts were accepted, nothing was rolled back.
    assert evaluated == usage.prompt_tokens + len(relayed)


def test_a_teacher_in_text_mode_gets_no_drafts_and_the_fallback_policy_decides(
    student, gemma_teacher, patient_settings
):
    client = GrpcTeacherClient(gemma_teacher, settings=patient_settings)
    try:
        policy = VerifyPolicy(
            accept_prob=0.1,
            draft=8,
            span=4,
            window=8,
            fallback=ConfidencePolicy(threshold=0.6, span=4),
        )
        session, events, _, _ = answer(student, client, policy, QUESTIONS[0])
    finally:
        client.close()
    calls = [e for e in events if isinstance(e, TeacherCall)]
    assert session.token_mode is False
    assert calls and not any(call.failed for call in calls)
    assert all(call.draft_tokens == 0 for call in calls)
    assert session.usage.draft_tokens == 0 and session.usage.teacher_tokens > 0


@pytest.fixture(scope="module")
def qwen_models():
    try:
        return qwen_pair.student_path(), qwen_pair.teacher_path()
    except ModelNotFoundError as exc:
        pytest.skip(f"the Qwen2.5-Coder pair is not installed: {exc}")


class RecordingTeacher:
    """The real gRPC client, keeping each draft it sends (the relay's events show only what
    the teacher accepted)."""

    def __init__(self, client: GrpcTeacherClient) -> None:
        self.client = client
        self.drafts: list[list[int]] = []

    @property
    def state(self):
        return self.client.state

    def info(self):
        return self.client.info()

    def generate_span(self, request, *, cancel=None):
        self.drafts.append(list(request.draft.token_ids) if request.draft else [])
        return self.client.generate_span(request, cancel=cancel)

    def close(self) -> None:
        self.client.close()


@pytest.mark.slow
def test_a_stronger_teacher_corrects_the_drafts_and_the_answer_is_made_of_both(
    qwen_models, patient_settings
):
    student_path, teacher_path = qwen_models
    messages = [
        ChatMessage(
            "user",
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
            "clips in May. How many clips did Natalia sell altogether in April and May? "
            "Please reason step by step, and put your final answer within \\boxed{}.",
        )
    ]
    # Exact (batch-invariant): re-evaluating the answer below gives the logits it was drafted
    # from, however it is split into calls.
    student = LlamaStudent(student_path, n_ctx=2048, n_ubatch=1)
    try:
        with start_local_teacher(model=teacher_path, timeout_s=600) as teacher:
            client = RecordingTeacher(GrpcTeacherClient(teacher.address, settings=patient_settings))
            try:
                # window 0: the student drafts only what is being checked, so every token it
                # evaluated is in a draft or in a span.
                policy = verify(accept_prob=0.5, draft=16, span=2, window=0)
                session, events, ids, evaluated = answer(
                    student, client, policy, messages, max_tokens=160
                )
            finally:
                client.close()
        calls = [e for e in events if isinstance(e, TeacherCall)]
        assert session.token_mode is True
        assert len(calls) == len(client.drafts) and not any(call.failed for call in calls)
        assert any(call.accepted_draft_tokens < call.draft_tokens for call in calls), (
            "the 1.5B teacher rejected none of the 0.5B student's drafts"
        )

        # Check by check, the answer is the accepted part of the draft, then the teacher's span.
        def real(tokens: list[int]) -> list[int]:
            return [t for t in tokens if not student.is_end(t)]

        spans = _spans_after_calls(events)
        segments = [
            (real(draft[: call.accepted_draft_tokens]), span)
            for draft, call, span in zip(client.drafts, calls, spans, strict=True)
        ]
        assert ids == [t for accepted, span in segments for t in (*accepted, *span)]
        assert all(len(span) == call.received <= 2 for span, call in zip(spans, calls, strict=True))

        # Each draft is what the student writes alone from where it began.
        prompt = student.render_prompt(messages)
        written: list[int] = []
        for draft, (accepted, span) in zip(client.drafts, segments, strict=True):
            student.sync([*prompt, *written])
            assert _greedy(student, len(real(draft))) == real(draft)
            written += [*accepted, *span]

        usage = session.usage
        assert usage.draft_tokens == sum(len(draft) for draft in client.drafts)
        assert usage.rejected_draft_tokens == sum(
            call.draft_tokens - call.accepted_draft_tokens for call in calls
        )
        assert usage.teacher_tokens == sum(len(span) for span in spans) >= 1
        # The student evaluated each drafted token once, and of each correction only the span.
        drafted = sum(len(real(draft)) for draft in client.drafts)
        assert evaluated == usage.prompt_tokens + drafted + usage.teacher_tokens
    finally:
        student.close()


def _spans_after_calls(events) -> list[list[int]]:
    """The teacher's tokens that follow each call (empty where it accepted the whole draft)."""
    spans: list[list[int]] = []
    for event in events:
        if isinstance(event, TeacherCall):
            spans.append([])
        elif isinstance(event, TokensAppended) and event.source is Source.TEACHER:
            spans[-1].extend(event.token_ids)
    return spans


def _greedy(student: LlamaStudent, n: int) -> list[int]:
    tokens: list[int] = []
    for _ in range(n):
        token = int(student.next_logits().argmax())
        tokens.append(token)
        student.append([token])
    return tokens
