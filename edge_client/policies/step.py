"""Step-level calls, after GlimpRouter: a reasoning step starts after a line break; where the
student is unsure how to start it (high entropy at its first token), the teacher writes it.

The teacher cannot yet be told to stop at the next line break (a span ends at its length or
at the end of the answer), so the step is approximated by `span` tokens, sized to a typical
step; the student takes over after it, mid-line if the step was longer.
"""

from __future__ import annotations

from edge_client.policies.base import Policy, Step
from edge_client.policies.gating import allowed_span
from edge_client.policies.uncertainty import entropy


class StepPolicy(Policy):
    """At the first token of each line, calls for `span` tokens when the student's entropy
    (nats) is above `bound`; never calls mid-line. `budget` caps a session's teacher tokens."""

    name = "step"

    def __init__(self, *, bound: float, span: int, budget: int | None = None) -> None:
        self.bound = bound
        self.span = span
        self.budget = budget

    def decide(self, step: Step) -> int:
        if not step.at_line_start:
            return 0
        span = allowed_span(step, span=self.span, min_gap=0, budget=self.budget)
        if span == 0:
            return 0
        return span if entropy(step.logits) > self.bound else 0
