"""The hidden state a router reads: llama.cpp's final hidden state after the model's last
norm (`result_norm`), from the same decode as the logits, and only when asked for."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel

PROMPT = "The capital of France is Paris. The capital of Italy is"


@pytest.fixture(scope="module")
def model() -> Iterator[GgufModel]:
    loaded = GgufModel(smollm2_path(), n_ctx=512)
    yield loaded
    loaded.close()


def test_the_logits_are_the_output_matrix_times_the_hidden_state(model, smollm2_output_matrix):
    """Had llama.cpp given the state before the final norm (or of another decode), the
    output matrix would not turn it into these logits."""
    output_matrix = smollm2_output_matrix
    model.set_hidden_states(True)
    try:
        model.reset()
        model.append(model.tokenize(PROMPT, add_bos=True))
        hidden = model.next_hidden().copy()
        logits = model.next_logits().copy()
    finally:
        model.set_hidden_states(False)
    assert hidden.shape == (model.hidden_size,) == (output_matrix.shape[1],)
    projected = output_matrix @ hidden
    # llama.cpp multiplies with quantized activations: close, not bit-equal.
    assert np.corrcoef(projected, logits)[0, 1] > 0.999
    assert np.max(np.abs(projected - logits)) < 0.05 * np.ptp(logits)
    assert int(np.argmax(projected)) == int(np.argmax(logits))


def test_the_hidden_state_of_a_decode_equals_the_full_context_pass(model):
    """Token by token (as the relay decodes) and teacher-forced over the whole context (as
    collect reads it), a position has the same hidden state."""
    tokens = model.tokenize(PROMPT, add_bos=True)
    model.set_hidden_states(True)
    try:
        model.reset()
        model.append(tokens[:4])
        stepwise = []
        for token in tokens[4:]:
            model.append([token])
            stepwise.append(model.next_hidden().copy())
    finally:
        model.set_hidden_states(False)
    model.reset()
    model.append(tokens[:3])
    forced = [state.copy() for _, state in model.append_with_outputs(tokens[3:], hidden=True)]
    forced = forced[1:]  # the outputs at tokens[4:]
    assert len(forced) == len(stepwise)
    for one, other in zip(stepwise, forced, strict=True):
        assert np.corrcoef(one, other)[0, 1] > 0.999


def test_a_span_appended_at_once_gives_its_last_tokens_state(model):
    tokens = model.tokenize(PROMPT, add_bos=True)
    model.set_hidden_states(True)
    try:
        model.reset()
        model.append(tokens)  # all but the last without embeddings, the last with
        at_once = model.next_hidden().copy()
        model.reset()
        model.append(tokens[:-1])
        model.append(tokens[-1:])
        one_by_one = model.next_hidden().copy()
    finally:
        model.set_hidden_states(False)
    assert np.corrcoef(at_once, one_by_one)[0, 1] > 0.9999


def test_without_hidden_states_there_is_none_to_read(model):
    model.reset()
    model.append(model.tokenize(PROMPT, add_bos=True))
    with pytest.raises(ValueError, match="set_hidden_states"):
        model.next_hidden()
