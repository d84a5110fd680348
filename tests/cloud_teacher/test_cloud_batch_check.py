"""What llama.cpp would refuse or abort on is found before it is called: each rule, and the
sequences it names (only those fail; the rest of the step goes on)."""

from __future__ import annotations

import pytest

from cloud_teacher.engines.llama_cpp.batch_check import (
    BatchBounds,
    BatchRejectedError,
    check_batch,
)
from cloud_teacher.engines.llama_cpp.batch_runner import SequenceInput

BOUNDS = BatchBounds(n_batch=16, n_vocab=100, n_sequences=4, n_ctx=32)
HELD = {0: 5, 1: 0, 2: 30, 3: 7}  # tokens each sequence holds


def item(seq_id: int, tokens: list[int], *, position: int | None = None) -> SequenceInput:
    at = HELD.get(seq_id, 0) if position is None else position
    return SequenceInput(seq_id=seq_id, position=at, tokens=tokens, wants_logits=True)


def check(*inputs: SequenceInput) -> None:
    check_batch(inputs, BOUNDS, next_position=lambda seq_id: HELD[seq_id])


def test_a_batch_that_continues_each_sequence_passes() -> None:
    check(item(0, [1, 2, 3]), item(1, [4]), item(3, [99] * 12))  # 16 tokens: n_batch


@pytest.mark.parametrize(
    ("inputs", "at_fault", "message"),
    [
        ([item(0, [1] * 10), item(1, [1] * 7)], {0, 1}, "17 tokens; llama.cpp takes 1 to 16"),
        ([item(0, [])], {0}, "takes 1 to 16"),
        ([item(0, [1]), item(1, [100])], {1}, "token id 100 is outside the vocabulary"),
        ([item(0, [1]), item(1, [-1])], {1}, "token id -1"),
        ([item(0, [1], position=4)], {0}, "starts at position 4, but the sequence holds 5"),
        ([item(0, [1], position=6)], {0}, "starts at position 6"),
        ([item(2, [1, 2, 3])], {2}, "would reach position 33, past its 32 KV cells"),
        ([item(0, [1]), item(0, [2], position=6)], {0}, "comes twice"),
        ([item(3, [1]), item(1, []), item(0, [2])], {1}, "sequence 1: has no tokens"),
    ],
)
def test_what_llama_cpp_would_refuse_names_the_sequences_at_fault(
    inputs, at_fault, message
) -> None:
    with pytest.raises(BatchRejectedError, match=message) as raised:
        check(*inputs)
    assert raised.value.seq_ids == at_fault


def test_a_sequence_the_context_does_not_have_is_refused() -> None:
    with pytest.raises(BatchRejectedError, match="no such sequence") as raised:
        check_batch([item(7, [1], position=0)], BOUNDS, next_position=lambda seq_id: 0)
    assert raised.value.seq_ids == {7}
