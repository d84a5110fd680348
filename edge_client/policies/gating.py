"""What every training-free policy respects before it may call: the gap since the last call
and the session's teacher-token budget; `GatedPolicy`, the threshold policies built on it."""

from __future__ import annotations

from abc import abstractmethod

from edge_client.policies.base import Policy, Step


def allowed_span(step: Step, *, span: int, min_gap: int, budget: int | None) -> int:
    """The span a call may ask for at this step: 0 inside the gap after a call or once the
    budget is spent, else `span` cut to what is left of the budget."""
    if step.tokens_since_call is not None and step.tokens_since_call < min_gap:
        return 0
    if budget is not None:
        span = min(span, budget - step.teacher_tokens_used)
    return max(span, 0)


class GatedPolicy(Policy):
    """Calls for `span` tokens where `unsure(step)` says so, outside the gap after a call and
    within the budget.

    `min_gap` student positions must pass between calls in one answer, and `budget` (when
    set) caps the teacher tokens a session may use.
    """

    def __init__(self, *, span: int, min_gap: int = 0, budget: int | None = None) -> None:
        self.span = span
        self.min_gap = min_gap
        self.budget = budget

    @abstractmethod
    def unsure(self, step: Step) -> bool:
        """True where the student should not write the next token itself."""

    def decide(self, step: Step) -> int:
        span = allowed_span(step, span=self.span, min_gap=self.min_gap, budget=self.budget)
        if span == 0:
            return 0
        return span if self.unsure(step) else 0
