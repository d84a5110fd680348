"""`relay-edge router collect` on real models: references kept where right, teacher-forced
positions, resumable item by item, bound to its student."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_client.errors import ConfigError
from edge_client.eval.dataset import read_items
from edge_client.router.collect import (
    CollectModels,
    check_collection,
    check_pair,
    collect,
    collection_meta,
)
from edge_client.router.labels import count_labels, teacher_labels
from edge_client.router.positions import END, PositionStore
from edge_client.router.references import ReferenceLog
from relay_common.embedded import gemma3_path
from relay_common.gguf import GgufModel
from tests.edge_client.router.conftest import DATA, MAX_TOKENS


def test_the_teachers_right_answers_become_positions(smollm2_collection, smollm2_models):
    references = ReferenceLog(smollm2_collection / "references.jsonl").references
    store = PositionStore(smollm2_collection)
    assert set(references) == {"1", "2", "3", "4"}
    kept = {item_id for item_id, reference in references.items() if reference.correct}
    assert kept, "SmolLM2 answers none of the arithmetic items right: the fixture needs one"
    assert set(store.item_ids()) == kept  # only right answers give positions
    for item_id in kept:
        item = store.load(item_id)
        reference = references[item_id].tokens
        assert len(item) == len(reference) + 1  # each answer token, then the answer's end
        assert item.hidden.dtype == np.float16
        assert item.hidden.shape == (len(item), smollm2_models.student.hidden_size)
        assert item.reference.tolist() == [*reference, END]


def test_a_model_reading_its_own_answer_agrees_with_it(smollm2_collection):
    """The student and the teacher are one model here: teacher-forced, the student writes
    the teacher's greedy answer again (batching may flip a near-tie, no more), where the
    teacher, writing it, found that token most likely; hardly any position is labelled for
    the teacher."""
    references = ReferenceLog(smollm2_collection / "references.jsonl").references
    items = PositionStore(smollm2_collection).load_all()
    for item in items:
        reference = references[item.item_id]
        assert len(reference.top_tokens) == len(reference.tokens) + 1
        assert [top[0] for top in reference.top_tokens[:-1]] == reference.tokens
        agrees = item.student == item.reference
        assert np.mean(agrees) > 0.95
        top_probability = np.array([probs[0] for probs in reference.top_probs], np.float16)
        assert np.array_equal(item.teacher_prob[agrees], top_probability[agrees])
        assert np.all(np.isfinite(item.entropy.astype(np.float32)))
    counts = count_labels(items)
    assert counts.teacher_share < 0.05


def test_a_rerun_resumes_without_answering_again(smollm2_collection, smollm2_models):
    before = (smollm2_collection / "references.jsonl").read_text()
    evaluated = smollm2_models.teacher.evaluated_tokens
    outcomes = collect(
        smollm2_models,
        read_items(DATA / "arithmetic.jsonl"),
        directory=smollm2_collection,
        max_tokens=MAX_TOKENS,
    )
    assert {outcome.status for outcome in outcomes} <= {"recorded", "teacher wrong"}
    assert (smollm2_collection / "references.jsonl").read_text() == before
    assert smollm2_models.teacher.evaluated_tokens == evaluated


def test_labels_follow_citers_rule(smollm2_collection):
    item = PositionStore(smollm2_collection).load_all()[0]
    # Make the student miss two positions: one where the teacher gives its token a high
    # probability, one where it gives it almost none.
    student = item.reference.copy()
    student[0], student[1] = 17, 18
    probability = np.zeros(len(item), dtype=np.float16)
    probability[0] = 0.6
    changed = type(item)(**{**_fields(item), "student": student, "teacher_prob": probability})
    assert teacher_labels(changed)[:3].tolist() == [1, 1, 0]
    assert teacher_labels(changed, accept_prob=0.5)[:3].tolist() == [0, 1, 0]


def test_a_teacher_with_another_tokenizer_is_refused(smollm2_models):
    gemma = GgufModel(gemma3_path(), n_ctx=256, n_threads=1)
    try:
        with pytest.raises(ConfigError, match="another tokenizer"):
            check_pair(CollectModels(student=smollm2_models.student, teacher=gemma))
    finally:
        gemma.close()


def test_a_collection_is_bound_to_its_student(smollm2_models, tmp_path):
    meta = collection_meta(smollm2_models, dataset=DATA / "arithmetic.jsonl", max_tokens=64)
    check_collection(tmp_path, meta)
    assert json.loads((tmp_path / "collect.json").read_text())["hidden_size"] == 576
    check_collection(tmp_path, meta)  # the same: resumes
    with pytest.raises(ConfigError, match="student_fingerprint"):
        check_collection(tmp_path, {**meta, "student_fingerprint": "0" * 64})
    with pytest.raises(ConfigError, match="max_tokens"):
        check_collection(tmp_path, {**meta, "max_tokens": 128})


def _fields(item):
    return {name: getattr(item, name) for name in item.__slots__}
