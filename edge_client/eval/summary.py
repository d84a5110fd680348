"""Per-setting figures from the records of one run's items.

accuracy           correct ÷ answered, with a Wilson 95 % interval (sound at small n and at 0/1)
teacher_token_ratio  teacher tokens ÷ all generated tokens (the paper's call ratio)
teacher_read_ratio   draft tokens the teacher read to check them ÷ all generated tokens (the
                   verify policy's other cost: reading is a batched prefill, not generation)
gap_recovered      (accuracy - student alone) ÷ (teacher alone - student alone), when both ran
student/teacher tokens per second: student tokens over the time not spent in teacher calls;
                   teacher tokens over the edge-measured time of teacher calls (wire included)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edge_client.eval.plan import EvalSetting
from edge_client.eval.records import EvalRecord, read_share, teacher_share

_Z95 = 1.959964


@dataclass(frozen=True, slots=True)
class SettingSummary:
    setting: str
    family: str  # the curve it belongs to: never, teacher, confidence, random, …
    items: int
    correct: int
    accuracy: float
    accuracy_low: float  # Wilson 95 % interval
    accuracy_high: float
    teacher_token_ratio: float
    teacher_read_ratio: float
    calls_per_answer: float
    student_tokens_per_s: float
    teacher_tokens_per_s: float
    fallback_spans: int
    wall_s: float
    rate: float | None = None  # the call rate of a cost-matched random setting
    gap_recovered: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {key: _rounded(value) for key, value in asdict(self).items()}


def summarize(
    plan: Sequence[EvalSetting], records_of: dict[str, list[EvalRecord]]
) -> list[SettingSummary]:
    """One summary per setting that has records, in plan order."""
    summaries = [
        _summary(setting, records_of[setting.key]) for setting in plan if records_of[setting.key]
    ]
    by_key = {summary.setting: summary for summary in summaries}
    student, teacher = by_key.get("never"), by_key.get("teacher")
    if student is None or teacher is None or teacher.accuracy == student.accuracy:
        return summaries
    gap = teacher.accuracy - student.accuracy
    return [
        _with_gap(summary, (summary.accuracy - student.accuracy) / gap) for summary in summaries
    ]


def wilson_interval(correct: int, total: int) -> tuple[float, float]:
    """The Wilson score interval of a proportion at 95 %."""
    if total == 0:
        return 0.0, 1.0
    share = correct / total
    z2 = _Z95 * _Z95
    centre = (share + z2 / (2 * total)) / (1 + z2 / total)
    half = (_Z95 / (1 + z2 / total)) * math.sqrt(
        share * (1 - share) / total + z2 / (4 * total * total)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def _summary(setting: EvalSetting, records: list[EvalRecord]) -> SettingSummary:
    correct = sum(record.correct for record in records)
    low, high = wilson_interval(correct, len(records))
    student_tokens = sum(record.usage["student_tokens"] for record in records)
    teacher_tokens = sum(record.usage["teacher_tokens"] for record in records)
    teacher_s = sum(record.usage["teacher_latency_ms"] for record in records) / 1000
    wall_s = sum(record.wall_s for record in records)
    return SettingSummary(
        setting=setting.key,
        family=setting.family,
        items=len(records),
        correct=correct,
        accuracy=correct / len(records),
        accuracy_low=low,
        accuracy_high=high,
        teacher_token_ratio=teacher_share(records),
        teacher_read_ratio=read_share(records),
        calls_per_answer=sum(record.usage["teacher_calls"] for record in records) / len(records),
        student_tokens_per_s=_per_second(student_tokens, wall_s - teacher_s),
        teacher_tokens_per_s=_per_second(teacher_tokens, teacher_s),
        fallback_spans=sum(record.usage["fallback_spans"] for record in records),
        wall_s=wall_s,
        rate=records[0].rate,
    )


def _with_gap(summary: SettingSummary, gap_recovered: float) -> SettingSummary:
    return SettingSummary(**{**asdict(summary), "gap_recovered": gap_recovered})


def _per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def _rounded(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value
