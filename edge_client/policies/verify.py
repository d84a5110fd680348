"""The teacher-verified relay (DESIGN §4, `verify`): the student drafts `draft` tokens at a
time and the teacher checks each draft, rewriting it from the first token it rejects. A policy
on the student's own logits cannot see where the student goes wrong while it is sure; the
teacher can.

The drafting and checking are the relay loop's (relay/verify.py); this policy carries their
parameters (`draft_checks`). Drafts travel as token ids, so they need token mode: with a
teacher in text mode, `fallback` (an ordinary policy) decides where to call instead.
"""

from __future__ import annotations

from edge_client.policies.base import DraftChecks, Policy, Released, Step


class VerifyPolicy(Policy):
    """The teacher checks every draft of `draft` tokens; it rejects a token it gives less
    than `accept_prob` (unless it is its own top token) and writes `span` tokens there."""

    name = "verify"

    def __init__(
        self, *, accept_prob: float, draft: int, span: int, window: int, fallback: Policy
    ) -> None:
        self.draft_checks = DraftChecks(
            accept_prob=accept_prob, draft=draft, span=span, window=window
        )
        self.fallback = fallback

    def start_answer(self) -> None:
        self.fallback.start_answer()

    def decide(self, step: Step) -> int:
        return self.fallback.decide(step)

    def observe(self, token_id: int, text: str) -> list[Released]:
        return self.fallback.observe(token_id, text)

    def flush(self) -> list[Released]:
        return self.fallback.flush()
