"""CITER's learned routing: the teacher writes where a router, reading the student's final
hidden state, scores the student's own next token as likely wrong. Unlike the student's
logits, the hidden state carries what a trained probe can tell about mistakes the student
makes while sure of itself."""

from __future__ import annotations

from edge_client.policies.base import Step
from edge_client.policies.gating import GatedPolicy
from edge_client.policies.uncertainty import entropy
from edge_client.router.model import RouterModel


class RouterPolicy(GatedPolicy):
    """Calls for `span` tokens where `router` scores the position above `threshold` (gap and
    budget: `GatedPolicy`). Check the router against the student first
    (`RouterModel.check_student`)."""

    name = "router"
    needs_hidden = True

    def __init__(
        self,
        *,
        router: RouterModel,
        threshold: float,
        span: int,
        min_gap: int = 0,
        budget: int | None = None,
    ) -> None:
        super().__init__(span=span, min_gap=min_gap, budget=budget)
        self.router = router
        self.threshold = threshold

    def unsure(self, step: Step) -> bool:
        if step.hidden is None:
            raise ValueError("the router policy needs the student's hidden state in each step")
        spread = entropy(step.logits) if self.router.meta.with_entropy else None
        return self.router.score(step.hidden, entropy=spread) > self.threshold
