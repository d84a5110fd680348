"""Training-free calls on the whole distribution: ask the teacher where the student's
next-token entropy is high. Unlike the top-token probability, entropy tells a choice between
two good tokens (low entropy, harmless) from a spread over many (high entropy)."""

from __future__ import annotations

from edge_client.policies.base import Step
from edge_client.policies.gating import GatedPolicy
from edge_client.policies.uncertainty import entropy


class EntropyPolicy(GatedPolicy):
    """Calls for `span` tokens when the next-token entropy (nats) is above `bound` (gap and
    budget: `GatedPolicy`, as for the confidence policy)."""

    name = "entropy"

    def __init__(
        self, *, bound: float, span: int, min_gap: int = 0, budget: int | None = None
    ) -> None:
        super().__init__(span=span, min_gap=min_gap, budget=budget)
        self.bound = bound

    def unsure(self, step: Step) -> bool:
        return entropy(step.logits) > self.bound
