"""What llama.cpp's decode would refuse, found in Python before it is called.

A failed GGML_ASSERT in llama.cpp aborts the whole process: every session on the teacher is
lost and health never answers again (a batch over `n_batch` tokens does that). A batch it
refuses without aborting (a token outside the vocabulary, a sequence id out of range, positions
that do not continue what the sequence holds, no KV cells left) fails `llama_decode` and leaves
the context in an unknown state. So every batch is checked here first; a batch that fails names
the sequences at fault, whose spans then fail alone while the others go on.

    bounds = BatchBounds(n_batch=528, n_vocab=49152, n_sequences=16, n_ctx=4096)
    check_batch(inputs, bounds, next_position=lambda seq_id: held[seq_id])  # or raises
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud_teacher.engines.llama_cpp.batch_runner import SequenceInput


@dataclass(frozen=True, slots=True)
class BatchBounds:
    """What one llama.cpp context takes in one decode."""

    n_batch: int  # tokens in one llama_decode
    n_vocab: int
    n_sequences: int
    n_ctx: int  # KV cells of each sequence


class BatchRejectedError(ValueError):
    """A batch llama.cpp would abort on or refuse; `seq_ids` are the sequences at fault (all of
    the batch's when the batch as a whole is wrong)."""

    def __init__(self, message: str, *, seq_ids: Iterable[int]) -> None:
        super().__init__(message)
        self.seq_ids = frozenset(seq_ids)


def check_batch(
    inputs: Sequence[SequenceInput],
    bounds: BatchBounds,
    *,
    next_position: Callable[[int], int],
) -> None:
    """Raises `BatchRejectedError` unless llama.cpp takes `inputs` as one batch.

    `next_position(seq_id)` is the position the sequence's next token must have: how many
    tokens llama.cpp's memory holds for it.
    """
    total = sum(len(item.tokens) for item in inputs)
    if not 0 < total <= bounds.n_batch:
        raise BatchRejectedError(
            f"a batch of {total} tokens; llama.cpp takes 1 to {bounds.n_batch}",
            seq_ids=(item.seq_id for item in inputs),
        )
    repeated = {seq_id for seq_id, n in Counter(i.seq_id for i in inputs).items() if n > 1}
    problems = {
        item.seq_id: problem
        for item in inputs
        if (problem := _problem(item, bounds, next_position, repeated)) is not None
    }
    if problems:
        first = min(problems)
        raise BatchRejectedError(f"sequence {first}: {problems[first]}", seq_ids=problems)


def _problem(
    item: SequenceInput,
    bounds: BatchBounds,
    next_position: Callable[[int], int],
    repeated: set[int],
) -> str | None:
    if not 0 <= item.seq_id < bounds.n_sequences:
        return f"no such sequence (the context has {bounds.n_sequences})"
    if item.seq_id in repeated:
        return "comes twice in one batch"
    if not item.tokens:
        return "has no tokens in the batch"
    outside = [token for token in item.tokens if not 0 <= token < bounds.n_vocab]
    if outside:
        return f"token id {outside[0]} is outside the vocabulary (0 to {bounds.n_vocab - 1})"
    held = next_position(item.seq_id)
    if item.position != held:
        return f"starts at position {item.position}, but the sequence holds {held} tokens"
    end = item.position + len(item.tokens)
    if end > bounds.n_ctx:
        return f"would reach position {end}, past its {bounds.n_ctx} KV cells"
    return None
