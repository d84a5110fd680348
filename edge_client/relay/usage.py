"""Per-session accounting (DESIGN §6), derived from the loop's events only."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge_client.relay.events import (
    AnswerStarted,
    CallOutcome,
    RelayEvent,
    Source,
    TeacherCall,
    TokensAppended,
)


@dataclass(slots=True)
class Usage:
    """Token and call counts of one answer or one session.

    student_tokens: every token the student generated, command and fallback tokens included;
    teacher_tokens: tokens of teacher spans appended to the answer. Their sum is every
    generated token; offload_ratio = teacher_tokens / that sum (the paper's call ratio).
    teacher_calls: calls sent to the teacher; teacher_failures: those that produced no span
    (unavailable or refused); calls_not_sent: spans the edge did not ask for after all
    (breaker open, over the teacher's limits); cancelled_calls: calls the user stopped.
    Every unanswered span but a cancelled one is a fallback span.
    draft_tokens: student tokens the teacher read to check them (the verify policy; answered
    checks only), not generated tokens: the offload ratio does not count them.
    rejected_draft_tokens: of those, the tokens the teacher rejected; they left the answer (its
    span replaced them), so they are no student tokens either.
    """

    prompt_tokens: int = 0
    student_tokens: int = 0
    teacher_tokens: int = 0
    command_tokens: int = 0
    teacher_calls: int = 0
    teacher_failures: int = 0
    retries: int = 0
    fallback_spans: int = 0
    fallback_tokens: int = 0
    teacher_latency_ms: float = 0.0
    wire_bytes: int = 0
    calls_not_sent: int = 0
    cancelled_calls: int = 0
    draft_tokens: int = 0
    rejected_draft_tokens: int = 0

    @property
    def generated_tokens(self) -> int:
        return self.student_tokens + self.teacher_tokens

    @property
    def offload_ratio(self) -> float:
        generated = self.generated_tokens
        return self.teacher_tokens / generated if generated else 0.0

    @property
    def read_ratio(self) -> float:
        """Draft tokens the teacher read ÷ all generated tokens."""
        generated = self.generated_tokens
        return self.draft_tokens / generated if generated else 0.0

    def add(self, event: RelayEvent) -> None:
        match event:
            case TokensAppended(source=Source.TEACHER, token_ids=ids):
                self.teacher_tokens += len(ids)
            case TokensAppended(source=source, token_ids=ids, command_tokens=commands):
                self.student_tokens += len(ids)
                self.command_tokens += commands
                if source is Source.FALLBACK:
                    self.fallback_tokens += len(ids)
            case TeacherCall() as call:
                self._add_call(call)
            case AnswerStarted(prompt_tokens=prompt_tokens):
                self.prompt_tokens += prompt_tokens

    def _add_call(self, call: TeacherCall) -> None:
        self.retries += call.retries
        self.teacher_latency_ms += call.latency_ms
        self.wire_bytes += call.wire_bytes
        if call.outcome is CallOutcome.NOT_SENT:
            self.calls_not_sent += 1
        else:
            self.teacher_calls += 1
        if call.outcome in (CallOutcome.UNAVAILABLE, CallOutcome.REFUSED):
            self.teacher_failures += 1
        if call.outcome is CallOutcome.CANCELLED:
            self.cancelled_calls += 1
        elif call.failed:
            self.fallback_spans += 1
        else:
            self.draft_tokens += call.draft_tokens
            self.rejected_draft_tokens += call.draft_tokens - call.accepted_draft_tokens

    def merge(self, other: Usage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "offload_ratio": round(self.offload_ratio, 6),
            "read_ratio": round(self.read_ratio, 6),
        }
