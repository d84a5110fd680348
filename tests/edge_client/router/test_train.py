"""`relay-edge router train`: an MLP learns from real hidden states what the student's own
logits say, its held-out figures are those of the numpy router it writes, and the file
names its student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_client.router.model import RouterModel
from edge_client.router.positions import ItemPositions
from edge_client.router.training import TrainOptions, split_items, train_router
from relay_common.gguf import GgufModel

pytest.importorskip("torch", reason="training needs the router-train extra (torch)")

TEXT_FILE = Path(__file__).parents[1] / "eval" / "data" / "gsm8k_test_sample.jsonl"


@pytest.fixture(scope="module")
def unsure_positions(smollm2_models) -> list[ItemPositions]:
    """Real SmolLM2 hidden states over GSM8K questions, labelled "teacher" where the
    student's next-token entropy is in its upper third: a target its hidden state holds
    (the logits are a linear function of it), learnt only through the MLP."""
    model: GgufModel = smollm2_models.student
    text = " ".join(json.loads(line)["question"] for line in TEXT_FILE.read_text().splitlines())
    tokens = model.tokenize(text, add_bos=True)[:600]
    model.reset()
    model.append(tokens[:1])
    states, entropies, greedy = [], [], []
    for logits, state in model.append_with_outputs(tokens[1:], hidden=True):
        shifted = logits.astype(np.float64) - logits.max()
        weights = np.exp(shifted)
        entropies.append(np.log(weights.sum()) - (weights * shifted).sum() / weights.sum())
        states.append(state.copy())
        greedy.append(int(np.argmax(logits)))
    entropy = np.array(entropies, dtype=np.float32)
    unsure = entropy > np.quantile(entropy, 2 / 3)
    student = np.array(greedy, dtype=np.int32)
    reference = np.where(unsure, student + 1, student).astype(np.int32)
    hidden = np.array(states, dtype=np.float16)
    items = []
    for index, part in enumerate(np.array_split(np.arange(len(student)), 12)):
        items.append(
            ItemPositions(
                item_id=str(index + 1),
                hidden=hidden[part],
                reference=reference[part],
                student=student[part],
                teacher=reference[part],
                teacher_prob=np.zeros(len(part), dtype=np.float16),
                entropy=entropy[part].astype(np.float16),
            )
        )
    return items


def test_the_router_learns_what_the_hidden_state_holds(unsure_positions, tmp_path):
    result = train_router(
        unsure_positions,
        options=TrainOptions(hidden_sizes=(32,), holdout=0.25, max_epochs=60, threads=1),
        student_fingerprint="f" * 64,
        student_model="SmolLM2",
        provenance={"command": "test"},
    )
    report = result.report
    assert report.items_holdout == 3 and report.items_train == 9
    assert report.auc > 0.8  # the score ranks unsure positions first
    assert report.auc_entropy > 0.99  # the labels are the entropy's, as a check
    assert 0 <= report.calibration_error < 0.2
    assert sum(row.count for row in report.calibration) == report.positions_holdout
    rates = [row.call_rate for row in report.thresholds]
    assert rates == sorted(rates, reverse=True)  # a higher τ calls less

    path = tmp_path / "router.npz"
    result.router.save(path)

    loaded = RouterModel.load(path)
    assert loaded.meta.hidden_size == 576
    assert loaded.meta.provenance["report"]["auc"] == pytest.approx(report.auc)
    assert loaded.meta.provenance["command"] == "test"
    held = split_items(unsure_positions, holdout=0.25, seed=0)[1]
    hidden = np.concatenate([item.hidden for item in held])
    # What was reported is what the file scores (float16 weights, numpy).
    scores = loaded.scores(hidden)
    assert np.allclose(scores, result.router.scores(hidden), atol=2e-3)
    assert loaded.score(hidden[0]) == pytest.approx(float(scores[0]), abs=1e-6)


def test_citers_wider_network_trains_too(unsure_positions):
    result = train_router(
        unsure_positions,
        options=TrainOptions(hidden_sizes=(1152, 576), max_epochs=8, threads=1),
        student_fingerprint="f" * 64,
        student_model="SmolLM2",
    )
    assert [layer.weight.shape for layer in result.router.layers] == [
        (576, 1152),
        (1152, 576),
        (576, 1),
    ]
    assert result.report.auc > 0.7


def test_the_entropy_can_be_an_input_too(unsure_positions, tmp_path):
    result = train_router(
        unsure_positions,
        options=TrainOptions(
            hidden_sizes=(32,), with_entropy=True, batch_size=32, max_epochs=60, threads=1
        ),
        student_fingerprint="f" * 64,
        student_model="SmolLM2",
    )
    assert result.router.meta.with_entropy
    # 32 units and one that carries the entropy to the output layer
    assert result.router.layers[0].weight.shape == (577, 33)
    assert result.report.auc > 0.9  # the label is the entropy's: now an input
    path = tmp_path / "router.npz"
    result.router.save(path)
    assert RouterModel.load(path).meta.with_entropy
