"""The entropy and step policies, decided on hand-made logits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_client.policies.base import Step
from edge_client.policies.entropy import EntropyPolicy
from edge_client.policies.step import StepPolicy
from edge_client.policies.uncertainty import entropy

UNIFORM = np.zeros(8, dtype=np.float32)  # entropy ln 8 ~ 2.08 nats
CERTAIN = np.array([30.0, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32)  # entropy ~ 0
# Two equally good tokens: top probability only 0.5, yet entropy only ln 2 ~ 0.69 nats.
TWO_WAY = np.array([20.0, 20.0, 0, 0, 0, 0, 0, 0], dtype=np.float32)


def step(logits, *, since=None, used=0, line="The total is"):
    return Step(
        logits=logits,
        position=3,
        tokens_since_call=since,
        teacher_tokens_used=used,
        line_so_far=line,
    )


@pytest.mark.parametrize(
    ("logits", "expected"),
    [(UNIFORM, math.log(8)), (CERTAIN, 0.0), (TWO_WAY, math.log(2))],
)
def test_entropy_in_nats(logits, expected):
    assert entropy(logits) == pytest.approx(expected, abs=1e-6)


def test_entropy_survives_huge_logits():
    assert entropy(np.array([1e4, 1e4], dtype=np.float32)) == pytest.approx(math.log(2))


def test_entropy_policy_calls_on_spread_not_on_a_two_way_choice():
    policy = EntropyPolicy(bound=1.0, span=5)
    assert policy.decide(step(UNIFORM)) == 5
    assert policy.decide(step(TWO_WAY)) == 0
    assert policy.decide(step(CERTAIN)) == 0


def test_entropy_policy_keeps_the_gap_and_the_budget():
    policy = EntropyPolicy(bound=1.0, span=5, min_gap=4, budget=7)
    assert policy.decide(step(UNIFORM, since=3)) == 0
    assert policy.decide(step(UNIFORM, since=4, used=4)) == 3
    assert policy.decide(step(UNIFORM, since=4, used=7)) == 0


def test_step_policy_calls_only_at_an_unsure_line_start():
    policy = StepPolicy(bound=1.0, span=24)
    assert policy.decide(step(UNIFORM, line="")) == 24
    assert policy.decide(step(UNIFORM, line="The total is")) == 0
    assert policy.decide(step(CERTAIN, line="")) == 0


@pytest.mark.parametrize("marker", ["3", "3.", "12) ", "- ", "## ", "1. **", "  * ", "**"])
def test_step_policy_looks_past_a_list_marker_to_the_steps_first_word(marker):
    policy = StepPolicy(bound=1.0, span=24)
    assert policy.decide(step(UNIFORM, line=marker)) == 24
    assert policy.decide(step(CERTAIN, line=marker)) == 0


@pytest.mark.parametrize("begun", ["3. Subtract", "- **Total", "\\[", "Step 2:", "12 +"])
def test_step_policy_stays_out_of_a_step_that_has_begun(begun):
    assert StepPolicy(bound=1.0, span=24).decide(step(UNIFORM, line=begun)) == 0


def test_step_policy_may_call_again_right_after_a_teacher_step():
    # Consecutive hard steps: the teacher's step ended at a line break, the next one starts.
    policy = StepPolicy(bound=1.0, span=24, budget=30)
    assert policy.decide(step(UNIFORM, since=0, line="", used=24)) == 6
