"""Step-level calls, after GlimpRouter: a reasoning step starts after a line break; where the
student is unsure how to start it (high entropy at its first token), the teacher writes it,
up to the end of its line (`stop_at_line_end`), at most `span` tokens. The student goes on
from the next line; a teacher that predates `stop_at_line_end` writes `span` tokens instead.
"""

from __future__ import annotations

from edge_client.policies.base import Policy, Step
from edge_client.policies.gating import allowed_span
from edge_client.policies.uncertainty import entropy


class StepPolicy(Policy):
    """At the first token of each line, calls for the step when the student's entropy (nats)
    is above `bound`; never calls mid-line. `budget` caps a session's teacher tokens."""

    name = "step"
    span_ends_at_line = True

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
