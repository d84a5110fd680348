"""`relay-edge router collect`: the teacher answers each training item (kept where right),
then the student reads that answer teacher-forced and the positions are stored. Resumable item
by item: a rerun skips every item whose reference and positions are already on disk.

    DIR/collect.json        the student, teacher and options the collection was made with
    DIR/references.jsonl    the teacher's answers (references.py)
    DIR/positions/ITEM.npz  the positions of each item with a right answer (positions.py)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_client.errors import ConfigError
from edge_client.eval.checking import is_correct
from edge_client.eval.dataset import EvalItem
from edge_client.router.forced import forced_positions
from edge_client.router.positions import PositionStore
from edge_client.router.references import Reference, ReferenceLog, greedy_answer
from relay_common.chat import ChatMessage
from relay_common.gguf import GgufModel

META_NAME = "collect.json"


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    item_id: str
    status: str  # "collected", "recorded" (done before), "teacher wrong" (or cut), "too long"
    positions: int = 0


@dataclass(frozen=True, slots=True)
class CollectModels:
    student: GgufModel
    teacher: GgufModel


def collection_meta(models: CollectModels, *, dataset: Path, max_tokens: int) -> dict[str, Any]:
    """What a collection is bound to: positions from another student (or teacher, or answer
    length) must not be mixed into it."""
    return {
        "student": models.student.name,
        "student_fingerprint": models.student.fingerprint,
        "hidden_size": models.student.hidden_size,
        "teacher": models.teacher.name,
        "dataset": str(dataset),
        "max_tokens": max_tokens,
    }


def check_collection(directory: Path, meta: dict[str, Any]) -> None:
    """Writes DIR/collect.json on the first run; refuses a rerun with other models/options."""
    path = directory / META_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            return
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot use the collection directory {directory}: {exc}") from exc
    changed = [
        key
        for key in ("student_fingerprint", "hidden_size", "teacher", "max_tokens")
        if recorded.get(key) != meta[key]
    ]
    if changed:
        raise ConfigError(
            f"{directory} was collected with other {', '.join(changed)} "
            f"({', '.join(f'{key}={recorded.get(key)}' for key in changed)}); "
            "give another --out, or the same models and options"
        )


def check_pair(models: CollectModels) -> None:
    if models.student.fingerprint != models.teacher.fingerprint:
        raise ConfigError(
            f"the teacher {models.teacher.name} has another tokenizer than the student "
            f"{models.student.name}: teacher-forced labels need one vocabulary; give a teacher "
            "of the student's family (e.g. --pair qwen2.5-coder)"
        )


def collect(
    models: CollectModels,
    items: Sequence[EvalItem],
    *,
    directory: Path,
    max_tokens: int,
    on_item: Callable[[ItemOutcome], None] = lambda outcome: None,
) -> list[ItemOutcome]:
    """Collects every item not yet on disk (call `check_pair` and `check_collection`
    first)."""
    references = ReferenceLog(directory / "references.jsonl")
    store = PositionStore(directory)
    outcomes = []
    for item in items:
        outcome = _collect_item(models, item, references, store, max_tokens=max_tokens)
        outcomes.append(outcome)
        on_item(outcome)
    return outcomes


def _collect_item(
    models: CollectModels,
    item: EvalItem,
    references: ReferenceLog,
    store: PositionStore,
    *,
    max_tokens: int,
) -> ItemOutcome:
    if store.has(item.item_id):
        return ItemOutcome(item.item_id, "recorded")
    prompt = models.student.render_chat([ChatMessage("user", item.prompt)])
    if len(prompt) + max_tokens + 1 > min(models.student.n_ctx, models.teacher.n_ctx):
        return ItemOutcome(item.item_id, "too long")
    reference = references.references.get(item.item_id)
    if reference is None or (reference.correct and not reference.top_tokens):
        # (A right answer recorded without the teacher's distributions is answered again.)
        reference = _teacher_reference(models.teacher, item, prompt, max_tokens=max_tokens)
        references.append(reference)
    if not reference.usable:
        return ItemOutcome(item.item_id, "teacher wrong")
    positions = forced_positions(student=models.student, prompt=prompt, reference=reference)
    store.save(positions)
    return ItemOutcome(item.item_id, "collected", positions=len(positions))


def _teacher_reference(
    teacher: GgufModel, item: EvalItem, prompt: list[int], *, max_tokens: int
) -> Reference:
    answer = greedy_answer(teacher, prompt, max_tokens=max_tokens)
    text = teacher.detokenize(answer.tokens).decode("utf-8", errors="replace")
    return dataclasses.replace(
        answer, item_id=item.item_id, correct=is_correct(text, item.reference)
    )
