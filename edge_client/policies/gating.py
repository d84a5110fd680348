"""What every training-free policy respects before it may call: the gap since the last call
and the session's teacher-token budget."""

from __future__ import annotations

from edge_client.policies.base import Step


def allowed_span(step: Step, *, span: int, min_gap: int, budget: int | None) -> int:
    """The span a call may ask for at this step: 0 inside the gap after a call or once the
    budget is spent, else `span` cut to what is left of the budget."""
    if step.tokens_since_call is not None and step.tokens_since_call < min_gap:
        return 0
    if budget is not None:
        span = min(span, budget - step.teacher_tokens_used)
    return max(span, 0)
