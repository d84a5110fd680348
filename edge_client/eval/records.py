"""One JSONL record per item and setting, appended as each answer ends: a rerun with the same
output directory skips what is recorded and goes on (with `redo_fallbacks`, answers that had
fallback spans run again; the later record of an item wins). `run.json` keeps the options the
records were made with; a rerun with other options is refused rather than mixed in.

    DIR/run.json         the options of the run (student, teacher, span, max_tokens, …)
    DIR/records.jsonl    {"setting": "confidence:0.4", "item_id": "7", "correct": true, …}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_client.errors import ConfigError


@dataclass(frozen=True, slots=True)
class EvalRecord:
    setting: str
    item_id: str
    correct: bool
    reference: str
    text: str
    finish_reason: str
    usage: dict[str, Any]  # Usage.as_dict() of the answer
    wall_s: float
    rate: float | None = None  # the call rate a cost-matched random setting ran at
    machine: str | None = None  # machine_signature() of the machine that answered


def teacher_share(records: Sequence[EvalRecord]) -> float:
    """Teacher tokens ÷ all generated tokens, over `records`."""
    teacher = sum(record.usage["teacher_tokens"] for record in records)
    return teacher / _generated(records) if records else 0.0


def read_share(records: Sequence[EvalRecord]) -> float:
    """Draft tokens the teacher read ÷ all generated tokens, over `records` (records made
    before drafts were counted have none)."""
    read = sum(record.usage.get("draft_tokens", 0) for record in records)
    return read / _generated(records) if records else 0.0


def _generated(records: Sequence[EvalRecord]) -> int:
    """All generated tokens (at least 1, so a share of nothing is 0)."""
    total = sum(r.usage["teacher_tokens"] + r.usage["student_tokens"] for r in records)
    return max(total, 1)


class RecordLog:
    """The records of one output directory."""

    def __init__(
        self, directory: Path, *, options: dict[str, Any], redo_fallbacks: bool = False
    ) -> None:
        self.directory = directory
        self.redo_fallbacks = redo_fallbacks
        self.path = directory / "records.jsonl"
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output directory {directory}: {exc}") from exc
        self._check_options(options)
        self.records: dict[tuple[str, str], EvalRecord] = self._load()

    def has(self, setting: str, item_id: str) -> bool:
        """True when the answer is recorded and need not run again."""
        if self.redo_fallbacks and self.fell_back(setting, item_id):
            return False
        return (setting, item_id) in self.records

    def fell_back(self, setting: str, item_id: str) -> bool:
        """True when the recorded answer has spans the student wrote for the teacher."""
        record = self.records.get((setting, item_id))
        return record is not None and record.usage.get("fallback_spans", 0) > 0

    def append(self, record: EvalRecord) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
        self.records[(record.setting, record.item_id)] = record

    def of(self, setting: str, item_ids: list[str]) -> list[EvalRecord]:
        """The records of `setting` for those items that have one."""
        return [
            self.records[key]
            for key in ((setting, item) for item in item_ids)
            if key in self.records
        ]

    def _check_options(self, options: dict[str, Any]) -> None:
        manifest = self.directory / "run.json"
        if manifest.is_file():
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
            changed = sorted(
                key for key in options if key in recorded and recorded[key] != options[key]
            )
            if changed:
                details = ", ".join(f"{k}: {recorded.get(k)!r} → {options[k]!r}" for k in changed)
                raise ConfigError(
                    f"{self.directory} holds records made with other options ({details}); "
                    "rerun with those options to resume, or give another --out"
                )
            added = {key: value for key, value in options.items() if key not in recorded}
            if added:  # e.g. the router, once router settings join a run
                manifest.write_text(
                    json.dumps({**recorded, **added}, indent=2) + "\n", encoding="utf-8"
                )
        else:
            manifest.write_text(json.dumps(options, indent=2) + "\n", encoding="utf-8")

    def _load(self) -> dict[tuple[str, str], EvalRecord]:
        records: dict[tuple[str, str], EvalRecord] = {}
        if not self.path.is_file():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = EvalRecord(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut short when a run was killed: that item runs again
            records[(record.setting, record.item_id)] = record
        return records
