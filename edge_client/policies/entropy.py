"""Training-free calls on the whole distribution: ask the teacher where the student's
next-token entropy is high. Unlike the top-token probability, entropy tells a choice between
two good tokens (low entropy, harmless) from a spread over many (high entropy)."""

from __future__ import annotations

from edge_client.policies.base import Policy, Step
from edge_client.policies.gating import allowed_span
from edge_client.policies.uncertainty import entropy


class EntropyPolicy(Policy):
    """Calls for `span` tokens when the next-token entropy (nats) is above `bound`, with the
    same gap and budget as the confidence policy."""

    name = "entropy"

    def __init__(
        self, *, bound: float, span: int, min_gap: int = 0, budget: int | None = None
    ) -> None:
        self.bound = bound
        self.span = span
        self.min_gap = min_gap
        self.budget = budget

    def decide(self, step: Step) -> int:
        span = allowed_span(step, span=self.span, min_gap=self.min_gap, budget=self.budget)
        if span == 0:
            return 0
        return span if entropy(step.logits) > self.bound else 0
