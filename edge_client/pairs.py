"""Named student/teacher pairs: `--pair NAME` sets the student's GGUF, a local teacher's and
the router shipped for that student (used by the router policy only).

A pair fills only what the user left unset: `--pair qwen2.5-coder --teacher HOST:PORT` keeps
the remote teacher and takes only the student from the pair.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_client.router.bundled import shipped_router
from edge_client.settings import LOCAL_TEACHER
from relay_common import qwen_pair


class PairName(str, enum.Enum):
    QWEN25_CODER = "qwen2.5-coder"  # Qwen2.5-Coder 0.5B student, 1.5B teacher (token mode)


_MODELS: dict[PairName, tuple[Callable[[], Path], Callable[[], Path]]] = {
    PairName.QWEN25_CODER: (qwen_pair.student_path, qwen_pair.teacher_path),
}
# The router trained for the pair's student (edge_client/router/shipped/).
_ROUTERS: dict[PairName, str] = {
    PairName.QWEN25_CODER: "qwen2.5-coder-0.5b-instruct.npz",
}


def apply_pair(pair: PairName | None, flags: dict[str, Any]) -> dict[str, Any]:
    """`flags` with the pair's models filled in where no flag set them (assembles them once;
    raises ModelNotFoundError with an install hint when the pair is not installed)."""
    if pair is None:
        return flags
    student, teacher = _MODELS[pair]
    filled = dict(flags)
    if filled.get("student") is None:
        filled["student"] = student()
    if filled.get("router") is None and pair in _ROUTERS:
        filled["router"] = shipped_router(_ROUTERS[pair])
    if filled.get("teacher") is None and not filled.get("teacher_free"):
        filled["teacher"] = LOCAL_TEACHER
        if filled.get("teacher_model") is None:
            filled["teacher_model"] = teacher()
    return filled
