"""What a router learns from, one file per item: at each position of the reference answer,
the student's final hidden state and what each model would write there.

    DIR/positions/ITEM.npz
        hidden        float16 [n, H]  the student's final hidden state before each token
        reference     int32 [n]       the reference's token there (END: the answer ends)
        student       int32 [n]       the student's greedy token given the reference so far
        teacher       int32 [n]       the teacher's greedy token, likewise
        teacher_prob  float16 [n]     the teacher's probability of the student's token
        entropy       float16 [n]     the student's next-token entropy (nats), a baseline

n is the reference's length + 1: the last position is where the answer ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_client.errors import DatasetError

END = -1  # any end-of-generation token: the models may end an answer with different ones
_FIELDS = ("hidden", "reference", "student", "teacher", "teacher_prob", "entropy")


@dataclass(frozen=True, slots=True)
class ItemPositions:
    item_id: str
    hidden: npt.NDArray[np.float16]
    reference: npt.NDArray[np.int32]
    student: npt.NDArray[np.int32]
    teacher: npt.NDArray[np.int32]
    teacher_prob: npt.NDArray[np.float16]
    entropy: npt.NDArray[np.float16]

    def __len__(self) -> int:
        return len(self.reference)


class PositionStore:
    """The positions of one collection directory, one file per item (written whole or not at
    all, so a stopped collection never leaves a half item behind)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "positions"

    def has(self, item_id: str) -> bool:
        return self._path(item_id).is_file()

    def save(self, item: ItemPositions) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self._path(item.item_id)
        partial = final.with_name(final.name + ".partial")
        with partial.open("wb") as out:
            np.savez(out, **{name: getattr(item, name) for name in _FIELDS})
        os.replace(partial, final)

    def load(self, item_id: str) -> ItemPositions:
        path = self._path(item_id)
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return ItemPositions(item_id=item_id, **{name: arrays[name] for name in _FIELDS})
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(
                f"cannot read {path} ({exc}); delete it and run the collection again"
            ) from exc

    def item_ids(self) -> list[str]:
        """The items stored, in the dataset's order (their ids are line numbers)."""
        if not self.directory.is_dir():
            return []
        ids = [path.stem for path in self.directory.glob("*.npz")]
        return sorted(ids, key=lambda item_id: (len(item_id), item_id))

    def load_all(self, item_ids: Iterable[str] | None = None) -> list[ItemPositions]:
        return [self.load(item_id) for item_id in (item_ids or self.item_ids())]

    def _path(self, item_id: str) -> Path:
        return self.directory / f"{item_id}.npz"
