"""Policies by name: the one place the CLI and settings turn a name into a Policy."""

from __future__ import annotations

import enum

from edge_client.errors import ConfigError
from edge_client.policies.base import Policy
from edge_client.policies.baselines import AlwaysPolicy, NeverPolicy, RandomPolicy
from edge_client.policies.command import CommandPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.policies.entropy import EntropyPolicy
from edge_client.policies.router import RouterPolicy
from edge_client.policies.step import StepPolicy
from edge_client.policies.verify import VerifyPolicy
from edge_client.router.model import RouterModel


class PolicyName(str, enum.Enum):
    CONFIDENCE = "confidence"
    ENTROPY = "entropy"
    STEP = "step"
    ROUTER = "router"
    COMMAND = "command"
    RANDOM = "random"
    ALWAYS = "always"
    NEVER = "never"
    VERIFY = "verify"


def call_span(name: PolicyName, *, span: int, max_span: int) -> int:
    """The most tokens one call of the policy `name` asks for: `span`, but a step asks for its
    line, which `max_span` caps."""
    return max_span if name is PolicyName.STEP else span


def build_policy(
    name: PolicyName,
    *,
    span: int,
    max_span: int,
    threshold: float,
    entropy_bound: float,
    min_gap: int,
    budget: int | None,
    rate: float,
    seed: int | None,
    accept_prob: float,
    draft: int,
    draft_window: int,
    router: RouterModel | None = None,
) -> Policy:
    """Makes the policy `name` from the settings that concern it (`router`: the loaded router
    file, checked against the student, for the router policy). The verify policy falls back
    on the confidence policy where drafts cannot be checked (a teacher in text mode)."""
    match name:
        case PolicyName.CONFIDENCE:
            return ConfidencePolicy(threshold=threshold, span=span, min_gap=min_gap, budget=budget)
        case PolicyName.ENTROPY:
            return EntropyPolicy(bound=entropy_bound, span=span, min_gap=min_gap, budget=budget)
        case PolicyName.STEP:
            step_span = call_span(name, span=span, max_span=max_span)
            return StepPolicy(bound=entropy_bound, span=step_span, budget=budget)
        case PolicyName.ROUTER:
            if router is None:
                raise ConfigError(
                    "the router policy needs a router file: give --router PATH "
                    "(or --pair qwen2.5-coder, whose router ships)"
                )
            return RouterPolicy(
                router=router, threshold=threshold, span=span, min_gap=min_gap, budget=budget
            )
        case PolicyName.COMMAND:
            return CommandPolicy(default_span=span, max_span=max_span)
        case PolicyName.RANDOM:
            return RandomPolicy(rate=rate, span=span, seed=seed)
        case PolicyName.ALWAYS:
            return AlwaysPolicy(span=span)
        case PolicyName.NEVER:
            return NeverPolicy()
        case PolicyName.VERIFY:
            return VerifyPolicy(
                accept_prob=accept_prob,
                draft=draft,
                span=span,
                window=draft_window,
                fallback=ConfidencePolicy(
                    threshold=threshold, span=span, min_gap=min_gap, budget=budget
                ),
            )
