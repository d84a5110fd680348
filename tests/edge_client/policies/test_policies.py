"""The training-free and baseline policies."""

from __future__ import annotations

import numpy as np
import pytest

from edge_client.errors import ConfigError
from edge_client.policies.base import Step
from edge_client.policies.baselines import AlwaysPolicy, NeverPolicy, RandomPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.policies.registry import PolicyName, build_policy
from edge_client.policies.uncertainty import top_probability
from edge_client.router.model import DenseLayer, RouterMeta, RouterModel

CONFIDENT = np.array([10.0, 0.0, 0.0, 0.0], dtype=np.float32)  # top probability ~ 0.9999
UNSURE = np.zeros(4, dtype=np.float32)  # top probability 0.25


def step(logits, *, since=None, used=0, position=0):
    return Step(logits=logits, position=position, tokens_since_call=since, teacher_tokens_used=used)


def test_top_probability_matches_softmax():
    logits = np.array([2.0, 1.0, 0.5, -3.0], dtype=np.float32)
    softmax = np.exp(logits) / np.exp(logits).sum()
    assert top_probability(logits) == pytest.approx(softmax.max())


def test_confidence_calls_only_when_unsure():
    policy = ConfidencePolicy(threshold=0.5, span=6)
    assert policy.decide(step(UNSURE)) == 6
    assert policy.decide(step(CONFIDENT)) == 0


def test_confidence_respects_the_gap_between_calls():
    policy = ConfidencePolicy(threshold=0.5, span=6, min_gap=3)
    assert policy.decide(step(UNSURE, since=2)) == 0
    assert policy.decide(step(UNSURE, since=3)) == 6


def test_confidence_budget_caps_the_span_then_stops_calls():
    policy = ConfidencePolicy(threshold=0.5, span=6, budget=10)
    assert policy.decide(step(UNSURE, used=7)) == 3
    assert policy.decide(step(UNSURE, used=10)) == 0


def test_baselines():
    assert NeverPolicy().decide(step(UNSURE)) == 0
    assert AlwaysPolicy(span=5).decide(step(CONFIDENT)) == 5


def test_random_policy_is_seeded_and_near_its_rate():
    def calls(seed):
        policy = RandomPolicy(rate=0.2, span=4, seed=seed)
        return [policy.decide(step(CONFIDENT)) for _ in range(2000)]

    first = calls(7)
    assert first == calls(7)
    assert first != calls(8)
    assert set(first) == {0, 4}
    assert 0.15 < first.count(4) / len(first) < 0.25


@pytest.mark.parametrize("name", list(PolicyName))
def test_every_policy_name_builds(name):
    policy = build_policy(
        name,
        span=4,
        max_span=16,
        threshold=0.5,
        entropy_bound=1.0,
        min_gap=0,
        budget=None,
        rate=0.1,
        seed=1,
        accept_prob=0.1,
        draft=8,
        draft_window=8,
        router=_ROUTER if name is PolicyName.ROUTER else None,
    )
    assert policy.name == name.value


def test_the_router_policy_needs_a_router_file():
    with pytest.raises(ConfigError, match="--router PATH"):
        build_policy(
            PolicyName.ROUTER,
            span=4,
            max_span=16,
            threshold=0.5,
            entropy_bound=1.0,
            min_gap=0,
            budget=None,
            rate=0.1,
            seed=1,
            accept_prob=0.1,
            draft=8,
            draft_window=8,
        )


_ROUTER = RouterModel(
    [DenseLayer(np.zeros((4, 1), np.float32), np.zeros(1, np.float32))],
    RouterMeta(student_fingerprint="f" * 64, hidden_size=4, student_model="test"),
)
