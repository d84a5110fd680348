"""Training-free calls: ask the teacher where the student's top-token probability is low."""

from __future__ import annotations

import numpy as np

from edge_client.policies.base import Policy, Step


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
        if step.tokens_since_call is not None and step.tokens_since_call < self.min_gap:
            return 0
        span = self.span
        if self.budget is not None:
            span = min(span, self.budget - step.teacher_tokens_used)
            if span <= 0:
                return 0
        return span if top_probability(step.logits) < self.threshold else 0


def top_probability(logits: np.ndarray) -> float:
    """Softmax probability of the most likely token, without materialising the softmax."""
    top = float(np.max(logits))
    return 1.0 / float(np.sum(np.exp(logits - top, dtype=np.float64)))
