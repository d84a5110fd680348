"""Which positions the teacher should write: CITER's labels, from teacher-forced passes.

CITER's shortcut: where the student's greedy token is the reference's, the student writes
(label 0); else, where the teacher's is, the teacher writes (1); where neither is, CITER rolls
the student out to see whether the answer still comes out right. Here the references are the
teacher's own greedy answers, so the teacher's token is the reference's by construction and
"neither" does not arise: the teacher writes where the student's token differs. (With
references from elsewhere, a position where neither is right is labelled "teacher", CITER's
other option, without a rollout.) `accept_prob` > 0 also lets the student write where the
teacher finds its token likely enough (the lenient acceptance rule of the verify policy),
so harmless rewordings are not counted as mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_client.router.positions import ItemPositions

STUDENT, TEACHER = 0, 1


def teacher_labels(item: ItemPositions, *, accept_prob: float = 0.0) -> npt.NDArray[np.uint8]:
    """1 where the teacher should write the token, 0 where the student may."""
    student_right = item.student == item.reference
    if accept_prob > 0:
        student_right |= item.teacher_prob.astype(np.float32) >= accept_prob
    return (~student_right).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class LabelCounts:
    positions: int
    teacher: int  # labelled 1
    neither_right: int  # labelled 1 though the teacher's token is not the reference's either

    @property
    def teacher_share(self) -> float:
        return self.teacher / self.positions if self.positions else 0.0


def count_labels(items: list[ItemPositions], *, accept_prob: float = 0.0) -> LabelCounts:
    positions = teacher = neither = 0
    for item in items:
        labels = teacher_labels(item, accept_prob=accept_prob).astype(bool)
        positions += len(item)
        teacher += int(labels.sum())
        neither += int((labels & (item.teacher != item.reference)).sum())
    return LabelCounts(positions=positions, teacher=teacher, neither_right=neither)
