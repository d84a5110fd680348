"""The `<call>n</call>` command, parsed as the student streams it."""

from __future__ import annotations

import numpy as np
import pytest

from edge_client.policies.base import Step
from edge_client.policies.command import CommandPolicy

STEP = Step(
    logits=np.zeros(4, dtype=np.float32), position=0, tokens_since_call=None, teacher_tokens_used=0
)


def stream(pieces: list[str], *, default_span: int = 8, max_span: int = 32):
    """Feeds pieces as tokens 0, 1, …; returns (visible text, command token ids, calls)."""
    policy = CommandPolicy(default_span=default_span, max_span=max_span)
    policy.start_answer()
    released, calls = [], []
    for token_id, piece in enumerate(pieces):
        released += policy.observe(token_id, piece)
        if (span := policy.decide(STEP)) > 0:
            calls.append((token_id, span))
    released += policy.flush()
    assert [r.token_id for r in released] == list(range(len(pieces))), "tokens lost or reordered"
    text = "".join(r.text for r in released)
    return text, [r.token_id for r in released if r.command], calls


@pytest.mark.parametrize(
    ("pieces", "text", "commands", "calls"),
    [
        (["The answer ", "is"], "The answer is", [], []),
        (
            ["Hi ", "<", "call", ">", "5", "</", "call", ">", " there"],
            "Hi  there",
            [1, 2, 3, 4, 5, 6, 7],
            [(7, 5)],
        ),
        (["x<call>5</call>y"], "xy", [0], [(0, 5)]),
        (["a<c", "all></call>b"], "ab", [0, 1], [(1, 8)]),  # empty n: the default span
        (["<call>", " 3 ", "</call>"], "", [0, 1, 2], [(2, 3)]),
        (["<call>0</call>go"], "go", [0], []),  # n = 0: no call
        (["<call>999</call>"], "", [0], [(0, 32)]),  # clamped to the limit
        (["<call>abc</call> ok"], "<call>abc</call> ok", [], []),  # malformed: plain text
        (["if a <", "b then"], "if a <b then", [], []),
        (["<call>5"], "<call>5", [], []),  # never closed: plain text at the end
        (["<call>123456789012345", " more"], "<call>123456789012345 more", [], []),
        (["<call>", "2", "</call>", "<call>4</call>", "!"], "!", [0, 1, 2, 3], [(2, 2), (3, 4)]),
    ],
)
def test_command_parsing(pieces, text, commands, calls):
    assert stream(pieces) == (text, commands, calls)


def test_text_is_held_only_while_a_tag_may_be_starting():
    policy = CommandPolicy(default_span=8, max_span=32)
    assert [r.text for r in policy.observe(0, "Hello <ca")] == []
    released = policy.observe(1, "t")
    assert "".join(r.text for r in released) == "Hello <cat"


def test_a_new_answer_forgets_a_pending_call():
    policy = CommandPolicy(default_span=8, max_span=32)
    policy.observe(0, "<call>4</call>")
    policy.start_answer()
    assert policy.decide(STEP) == 0
