"""Training-free calls: ask the teacher where the student's top-token probability is low."""

from __future__ import annotations

from edge_client.policies.base import Step
from edge_client.policies.gating import GatedPolicy
from edge_client.policies.uncertainty import top_probability


class ConfidencePolicy(GatedPolicy):
    """Calls for `span` tokens when the top-token probability is below `threshold` (gap and
    budget: `GatedPolicy`)."""

    name = "confidence"

    def __init__(
        self, *, threshold: float, span: int, min_gap: int = 0, budget: int | None = None
    ) -> None:
        super().__init__(span=span, min_gap=min_gap, budget=budget)
        self.threshold = threshold

    def unsure(self, step: Step) -> bool:
        return top_probability(step.logits) < self.threshold
