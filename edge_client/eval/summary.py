"""Per-setting figures from the records of one run's items.

accuracy           correct ÷ answered, with a Wilson 95 % interval (sound at small n and at 0/1)
teacher_token_ratio  teacher tokens ÷ all generated tokens (the paper's call ratio)
teacher_read_ratio   draft tokens the teacher read to check them ÷ all generated tokens (the
                   verify policy's other cost: reading is a batched prefill, not generation)
gap_recovered      (accuracy - student alone) ÷ (teacher alone - student alone), when both ran
gained / lost      items this setting answers right and the student alone wrong / the reverse,
                   with the exact McNemar p of that split (when `never` ran: item by item is
                   how a policy's gain shows through the noise of near-ties; see relay-quality)
student/teacher tokens per second: student tokens over the time not spent in teacher calls;
                   teacher tokens over the edge-measured time of teacher calls (wire included)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

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
    gained: int | None = None  # against `never`, item by item
    lost: int | None = None
    mcnemar_p: float | None = None

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
    if student is None:
        return summaries
    student_right = {record.item_id: record.correct for record in records_of["never"]}
    summaries = [
        _against_student(summary, records_of[summary.setting], student_right)
        if summary is not student
        else summary
        for summary in summaries
    ]
    if teacher is None or teacher.accuracy == student.accuracy:
        return summaries
    gap = teacher.accuracy - student.accuracy
    return [
        replace(summary, gap_recovered=(summary.accuracy - student.accuracy) / gap)
        for summary in summaries
    ]


def mcnemar_p(gained: int, lost: int) -> float:
    """The exact two-sided McNemar p: the chance of a split at least this uneven among the
    items that changed, were each as likely to be gained as lost."""
    changed = gained + lost
    tail = sum(math.comb(changed, k) for k in range(min(gained, lost) + 1)) / 2**changed
    return min(1.0, 2 * tail)


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


def _against_student(
    summary: SettingSummary, records: list[EvalRecord], student_right: dict[str, bool]
) -> SettingSummary:
    paired = [(r.correct, student_right[r.item_id]) for r in records if r.item_id in student_right]
    gained = sum(right and not before for right, before in paired)
    lost = sum(before and not right for right, before in paired)
    return replace(summary, gained=gained, lost=lost, mcnemar_p=mcnemar_p(gained, lost))


def _per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


def _rounded(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value
