"""Evaluation items from JSONL: GSM8K's `question` / `answer` ("... #### 42") or a generic
`prompt` / `answer` (the answer as written: a number, or LaTeX for math-verify)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_client.errors import DatasetError

# The instruction Qwen's math evaluations use; the checker reads the \boxed{} it asks for.
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True, slots=True)
class EvalItem:
    item_id: str  # the line number in the file (1-based): stable across runs of one file
    prompt: str  # the user's message, instruction included
    reference: str  # the expected final answer


def read_items(path: Path, *, limit: int | None = None) -> list[EvalItem]:
    """The first `limit` items of `path` (all when None). Raises DatasetError naming the line
    and what is wrong with it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset {path}: {exc.strerror or exc}") from exc
    items: list[EvalItem] = []
    for number, line in enumerate(lines, start=1):
        if limit is not None and len(items) >= limit:
            break
        if line.strip():
            items.append(_item(line, where=f"{path}:{number}", item_id=str(number)))
    if not items:
        raise DatasetError(f"the dataset {path} holds no items; give a JSONL file, one per line")
    return items


def _item(line: str, *, where: str, item_id: str) -> EvalItem:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object with question/answer fields")
    question = record.get("question", record.get("prompt"))
    answer = record.get("answer")
    if not isinstance(question, str) or answer is None:
        raise DatasetError(
            f"{where}: expected `question` and `answer` (GSM8K) or `prompt` and `answer`"
        )
    return EvalItem(
        item_id=item_id,
        prompt=f"{question.strip()}\n{INSTRUCTION}",
        reference=reference_answer(str(answer)),
    )


def reference_answer(answer: str) -> str:
    """GSM8K's final answer follows "####" after the worked solution (thousands separators
    dropped); other answers are kept as written."""
    _, marker, final = answer.rpartition("####")
    return final.strip().replace(",", "") if marker else answer.strip()
