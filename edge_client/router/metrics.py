"""How well a score ranks and how honest it is, numpy only: AUC and calibration bins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def auc(scores: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties
    count half; Mann-Whitney U). NaN when one class is missing."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # Average ranks over ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_score: float
    observed: float  # the share of positives among the positions in the bin


def calibration(
    scores: npt.NDArray[np.floating], labels: npt.NDArray[np.integer], *, bins: int = 10
) -> tuple[list[CalibrationBin], float]:
    """Equal-width bins of the score with the share of positives in each, and the expected
    calibration error (the count-weighted mean gap between score and share)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table = []
    error = 0.0
    for index in range(bins):
        mask = which == index
        count = int(mask.sum())
        if count == 0:
            continue
        mean_score, observed = float(scores[mask].mean()), float(labels[mask].mean())
        table.append(CalibrationBin(edges[index], edges[index + 1], count, mean_score, observed))
        error += count * abs(mean_score - observed)
    return table, error / max(len(scores), 1)
