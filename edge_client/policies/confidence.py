"""Training-free calls: ask the teacher where the student's top-token probability is low."""

from __future__ import annotations

from edge_client.policies.base import Policy, Step
from edge_client.policies.gating import allowed_span
from edge_client.policies.uncertainty import top_probability


class ConfidencePolicy(Policy):
    """Calls for `span` tokens when the top-token probability is below `threshold`.

    `min_gap` student positions must pass between calls in one answer, and `budget` (when
    set) caps the teacher tokens a session may use.
    """

    name = "confidence"

    def __init__(
        self, *, threshold: float, span: int, min_gap: int = 0, budget: int | None = None
    ) -> None:
        self.threshold = threshold
        self.span = span
        self.min_gap = min_gap
        self.budget = budget

    def decide(self, step: Step) -> int:
        span = allowed_span(step, span=self.span, min_gap=self.min_gap, budget=self.budget)
        if span == 0:
            return 0
        return span if top_probability(step.logits) < self.threshold else 0
