"""The reference answers a router learns from: the teacher's own greedy answers to training
items, kept where they are right. GSM8K's worked solutions (`<<48/2=24>>`) are written in
another style than either model's; labels drawn from them would mostly measure that style gap.

While it writes, the teacher's distribution at each position is at hand: its greedy token is
the reference's by construction, and its top tokens with their probabilities are kept, so
no second teacher pass over the answer is needed (on a CPU that pass, a prefill of the
whole answer, costs more than writing it).

    DIR/references.jsonl   {"item_id": "7", "tokens": [...], "correct": true, "finish": "end",
                            "top_tokens": [[...], ...], "top_probs": [[...], ...]}

One line per item, appended as each answer ends: a stopped collection goes on where it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_client.errors import DatasetError
from relay_common.gguf import GgufModel
from relay_common.sampling import softmax

TOP_K = 8  # the teacher's most likely tokens kept at each position


@dataclass(frozen=True, slots=True)
class Reference:
    item_id: str
    tokens: list[int]  # the teacher's answer, without its end token
    correct: bool  # the answer's final number equals the item's reference
    finish: str  # "end": the teacher ended the answer; "length": cut at max_tokens
    # At each position (each token, then the end): the teacher's TOP_K tokens, most likely
    # first, and their probabilities.
    top_tokens: list[list[int]] = field(default_factory=list)
    top_probs: list[list[float]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Right, ended by the teacher, with its distributions (older records lack them)."""
        return self.correct and self.finish == "end" and bool(self.top_tokens)


def greedy_answer(model: GgufModel, prompt: Sequence[int], *, max_tokens: int) -> Reference:
    """`model`'s greedy answer after `prompt` (item_id and correct left for the caller)."""
    model.sync(prompt)
    tokens: list[int] = []
    top_tokens: list[list[int]] = []
    top_probs: list[list[float]] = []
    finish = "length"
    while len(tokens) < max_tokens:
        logits = model.next_logits()
        top = np.argpartition(logits, -TOP_K)[-TOP_K:]
        top = top[np.argsort(logits[top])[::-1]]
        probabilities = softmax(logits)[top]
        top_tokens.append([int(token) for token in top])
        top_probs.append([round(float(p), 5) for p in probabilities])
        token = int(np.argmax(logits))
        if model.is_end(token):
            finish = "end"
            break
        model.append([token])
        tokens.append(token)
    return Reference(
        item_id="",
        tokens=tokens,
        correct=False,
        finish=finish,
        top_tokens=top_tokens,
        top_probs=top_probs,
    )


class ReferenceLog:
    """The references of one collection directory, read back on a rerun."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.references: dict[str, Reference] = {}
        if path.is_file():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    reference = Reference(**json.loads(line))
                except (json.JSONDecodeError, TypeError) as exc:
                    raise DatasetError(
                        f"{path}:{number}: not a reference record ({exc}); delete the line "
                        "(or the file) to answer that item again"
                    ) from exc
                self.references[reference.item_id] = reference

    def append(self, reference: Reference) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(reference)) + "\n")
        self.references[reference.item_id] = reference
