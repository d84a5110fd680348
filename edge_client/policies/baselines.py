"""Baselines for evaluation: never call (teacher-free), always call, call at a fixed rate."""

from __future__ import annotations

import random

from edge_client.policies.base import Policy, Step


class NeverPolicy(Policy):
    """The student writes everything (teacher-free)."""

    name = "never"

    def decide(self, step: Step) -> int:
        return 0


class AlwaysPolicy(Policy):
    """The teacher writes everything, `span` tokens per call."""

    name = "always"

    def __init__(self, *, span: int) -> None:
        self.span = span

    def decide(self, step: Step) -> int:
        return self.span


class RandomPolicy(Policy):
    """Calls at each position with probability `rate`: the cost-matched baseline of RelayLLM."""

    name = "random"

    def __init__(self, *, rate: float, span: int, seed: int | None = None) -> None:
        self.rate = rate
        self.span = span
        self._rng = random.Random(seed)

    def decide(self, step: Step) -> int:
        return self.span if self._rng.random() < self.rate else 0
