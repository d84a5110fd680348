"""The acceptance rule of a draft check (cloud_teacher/drafts.py), from raw logits and from
vLLM's prompt logprobs, and the vLLM engine's memory of what each session sent."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from cloud_teacher.drafts import rejects, rejects_logits
from cloud_teacher.engines.vllm.draft_rows import accepted_tokens
from cloud_teacher.engines.vllm.session_contexts import SessionContexts
from cloud_teacher.requests import Draft

# Probabilities 0.6, 0.3, 0.08, 0.02 for tokens 0..3.
PROBS = np.array([0.6, 0.3, 0.08, 0.02])
LOGITS = np.log(PROBS).astype(np.float32) + 5.0  # logits are probabilities up to a constant


def draft(*tokens: int, min_prob: float = 0.1, accept_top_token: bool = True) -> Draft:
    return Draft(token_ids=tokens, min_prob=min_prob, accept_top_token=accept_top_token)


@pytest.mark.parametrize(
    ("token", "min_prob", "accept_top_token", "rejected"),
    [
        (0, 0.1, True, False),  # the teacher's top token
        (1, 0.1, True, False),  # 0.3 >= 0.1
        (2, 0.1, True, True),  # 0.08 < 0.1 and not the top token
        (3, 0.0, True, False),  # min_prob 0 accepts everything
        (0, 0.9, True, False),  # the top token passes whatever its probability
        (0, 0.9, False, True),  # unless min_prob alone decides
        (1, 0.29, False, False),
        (1, 0.31, False, True),
    ],
)
def test_the_rule_from_logits_and_from_logprobs_agree(token, min_prob, accept_top_token, rejected):
    rule = draft(token, min_prob=min_prob, accept_top_token=accept_top_token)
    assert rejects_logits(rule, LOGITS, token=token) is rejected
    logprob = math.log(
        PROBS[token] * (1 - 1e-6) if rejected is False and min_prob else PROBS[token]
    )
    assert rejects(rule, token=token, top_token=0, token_logprob=math.log(PROBS[token])) is rejected
    assert isinstance(logprob, float)


@dataclass
class Scored:  # vLLM's Logprob, as far as the engine reads it
    logprob: float
    rank: int


def row(token: int) -> dict[int, Scored]:
    """vLLM's prompt logprobs at one position (prompt_logprobs=1): the prompt token and the
    top-1 token."""
    entries = {0: Scored(math.log(0.6), 1)}
    entries[token] = Scored(math.log(PROBS[token]), int(np.sum(PROBS[token] < PROBS)) + 1)
    return entries


def test_the_accepted_prefix_is_read_from_the_draft_s_rows_only():
    context = [7, 7, 7]
    rows = [None, row(3), row(3), row(0), row(1), row(2), row(0)]  # the context's rows first
    assert accepted_tokens(draft(0, 1, 2, 0), rows, start=len(context)) == 2
    assert accepted_tokens(draft(0, 1), rows, start=len(context)) == 2
    with pytest.raises(ValueError, match="draft position 0"):
        accepted_tokens(draft(0), [None, None, None, None], start=3)


def test_a_session_s_new_tokens_are_those_past_its_last_context():
    contexts = SessionContexts(max_sessions=2)
    key = ("tenant", "s")
    assert contexts.uncached(key, [1, 2, 3]) == 3  # never seen
    contexts.remember(key, [1, 2, 3])
    assert contexts.uncached(key, [1, 2, 3, 4, 5]) == 2
    assert contexts.uncached(key, [1, 9, 3, 4]) == 4  # another beginning: all new
    assert contexts.uncached(("other", "s"), [1, 2, 3, 4]) == 4  # another tenant's
    contexts.remember(("t", "a"), [1])
    contexts.remember(("t", "b"), [1])
    assert contexts.uncached(key, [1, 2, 3, 4]) == 4  # forgotten: the least recent of three
