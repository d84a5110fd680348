"""The batch runner's own promises, on real SmolLM2: a step's sequences may come in any order
and with holes between their ids (filled with padding tokens for one pass over the weights),
yet each input gets its own logits and an idle sequence keeps exactly what it held; a full step
with holes fits llama.cpp's batch, and a batch llama.cpp would refuse never reaches it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cloud_teacher.engines.llama_cpp.batch_check import BatchRejectedError
from cloud_teacher.engines.llama_cpp.batch_runner import BatchRunner, SequenceInput
from relay_common.gguf import GgufModel

PROMPTS = {
    0: b"The capital of France is",
    1: b"def fibonacci(n):",
    2: b"Once upon a time, in a small village,",
}


@pytest.fixture
def runner(smollm_tokenizer: GgufModel) -> Iterator[BatchRunner]:
    runner = BatchRunner(
        smollm_tokenizer, n_sequences=4, n_ctx=128, n_ubatch=512, threads=2, exact=False
    )
    yield runner
    runner.close()


def ids(model: GgufModel, seq_id: int) -> list[int]:
    return model.llama.tokenize(PROMPTS[seq_id])


def prefill(runner: BatchRunner, model: GgufModel, seq_id: int) -> np.ndarray:
    prompt = ids(model, seq_id)
    [index] = runner.decode(
        [SequenceInput(seq_id=seq_id, position=0, tokens=prompt, wants_logits=True)]
    )
    return runner.logits(index).copy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_inputs_out_of_id_order_each_get_their_own_logits(
    runner: BatchRunner, smollm_tokenizer: GgufModel
) -> None:
    alone = {}
    for seq_id in (2, 0):
        alone[seq_id] = prefill(runner, smollm_tokenizer, seq_id)
        runner.drop(seq_id=seq_id, from_position=0)
    together = [
        SequenceInput(
            seq_id=seq_id, position=0, tokens=ids(smollm_tokenizer, seq_id), wants_logits=True
        )
        for seq_id in (2, 0)  # not in id order
    ]
    indices = runner.decode(together)
    for seq_id, index in zip((2, 0), indices, strict=True):
        logits = runner.logits(index)
        other = alone[0 if seq_id == 2 else 2]
        # Close, not equal: outside exact mode logits depend slightly on the batch's shape
        # (the same argmax is not promised either: a near-tie may flip on another CPU).
        assert cosine(logits, alone[seq_id]) > 0.999
        assert cosine(logits, alone[seq_id]) > cosine(logits, other)


def test_a_step_with_a_hole_leaves_the_idle_sequence_exactly_as_it_was(
    smollm_tokenizer: GgufModel, runner: BatchRunner
) -> None:
    for seq_id in (0, 1, 2):
        prefill(runner, smollm_tokenizer, seq_id)
    before = runner.evaluated_tokens
    # Sequences 0 and 2 step while 1 waits: the hole at 1 is padded, then the pad is dropped.
    runner.decode(
        [
            SequenceInput(
                seq_id=2, position=len(ids(smollm_tokenizer, 2)), tokens=[13], wants_logits=True
            ),
            SequenceInput(
                seq_id=0, position=len(ids(smollm_tokenizer, 0)), tokens=[13], wants_logits=True
            ),
        ]
    )
    assert runner.evaluated_tokens - before == 2  # padding is not counted as evaluated

    # Sequence 1 goes on as if nothing had happened: the same logits as in a runner where it
    # never shared a step (a pad left behind would sit at this position and change them).
    follow = smollm_tokenizer.llama.tokenize(b" return", add_bos=False)
    step = SequenceInput(
        seq_id=1, position=len(ids(smollm_tokenizer, 1)), tokens=follow, wants_logits=True
    )
    [index] = runner.decode([step])
    after_hole = runner.logits(index).copy()

    fresh = BatchRunner(
        smollm_tokenizer, n_sequences=4, n_ctx=128, n_ubatch=512, threads=2, exact=False
    )
    try:
        prefill(fresh, smollm_tokenizer, 1)
        [index] = fresh.decode([step])
        np.testing.assert_array_equal(after_hole, fresh.logits(index))
    finally:
        fresh.close()


def test_a_full_step_with_holes_fits_llama_cpp_s_batch(smollm_tokenizer: GgufModel) -> None:
    # A step filled to its budget by one decoding token and a prompt chunk, with an idle
    # sequence between them: its padding token comes on top (llama.cpp used to abort here).
    runner = BatchRunner(
        smollm_tokenizer, n_sequences=4, n_ctx=1024, n_ubatch=512, threads=2, exact=False
    )
    try:
        for seq_id in (0, 1, 2):
            prefill(runner, smollm_tokenizer, seq_id)
        chunk = (ids(smollm_tokenizer, 2) * 100)[: runner.step_tokens - 1]
        step = [
            SequenceInput(
                seq_id=0, position=len(ids(smollm_tokenizer, 0)), tokens=[13], wants_logits=True
            ),
            SequenceInput(
                seq_id=2, position=len(ids(smollm_tokenizer, 2)), tokens=chunk, wants_logits=True
            ),
        ]
        before = runner.evaluated_tokens
        indices = runner.decode(step)
        assert len(indices) == 2
        assert runner.evaluated_tokens - before == runner.step_tokens
        assert np.isfinite(runner.logits(indices[1])).all()
    finally:
        runner.close()


@pytest.mark.parametrize(
    ("seq_id", "position_shift", "token", "message"),
    [
        (0, 1, 13, "starts at position"),  # a gap in the sequence
        (0, -1, 13, "starts at position"),  # over what it holds
        (0, 0, 10**6, "outside the vocabulary"),
        (9, 0, 13, "no such sequence"),
        (-1, 0, 13, "no such sequence"),
    ],
)
def test_a_batch_llama_cpp_would_refuse_never_reaches_it(
    runner: BatchRunner, smollm_tokenizer: GgufModel, seq_id, position_shift, token, message
) -> None:
    prefill(runner, smollm_tokenizer, 0)
    held = len(ids(smollm_tokenizer, 0))
    before = runner.evaluated_tokens
    bad = SequenceInput(
        seq_id=seq_id, position=held + position_shift, tokens=[token], wants_logits=True
    )
    with pytest.raises(BatchRejectedError, match=message) as raised:
        runner.decode([bad])
    assert raised.value.seq_ids == {seq_id}
    assert runner.evaluated_tokens == before
    # The context is as it was: the right next step goes through.
    good = SequenceInput(seq_id=0, position=held, tokens=[13], wants_logits=True)
    [index] = runner.decode([good])
    assert np.isfinite(runner.logits(index)).all()


def test_a_step_over_the_budget_is_refused(
    runner: BatchRunner, smollm_tokenizer: GgufModel
) -> None:
    too_many = [13] * (runner.step_tokens + 1)
    with pytest.raises(BatchRejectedError, match="do not fit a step"):
        runner.decode([SequenceInput(seq_id=0, position=0, tokens=too_many, wants_logits=True)])


def test_a_sequence_out_of_range_beside_good_ones_is_refused_alone(
    runner: BatchRunner, smollm_tokenizer: GgufModel
) -> None:
    # Ids 0 to 2 and 5 would have padding looked up for 3 and 4, and the context has only 4.
    step = []
    for seq_id in (0, 1, 2):
        prefill(runner, smollm_tokenizer, seq_id)
        held = len(ids(smollm_tokenizer, seq_id))
        step.append(SequenceInput(seq_id=seq_id, position=held, tokens=[13], wants_logits=True))
    step.append(SequenceInput(seq_id=5, position=0, tokens=[13], wants_logits=True))
    with pytest.raises(BatchRejectedError, match="no such sequence") as raised:
        runner.decode(step)
    assert raised.value.seq_ids == {5}
    assert len(runner.decode(step[:3])) == 3  # the others go through
