"""Step-level calls, after GlimpRouter: a reasoning step starts after a line break; where the
student is unsure how to start it (high entropy at its first words), the teacher writes it,
up to the end of its line (`stop_at_line_end`), at most `span` tokens. The student goes on
from the next line; a teacher that predates `stop_at_line_end` writes `span` tokens instead.

A step's first words come after its list marker: "3. Subtract…", "- **Total**…". The marker
is all but certain, so the entropy is read at each position up to the first word, not only
at the line's first token, where most steps would never look unsure.
"""

from __future__ import annotations

import re

from edge_client.policies.base import Policy, Step
from edge_client.policies.gating import allowed_span
from edge_client.policies.uncertainty import entropy

# The line so far when its step has not begun: empty, or only a list or heading marker, maybe
# opening bold ("3.", "12) ", "- ", "## ", "1. **").
_BEFORE_STEP = re.compile(r"\s*(?:\d+[.)]?|[-*+#>]+)?\s*(?:\*\*)?")


def _before_step(line_so_far: str) -> bool:
    """Whether the step of this line has not begun: nothing but a marker written so far."""
    return _BEFORE_STEP.fullmatch(line_so_far) is not None


class StepPolicy(Policy):
    """Before each step's first word, calls for the step when the student's entropy (nats) is
    above `bound`; never calls once the step has begun. `budget` caps a session's teacher
    tokens."""

    name = "step"
    span_ends_at_line = True

    def __init__(self, *, bound: float, span: int, budget: int | None = None) -> None:
        self.bound = bound
        self.span = span
        self.budget = budget

    def decide(self, step: Step) -> int:
        if not _before_step(step.line_so_far):
            return 0
        span = allowed_span(step, span=self.span, min_gap=0, budget=self.budget)
        if span == 0:
            return 0
        return span if entropy(step.logits) > self.bound else 0
