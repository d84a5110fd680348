"""The teacher-forced pass: the student reads prompt + reference once, and at every position
of the answer we note its final hidden state and what it would write there. The teacher's
side comes from the reference itself (references.py): it wrote the answer greedily, so its
token at each position is the reference's, and its top tokens were kept as it wrote."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_client.policies.uncertainty import entropy
from edge_client.router.positions import END, ItemPositions
from edge_client.router.references import Reference
from relay_common.gguf import GgufModel


def forced_positions(
    *, student: GgufModel, prompt: Sequence[int], reference: Reference
) -> ItemPositions:
    """The positions of one item whose usable `reference` (see Reference.usable) followed
    `prompt`. The student must share the teacher's tokenizer (token ids mean the same)."""
    if len(prompt) < 2:
        raise ValueError("a prompt has at least two tokens (a chat template's turn)")
    if len(reference.top_tokens) != len(reference.tokens) + 1:
        raise ValueError("a usable reference has the teacher's top tokens at every position")
    # Outputs at the prompt's last token and at each reference token: n + 1 positions, the
    # last one where the answer ends.
    forced = [prompt[-1], *reference.tokens]
    n = len(forced)
    hidden = np.empty((n, student.hidden_size), dtype=np.float16)
    student_tokens = np.empty(n, dtype=np.int32)
    teacher_prob = np.zeros(n, dtype=np.float16)  # 0: outside the teacher's top tokens
    entropies = np.empty(n, dtype=np.float16)
    student.sync(prompt[:-1])
    outputs = student.append_with_outputs(forced, hidden=True)
    for index, (logits, state) in enumerate(outputs):
        assert state is not None  # asked for
        token = int(np.argmax(logits))
        student_tokens[index] = END if student.is_end(token) else token
        hidden[index] = state
        entropies[index] = entropy(logits)
        top = reference.top_tokens[index]
        if token in top:
            teacher_prob[index] = reference.top_probs[index][top.index(token)]
    return ItemPositions(
        item_id=reference.item_id,
        hidden=hidden,
        reference=np.array([*reference.tokens, END], dtype=np.int32),
        student=student_tokens,
        teacher=np.array([*reference.tokens, END], dtype=np.int32),
        teacher_prob=teacher_prob,
        entropy=entropies,
    )
